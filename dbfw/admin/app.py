"""The admin HTTP API (starlette). Health endpoints for now; approvals and recordings build on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from ..server import Server


def build_app(server: Server) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "draining": server.rt.draining})

    async def readyz(request: Request) -> JSONResponse:
        from ..server import upstreams_reachable

        upstreams = await upstreams_reachable(server.settings)
        ready = all(upstreams.values()) and not server.rt.draining
        return JSONResponse({"ready": ready, "upstreams": upstreams, "draining": server.rt.draining},
                            status_code=200 if ready else 503)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])
