"""Session recordings: who connected, every statement with its decision and outcome, login failures.

Events are buffered and written off the hot path in batches; a high-risk statement is written before
it runs. A sealer chains every record to the one before it (tamper evidence), and a shutdown flushes
and seals everything. No result value is ever recorded; with ``redact_literals`` neither are the
literals of recorded SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .. import log
from ..context import StatementContext
from ..sql.classify import Classification
from ..store.base import STATEMENTS, Event, SessionClosed, SessionOpened, Store

FLUSH_INTERVAL = 0.2
SEAL_INTERVAL = 1.0
HIGH_RISK = frozenset({"destructive_write", "ddl", "procedural", "privilege", "admin", "bulk_export",
                       "bulk_import", "unknown"})


def redacted_sql(classification: Classification) -> str:
    """The message with every literal replaced by '?' (the classification's shape)."""
    out = []
    parts = classification.shape.split("\x00")
    for i, part in enumerate(parts):
        out.append("?" if i % 2 else part)
    return "".join(out)


class Recorder:
    def __init__(self, store: Store, redact_literals: bool = False):
        self.store = store
        self.redact_literals = redact_literals
        self._sessions: list[SessionOpened] = []
        self._ends: list[SessionClosed] = []
        self._events: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._details: dict[tuple[int, str, str], tuple[Classification, dict[str, Any]]] = {}


    # --- what the sessions and the firewall report ----------------------------------------------------

    def session_started(self, ctx: StatementContext) -> None:
        now = time.time()
        self._sessions.append(SessionOpened(ctx.session_id, ctx.identity, ctx.client_addr, ctx.listener, ctx.database,
                                            now))
        self._event(now, ctx.identity, "session_start", ctx.session_id,
                    {"client": ctx.client_addr, "listener": ctx.listener, "database": ctx.database})

    def session_ended(self, ctx: StatementContext, reason: str) -> None:
        now = time.time()
        self._event(now, ctx.identity, "session_end", ctx.session_id, {"reason": reason})
        self._ends.append(SessionClosed(now, reason, ctx.session_id))

    def login_failed(self, user: str, client: str, listener: str, why: str) -> None:
        self._event(time.time(), user, "login_failed", None, {"client": client, "listener": listener, "why": why})

    def describe(self, sql: str, classification: Classification, action: str, policy: str,
                 request_id: str | None, sqlstate: str | None) -> dict[str, Any]:
        """A statement event's content. Cheap on the hot path: the fingerprint is derived from the shape
        when the event is written, on the store's thread. The same message decided the same way gets
        the same (never modified) dict, so a run lists it once however often it runs."""
        key = None
        if request_id is None and sqlstate is None:
            key = (id(classification), action, policy)
            known = self._details.get(key)
            if known is not None and known[0] is classification:
                return known[1]
        detail: dict[str, Any] = {"sql": redacted_sql(classification) if self.redact_literals else sql,
                                  "shape": classification.shape, "class": classification.cls, "action": action,
                                  "policy": policy}
        if request_id:
            detail["approval"] = request_id
        if sqlstate:
            detail["refused"] = sqlstate
        if key is not None:
            if len(self._details) >= 10_000:
                self._details.clear()
            self._details[key] = (classification, detail)
        return detail

    def deferred(self, detail: dict[str, Any]) -> bool:
        """Whether this statement's event can wait for its result (one event, written off the hot path)."""
        return detail["class"] not in HIGH_RISK and "refused" not in detail

    async def statement(self, ctx: StatementContext, detail: dict[str, Any]) -> None:
        """One execution of a statement; a high-risk one that runs is written before it runs."""
        self._event(time.time(), ctx.identity, "statement", ctx.session_id, detail)
        if detail["class"] in HIGH_RISK and "refused" not in detail:
            await self.flush()

    def executed(self, ctx: StatementContext, statements: list[dict[str, Any]], seconds: float, rows: int | None,
                 error: str | None) -> None:
        """The response is complete: one event per deferred statement, with its result; or, for statements
        recorded before they ran, a result event."""
        now = time.time()
        if not statements:
            outcome: dict[str, Any] = {"seconds": round(seconds, 6)}
            if rows is not None:
                outcome["rows"] = rows
            if error:
                outcome["error"] = error
            self._event(now, ctx.identity, "result", ctx.session_id, outcome)
            return
        append, identity, session_id = self._events.append, ctx.identity, ctx.session_id
        error = error or None
        for detail in statements:  # packed (seconds rounded too) into the session's run when written
            append(Event(now, identity, STATEMENTS, None, session_id, detail, seconds, rows, error))

    def _event(self, at: float, actor: str, action: str, session_id: str | None, detail: dict[str, Any]) -> None:
        # Serialised when written, off the event loop's path.
        self._events.append(Event(at, actor, action, None, session_id, detail))

    # --- writing -------------------------------------------------------------------------------------

    async def flush(self) -> None:
        async with self._lock:
            sessions, ends, events = self._sessions, self._ends, self._events
            if not (sessions or ends or events):
                return
            self._sessions, self._ends, self._events = [], [], []
            try:
                await self.store.record(sessions, ends, events)  # the store serialises the details
            except Exception as e:  # keep them for the next round rather than lose them
                self._sessions[:0], self._ends[:0], self._events[:0] = sessions, ends, events
                log.warning("recording.write_failed", error=type(e).__name__, pending=len(self._events))
                raise

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        last_seal = time.monotonic()
        while True:
            # Stopped only here, between flushes: a flush cancelled halfway would lose the batch it took.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), FLUSH_INTERVAL)
            if self._stopping.is_set():
                return
            try:
                await self.flush()
                if time.monotonic() - last_seal >= SEAL_INTERVAL:
                    await self.store.seal()
                    last_seal = time.monotonic()
            except Exception:  # reported by flush; the next round tries again
                pass

    async def stop(self) -> None:
        """Write and seal everything still buffered (SIGTERM loses nothing)."""
        if self._task is not None:
            self._stopping.set()
            await self._task  # a flush under way ends first
        for _ in range(3):
            try:
                await self.flush()
                await self.store.seal()
                return
            except Exception as e:
                log.warning("recording.stop_failed", error=repr(e))
                await asyncio.sleep(0.2)
