"""The admin HTTP API (FastAPI, in dbfw's own event loop). OpenAPI at /openapi.json.

Every /api/ route needs ``Authorization: Bearer <api key>``: 401 without a valid key, 403 without the
route's role. API keys are compared by SHA-256 digest in constant time. Errors are JSON
(``{"error": "..."}``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..approvals.service import ApprovalError
from ..identity import Principal
from ..protocol.postgres.upstream import upstreams_reachable

if TYPE_CHECKING:
    from ..approvals.service import ApprovalService
    from ..audit.recorder import Recorder
    from ..config import Settings
    from ..protocol.common import Runtime
    from ..store.base import Store


class AdminHost(Protocol):
    """What the admin API needs of the running dbfw (the server implements it)."""

    rt: Runtime
    settings: Settings
    store: Store | None
    approvals: ApprovalService | None
    recorder: Recorder | None

    def reload_with_problems(self) -> list[str]: ...


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ApproveBody(BaseModel):
    comment: str | None = Field(default=None, max_length=2000)


class DenyBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class ApproveResult(BaseModel):
    status: str
    token: str | None = None
    expires_at: str | None = None
    approvals: int
    required_approvals: int


StatusFilter = Literal["pending", "approved", "denied", "expired", "consumed"]


def build_app(server: AdminHost) -> FastAPI:
    app = FastAPI(title="dbfw admin API", version=__version__, docs_url=None, redoc_url=None,
                  description="Approvals, recordings and rules of the dbfw database firewall.")

    _error_handlers(app)
    principal, require, service = _authentication(server)
    _health_routes(app, server, principal)
    _approval_routes(app, principal, require, service, server)
    _recording_routes(app, server, require)
    _rule_routes(app, server, require)
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(ApprovalError)
    async def _approval_error(request: Request, exc: ApprovalError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)



def _authentication(server: AdminHost) -> tuple[Any, Any, Any]:
    def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "missing API key: send Authorization: Bearer <api key>")
        found = server.rt.identities.by_api_key(key.strip())
        if found is None:
            raise ApiError(401, "invalid API key")
        return found

    def require(*roles: str) -> Any:
        def check(who: Principal = Depends(principal)) -> Principal:
            if not any(who.has_role(r) for r in roles):
                raise ApiError(403, f"{who.name} needs the {' or '.join(roles)} role for this")
            return who

        return check

    def service() -> Any:
        if server.approvals is None:
            raise ApiError(503, "approvals are not available: the store is not open")
        return server.approvals

    return principal, require, service


def _health_routes(app: FastAPI, server: AdminHost, principal: Any) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "draining": server.rt.draining}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        upstreams = await upstreams_reachable(server.settings)
        storage = await server.store.ping() if server.store is not None else False
        ready = all(upstreams.values()) and storage and not server.rt.draining
        return JSONResponse({"ready": ready, "storage": storage, "upstreams": upstreams,
                             "draining": server.rt.draining}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"])
    async def metrics_endpoint(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from .. import metrics

        admin = server.settings.admin
        if admin is not None and not admin.metrics_public:
            who = principal(request)
            if not (who.has_role("auditor") or who.has_role("admin")):
                raise ApiError(403, f"{who.name} needs the auditor or admin role for metrics")
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)



EVENT_POLL = 1.0  # seconds between looks at the store for the event stream
EVENT_KEEPALIVE = 15.0


async def _approval_stream(request: Request, service: Any, server: AdminHost) -> AsyncIterator[str]:
    """Requests as they are made and change, read from the store (so every instance's are seen): first
    ``ready``, then an ``approval`` event per new request or change; the stream ends when dbfw drains."""
    seen: dict[str, str] = {}
    started = False
    quiet = 0.0
    while not server.rt.draining and not await request.is_disconnected():
        out: list[str] = []
        for record in reversed(await service.store.list(None, 200, votes=True)):  # oldest first
            state = f"{record.effective_status()}:{len(record.votes)}"
            if seen.get(record.id) != state:
                seen[record.id] = state
                if started:
                    out.append(f"event: approval\ndata: {json.dumps(record.to_json())}\n\n")
        if not started:
            started = True
            out.append("event: ready\ndata: {}\n\n")
        quiet = 0.0 if out else quiet + EVENT_POLL
        if quiet >= EVENT_KEEPALIVE:
            out.append(": keep-alive\n\n")
            quiet = 0.0
        for chunk in out:
            yield chunk
        await asyncio.sleep(EVENT_POLL)


def _approval_routes(app: FastAPI, principal: Any, require: Any, service: Any, server: AdminHost) -> None:
    @app.get("/api/v1/approvals", tags=["approvals"])
    async def list_approvals(status: StatusFilter | None = None, limit: int = 200,
                             who: Principal = Depends(require("reviewer"))) -> dict[str, Any]:
        records = await service().store.list(status, max(1, min(limit, 1000)))
        return {"approvals": [r.to_json() for r in records]}

    @app.get("/api/v1/approvals/{request_id}", tags=["approvals"])
    async def get_approval(request_id: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        record = await service().store.get(request_id)
        if record is None:
            raise ApiError(404, f"no approval request {request_id}")
        if not who.has_role("reviewer") and who.name != record.requester:
            raise ApiError(403, "only reviewers, admins and the requester may read a request")
        return record.to_json()

    @app.post("/api/v1/approvals/{request_id}/approve", tags=["approvals"], response_model=ApproveResult)
    async def approve(request_id: str, body: ApproveBody | None = None,
                      who: Principal = Depends(require("reviewer"))) -> ApproveResult:
        record, token = await service().approve(who, request_id, body.comment if body else None)
        data = record.to_json()
        return ApproveResult(status=record.status, token=token,
                             expires_at=data["expires_at"] if record.status == "approved" else None,
                             approvals=len(record.votes), required_approvals=record.required_approvals)

    @app.post("/api/v1/approvals/{request_id}/deny", tags=["approvals"])
    async def deny(request_id: str, body: DenyBody, who: Principal = Depends(require("reviewer"))) -> dict[str, Any]:
        record = await service().deny(who, request_id, body.reason)
        return record.to_json()

    @app.get("/api/v1/events", tags=["approvals"])
    async def events(request: Request, who: Principal = Depends(require("reviewer", "auditor"))) -> StreamingResponse:
        """Server-sent events: ``approval`` with a request's JSON whenever one is made or changes (votes,
        decision, use, expiry), from any dbfw instance sharing the store. Sent within EVENT_POLL seconds."""
        return StreamingResponse(_approval_stream(request, service(), server), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/v1/approvals/{request_id}/events", tags=["approvals"])
    async def approval_events(request_id: str, who: Principal = Depends(require("reviewer", "auditor"))) -> Any:
        return {"events": await service().store.audit_events(request_id)}



def _recording_routes(app: FastAPI, server: AdminHost, require: Any) -> None:
    @app.get("/api/v1/sessions", tags=["recordings"])
    async def list_sessions(limit: int = 200, who: Principal = Depends(require("auditor"))) -> dict[str, Any]:
        if server.store is None:
            raise ApiError(503, "recordings are not available: the store is not open")
        if server.recorder is not None:
            await server.recorder.flush()
        return {"sessions": await server.store.sessions(max(1, min(limit, 1000)))}

    @app.get("/api/v1/sessions/{session_id}", tags=["recordings"])
    async def get_session(session_id: str, who: Principal = Depends(require("auditor"))) -> dict[str, Any]:
        if server.store is None:
            raise ApiError(503, "recordings are not available: the store is not open")
        if server.recorder is not None:
            await server.recorder.flush()
        found = await server.store.session(session_id)
        if found is None:
            raise ApiError(404, f"no recorded session {session_id}")
        return found



def _rule_routes(app: FastAPI, server: AdminHost, require: Any) -> None:
    @app.post("/api/v1/rules/reload", tags=["rules"])
    async def reload_rules(who: Principal = Depends(require("admin"))) -> Response:
        problems = server.reload_with_problems()
        if problems:
            return JSONResponse({"error": "the rules do not validate; the old rules stay", "problems": problems},
                                status_code=400)
        return JSONResponse({"status": "reloaded", "policies": len(server.rt.firewall.rules.policies)})
