"""The firewall end to end under rules/default.yaml: high-risk statements never reach PostgreSQL by
either query protocol; everyday statements run. The server's own statement log is the witness."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import psycopg
import pytest

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, start_dbfw, write_config
from tests.integration.support import OwnedPostgres

ROOT = Path(__file__).resolve().parents[2]

# (statement, expected SQLSTATE) — {t} is a table that exists; each gets a unique marker comment.
HIGH_RISK = [
    ("DROP TABLE {t}", "DBF01"),
    ("select 1; drop table {t}", "DBF01"),
    ("/* harmless */ select 1;DROP TABLE {t}", "DBF01"),
    ("TRUNCATE {t}", "DBF01"),
    ("DELETE FROM {t}", "DBF01"),
    ("DELETE FROM {t} WHERE 1 = 1", "DBF01"),
    ("UPDATE {t} SET v = 'x' WHERE true", "DBF01"),
    ("WITH d AS (DELETE FROM {t} RETURNING *) SELECT count(*) FROM d", "DBF01"),
    ("ALTER TABLE {t} ADD COLUMN extra int", "DBF01"),
    ("CREATE TABLE {t}_copy AS SELECT * FROM {t}", "DBF01"),
    ("SELECT * INTO {t}_into FROM {t}", "DBF01"),
    ("GRANT SELECT ON {t} TO PUBLIC", "DBF01"),
    ("CREATE ROLE r_{t}", "DBF01"),
    ("SET ROLE postgres", "DBF01"),
    ("SET SESSION AUTHORIZATION postgres", "DBF01"),
    ("SELECT set_config('role', 'postgres', false)", "DBF01"),
    ("SET session_replication_role = replica", "DBF01"),
    ("COPY {t} TO STDOUT", "DBF01"),
    ("COPY (SELECT * FROM {t}) TO '/tmp/dbfw-e2e-out'", "DBF01"),
    ("COPY {t} FROM PROGRAM 'true'", "DBF01"),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE {t}'; END $$", "DBF01"),
    ("CREATE FUNCTION f_{t}() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", "DBF01"),
    ("PREPARE p_{t} AS DELETE FROM {t}", "DBF01"),
    ("SELECT pg_read_file('/etc/passwd')", "DBF01"),
    ("SELECT * FROM {t} WHERE pg_terminate_backend(1) IS NULL", "DBF01"),
    ("SELECT lo_import('/etc/hostname')", "DBF01"),
    ("ALTER SYSTEM SET work_mem = '64MB'", "DBF01"),
    ("VACUUM {t}", "DBF01"),
    ("CHECKPOINT", "DBF01"),
    ("selec * fron {t}", "42601"),       # the server's own syntax error (it parses, nothing runs)
    ("SELECT 'unterminated", "42601"),
    ("EXPLAIN ANALYZE DELETE FROM {t}", "DBF01"),
]

EVERYDAY = [
    "SELECT id, v FROM {t} WHERE id = 1",
    "SELECT 'drop table {t}; delete from {t}' AS s",
    "SELECT $$a; DROP TABLE {t}$$",
    "SELECT \"id\" AS \"drop\" FROM {t} -- DROP TABLE {t}",
    "/* ; DROP TABLE {t} */ SELECT count(*) FROM {t}",
    "SELECT E'it\\'s'",
    "INSERT INTO {t} (id, v) VALUES (100, 'new') ON CONFLICT (id) DO NOTHING",
    "UPDATE {t} SET v = 'changed' WHERE id = 100",
    "DELETE FROM {t} WHERE id = 100",
    "SET search_path = public",
    "SET statement_timeout = '5s'",
    "SHOW search_path",
    "BEGIN", "COMMIT",
    "WITH x AS (SELECT id FROM {t}) SELECT count(*) FROM x",
    "SELECT id FROM {t} ORDER BY id LIMIT 1 FOR UPDATE",
    "SELECT now(), current_user, version()",
]


@pytest.fixture(scope="module")
def guarded(owned: OwnedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    directory = tmp_path_factory.mktemp("dbfw-default-rules")
    config = write_config(directory, owned.target, admin=False)
    shutil.copy(ROOT / "rules" / "default.yaml", directory / "rules.yaml")
    with psycopg.connect(owned.target.conninfo(), autocommit=True) as conn:
        conn.execute("alter system set log_statement = 'all'")
        conn.execute("select pg_reload_conf()")
    proc = start_dbfw(config)
    try:
        yield proc
    finally:
        proc.stop()
        with psycopg.connect(owned.target.conninfo(), autocommit=True) as conn:
            conn.execute("alter system reset log_statement")
            conn.execute("select pg_reload_conf()")


@pytest.fixture
def table(owned: OwnedPostgres) -> Iterator[str]:
    name = f"e2e_{uuid4().hex[:8]}"
    with psycopg.connect(owned.target.conninfo(), autocommit=True) as conn:
        conn.execute(f"create table {name} (id int primary key, v text)")
        conn.execute(f"insert into {name} select g, 'v' || g from generate_series(1, 10) g")
    yield name
    with psycopg.connect(owned.target.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop table if exists {name} cascade")


def _server_log(owned: OwnedPostgres) -> str:
    return (owned.root / "log").read_text(errors="replace")


def _simple(conn: psycopg.Connection, sql: str) -> str | None:
    """Run sql with the simple query protocol; the SQLSTATE of its error, or None."""
    result = conn.pgconn.exec_(sql.encode())
    return result.error_field(psycopg.pq.DiagnosticField.SQLSTATE).decode() if result.status == \
        psycopg.pq.ExecStatus.FATAL_ERROR else None  # type: ignore[union-attr]


def _extended(conn: psycopg.Connection, sql: str) -> str | None:
    """The same with the extended protocol (Parse/Bind/Execute/Sync)."""
    result = conn.pgconn.exec_params(sql.encode(), [])
    return result.error_field(psycopg.pq.DiagnosticField.SQLSTATE).decode() if result.status == \
        psycopg.pq.ExecStatus.FATAL_ERROR else None  # type: ignore[union-attr]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_high_risk_statements_never_reach_postgres(guarded: DbfwProcess, owned: OwnedPostgres, table: str,
                                                    protocol: str) -> None:
    run = _simple if protocol == "simple" else _extended
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        # The witness works: an allowed statement's marker does show up in the server's log.
        control = f"control_{uuid4().hex[:10]}"
        assert run(conn, f"SELECT 1 /* {control} */") is None
        assert control in _server_log(owned)
        for template, expected in HIGH_RISK:
            marker = f"m_{uuid4().hex[:10]}"
            sql = f"/* {marker} */ " + template.format(t=table)
            assert run(conn, sql) == expected, sql
            if expected != "42601":  # a syntax error is logged by the server that was asked to parse it
                assert marker not in _server_log(owned), f"reached PostgreSQL: {sql}"
            # The session is still usable after every refusal.
            assert run(conn, "SELECT 1") is None
    with psycopg.connect(owned.target.conninfo()) as direct:
        assert direct.execute(f"select count(*) from {table}").fetchone() == (10,)


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_everyday_statements_are_not_refused(guarded: DbfwProcess, owned: OwnedPostgres, table: str,
                                             protocol: str) -> None:
    run = _simple if protocol == "simple" else _extended
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        for template in EVERYDAY:
            sql = template.format(t=table)
            if protocol == "extended" and sql.startswith("SELECT id FROM") and "FOR UPDATE" in sql:
                continue  # fine in both; FOR UPDATE outside a transaction is the same either way
            assert run(conn, sql) is None, sql


def test_asyncpg_prepared_high_risk_statement_is_refused(guarded: DbfwProcess, owned: OwnedPostgres,
                                                         table: str) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(host=guarded.host, port=guarded.port, user=AGENT, password=AGENT_PASSWORD,
                                     database="test")
        try:
            with pytest.raises(asyncpg.PostgresError) as info:
                await conn.execute(f"DELETE FROM {table}")
            assert info.value.sqlstate == "DBF01"
            assert 'approval required by policy "schema-and-exports"' in str(info.value)
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id > $1", 5) == 5
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_refusal_message_says_what_to_do_next(guarded: DbfwProcess, table: str) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"DROP TABLE {table}")
    diag = info.value.diag
    assert info.value.sqlstate == "DBF01"
    assert diag.message_primary is not None and diag.message_primary.startswith(
        'dbfw: approval required by policy "schema-and-exports": request req_')
    assert diag.message_detail is not None and "DROP is classified ddl" in diag.message_detail
    assert diag.message_detail is not None and f"public.{table}" in diag.message_detail
    assert diag.message_hint is not None and "reviewer" in diag.message_hint


def test_sighup_reloads_rules_and_keeps_the_old_ones_when_invalid(pg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import signal
    import time

    config = write_config(tmp_path, pg, admin=False)
    rules = tmp_path / "rules.yaml"
    rules.write_text("defaults: {action: allow}\npolicies: []\n")
    proc = start_dbfw(config)

    def outcome() -> str | None:
        with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
            return _simple(conn, "SELECT 42")

    def reload_and_wait(marker: str) -> None:
        count = proc.log().count(marker)
        proc.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while proc.log().count(marker) == count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.log().count(marker) > count

    try:
        assert outcome() is None
        rules.write_text("defaults: {action: allow}\npolicies:\n  - {name: no-reads, match: {classes: [read]}, "
                         "action: deny}\n")
        reload_and_wait("reload.ok")
        assert outcome() == "DBF02"
        rules.write_text("policies:\n  - {name: broken, action: maybe}\n")
        reload_and_wait("reload.kept_old")
        assert outcome() == "DBF02"  # the last good rules stay in force
        assert "policy 'broken'" in proc.log()
    finally:
        assert proc.stop() == 0
