"""The session's hard cases: refusals mid-batch, clients and upstreams that vanish, load, TLS, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import psycopg
import pytest
import trustme

from dbfw.firewall import ALLOW, Firewall, StatementContext, Verdict
from dbfw.policy.rules import Defaults, RuleSet
from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, PgTarget, client_binary, start_dbfw, write_config
from tests.integration.support import InProcessDbfw, OwnedPostgres, load_test_settings, scratch_table

MARKER = "forbidden_marker"


class MarkerFirewall(Firewall):
    """Refuses any statement that mentions MARKER: enough to exercise the refusal path end to end."""

    def __init__(self) -> None:
        super().__init__(RuleSet(Defaults(action="allow", unknown="require_approval")))
        self.seen: list[str] = []

    async def check(self, ctx: StatementContext, sql: str, record: bool = True) -> Verdict:
        self.seen.append(sql)
        if MARKER in sql:
            return Verdict.refuse("DBF02", 'denied by policy "test-marker"', detail="the statement names the marker",
                                  hint="ask a reviewer")
        return ALLOW


@pytest.fixture(scope="module")
def refusing(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessDbfw, MarkerFirewall]]:
    fw = MarkerFirewall()
    settings = load_test_settings(write_config(tmp_path_factory.mktemp("inproc"), pg, admin=False))
    with InProcessDbfw(settings, fw) as server:
        yield server, fw


@pytest.fixture
def table(pg: PgTarget) -> Iterator[str]:
    with scratch_table(pg, "t", "id int primary key, v text") as name:
        yield name


def count(pg: PgTarget, table: str) -> int:
    with psycopg.connect(pg.conninfo()) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]  # type: ignore[index]


# --- the firewall seam ---------------------------------------------------------------------------


def test_refused_simple_query_gets_dbf_error_and_the_session_stays_usable(refusing, table: str, pg: PgTarget) -> None:
    server, fw = refusing
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"insert into {table} values (1, '{MARKER}')")
        assert info.value.sqlstate == "DBF02"
        assert info.value.diag.message_primary == 'dbfw: denied by policy "test-marker"'
        assert info.value.diag.message_detail == "the statement names the marker"
        assert info.value.diag.message_hint == "ask a reviewer"
        assert conn.execute("select 41 + 1").fetchone() == (42,)
    assert count(pg, table) == 0
    assert any(MARKER in s for s in fw.seen)


def test_multi_statement_message_is_refused_whole(refusing, table: str, pg: PgTarget) -> None:
    server, _ = refusing
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"insert into {table} values (1, 'ok'); select '{MARKER}'", prepare=False)
        assert info.value.sqlstate == "DBF02"
    assert count(pg, table) == 0


def test_refusal_inside_a_transaction_aborts_it_as_postgres_would(refusing, table: str, pg: PgTarget) -> None:
    server, _ = refusing
    with psycopg.connect(server.conninfo()) as conn:
        conn.execute(f"insert into {table} values (1, 'ok')")
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"select '{MARKER}'")
        assert info.value.sqlstate == "DBF02"
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        assert conn.execute("select 1").fetchone() == (1,)
    assert count(pg, table) == 0


def _pipeline_with_a_failure(conninfo: str, table: str, failing_sql: str) -> tuple[str | None, list[tuple]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        sqlstate = None
        try:
            with conn.pipeline():
                conn.execute(f"insert into {table} values (%s, %s)", (1, "before"))
                conn.execute("select %s::text", (MARKER,))  # a parameter is data, not statement text
                conn.execute(failing_sql, (True,))
                conn.execute(f"insert into {table} values (%s, %s)", (2, "after"))
        except psycopg.Error as e:
            sqlstate = e.sqlstate
        rows = conn.execute(f"select id from {table} order by id").fetchall()
        conn.execute(f"delete from {table}")
        return sqlstate, rows


def test_refusal_in_an_extended_batch_behaves_like_a_postgres_error(refusing, table: str, pg: PgTarget) -> None:
    server, _ = refusing
    # The same pipeline directly against PostgreSQL, failing with a real error in the same place...
    direct = _pipeline_with_a_failure(pg.conninfo(), table, "select 1/0 where %s")
    # ...and through dbfw, refused by the firewall: same effect on the data, dbfw's SQLSTATE.
    through = _pipeline_with_a_failure(server.conninfo(), table, f"select '{MARKER}' where %s")
    assert direct[0] == "22012"
    assert through[0] == "DBF02"
    assert through[1] == direct[1]
    # With a Sync after each statement, the statement before the refusal stays and the later one runs.
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        with conn.pipeline() as p:
            conn.execute(f"insert into {table} values (%s, %s)", (1, "before"))
            p.sync()
            with pytest.raises(psycopg.Error) as info:
                conn.execute(f"select '{MARKER}' where %s", (True,))
                p.sync()
            assert info.value.sqlstate == "DBF02"
            conn.execute(f"insert into {table} values (%s, %s)", (3, "later"))
        assert conn.execute(f"select id from {table} order by id").fetchall() == [(1,), (3,)]


def test_refused_prepare_then_session_continues_with_asyncpg(refusing) -> None:
    server, _ = refusing

    async def scenario() -> None:
        conn = await asyncpg.connect(host=server.host, port=server.port, user=AGENT, password=AGENT_PASSWORD,
                                     database="test")
        try:
            with pytest.raises(asyncpg.PostgresError) as info:
                await conn.prepare(f"select $1::text || '{MARKER}'")
            assert info.value.sqlstate == "DBF02"
            stmt = await conn.prepare("select $1::int * 2")
            assert await stmt.fetchval(21) == 42
        finally:
            await conn.close()

    asyncio.run(scenario())


# --- vanishing peers ------------------------------------------------------------------------------


def _running(pg: PgTarget, marker: str) -> int:
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        return conn.execute("select count(*) from pg_stat_activity where query like %s and pid <> pg_backend_pid()",
                            (f"%{marker}%",)).fetchone()[0]  # type: ignore[index]


def _wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killed_client_mid_query_cancels_the_statement_upstream(dbfw: DbfwProcess, pg: PgTarget) -> None:
    marker = f"killed_{uuid4().hex[:6]}"
    env = {**os.environ, "PGPASSWORD": AGENT_PASSWORD}
    proc = subprocess.Popen([client_binary("psql"), "-X", "-h", dbfw.host, "-p", str(dbfw.port), "-U", AGENT,
                             "-d", "test", "-c", f"select pg_sleep(60) /* {marker} */"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_until(lambda: _running(pg, marker) == 1), "the statement never started upstream"
        proc.kill()
        proc.wait()
        # Without a cancel the backend would sleep on for a minute; dbfw stops it and frees the connection.
        assert _wait_until(lambda: _running(pg, marker) == 0, timeout=5), "statement still running upstream"
    finally:
        proc.kill()
    with psycopg.connect(dbfw.conninfo()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_upstream_backend_terminated_gives_the_servers_error_and_dbfw_stays_up(dbfw: DbfwProcess,
                                                                               pg: PgTarget) -> None:
    with psycopg.connect(dbfw.conninfo(), autocommit=True) as conn:
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        with psycopg.connect(pg.conninfo(), autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (backend,))
        with pytest.raises(psycopg.OperationalError) as info:
            conn.execute("select 1")
        assert "terminating connection due to administrator command" in str(info.value)
    with psycopg.connect(dbfw.conninfo()) as conn:
        assert conn.execute("select 2").fetchone() == (2,)
    assert dbfw.proc.poll() is None


def test_upstream_restarted_during_a_session(owned: OwnedPostgres, dbfw_owned: DbfwProcess) -> None:
    with psycopg.connect(dbfw_owned.conninfo(), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        owned.restart()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("select 1")
    with psycopg.connect(dbfw_owned.conninfo()) as conn:
        assert conn.execute("select 3").fetchone() == (3,)


def test_upstream_down_gives_08006_and_dbfw_stays_up(owned: OwnedPostgres, dbfw_owned: DbfwProcess) -> None:
    owned.stop()
    try:
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(dbfw_owned.conninfo())
        assert "dbfw: cannot connect to the database" in str(info.value)
    finally:
        owned.start()
    with psycopg.connect(dbfw_owned.conninfo()) as conn:
        assert conn.execute("select 4").fetchone() == (4,)
    assert dbfw_owned.proc.poll() is None


# --- load ---------------------------------------------------------------------------------------------


def test_200_concurrent_connections(dbfw_owned: DbfwProcess) -> None:
    async def one(i: int) -> int:
        conn = await asyncpg.connect(host=dbfw_owned.host, port=dbfw_owned.port, user=AGENT, password=AGENT_PASSWORD,
                                     database="test", timeout=60)
        try:
            total = 0
            for _ in range(5):
                total += await conn.fetchval("select $1::int + 1", i)
            await conn.fetchval("select pg_sleep(0.2)")  # all 200 are open at once
            return total
        finally:
            await conn.close()

    async def scenario() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(200)))

    results = asyncio.run(scenario())
    assert results == [5 * (i + 1) for i in range(200)]


def test_100mb_result_streams_with_bounded_memory(dbfw: DbfwProcess) -> None:
    before = dbfw.rss_peak_kib()
    received = 0
    rows = 0
    with psycopg.connect(dbfw.conninfo()) as conn, conn.cursor() as cur:
        # 100,000 rows of 1 KiB each, plus a few single rows of 5 MiB: > 100 MB in all.
        cur.execute("select repeat('x', 1024) from generate_series(1, 100000) "
                    "union all select repeat('y', 5 * 1024 * 1024) from generate_series(1, 3)")
        while batch := cur.fetchmany(5000):
            rows += len(batch)
            received += sum(len(r[0]) for r in batch)
    assert rows == 100003
    assert received > 100 * 1024 * 1024
    growth_mib = (dbfw.rss_peak_kib() - before) / 1024
    assert growth_mib < 40, f"dbfw's peak memory grew by {growth_mib:.0f} MiB for a streamed result"


# --- TLS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_dbfw(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DbfwProcess, Path]]:
    directory = tmp_path_factory.mktemp("dbfw-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    config = write_config(directory, pg, admin=False)
    text = config.read_text().replace(
        "    auth_methods: [scram-sha-256, md5]\n",
        "    auth_methods: [password]\n    tls: {cert_file: server.crt, key_file: server.key, required: true}\n")
    config.write_text(text)
    proc = start_dbfw(config)
    try:
        yield proc, directory / "ca.crt"
    finally:
        proc.stop()


def test_tls_termination_with_verify_full(tls_dbfw: tuple[DbfwProcess, Path]) -> None:
    proc, ca = tls_dbfw
    with psycopg.connect(proc.conninfo(sslmode="verify-full", sslrootcert=str(ca))) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("select 5").fetchone() == (5,)


def test_tls_required_listener_refuses_plaintext(tls_dbfw: tuple[DbfwProcess, Path]) -> None:
    proc, _ = tls_dbfw
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(proc.conninfo(sslmode="disable"))
    assert "dbfw: this listener requires TLS" in str(info.value)


def test_cleartext_password_is_only_offered_over_tls(dbfw: DbfwProcess, tls_dbfw) -> None:
    proc, _ = tls_dbfw
    # The TLS listener offers only cleartext: it works there, and the password crossed TLS.
    with psycopg.connect(proc.conninfo(sslmode="require", require_auth="password")) as conn:
        assert conn.execute("select 6").fetchone() == (6,)
    # The plain listener never offers cleartext, even to a client that would accept only that.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dbfw.conninfo(require_auth="password"))


# --- malformed input ----------------------------------------------------------------------------------


def _raw_exchange(host: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


@pytest.mark.parametrize("payload", [
    struct.pack("!ii", 8, 12345678),                           # unknown protocol version
    struct.pack("!i", 4),                                      # a length too small
    struct.pack("!i", 0x7FFFFFF0) + b"x" * 100,                # a length far too large
    struct.pack("!ii", 14, 196608) + b"user\0x",               # unterminated parameter value
])
def test_malformed_startup_gets_fatal_protocol_error_and_dbfw_stays_up(dbfw: DbfwProcess, payload: bytes) -> None:
    answer = _raw_exchange(dbfw.host, dbfw.port, payload)
    assert answer[:1] == b"E" and b"08P01" in answer and b"FATAL" in answer
    with psycopg.connect(dbfw.conninfo()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_oversized_query_message_is_refused_without_buffering_it(dbfw: DbfwProcess) -> None:
    # Log in properly with psycopg, then take its socket and send a header claiming a 512 MiB Query.
    conn = psycopg.connect(dbfw.conninfo())
    try:
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        sock.sendall(b"Q" + struct.pack("!I", 512 * 1024 * 1024) + b"select 1")
        sock.settimeout(10)
        data = sock.recv(65536)
        assert data[:1] == b"E" and b"08P01" in data and b"over the limit" in data
        sock.close()
    finally:
        conn.close()


# --- signals ------------------------------------------------------------------------------------------


def test_sigterm_lets_the_statement_in_flight_finish_then_exits(pg: PgTarget, tmp_path: Path) -> None:
    proc = start_dbfw(write_config(tmp_path, pg))
    result: dict[str, object] = {}

    def long_query() -> None:
        try:
            with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
                result["value"] = conn.execute("select pg_sleep(1.5), 'done'").fetchone()[1]  # type: ignore[index]
                try:
                    conn.execute("select 1")
                except psycopg.OperationalError as e:
                    result["after"] = str(e)
        except Exception as e:  # pragma: no cover - reported below
            result["error"] = repr(e)

    t = threading.Thread(target=long_query)
    t.start()
    time.sleep(0.5)
    proc.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proc.conninfo(), connect_timeout=3)  # no longer accepting
    t.join(20)
    assert proc.proc.wait(20) == 0
    assert result.get("value") == "done", result
    assert "shutting down" in str(result.get("after", "")) or "closed" in str(result.get("after", ""))
    assert "shutdown.done" in proc.log()


def test_sighup_reloads_identities(pg: PgTarget, tmp_path: Path) -> None:
    config = write_config(tmp_path, pg)
    proc = start_dbfw(config)
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(proc.conninfo(user="agent-new", password="new-secret"))
        config.write_text(config.read_text().replace(
            "identities:\n", "identities:\n  agent-new:\n    password: new-secret\n    roles: [agent]\n"))
        proc.proc.send_signal(signal.SIGHUP)
        assert _wait_until(lambda: "reload.ok" in proc.log(), timeout=10)
        with psycopg.connect(proc.conninfo(user="agent-new", password="new-secret")) as conn:
            assert conn.execute("select current_user").fetchone() is not None
        # A broken config on reload is reported and the running one stays.
        config.write_text("listeners: [\n")
        proc.proc.send_signal(signal.SIGHUP)
        assert _wait_until(lambda: "reload.failed" in proc.log(), timeout=10)
        with psycopg.connect(proc.conninfo(user="agent-new", password="new-secret")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        assert proc.stop() == 0


# --- the rest of the protocol --------------------------------------------------------------------------


def test_function_call_message_via_psql_large_objects(dbfw: DbfwProcess, tmp_path: Path) -> None:
    # libpq's large-object client functions use the fast-path FunctionCall message.
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(300_000))
    target = tmp_path / "back.bin"
    env = {**os.environ, "PGPASSWORD": AGENT_PASSWORD}
    script = f"\\lo_import {source}\n\\set oid :LASTOID\n\\lo_export :oid {target}\n\\lo_unlink :oid\n"
    out = subprocess.run([client_binary("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", dbfw.host, "-p",
                          str(dbfw.port), "-U", AGENT, "-d", "test"], input=script, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(("code", "answer"), [(80877104, b"N"), (80877103, b"N")])
def test_gssenc_and_ssl_requests_are_declined_on_a_plain_listener(dbfw: DbfwProcess, code: int,
                                                                  answer: bytes) -> None:
    with socket.create_connection((dbfw.host, dbfw.port), timeout=10) as s:
        s.sendall(struct.pack("!ii", 8, code))
        assert s.recv(1) == answer
        # The client may go on with a normal start-up on the same connection.
        s.sendall(struct.pack("!ii", 8 + len(b"user\0nobody\0\0"), 196608) + b"user\0nobody\0\0")
        assert s.recv(1) == b"R"


def test_cancel_request_for_an_unknown_key_is_ignored(dbfw: DbfwProcess) -> None:
    answer = _raw_exchange(dbfw.host, dbfw.port, struct.pack("!iiii", 16, 80877102, 12345, 67890))
    assert answer == b""
    assert "cancel.request" in dbfw.log()


def test_psycopg_cancel_reaches_the_right_backend(dbfw: DbfwProcess) -> None:
    with psycopg.connect(dbfw.conninfo(), autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(30)")
        assert time.monotonic() - started < 10
        assert conn.execute("select 'still usable'").fetchone() == ("still usable",)


def test_a_listener_past_max_connections_refuses_with_53300(pg: PgTarget, tmp_path: Path) -> None:
    settings = load_test_settings(write_config(tmp_path, pg, admin=False))
    small = settings.listeners[0].model_copy(update={"max_connections": 2})
    settings = settings.model_copy(update={"listeners": [small]})
    with InProcessDbfw(settings) as server:
        first, second = psycopg.connect(server.conninfo()), psycopg.connect(server.conninfo())
        try:
            with pytest.raises(psycopg.OperationalError) as info:
                psycopg.connect(server.conninfo())
            assert "too many clients" in str(info.value)
            assert first.execute("SELECT 1").fetchone() == (1,)  # the others are untouched
        finally:
            second.close()

        async def one_left() -> None:  # the closed session has ended on the server's side
            while server.server.rt.connections.get(small.name) != 1:  # type: ignore[union-attr]  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        server.run(asyncio.wait_for(one_left(), 10))
        with psycopg.connect(server.conninfo()) as third:  # a place is free again
            assert third.execute("SELECT 2").fetchone() == (2,)
        first.close()
