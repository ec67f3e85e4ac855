"""Approvals end to end: request, review, single-use retry — through real clients and the admin API."""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import psycopg
import pytest

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, PgTarget, running_dbfw, start_dbfw, write_config
from tests.integration.support import scratch_table

RULES = """\
defaults: {action: require_approval, unknown: require_approval}
policies:
  - {name: everyday, match: {classes: [read, write, transaction, session]}, action: allow}
  - name: schema-and-exports
    match: {classes: [ddl, privilege, bulk_export, bulk_import, destructive_write, procedural, admin]}
    action: require_approval
    ttl: 60s
  - {name: two-person, match: {tables: ["*two_person*"]}, action: require_approval, approvals: 2}
  - {name: held, match: {tables: ["*held*"]}, action: require_approval, hold: 8s}
  - {name: short-ttl, match: {tables: ["*short_ttl*"]}, action: require_approval, ttl: 1s}
  - name: named-reviewer
    match: {tables: ["*bob_only*"]}
    action: require_approval
    reviewers: [bob]
"""


def _api(proc: DbfwProcess, method: str, path: str, key: str | None, body: dict[str, Any] | None = None
         ) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(f"http://127.0.0.1:{proc.admin_port}{path}", method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def approve(proc: DbfwProcess, request_id: str, key: str = "alice-api-key") -> tuple[int, Any]:
    return _api(proc, "POST", f"/api/v1/approvals/{request_id}/approve", key, {"comment": "looks fine"})


def request_id_of(err: psycopg.Error | asyncpg.PostgresError) -> str:
    m = re.search(r"request (req_[0-9a-f]+)", str(err))
    assert m, f"no request id in {err}"
    return m.group(1)


def run(conninfo: str, sql: str) -> psycopg.Error | None:
    """Run sql (simple protocol); the error it raised, or None."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            conn.execute(sql, prepare=False)
        except psycopg.Error as e:
            return e
    return None


@pytest.fixture(scope="module")
def fw(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with running_dbfw(tmp_path_factory.mktemp("approvals"), pg, RULES) as proc:
        yield proc


@pytest.fixture
def table(pg: PgTarget) -> Iterator[str]:
    with scratch_table(pg, "apr", "id int primary key, n int default 0", "insert into {t} values (1, 0)") as name:
        yield name


def exists(pg: PgTarget, table: str) -> bool:
    with psycopg.connect(pg.conninfo()) as conn:
        return conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]  # type: ignore[index]


def test_ddl_waits_for_approval_then_runs_once(fw: DbfwProcess, pg: PgTarget, table: str) -> None:
    err = run(fw.conninfo(), f"DROP TABLE {table}")
    assert err is not None and err.sqlstate == "DBF01"
    rid = request_id_of(err)
    assert err.diag.message_hint is not None and f"dbfw approvals approve {rid}" in err.diag.message_hint
    # The same statement again while pending: the same request.
    again = run(fw.conninfo(), f"drop   table {table}")
    assert again is not None and request_id_of(again) == rid
    status, req = _api(fw, "GET", f"/api/v1/approvals/{rid}", "alice-api-key")
    assert status == 200 and req["status"] == "pending" and req["requester"] == AGENT
    assert req["sql"] == f"DROP TABLE {table}" and req["class"] == "ddl" and req["policy"] == "schema-and-exports"
    assert req["database"] == "test" and req["required_approvals"] == 1
    status, result = approve(fw, rid)
    assert status == 200 and result["status"] == "approved" and result["token"] and result["expires_at"]
    assert exists(pg, table)
    # Same text up to whitespace, comments and keyword case: it runs, once.
    assert run(fw.conninfo(), f"/* retry */ drop\n  TABLE {table} -- now") is None
    assert not exists(pg, table)
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"create table {table} (id int)")
    replay = run(fw.conninfo(), f"DROP TABLE {table}")
    assert replay is not None and replay.sqlstate == "DBF01" and request_id_of(replay) != rid
    assert exists(pg, table)
    status, req = _api(fw, "GET", f"/api/v1/approvals/{rid}", "alice-api-key")
    assert req["status"] == "consumed"
    status, events = _api(fw, "GET", f"/api/v1/approvals/{rid}/events", "alice-api-key")
    assert [e["action"] for e in events["events"]] == ["approval.requested", "approval.approved",
                                                       "approval.consumed"]
    assert events["events"][1]["actor"] == "alice"


def test_extended_protocol_cycle_with_asyncpg(fw: DbfwProcess, pg: PgTarget, table: str) -> None:
    async def attempt() -> str | None:
        conn = await asyncpg.connect(host=fw.host, port=fw.port, user=AGENT, password=AGENT_PASSWORD,
                                     database="test")
        try:
            await conn.execute(f"TRUNCATE {table}")
            return None
        except asyncpg.PostgresError as e:
            assert e.sqlstate == "DBF01"
            return request_id_of(e)
        finally:
            await conn.close()

    rid = asyncio.run(attempt())
    assert rid is not None
    assert approve(fw, rid)[0] == 200
    assert asyncio.run(attempt()) is None
    with psycopg.connect(pg.conninfo()) as conn:
        assert conn.execute(f"select count(*) from {table}").fetchone() == (0,)


def test_the_requester_never_approves_their_own_request(fw: DbfwProcess, table: str) -> None:
    for user, password, key in (("agent-reviewer", "agent-reviewer-secret", "agent-reviewer-api-key"),
                                ("root-admin", "root-admin-secret", "root-admin-api-key")):
        err = run(fw.conninfo(user=user, password=password), f"TRUNCATE {table}")
        assert err is not None and err.sqlstate == "DBF01"
        rid = request_id_of(err)
        status, body = approve(fw, rid, key)
        assert status == 403 and "own request" in body["error"]
        status, body = _api(fw, "POST", f"/api/v1/approvals/{rid}/deny", key, {"reason": "mine"})
        assert status == 403
        # Someone else can.
        assert approve(fw, rid, "bob-api-key")[0] == 200


def test_api_authentication_and_roles(fw: DbfwProcess, table: str) -> None:
    err = run(fw.conninfo(), f"TRUNCATE {table}")
    rid = request_id_of(err)  # type: ignore[arg-type]
    assert _api(fw, "GET", "/api/v1/approvals?status=pending", None)[0] == 401
    assert _api(fw, "GET", "/api/v1/approvals?status=pending", "wrong-key")[0] == 401
    assert approve(fw, rid, "carol-api-key")[0] == 403  # an auditor does not approve
    assert _api(fw, "GET", "/api/v1/approvals?status=pending", "carol-api-key")[0] == 403
    status, listing = _api(fw, "GET", "/api/v1/approvals?status=pending", "alice-api-key")
    assert status == 200 and rid in [r["id"] for r in listing["approvals"]]
    assert approve(fw, "req_doesnotexist")[0] == 404
    assert _api(fw, "POST", f"/api/v1/approvals/{rid}/deny", "alice-api-key", {})[0] == 422
    with urllib.request.urlopen(f"http://127.0.0.1:{fw.admin_port}/openapi.json", timeout=10) as resp:
        spec = json.loads(resp.read())
    assert "/api/v1/approvals/{request_id}/approve" in spec["paths"]


def test_only_the_named_reviewers_may_approve(fw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "bob_only", "id int") as name:
        rid = request_id_of(run(fw.conninfo(), f"TRUNCATE {name}"))  # type: ignore[arg-type]
        status, body = approve(fw, rid, "alice-api-key")
        assert status == 403 and "not among this request's reviewers" in body["error"]
        assert approve(fw, rid, "bob-api-key")[0] == 200


def test_statement_identity_database_swaps_and_literals_do_not_use_an_approval(fw: DbfwProcess, table: str) -> None:
    sql = f"UPDATE {table} SET n = n + 1 WHERE 1 = 1"
    rid = request_id_of(run(fw.conninfo(), sql))  # type: ignore[arg-type]
    assert approve(fw, rid)[0] == 200
    for conninfo, text in (
        (fw.conninfo(), f"UPDATE {table} SET n = n + 2 WHERE 1 = 1"),               # another literal
        (fw.conninfo(), f"UPDATE {table} SET n = n + 1 WHERE 2 = 2"),
        (fw.conninfo(user="agent-2", password="agent-2-secret"), sql),           # another identity
    ):
        err = run(conninfo, text)
        assert err is not None and err.sqlstate == "DBF01" and request_id_of(err) != rid, text
    assert run(fw.conninfo(), sql) is None  # the approved one still runs, once
    assert run(fw.conninfo(), sql).sqlstate == "DBF01"  # type: ignore[union-attr]


def test_another_database_does_not_use_the_approval(fw: DbfwProcess) -> None:
    sql = f"CREATE TABLE dbswap_{uuid4().hex[:6]} (id int)"
    rid = request_id_of(run(fw.conninfo(dbname="test"), sql))  # type: ignore[arg-type]
    assert approve(fw, rid)[0] == 200
    err = run(fw.conninfo(dbname="postgres"), sql)
    assert err is not None and err.sqlstate == "DBF01" and request_id_of(err) != rid
    assert run(fw.conninfo(dbname="test"), sql) is None
    assert run(fw.conninfo(dbname="test"), f"DROP TABLE {sql.split()[2]}").sqlstate == "DBF01"  # type: ignore


def test_explicit_token_comment(fw: DbfwProcess, pg: PgTarget, table: str) -> None:
    sql = f"TRUNCATE {table}"
    rid = request_id_of(run(fw.conninfo(), sql))  # type: ignore[arg-type]
    token = approve(fw, rid)[1]["token"]
    wrong = run(fw.conninfo(), f"/* dbfw:approval=not-a-real-token-123 */ {sql}")
    assert wrong is not None and wrong.sqlstate == "DBF04"
    other = run(fw.conninfo(), f"/* dbfw:approval={token} */ DROP TABLE {table}")
    assert other is not None and other.sqlstate == "DBF04" and "another statement" in str(other.diag.message_detail)
    assert run(fw.conninfo(), f"/* dbfw:approval={token} */ {sql}") is None
    used = run(fw.conninfo(), f"/* dbfw:approval={token} */ {sql}")
    assert used is not None and used.sqlstate == "DBF04" and "already used" in str(used.diag.message_detail)


def test_an_expired_approval_does_not_run(fw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "short_ttl", "id int") as name:
        rid = request_id_of(run(fw.conninfo(), f"TRUNCATE {name}"))  # type: ignore[arg-type]
        token = approve(fw, rid)[1]["token"]
        time.sleep(1.3)
        expired = run(fw.conninfo(), f"/* dbfw:approval={token} */ TRUNCATE {name}")
        assert expired is not None and expired.sqlstate == "DBF04" and "expired" in str(expired.diag.message_detail)
        implicit = run(fw.conninfo(), f"TRUNCATE {name}")
        assert implicit is not None and implicit.sqlstate == "DBF01" and request_id_of(implicit) != rid


def test_two_distinct_reviewers_are_needed(fw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "two_person", "id int") as name:
        rid = request_id_of(run(fw.conninfo(), f"TRUNCATE {name}"))  # type: ignore[arg-type]
        status, first = approve(fw, rid, "alice-api-key")
        assert status == 200 and first["status"] == "pending" and first["token"] is None
        assert first["approvals"] == 1 and first["required_approvals"] == 2
        status, again = approve(fw, rid, "alice-api-key")  # the same reviewer twice counts once
        assert status == 200 and again["approvals"] == 1 and again["status"] == "pending"
        assert run(fw.conninfo(), f"TRUNCATE {name}").sqlstate == "DBF01"  # type: ignore[union-attr]
        status, second = approve(fw, rid, "bob-api-key")
        assert status == 200 and second["status"] == "approved" and second["token"]
        assert run(fw.conninfo(), f"TRUNCATE {name}") is None


def test_deny_with_reason(fw: DbfwProcess, pg: PgTarget, table: str) -> None:
    rid = request_id_of(run(fw.conninfo(), f"DROP TABLE {table}"))  # type: ignore[arg-type]
    status, denied = _api(fw, "POST", f"/api/v1/approvals/{rid}/deny", "bob-api-key",
                          {"reason": "not during business hours"})
    assert status == 200 and denied["status"] == "denied" and denied["reason"] == "not during business hours"
    err = run(fw.conninfo(), f"DROP TABLE {table}")
    assert err is not None and err.sqlstate == "DBF03"
    assert err.diag.message_detail == "reason: not during business hours"
    assert approve(fw, rid)[0] == 409
    assert exists(pg, table)


def test_hold_waits_for_the_decision_instead_of_failing(fw: DbfwProcess, pg: PgTarget) -> None:
    name = f"held_{uuid4().hex[:6]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"create table {name} (id int)")
        conn.execute(f"insert into {name} values (1)")

    def reviewer() -> None:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            _, listing = _api(fw, "GET", "/api/v1/approvals?status=pending", "alice-api-key")
            mine = [r for r in listing["approvals"] if name in r["sql"]]
            if mine:
                approve(fw, mine[0]["id"])
                return
            time.sleep(0.2)

    t = threading.Thread(target=reviewer)
    t.start()
    started = time.monotonic()
    try:
        assert run(fw.conninfo(), f"TRUNCATE {name}") is None  # a slow statement, not an error
        assert 0.2 < time.monotonic() - started < 8
        with psycopg.connect(pg.conninfo()) as conn:
            assert conn.execute(f"select count(*) from {name}").fetchone() == (0,)
    finally:
        t.join()
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop table {name}")


def test_concurrent_retries_race_one_approval(fw: DbfwProcess, pg: PgTarget, table: str) -> None:
    sql = f"UPDATE {table} SET n = n + 1 WHERE true"
    rid = request_id_of(run(fw.conninfo(), sql))  # type: ignore[arg-type]
    assert approve(fw, rid)[0] == 200
    conns = [psycopg.connect(fw.conninfo(), autocommit=True) for _ in range(8)]
    barrier = threading.Barrier(len(conns))
    outcomes: list[str | None] = [None] * len(conns)

    def go(i: int) -> None:
        barrier.wait()
        try:
            conns[i].execute(sql, prepare=False)
            outcomes[i] = "ran"
        except psycopg.Error as e:
            outcomes[i] = e.sqlstate

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    assert outcomes.count("ran") == 1, outcomes
    assert set(outcomes) == {"ran", "DBF01"}
    with psycopg.connect(pg.conninfo()) as conn:
        assert conn.execute(f"select n from {table}").fetchone() == (1,)


def test_requests_and_approvals_survive_a_restart(pg: PgTarget, tmp_path: Path, table: str) -> None:
    config = write_config(tmp_path, pg)
    (tmp_path / "rules.yaml").write_text(RULES)
    proc = start_dbfw(config)
    try:
        pending = request_id_of(run(proc.conninfo(), f"DROP TABLE {table}"))  # type: ignore[arg-type]
        approved = request_id_of(run(proc.conninfo(), f"TRUNCATE {table}"))  # type: ignore[arg-type]
        assert approve(proc, approved)[0] == 200
    finally:
        assert proc.stop() == 0
    proc = start_dbfw(config)
    try:
        _status, listing = _api(proc, "GET", "/api/v1/approvals?status=pending", "alice-api-key")
        assert pending in [r["id"] for r in listing["approvals"]]
        assert run(proc.conninfo(), f"TRUNCATE {table}") is None
        assert _api(proc, "GET", f"/api/v1/approvals/{approved}", "alice-api-key")[1]["status"] == "consumed"
    finally:
        proc.stop()


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    failures_left = 1

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Hook.failures_left > 0:
            _Hook.failures_left -= 1
            self.send_response(500)
            self.end_headers()
            return
        _Hook.received.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_is_notified_and_retried(pg: PgTarget, tmp_path: Path, table: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = write_config(tmp_path, pg, extra=f"notify: {{webhook_url: 'http://127.0.0.1:{server.server_port}/h'}}\n")
    (tmp_path / "rules.yaml").write_text(RULES)
    proc = start_dbfw(config)
    try:
        started = time.monotonic()
        err = run(proc.conninfo(), f"DROP TABLE {table}")
        assert time.monotonic() - started < 1.0  # the data path does not wait for the webhook
        rid = request_id_of(err)  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _Hook.received, proc.log()
        note = _Hook.received[0]
        assert note["id"] == rid and note["requester"] == AGENT and note["class"] == "ddl"
        assert note["statement"] == f"DROP TABLE {table}" and note["approve_url"].endswith(f"/{rid}/approve")
        assert "notify.failed" in proc.log()  # the first attempt got a 500 and was retried
    finally:
        proc.stop()
        server.shutdown()


def test_dbfw_approvals_cli(fw: DbfwProcess, table: str) -> None:
    import os
    import subprocess
    import sys

    rid = request_id_of(run(fw.conninfo(), f"TRUNCATE {table}"))  # type: ignore[arg-type]
    env = {**os.environ, "DBFW_API_KEY": "alice-api-key"}
    url = f"http://127.0.0.1:{fw.admin_port}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dbfw.cli", "approvals", *args, "--url", url], env=env,
                              capture_output=True, text=True, timeout=30)

    listed = cli("list")
    assert listed.returncode == 0 and rid in listed.stdout
    shown = cli("show", rid)
    assert json.loads(shown.stdout)["sql"] == f"TRUNCATE {table}"
    approved = cli("approve", rid, "--comment", "ok")
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "approved"
    again = cli("deny", rid, "--reason", "too late")
    assert again.returncode == 1 and "HTTP 409" in again.stderr


def test_two_dbfw_processes_share_a_postgres_store(pg: PgTarget, tmp_path: Path, table: str) -> None:
    from tests.integration.test_store import pg_url

    store_db = f"dbfw_shared_{uuid4().hex[:8]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"create database {store_db}")
    procs = []
    try:
        for name in ("a", "b"):
            directory = tmp_path / name
            directory.mkdir()
            config = write_config(directory, pg)
            config.write_text(re.sub(r"storage: .*", f"storage: '{pg_url(pg, store_db)}'", config.read_text()))
            (directory / "rules.yaml").write_text(RULES)
            procs.append(start_dbfw(config))
        a, b = procs
        sql = f"UPDATE {table} SET n = n + 1 WHERE true"
        rid = request_id_of(run(a.conninfo(), sql))  # type: ignore[arg-type]
        # B's API sees A's request and approves it.
        assert approve(b, rid)[0] == 200
        outcomes: list[str | None] = []

        def go(proc: DbfwProcess) -> None:
            err = run(proc.conninfo(), sql)
            outcomes.append(err.sqlstate if err else "ran")

        threads = [threading.Thread(target=go, args=(p,)) for p in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("ran") == 1, outcomes
        with psycopg.connect(pg.conninfo()) as conn:
            assert conn.execute(f"select n from {table}").fetchone() == (1,)
    finally:
        for p in procs:
            p.stop()
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop database if exists {store_db} with (force)")


def test_an_approval_does_not_follow_the_statement_to_another_search_path(fw: DbfwProcess, pg: PgTarget) -> None:
    """DROP TABLE victim approved where victim is public.victim must not drop other.victim: the same text
    under another search_path names another table."""
    schema = f"sp_{uuid4().hex[:6]}"
    with scratch_table(pg, "victim", "id int") as table, psycopg.connect(pg.conninfo(), autocommit=True) as direct:
        direct.execute(f"CREATE SCHEMA {schema}")
        direct.execute(f"CREATE TABLE {schema}.{table} (id int)")
        try:
            sql = f"DROP TABLE {table}"
            err = run(fw.conninfo(), sql)
            assert err is not None and err.sqlstate == "DBF01"
            assert approve(fw, request_id_of(err))[0] == 200
            # The same identity and text, under a search_path that names the other table: not approved.
            with psycopg.connect(fw.conninfo(), autocommit=True) as conn:
                conn.execute(f"SET search_path = {schema}, public")
                with pytest.raises(psycopg.Error) as refused:
                    conn.execute(sql, prepare=False)
                assert refused.value.sqlstate == "DBF01"
            assert run(fw.conninfo(options=f"-c search_path={schema},public"), sql).sqlstate == "DBF01"  # type: ignore[union-attr]
            assert direct.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)).fetchone()[0] is not None
            # Where it was approved, it runs once.
            assert run(fw.conninfo(), sql) is None
            assert direct.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone() == (None,)
        finally:
            direct.execute(f"DROP SCHEMA {schema} CASCADE")


def test_an_approved_prepared_statement_runs_once(fw: DbfwProcess, pg: PgTarget) -> None:
    """An approval covers one execution: executing the same prepared statement again (Bind/Execute, no
    new Parse) is refused with DBF04, and the server's rows show it did not run."""
    with scratch_table(pg, "prep", "id int", "INSERT INTO {t} SELECT generate_series(1, 5)") as table, \
            psycopg.connect(pg.conninfo(), autocommit=True) as direct:
        sql = f"DELETE FROM {table}"
        err = run(fw.conninfo(), sql)
        assert err is not None and err.sqlstate == "DBF01"
        assert approve(fw, request_id_of(err))[0] == 200
        with psycopg.connect(fw.conninfo(), autocommit=True) as conn:
            conn.execute(sql, prepare=True)  # Parse (named), Bind, Execute: the approved execution
            assert direct.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
            direct.execute(f"INSERT INTO {table} SELECT generate_series(1, 5)")
            with pytest.raises(psycopg.Error) as again:
                conn.execute(sql, prepare=True)  # the same prepared statement: Bind, Execute only
            assert again.value.sqlstate == "DBF04"
            assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on
        assert direct.execute(f"SELECT count(*) FROM {table}").fetchone() == (5,)

        async def asyncpg_twice() -> str:
            err2 = run(fw.conninfo(), sql)
            assert err2 is not None and err2.sqlstate == "DBF01"
            assert approve(fw, request_id_of(err2))[0] == 200
            conn = await asyncpg.connect(fw.url())
            try:
                statement = await conn.prepare(sql)
                await statement.fetch()
                direct.execute(f"INSERT INTO {table} SELECT generate_series(1, 5)")
                try:
                    await statement.fetch()
                except asyncpg.PostgresError as e:
                    return e.sqlstate
                return "ran"
            finally:
                await conn.close()

        assert asyncio.run(asyncpg_twice()) == "DBF04"
        assert direct.execute(f"SELECT count(*) FROM {table}").fetchone() == (5,)


class _EventStream:
    """The admin API's server-sent events, read line by line (each read waits at most ``timeout``)."""

    def __init__(self, proc: DbfwProcess, key: str | None, timeout: float = 10.0):
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", proc.admin_port, timeout=timeout)
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        self.conn.request("GET", "/api/v1/events", headers=headers)
        self.resp = self.conn.getresponse()

    def next_event(self) -> tuple[str, Any]:
        name, data = "", None
        while True:
            line = self.resp.fp.readline().decode()
            if not line:
                raise EOFError("the event stream ended")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and name:
                return name, data

    def until(self, predicate: Any) -> Any:
        while True:
            name, data = self.next_event()
            if name == "approval" and predicate(data):
                return data

    def close(self) -> None:
        self.conn.close()


def test_the_event_stream_shows_requests_and_decisions_as_they_happen(fw: DbfwProcess) -> None:
    table = f"events_{uuid4().hex[:8]}"
    stream = _EventStream(fw, "bob-api-key")
    try:
        assert stream.resp.status == 200 and stream.resp.getheader("content-type", "").startswith("text/event-stream")
        assert stream.next_event()[0] == "ready"
        err = run(fw.conninfo(), f"DROP TABLE {table}")
        assert err is not None and err.sqlstate == "DBF01"
        rid = request_id_of(err)
        pending = stream.until(lambda d: d["id"] == rid)
        assert pending["status"] == "pending" and pending["sql"] == f"DROP TABLE {table}"  # (each read waits 10 s)
        assert approve(fw, rid)[0] == 200
        decided = stream.until(lambda d: d["id"] == rid and d["status"] != "pending")
        assert decided["status"] == "approved" and decided["approvals"][0]["reviewer"] == "alice"
    finally:
        stream.close()


def test_the_event_stream_needs_a_key(fw: DbfwProcess) -> None:
    stream = _EventStream(fw, None)
    try:
        assert stream.resp.status == 401
    finally:
        stream.close()


class _SlackHook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        _SlackHook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def test_a_slack_message_carries_the_decisions_facts(pg: PgTarget, tmp_path: Path) -> None:
    """notify.slack_webhook_url: each new request as a Slack incoming-webhook message, with the statement
    (escaped, whole), requester, class, impact and a link to the request; the URL itself is never logged."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlackHook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret_path = f"/services/T000/B000/{uuid4().hex}"
    config = write_config(tmp_path, pg, extra=f"notify: {{slack_webhook_url: "
                                              f"'http://127.0.0.1:{server.server_port}{secret_path}'}}\n")
    (tmp_path / "rules.yaml").write_text(RULES)
    proc = start_dbfw(config)
    table = f"slack_{uuid4().hex[:8]}"
    try:
        sql = f"DROP TABLE {table} /* <b>&``` */"
        rid = request_id_of(run(proc.conninfo(), sql))  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while not any(rid in m["text"] for m in _SlackHook.received) and time.monotonic() < deadline:
            time.sleep(0.1)
        message = next(m for m in _SlackHook.received if rid in m["text"])
        text = json.dumps(message["blocks"])
        assert AGENT in message["text"] and "ddl" in message["text"]
        statement = message["blocks"][1]["text"]["text"]
        assert statement.startswith("```DROP TABLE") and "&lt;b&gt;&amp;" in statement and "<b>" not in statement
        assert statement.count("```") == 2  # the statement's own fence does not close the block
        assert "Impact" in text and f"#request={rid}" in text
        assert secret_path not in proc.log()
    finally:
        proc.stop()
        server.shutdown()
