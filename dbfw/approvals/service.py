"""Approvals: request, review, single-use token, with segregation of duties.

A statement that needs approval becomes a request bound to its requester, database and canonical
statement hash (equal for texts that differ only in whitespace, comments and keyword case). Reviewers
other than the requester approve or deny it; once enough distinct reviewers approved, the requester's
retry of that statement consumes the approval atomically and runs, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .. import log, metrics
from ..context import StatementContext
from ..identity import Principal
from ..policy.engine import Decision
from ..sql.classify import Classification
from ..sql.fingerprint import bound_fingerprint
from ..store.base import ApprovalRecord, Store
from ..verdict import Verdict, describe_statement
from .impact import bounded, describe
from .notify import Notifier

_TOKEN_COMMENT = re.compile(r"\A\s*/\*\s*dbfw:approval=([A-Za-z0-9_\-]{8,128})\s*\*/")
HOLD_POLL = 0.2


class ApprovalError(Exception):
    """A reviewer's action that cannot be done; ``status`` is the HTTP status the admin API answers."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def explicit_token(sql: str) -> str | None:
    """The token of a leading ``/* dbfw:approval=TOKEN */`` comment. Only dbfw's own marker is read here;
    the statement itself is read by the classifier, for which this comment is just a comment."""
    m = _TOKEN_COMMENT.match(sql)
    return m.group(1) if m else None


def may_review(principal: Principal, reviewers: tuple[str, ...]) -> bool:
    """``reviewers`` holds one clause per policy that asked for the approval; each clause lists its allowed
    reviewers separated by '|'. The reviewer must be allowed by every clause."""
    if not principal.has_role("reviewer"):
        return False

    def allowed(entry: str) -> bool:
        return principal.has_role(entry[5:]) if entry.startswith("role:") else entry == principal.name

    return all(any(allowed(e) for e in clause.split("|")) for clause in reviewers)


@dataclass
class ApprovalSettings:
    pending_ttl: float = 3600.0  # how long a request waits for a decision
    approve_url: str = ""  # the admin API's base URL, for notifications


def _consumed(request_id: str) -> Verdict:
    """Allowed by an approval, which covers one execution: the verdict names it so that a session can
    refuse a second execution of the same prepared statement."""
    return Verdict(True, request_id=request_id)


RECONCILE_INTERVAL = 30.0  # expiry, and requests other dbfw instances made or decided


class ApprovalService:
    def __init__(self, store: Store, settings: ApprovalSettings | None = None, notifier: Notifier | None = None):
        self.store = store
        self.settings = settings or ApprovalSettings()
        self.notifier = notifier
        self._expirer: asyncio.Task[None] | None = None
        # Requests waiting for a decision (dbfw_approvals_pending): counted as they change state here, and
        # reconciled with the store now and then for what other dbfw instances and the clock changed.
        self.pending = 0

    # --- the data path ------------------------------------------------------------------------------

    async def on_required(self, ctx: StatementContext, sql: str, classification: Classification,
                          decision: Decision) -> Verdict:
        """A statement the policy says needs approval: run it if an approval is waiting, else refuse it with
        the request to review."""
        statement_hash = bound_fingerprint(classification.fingerprint, ctx.path)
        now = time.time()
        token = explicit_token(sql)
        if token is not None:
            return await self._consume_explicit(ctx, token, statement_hash, now, decision)
        # The one storage round trip an approved statement costs: consume, audit included.
        request_id = await self.store.consume(ctx.identity, ctx.database, statement_hash, now,
                                              {"session": ctx.session_id})
        if request_id is not None:
            metrics.approvals_total.labels("consumed").inc()
            return _consumed(request_id)
        latest = await self.store.latest(ctx.identity, ctx.database, statement_hash)
        if latest is not None and latest.status == "denied" and latest.decided_at is not None \
                and now < latest.decided_at + self.settings.pending_ttl:
            return _denied(latest)
        if latest is not None and latest.effective_status(now) == "pending":
            record = latest
        else:
            record = await self._request(ctx, sql, classification, decision, now)
        hold = max((p.hold for p in decision.rules), default=0.0)
        if hold > 0:
            return await self._hold(ctx, record, statement_hash, hold, decision)
        return _required(record, decision)

    # What the statement would do, for the reviewer (dbfw.approvals.impact): set by the server.
    impact: Callable[[StatementContext, Classification], Awaitable[dict[str, Any]]] | None = None

    async def _request(self, ctx: StatementContext, sql: str, classification: Classification,
                       decision: Decision, now: float) -> ApprovalRecord:
        impact = await bounded(self.impact(ctx, classification)) if self.impact is not None else None
        policies = decision.rules
        record = ApprovalRecord(
            id=f"req_{secrets.token_hex(8)}", status="pending", requester=ctx.identity, database=ctx.database,
            listener=ctx.listener, sql=_storable(sql),
            statement_hash=bound_fingerprint(classification.fingerprint, ctx.path),
            cls=classification.cls,
            policy=" + ".join(p.name for p in policies) if policies else decision.policy,
            required_approvals=max((p.approvals for p in policies), default=1),
            reviewers=tuple(dict.fromkeys("|".join(p.reviewers) for p in policies)) or ("role:reviewer",),
            token_ttl=min((p.ttl for p in policies), default=900.0), created_at=now,
            expires_at=now + self.settings.pending_ttl, impact=impact)
        record, created = await self.store.create_request(record)
        if created:
            self.pending += 1
            await self._audit(ctx.identity, "approval.requested", record.id,
                              {"class": record.cls, "policy": record.policy, "database": record.database,
                               "listener": record.listener, "statement_hash": record.statement_hash})
            log.event("approval.requested", request=record.id, identity=ctx.identity, policy=record.policy,
                      cls=record.cls)
            if self.notifier is not None:
                self.notifier.submit(record, self.settings.approve_url)
        return record

    async def _consume_explicit(self, ctx: StatementContext, token: str, statement_hash: str, now: float,
                                decision: Decision) -> Verdict:
        th = token_hash(token)
        request_id = await self.store.consume_token(th, ctx.identity, ctx.database, statement_hash, now,
                                                    {"session": ctx.session_id})
        if request_id is not None:
            metrics.approvals_total.labels("consumed").inc()
            return _consumed(request_id)
        record = await self.store.by_token(th)
        if record is None or record.requester != ctx.identity or record.database != ctx.database:
            # (another identity's token: nothing about its request is told)
            why = "no approval of yours for this database has this token"
        elif record.status == "consumed":
            why = f"the approval of request {record.id} was already used"
        elif record.effective_status(now) == "expired":
            why = f"the approval of request {record.id} expired"
        elif record.statement_hash != statement_hash:
            why = f"the approval of request {record.id} is for another statement"
        else:
            why = f"request {record.id} is {record.status}"
        await self._audit(ctx.identity, "approval.token_refused", record.id if record else None,
                          {"session": ctx.session_id, "why": why})
        return Verdict(False, "DBF04", "dbfw: the approval token is invalid, expired, already used, or for "
                       "another statement", why, "run the statement without the token to request a new approval",
                       None, decision)

    async def _hold(self, ctx: StatementContext, record: ApprovalRecord, statement_hash: str, hold: float,
                    decision: Decision) -> Verdict:
        """Keep the statement waiting for the decision: the client sees a slow statement, not an error."""
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            await asyncio.sleep(HOLD_POLL)
            current = await self.store.get(record.id)
            if current is None:
                break
            if current.status == "approved":
                request_id = await self.store.consume(ctx.identity, ctx.database, statement_hash, time.time(),
                                                      {"session": ctx.session_id, "held": True})
                if request_id is not None:
                    metrics.approvals_total.labels("consumed").inc()
                    return _consumed(request_id)
                break
            if current.status == "denied":
                return _denied(current)
            if current.status != "pending":
                break
        return _required(record, decision)

    # --- reviewers ----------------------------------------------------------------------------------

    async def approve(self, reviewer: Principal, request_id: str,
                      comment: str | None) -> tuple[ApprovalRecord, str | None]:
        record = await self._reviewable(reviewer, request_id)
        token = secrets.token_urlsafe(24)
        updated = await self.store.vote(request_id, reviewer.name, comment, time.time(), token_hash(token))
        if updated is None:
            raise ApprovalError(404, f"no approval request {request_id}")
        if not any(v.reviewer == reviewer.name for v in updated.votes):
            raise ApprovalError(409, f"request {request_id} is {updated.effective_status()}, not pending")
        await self._audit(reviewer.name, "approval.approved" if updated.status == "approved" else "approval.vote",
                          request_id, {"comment": comment, "votes": len(updated.votes),
                                       "required": record.required_approvals})
        log.event("approval.vote", request=request_id, reviewer=reviewer.name, status=updated.status)
        if updated.status != "pending":
            self.pending = max(0, self.pending - 1)
        if updated.status == "approved" and updated.token_hash == token_hash(token):
            return updated, token
        return updated, None

    async def deny(self, reviewer: Principal, request_id: str, reason: str) -> ApprovalRecord:
        await self._reviewable(reviewer, request_id)
        updated = await self.store.deny(request_id, reviewer.name, reason, time.time())
        if updated is None:
            current = await self.store.get(request_id)
            raise ApprovalError(409, f"request {request_id} is {current.effective_status() if current else 'gone'}, "
                                "not pending")
        self.pending = max(0, self.pending - 1)
        await self._audit(reviewer.name, "approval.denied", request_id, {"reason": reason})
        log.event("approval.denied", request=request_id, reviewer=reviewer.name)
        return updated

    async def _reviewable(self, reviewer: Principal, request_id: str) -> ApprovalRecord:
        record = await self.store.get(request_id)
        if record is None:
            raise ApprovalError(404, f"no approval request {request_id}")
        if reviewer.name == record.requester:
            await self._audit(reviewer.name, "approval.self_review_refused", request_id, {})
            raise ApprovalError(403, "the requester may not review their own request")
        if not may_review(reviewer, record.reviewers):
            raise ApprovalError(403, f"{reviewer.name} is not among this request's reviewers "
                                     f"({_reviewers_text(record.reviewers)})")
        if record.effective_status() != "pending":
            raise ApprovalError(409, f"request {request_id} is {record.effective_status()}, not pending")
        return record

    # --- housekeeping -------------------------------------------------------------------------------

    async def _audit(self, actor: str, action: str, request_id: str | None, detail: dict[str, object]) -> None:
        metrics.approvals_total.labels(action.removeprefix("approval.")).inc()
        await self.store.audit(actor, action, request_id, detail)

    def start(self) -> None:
        self._expirer = asyncio.get_running_loop().create_task(self._expire_forever())

    async def stop(self) -> None:
        if self._expirer is not None:
            self._expirer.cancel()
        if self.notifier is not None:
            await self.notifier.stop()

    async def _expire_forever(self) -> None:
        while True:
            try:
                n = await self.store.expire(time.time())
                if n:
                    metrics.approvals_total.labels("expired").inc(n)
                    log.event("approval.expired", count=n)
                self.pending = await self.store.count_pending(time.time())
            except Exception as e:  # the store may be briefly unreachable; try again next round
                log.warning("approval.store_unreachable", error=type(e).__name__)
            await asyncio.sleep(RECONCILE_INTERVAL)


def _required(record: ApprovalRecord, decision: Decision) -> Verdict:
    what = describe_statement(decision.statement) or f"A {record.cls} statement."
    return Verdict(
        False, "DBF01", f'dbfw: approval required by policy "{record.policy}": request {record.id}',
        f"{what} {(describe(record.impact) + ' ') if record.impact else ''}{record.required_approvals} approval(s) "
        f"needed from {_reviewers_text(record.reviewers)}; the request waits until {_clock(record.expires_at)}.",
        f"a reviewer other than you approves it (dbfw approvals approve {record.id}); then run the same "
        "statement again", None, decision, request_id=record.id)


def _denied(record: ApprovalRecord) -> Verdict:
    return Verdict(False, "DBF03", f"dbfw: request {record.id} was denied by {record.decided_by}",
                   f"reason: {record.reason}", "change the statement or talk to the reviewer; a retry of the same "
                   "statement is refused for a while", None, None, request_id=record.id)


def _reviewers_text(reviewers: tuple[str, ...]) -> str:
    return " and ".join(" or ".join(clause.split("|")) for clause in reviewers)


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _storable(sql: str) -> str:
    """The text as reviewers read it: bytes that are not UTF-8 (a MySQL client may send any, kept as
    surrogates) as \\xNN escapes, which every store and JSON can hold. Matching uses the statement's hash."""
    if sql.isascii():
        return sql
    try:
        sql.encode("utf-8")
        return sql
    except UnicodeEncodeError:
        return sql.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
