"""The store contract, run on both backends: SQLite (embedded) and PostgreSQL (shared)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote
from uuid import uuid4

import psycopg
import pytest

from dbfw.store.base import STATEMENTS, ApprovalRecord, Event, SessionClosed, SessionOpened, Store
from dbfw.store.factory import open_store
from tests.conftest import PgTarget


def pg_url(pg: PgTarget, dbname: str) -> str:
    auth = quote(pg.user) + (f":{quote(pg.password)}" if pg.password else "")
    if pg.host.startswith("/"):
        return f"postgresql://{auth}@/{dbname}?host={quote(pg.host)}&port={pg.port}"
    return f"postgresql://{auth}@{pg.host}:{pg.port}/{dbname}"


@pytest.fixture
def store_url(request: pytest.FixtureRequest, pg: PgTarget, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    name = f"dbfw_store_{uuid4().hex[:8]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"create database {name}")
    yield pg_url(pg, name)
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


def record(**over: object) -> ApprovalRecord:
    now = time.time()
    base = dict(id=f"req_{uuid4().hex[:12]}", status="pending", requester="agent-ci", database="app", listener="pg",
                sql="DROP TABLE t", statement_hash="h1", cls="ddl", policy="p", required_approvals=1,
                reviewers=("role:reviewer",), token_ttl=60.0, created_at=now, expires_at=now + 3600)
    base.update(over)
    return ApprovalRecord(**base)  # type: ignore[arg-type]


async def _opened(url: str) -> Store:
    store = open_store(url)
    await store.open()
    return store


BACKENDS = pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)


@BACKENDS
def test_request_dedupe_vote_and_consume_once(store_url: str) -> None:
    async def scenario() -> None:
        store = await _opened(store_url)
        try:
            first, created = await store.create_request(record(required_approvals=2))
            assert created
            same, created_again = await store.create_request(record(required_approvals=2))
            assert not created_again and same.id == first.id  # one pending request per requester+db+statement
            now = time.time()
            r = await store.vote(first.id, "alice", "ok", now, "tok-a")
            assert r is not None and r.status == "pending" and len(r.votes) == 1
            r = await store.vote(first.id, "alice", "again", now, "tok-b")
            assert r is not None and r.status == "pending" and len(r.votes) == 1  # same reviewer counts once
            r = await store.vote(first.id, "bob", None, now, "tok-c")
            assert r is not None and r.status == "approved" and r.token_hash == "tok-c" and r.decided_by == "bob"
            assert r.token_expires_at == pytest.approx(now + 60)
            # Ten concurrent retries: exactly one consumes.
            results = await asyncio.gather(*(store.consume("agent-ci", "app", "h1", time.time()) for _ in range(10)))
            assert [x for x in results if x] == [first.id]
            assert (await store.get(first.id)).status == "consumed"  # type: ignore[union-attr]
            assert await store.consume("agent-ci", "app", "h1", time.time()) is None
        finally:
            await store.close()

    asyncio.run(scenario())


@BACKENDS
def test_token_binding_deny_expiry_and_persistence(store_url: str) -> None:
    async def scenario() -> None:
        store = await _opened(store_url)
        try:
            rec, _ = await store.create_request(record(statement_hash="h2", token_ttl=0.2))
            await store.vote(rec.id, "alice", None, time.time(), "tok-2")
            assert await store.consume_token("tok-2", "agent-ci", "app", "other-statement", time.time()) is None
            assert await store.consume_token("tok-2", "mallory", "app", "h2", time.time()) is None
            assert (await store.by_token("tok-2")).id == rec.id  # type: ignore[union-attr]
            await asyncio.sleep(0.3)
            assert await store.consume_token("tok-2", "agent-ci", "app", "h2", time.time()) is None  # expired
            assert await store.expire(time.time()) >= 1
            denied, _ = await store.create_request(record(statement_hash="h3"))
            d = await store.deny(denied.id, "bob", "no", time.time())
            assert d is not None and d.status == "denied" and d.reason == "no"
            assert await store.deny(denied.id, "bob", "twice", time.time()) is None  # no longer pending
            stale, _ = await store.create_request(record(statement_hash="h4", expires_at=time.time() - 1))
            fresh, created = await store.create_request(record(statement_hash="h4"))
            assert created and fresh.id != stale.id  # an expired pending request does not block a new one
            await store.audit("alice", "approval.denied", denied.id, {"reason": "no"})
        finally:
            await store.close()
        # Everything is there after reopening (and migrations run again harmlessly).
        store = await _opened(store_url)
        try:
            again = await store.get(denied.id)
            assert again is not None and again.status == "denied"
            events = await store.audit_events(denied.id)
            assert events and events[0]["actor"] == "alice" and events[0]["detail"] == {"reason": "no"}
            pending = await store.list("pending")
            assert fresh.id in [r.id for r in pending] and stale.id not in [r.id for r in pending]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_unsupported_storage_url_is_a_clear_error() -> None:
    from dbfw.store.base import StoreError

    with pytest.raises(StoreError, match="unsupported storage URL"):
        open_store("mongodb://x")


@BACKENDS
def test_recordings_are_chained_and_tampering_is_found(store_url: str) -> None:
    async def scenario() -> None:
        store = await _opened(store_url)
        try:
            now = time.time()
            await store.record([SessionOpened("s1", "agent-ci", "127.0.0.1:5000", "pg", "app", now)], [],
                               [Event(now, "agent-ci", "session_start", None, "s1", {"client": "x"}),
                                Event(now, "agent-ci", "statement", None, "s1",
                                 {"sql": "select 1", "shape": "select \x000\x00", "class": "read"})])
            await store.audit("alice", "approval.approved", "req_1", {"comment": "ok"})  # written unchained
            await store.record([], [SessionClosed(now + 1, "terminate", "s1")],
                               [Event(now + 1, "agent-ci", "session_end", None, "s1", {"reason": "terminate"})])
            assert await store.seal() == 0  # the unchained approval event was chained by the last write
            checked, broken = await store.verify()
            assert broken is None and checked == 4
            session = await store.session("s1")
            assert session is not None and session["end_reason"] == "terminate"
            assert [e["kind"] for e in session["events"]] == ["session_start", "statement", "session_end"]
            assert len(session["events"][1]["fingerprint"]) == 20 and "shape" not in session["events"][1]
            await store._transaction([("UPDATE audit_events SET actor = 'mallory' WHERE action = 'statement'", ())])
            _, broken = await store.verify()
            assert broken is not None and "changed" in broken["why"]
        finally:
            await store.close()

    asyncio.run(scenario())


@BACKENDS
def test_statement_runs_keep_each_sessions_order_and_are_chained(store_url: str) -> None:
    """Deferred statements are stored as one run per session and flush; readers see one event each."""

    def ran(at: float, session: str, sql: str, **extra: object) -> Event:
        detail = {"sql": sql, "shape": sql, "class": "read", "action": "allow", "policy": "p", **extra}
        return Event(at, "agent-ci", STATEMENTS, None, session, detail, 0.001, 1, None)

    async def scenario() -> None:
        store = await _opened(store_url)
        try:
            t = time.time()
            await store.record(
                [SessionOpened("a", "agent-ci", "x", "pg", "app", t),
                 SessionOpened("b", "agent-ci", "y", "pg", "app", t)],
                [],
                [Event(t, "agent-ci", "session_start", None, "a", {"client": "x"}),
                 ran(t + 1, "a", "select 1"),
                 Event(t + 1.5, "agent-ci", "session_start", None, "b", {"client": "y"}),
                 ran(t + 2, "b", "select 'b1'"),
                 ran(t + 3, "a", "select 2", approval="req_9"),
                 Event(t + 4, "agent-ci", "statement", None, "a", {"sql": "drop table t", "shape": "drop table t",
                                                              "class": "ddl"}),
                 ran(t + 5, "a", "select 3"),
                 ran(t + 6, "b", "select 'b2'")])
            rows = await store._fetch("SELECT action, session_id FROM audit_events ORDER BY id")
            assert rows == [("session_start", "a"), (STATEMENTS, "a"), ("session_start", "b"), (STATEMENTS, "b"),
                            ("statement", "a"), (STATEMENTS, "a")]
            a = await store.session("a")
            assert a is not None
            assert [(e["kind"], e.get("sql")) for e in a["events"]] == [
                ("session_start", None), ("statement", "select 1"), ("statement", "select 2"),
                ("statement", "drop table t"), ("statement", "select 3")]
            second = a["events"][2]
            assert second["approval"] == "req_9" and second["t"] == pytest.approx(t + 3) and second["rows"] == 1
            assert "error" not in second and len(second["fingerprint"]) == 20
            b = await store.session("b")
            assert b is not None and [e.get("sql") for e in b["events"]] == [None, "select 'b1'", "select 'b2'"]
            checked, broken = await store.verify()
            assert broken is None and checked == 6
            await store._transaction([("UPDATE audit_events SET detail = replace(detail, 'select 2', 'select 7') "
                                       "WHERE action = ?", (STATEMENTS,))])
            _, broken = await store.verify()
            assert broken is not None and "changed" in broken["why"]
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_flush_retried_after_its_writer_went_away_is_written_once(tmp_path: Path) -> None:
    from dbfw.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "flush.db"), "sqlite:///flush.db")
    store._open()
    t = time.time()
    batch = ([SessionOpened("s", "agent-ci", "x", "pg", "app", t)], [],
             [Event(t, "agent-ci", STATEMENTS, None, "s", {"sql": "select 1", "shape": "select 1", "class": "read",
                                                      "action": "allow", "policy": "p"}, 0.001, 1, None)])
    store._record_sync(*batch, ("writer-a", "flush-1"))  # the writer committed it, then went away
    store._record_sync(*batch, ("writer-a", "flush-1"))  # the store's in-process retry of the same flush
    store._record_sync(*batch, ("writer-a", "flush-2"))  # the next flush is written
    assert store._conn is not None
    assert store._conn.execute("select count(*) from audit_events").fetchone()[0] == 2
