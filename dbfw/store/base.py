"""Storage: one interface, two backends (SQLite embedded, PostgreSQL shared by several dbfw).

Every state change is one transaction, durable before dbfw answers. The SQL is shared by both
backends (written with ``?`` placeholders; the PostgreSQL backend numbers them), and so are the
versioned migrations. Approval consumption is a single conditional UPDATE, so concurrent retries,
in one dbfw or in several sharing a PostgreSQL store, let exactly one statement run.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, NamedTuple

# Each migration is a list of statements valid in both SQLite and PostgreSQL; ${ID} becomes the
# backend's auto-increment key type.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            requester TEXT NOT NULL,
            database_name TEXT NOT NULL,
            listener TEXT NOT NULL,
            sql_text TEXT NOT NULL,
            statement_hash TEXT NOT NULL,
            class TEXT NOT NULL,
            policy TEXT NOT NULL,
            required_approvals INTEGER NOT NULL,
            reviewers TEXT NOT NULL,
            token_ttl DOUBLE PRECISION NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            decided_at DOUBLE PRECISION,
            decided_by TEXT,
            reason TEXT,
            token_hash TEXT,
            token_expires_at DOUBLE PRECISION,
            consumed_at DOUBLE PRECISION
        )""",
        "CREATE UNIQUE INDEX approvals_one_pending ON approvals (requester, database_name, statement_hash) "
        "WHERE status = 'pending'",
        "CREATE INDEX approvals_lookup ON approvals (requester, database_name, statement_hash, status)",
        "CREATE UNIQUE INDEX approvals_token ON approvals (token_hash)",
        """CREATE TABLE approval_votes (
            request_id TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            comment TEXT,
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (request_id, reviewer)
        )""",
        """CREATE TABLE audit_events (
            id ${ID},
            at DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            request_id TEXT,
            detail TEXT NOT NULL
        )""",
    ],
    [
        # Session recordings share the audit table, and every record is chained to the one before it:
        # seal_seq is the order of the chain (given when a record is sealed), hash covers the record and
        # the previous record's hash.
        "ALTER TABLE audit_events ADD COLUMN session_id TEXT",
        "ALTER TABLE audit_events ADD COLUMN seal_seq BIGINT",
        "ALTER TABLE audit_events ADD COLUMN prev_hash TEXT",
        "ALTER TABLE audit_events ADD COLUMN hash TEXT",
        "CREATE INDEX audit_events_session ON audit_events (session_id, id)",
        "CREATE INDEX audit_events_seal ON audit_events (seal_seq)",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            identity TEXT NOT NULL,
            client_addr TEXT NOT NULL,
            listener TEXT NOT NULL,
            database_name TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            end_reason TEXT
        )""",
        "CREATE INDEX sessions_started ON sessions (started_at)",
    ],
    [
        # The last flush each recording writer committed: a flush retried after its writer went away
        # is not written twice.
        """CREATE TABLE recording_flushes (
            writer TEXT PRIMARY KEY,
            flush TEXT NOT NULL
        )""",
    ],
    [
        # What a request's statement would do, estimated when the request was made (JSON; see
        # dbfw.approvals.impact).
        "ALTER TABLE approvals ADD COLUMN impact TEXT",
    ],
]

GENESIS = "0" * 64


class SessionOpened(NamedTuple):
    """A recorded session's start (a row of ``sessions``, as SESSION_INSERT takes it)."""
    session_id: str
    identity: str
    client: str
    listener: str
    database: str
    started_at: float


class SessionClosed(NamedTuple):
    """A recorded session's end (as SESSION_END takes it)."""
    ended_at: float
    reason: str
    session_id: str


class Event(NamedTuple):
    """One recorded event. ``detail`` is a dict until the store finishes it into JSON. A deferred
    execution (action STATEMENTS) also carries its outcome: seconds, rows, error."""
    at: float
    actor: str
    action: str
    request_id: str | None
    session_id: str | None
    detail: dict[str, Any] | str
    seconds: float = 0.0
    rows: int | None = None
    error: str | None = None


class StoredEvent(NamedTuple):
    """An event as the audit_events row it becomes, before chaining."""
    at: float
    actor: str
    action: str
    request_id: str | None
    session_id: str | None
    detail: str


SESSION_INSERT = ("INSERT INTO sessions (id, identity, client_addr, listener, database_name, started_at) "
                  "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
SESSION_END = "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ?"


def finish_detail(detail: dict[str, Any]) -> str:
    """A recorded event's detail as the JSON stored: the shape (literals replaced, with markers) becomes
    the statement's fingerprint, as pg_stat_statements' queryid. Written out by hand for the few value
    types events hold: this runs for every statement recorded."""
    shape = detail.get("shape")
    parts = []
    for key in sorted(detail):
        value = detail[key]
        if key == "shape":
            key, value = "fingerprint", hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        if isinstance(value, str):
            text = _json_string(value)
        elif isinstance(value, bool) or value is None:
            text = "true" if value is True else "false" if value is False else "null"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = json.dumps(value, sort_keys=True)
        parts.append(f"{_json_string(key)}: {text}")
    if shape is not None:  # keep the keys sorted as json.dumps(sort_keys=True) would
        parts.sort()
    return "{" + ", ".join(parts) + "}"



# Statements that ran without needing to be durable first (reads, ordinary writes) are recorded in
# runs: one audit record per session and flush holds the session's consecutive executions. A run lists
# each distinct statement once and then one row per execution (when, which statement, how long, how
# many rows, which error), so a statement executed a thousand times costs a few numbers per execution.
# A run is chained like any record: editing, dropping or reordering one execution breaks the chain.
# Readers expand it back into one event per execution.
STATEMENTS = "statements"
RUN_COLUMNS = ("at", "statement", "seconds", "rows", "error")
_FINGERPRINTS: dict[str, str] = {}


def fingerprint(shape: str) -> str:
    fp = _FINGERPRINTS.get(shape)
    if fp is None:
        if len(_FINGERPRINTS) > 20_000:
            _FINGERPRINTS.clear()
        fp = _FINGERPRINTS[shape] = hashlib.sha256(shape.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return fp


def _pack_run(run: list[Event]) -> StoredEvent:
    index: dict[int, int] = {}
    statements: list[dict[str, Any]] = []
    rows = []
    for e in run:
        d = e.detail
        i = index.get(id(d))
        if i is None:
            i = index[id(d)] = len(statements)
            statements.append({"sql": d["sql"], "fingerprint": fingerprint(d["shape"]), "class": d["class"],
                               "action": d["action"], "policy": d["policy"], "approval": d.get("approval")})
        rows.append((e.at, i, round(e.seconds, 6), e.rows, e.error))
    first = run[0]
    detail = json.dumps({"statements": statements, "columns": RUN_COLUMNS, "rows": rows}, separators=(",", ":"))
    return StoredEvent(first.at, first.actor, STATEMENTS, None, first.session_id, detail)


def pack_events(events: list[Event]) -> list[StoredEvent]:
    """Recorded events as stored rows: details finished, and each session's consecutive executions
    gathered into one run record, placed where its first execution was, so every session's own order
    is kept."""
    out: list[StoredEvent | list[Event]] = []
    runs: dict[str | None, list[Event]] = {}
    for e in events:
        if e.action == STATEMENTS:
            run = runs.get(e.session_id)
            if run is None:
                run = runs[e.session_id] = []
                out.append(run)
            run.append(e)
        else:
            runs.pop(e.session_id, None)  # a session's later executions start a new run after this event
            detail = e.detail if isinstance(e.detail, str) else finish_detail(e.detail)
            out.append(StoredEvent(e.at, e.actor, e.action, e.request_id, e.session_id, detail))
    return [_pack_run(item) if isinstance(item, list) else item for item in out]


def expand_event(at: float, action: str, detail: str) -> list[dict[str, Any]]:
    """One stored record as the events it holds: a run becomes one statement event per execution."""
    body = json.loads(detail)
    if action != STATEMENTS:
        return [{"at": _iso(at), "t": float(at), "kind": action, **body}]
    statements = [{k: v for k, v in s.items() if v is not None} for s in body["statements"]]
    out = []
    for t, i, seconds, rows, error in body["rows"]:
        event: dict[str, Any] = {"at": _iso(t), "t": float(t), "kind": "statement", **statements[i],
                                 "seconds": seconds}
        if rows is not None:
            event["rows"] = rows
        if error is not None:
            event["error"] = error
        out.append(event)
    return out


def chain_hash(prev: str, row: Sequence[Any]) -> str:
    """sha256 over the previous record's hash and this record's fields, in a canonical form: each field's
    length and text, so no two different records can share an encoding."""
    at, actor, action, request_id, session_id, detail = row
    h = hashlib.sha256(prev.encode())
    for part in (repr(float(at)), actor, action, request_id or "", session_id or "", detail):
        b = part.encode("utf-8", "surrogateescape")
        h.update(b"%d:" % len(b))
        h.update(b)
    return h.hexdigest()


LAST_SEALED = "SELECT hash, seal_seq FROM audit_events WHERE seal_seq IS NOT NULL ORDER BY seal_seq DESC LIMIT 1"


def chained_rows(events: list[Event], last: Sequence[Any] | None) -> list[tuple[Any, ...]]:
    """Recorded events as audit rows chained after ``last`` (hash, seal_seq of the last sealed record)."""
    return chain(pack_events(events), last)


def chain(packed: list[StoredEvent], last: Sequence[Any] | None) -> list[tuple[Any, ...]]:
    """Stored rows (see pack_events) chained after ``last``."""
    prev, seq = (last[0], last[1]) if last else (GENESIS, 0)
    rows = []
    for e in packed:
        seq += 1
        digest = chain_hash(prev, e)
        rows.append((*e, seq, prev, digest))
        prev = digest
    return rows


UNSEALED = ("SELECT id, at, actor, action, request_id, session_id, detail FROM audit_events WHERE seal_seq IS NULL "
            "ORDER BY id")


def seal_updates(rows: Sequence[Sequence[Any]], last: Sequence[Any] | None) -> list[tuple[Any, ...]]:
    """(seal_seq, prev_hash, hash, id) for records written unchained (rows as UNSEALED selects them)."""
    chained = chain([tuple(r)[1:] for r in rows], last)
    return [(c[6], c[7], c[8], r[0]) for r, c in zip(rows, chained, strict=True)]


class StoreError(Exception):
    pass


@dataclass(frozen=True)
class Vote:
    reviewer: str
    comment: str | None
    at: float


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    status: str
    requester: str
    database: str
    listener: str
    sql: str
    statement_hash: str
    cls: str
    policy: str
    required_approvals: int
    reviewers: tuple[str, ...]
    token_ttl: float
    created_at: float
    expires_at: float
    decided_at: float | None = None
    decided_by: str | None = None
    reason: str | None = None
    token_hash: str | None = None
    token_expires_at: float | None = None
    consumed_at: float | None = None
    votes: tuple[Vote, ...] = field(default=())
    impact: dict[str, Any] | None = None  # what the statement would do (dbfw.approvals.impact)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.effective_status(), "requester": self.requester, "database": self.database,
            "listener": self.listener, "sql": self.sql, "class": self.cls, "policy": self.policy,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.token_expires_at if self.status == "approved" else self.expires_at),
            "approvals": [{"reviewer": v.reviewer, "comment": v.comment, "at": _iso(v.at)} for v in self.votes],
            "required_approvals": self.required_approvals, "reviewers": list(self.reviewers),
            "decided_at": _iso(self.decided_at) if self.decided_at else None, "decided_by": self.decided_by,
            "reason": self.reason, "impact": self.impact,
        }

    def effective_status(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self.status == "pending" and now >= self.expires_at:
            return "expired"
        if self.status == "approved" and self.token_expires_at is not None and now >= self.token_expires_at:
            return "expired"
        return self.status


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


_COLUMNS = ("id, status, requester, database_name, listener, sql_text, statement_hash, class, policy, "
            "required_approvals, reviewers, token_ttl, created_at, expires_at, decided_at, decided_by, reason, "
            "token_hash, token_expires_at, consumed_at, impact")


def record_from_row(row: Sequence[Any], votes: Sequence[Vote] = ()) -> ApprovalRecord:
    (rid, status, requester, database, listener, sql, statement_hash, cls, policy, required, reviewers, ttl,
     created_at, expires_at, decided_at, decided_by, reason, token_hash, token_expires_at, consumed_at, impact) = row
    return ApprovalRecord(rid, status, requester, database, listener, sql, statement_hash, cls, policy,
                          int(required), tuple(json.loads(reviewers)), float(ttl), float(created_at),
                          float(expires_at), decided_at, decided_by, reason, token_hash, token_expires_at,
                          consumed_at, tuple(votes), json.loads(impact) if impact else None)


class Store(ABC):
    """The storage interface. Implementations run each method as one transaction."""

    url: str

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    async def _transaction(self, steps: list[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """Run statements in one transaction; the rows each returned."""

    async def ping(self) -> bool:
        try:
            await self._fetch("SELECT 1")
            return True
        except Exception:
            return False

    # --- approvals ---------------------------------------------------------------------------------

    async def get(self, request_id: str) -> ApprovalRecord | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM approvals WHERE id = ?", (request_id,))
        if not rows:
            return None
        votes = await self._fetch("SELECT reviewer, comment, at FROM approval_votes WHERE request_id = ? ORDER BY at",
                                  (request_id,))
        return record_from_row(rows[0], [Vote(r[0], r[1], float(r[2])) for r in votes])

    async def list(self, status: str | None = None, limit: int = 200, votes: bool = False) -> list[ApprovalRecord]:
        """The newest requests (of a status); ``votes``: with their votes (one more query)."""
        now = time.time()
        if status == "pending":
            rows = await self._fetch(f"SELECT {_COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at > ? "
                                     "ORDER BY created_at DESC LIMIT ?", (now, limit))
        elif status is not None:
            rows = await self._fetch(f"SELECT {_COLUMNS} FROM approvals WHERE status = ? ORDER BY created_at DESC "
                                     "LIMIT ?", (status, limit))
        else:
            rows = await self._fetch(f"SELECT {_COLUMNS} FROM approvals ORDER BY created_at DESC LIMIT ?", (limit,))
        if not votes or not rows:
            return [record_from_row(r) for r in rows]
        found: dict[str, list[Vote]] = {}
        ids = [r[0] for r in rows]
        for rid, reviewer, comment, at in await self._fetch(
                f"SELECT request_id, reviewer, comment, at FROM approval_votes WHERE request_id IN "
                f"({', '.join('?' * len(ids))}) ORDER BY at", ids):
            found.setdefault(rid, []).append(Vote(reviewer, comment, float(at)))
        return [record_from_row(r, found.get(r[0], ())) for r in rows]

    async def count_pending(self, now: float) -> int:
        """How many requests wait for a decision now."""
        rows = await self._fetch("SELECT count(*) FROM approvals WHERE status = 'pending' AND expires_at > ?", (now,))
        return int(rows[0][0])

    async def create_request(self, rec: ApprovalRecord) -> tuple[ApprovalRecord, bool]:
        """Insert a pending request, or return the pending one the same requester already has for the same
        statement in the same database. The bool says whether this call created it."""
        rows = await self._transaction([
            ("UPDATE approvals SET status = 'expired' WHERE requester = ? AND database_name = ? AND "
             "statement_hash = ? AND status = 'pending' AND expires_at <= ?",
             (rec.requester, rec.database, rec.statement_hash, rec.created_at)),
            (f"INSERT INTO approvals ({_COLUMNS}) VALUES ({', '.join('?' * 21)}) ON CONFLICT DO NOTHING RETURNING id",
             (rec.id, "pending", rec.requester, rec.database, rec.listener, rec.sql, rec.statement_hash, rec.cls,
              rec.policy, rec.required_approvals, json.dumps(list(rec.reviewers)), rec.token_ttl, rec.created_at,
              rec.expires_at, None, None, None, None, None, None,
              json.dumps(rec.impact) if rec.impact is not None else None)),
        ])
        if rows[1]:
            return rec, True
        existing = await self._fetch(
            f"SELECT {_COLUMNS} FROM approvals WHERE requester = ? AND database_name = ? AND statement_hash = ? "
            "AND status = 'pending'", (rec.requester, rec.database, rec.statement_hash))
        if not existing:
            raise StoreError("the pending request vanished while it was being created")
        return record_from_row(existing[0]), False

    async def latest(self, requester: str, database: str, statement_hash: str) -> ApprovalRecord | None:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM approvals WHERE requester = ? AND database_name = ? AND statement_hash = ? "
            "ORDER BY created_at DESC LIMIT 1", (requester, database, statement_hash))
        return record_from_row(rows[0]) if rows else None

    async def vote(self, request_id: str, reviewer: str, comment: str | None, now: float,
                   token_hash: str) -> ApprovalRecord | None:
        """Record one reviewer's approval of a pending request (the same reviewer twice counts once); when
        enough distinct reviewers approved, the request becomes approved, bound to ``token_hash``."""
        await self._transaction([
            ("INSERT INTO approval_votes (request_id, reviewer, comment, at) SELECT CAST(? AS TEXT), "
             "CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION) WHERE EXISTS (SELECT 1 FROM approvals "
             "WHERE id = ? AND status = 'pending' AND expires_at > ?) ON CONFLICT DO NOTHING",
             (request_id, reviewer, comment, now, request_id, now)),
            ("UPDATE approvals SET status = 'approved', decided_at = ?, decided_by = ?, token_hash = ?, "
             "token_expires_at = ? + token_ttl WHERE id = ? AND status = 'pending' AND expires_at > ? AND "
             "required_approvals <= (SELECT count(*) FROM approval_votes WHERE request_id = ?)",
             (now, reviewer, token_hash, now, request_id, now, request_id)),
        ])
        return await self.get(request_id)

    async def deny(self, request_id: str, reviewer: str, reason: str, now: float) -> ApprovalRecord | None:
        rows = await self._transaction([
            ("UPDATE approvals SET status = 'denied', decided_at = ?, decided_by = ?, reason = ? "
             "WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING id",
             (now, reviewer, reason, request_id, now)),
        ])
        return await self.get(request_id) if rows[0] else None

    _CONSUME = ("UPDATE approvals SET status = 'consumed', consumed_at = ? WHERE id = (SELECT id FROM approvals WHERE "
                "requester = ? AND database_name = ? AND statement_hash = ? AND status = 'approved' AND "
                "token_expires_at > ? ORDER BY decided_at LIMIT 1) AND status = 'approved' RETURNING id")
    _CONSUME_TOKEN = ("UPDATE approvals SET status = 'consumed', consumed_at = ? WHERE token_hash = ? AND "
                      "status = 'approved' AND token_expires_at > ? AND requester = ? AND database_name = ? AND "
                      "statement_hash = ? RETURNING id")
    _AUDIT = "INSERT INTO audit_events (at, actor, action, request_id, detail) VALUES (?, ?, ?, ?, ?)"

    async def consume(self, requester: str, database: str, statement_hash: str, now: float,
                      detail: dict[str, Any] | None = None) -> str | None:
        """Use the approval for this requester, database and statement, if one is valid, and record that in
        the audit trail: exactly one caller wins. One round trip. Returns the request id."""
        return await self._consume(self._CONSUME, (now, requester, database, statement_hash, now), requester,
                                   now, detail or {})

    async def consume_token(self, token_hash: str, requester: str, database: str, statement_hash: str,
                            now: float, detail: dict[str, Any] | None = None) -> str | None:
        return await self._consume(self._CONSUME_TOKEN, (now, token_hash, now, requester, database, statement_hash),
                                   requester, now, {**(detail or {}), "explicit_token": True})

    async def _consume(self, update: str, args: Sequence[Any], actor: str, now: float,
                       detail: dict[str, Any]) -> str | None:
        # Backends override this to do both in one round trip; this generic form takes two.
        rows = await self._transaction([(update, args)])
        if not rows[0]:
            return None
        request_id = rows[0][0][0]
        await self._transaction([(self._AUDIT, (now, actor, "approval.consumed", request_id,
                                                json.dumps(detail, sort_keys=True)))])
        return request_id

    async def by_token(self, token_hash: str) -> ApprovalRecord | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM approvals WHERE token_hash = ?", (token_hash,))
        return record_from_row(rows[0]) if rows else None

    async def expire(self, now: float) -> int:
        rows = await self._transaction([
            ("UPDATE approvals SET status = 'expired' WHERE (status = 'pending' AND expires_at <= ?) OR "
             "(status = 'approved' AND token_expires_at <= ?) RETURNING id", (now, now)),
        ])
        return len(rows[0])

    # --- audit --------------------------------------------------------------------------------------

    async def audit(self, actor: str, action: str, request_id: str | None, detail: dict[str, Any]) -> None:
        await self._transaction([("INSERT INTO audit_events (at, actor, action, request_id, detail) "
                                  "VALUES (?, ?, ?, ?, ?)",
                                  (time.time(), actor, action, request_id, json.dumps(detail, sort_keys=True)))])

    # --- session recordings -------------------------------------------------------------------------

    _EVENT = ("INSERT INTO audit_events (at, actor, action, request_id, session_id, detail) "
              "VALUES (?, ?, ?, ?, ?, ?)")

    async def start_writer(self) -> None:  # noqa: B027 - most backends write in-process
        """Recordings are about to flow: a backend that writes them out of process starts that here."""

    @abstractmethod
    async def record(self, sessions: list[SessionOpened], ends: list[SessionClosed], events: list[Event]) -> None:
        """Store recorded sessions, their ends and their events (see pack_events), the events chained to
        the last sealed record."""

    @abstractmethod
    async def seal(self) -> int:
        """Chain every record not sealed yet to the last sealed one; return how many were sealed."""

    async def verify(self) -> tuple[int, dict[str, Any] | None]:
        """Walk the chain: how many records check out, and the first that does not (with why)."""
        rows = await self._fetch("SELECT id, at, actor, action, request_id, session_id, detail, prev_hash, hash, "
                                 "seal_seq FROM audit_events WHERE seal_seq IS NOT NULL ORDER BY seal_seq")
        prev = GENESIS
        for n, r in enumerate(rows):
            rid, fields, prev_hash, digest = r[0], r[1:7], r[7], r[8]
            if prev_hash != prev:
                return n, {"id": rid, "seal_seq": r[9], "why": "the link to the record before it is broken"}
            if chain_hash(prev, fields) != digest:
                return n, {"id": rid, "seal_seq": r[9], "why": "the record was changed after it was sealed"}
            prev = digest
        return len(rows), None

    async def sessions(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT id, identity, client_addr, listener, database_name, started_at, ended_at, "
                                 "end_reason FROM sessions ORDER BY started_at DESC LIMIT ?", (limit,))
        return [_session_json(r) for r in rows]

    async def session(self, session_id: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT id, identity, client_addr, listener, database_name, started_at, ended_at, "
                                 "end_reason FROM sessions WHERE id = ?", (session_id,))
        if not rows:
            return None
        out = _session_json(rows[0])
        events = await self._fetch("SELECT at, action, detail FROM audit_events WHERE session_id = ? ORDER BY id",
                                   (session_id,))
        out["events"] = [event for e in events for event in expand_event(e[0], e[1], e[2])]
        return out

    async def audit_events(self, request_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        if request_id is None:
            rows = await self._fetch("SELECT at, actor, action, request_id, detail FROM audit_events ORDER BY id "
                                     "DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetch("SELECT at, actor, action, request_id, detail FROM audit_events WHERE "
                                     "request_id = ? ORDER BY id", (request_id,))
        out = []
        for at, actor, action, rid, detail in rows:
            if action != STATEMENTS:
                out.append({"at": _iso(at), "actor": actor, "action": action, "request_id": rid,
                            "detail": json.loads(detail)})
                continue
            executions = expand_event(at, action, detail)  # a run: one event per execution, as readers see them
            if request_id is None:
                executions.reverse()  # newest first, like the rows around them
            for e in executions:
                out.append({"at": e.pop("at"), "actor": actor, "action": e.pop("kind"), "request_id": rid,
                            "detail": {k: v for k, v in e.items() if k != "t"}})
        return out[:limit] if request_id is None else out


def _session_json(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "identity": r[1], "client_addr": r[2], "listener": r[3], "database": r[4],
            "started_at": _iso(r[5]), "ended_at": _iso(r[6]), "end_reason": r[7]}
