"""Enforcement per execution, not per message: limits across FETCH and Execute(max_rows), bytes and time
limits, masks that follow a cursor however it is read, metrics per execution, decisions renewed by a reload.

Every case goes through a real client (psycopg, asyncpg, psql, or the protocol spoken by hand where no
library sends the messages) to the real server, and the server is checked afterwards where that matters.
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from dbfw.protocol.postgres import messages as m
from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, PgTarget, running_dbfw
from tests.integration.support import RawPg, scratch_table

LIMITS = "limits: {max_result_rows: 1000, max_result_bytes: 300KB, max_statement_seconds: 1}\n"


def _rules(big: str, wide: str) -> str:
    return f"""\
defaults: {{action: allow}}
policies:
  - name: wide-export
    match: {{tables: ["{wide}"]}}
    action: allow
    limits: {{max_result_rows: 3000}}
masking:
  - {{name: pii, columns: ["*.*.email", "*.*.ssn"], mask: redact}}
{LIMITS}"""


@pytest.fixture(scope="module")
def tables(pg: PgTarget) -> Iterator[tuple[str, str, str]]:
    with scratch_table(pg, "big", "id int primary key, email text, ssn text, pad text",
                       "INSERT INTO {t} SELECT g, 'user' || g || '@example.com', lpad(g::text, 9, '0'), "
                       "repeat('x', 100) FROM generate_series(1, 5000) g") as big, \
            scratch_table(pg, "wide", "id int primary key",
                          "INSERT INTO {t} SELECT generate_series(1, 5000)") as wide, \
            scratch_table(pg, "small", "id int primary key, email text",
                          "INSERT INTO {t} VALUES (1, 'ada@example.com'), (2, 'bob@example.com')") as small:
        yield big, wide, small


@pytest.fixture(scope="module")
def fw(pg: PgTarget, tables: tuple[str, str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    big, wide, _ = tables
    with running_dbfw(tmp_path_factory.mktemp("per_execution"), pg, _rules(big, wide), admin=True) as proc:
        yield proc


def _sqlstate(e: BaseException) -> str | None:
    return getattr(e, "sqlstate", None)


# --- limits across FETCH and Execute(max_rows) ---------------------------------------------------------


def test_sql_cursor_fetched_in_chunks_is_cut_off_at_the_limit(fw: DbfwProcess, tables: tuple[str, str, str]) -> None:
    big = tables[0]
    with psycopg.connect(fw.conninfo()) as conn:
        conn.execute(f"DECLARE c CURSOR FOR SELECT id, pad FROM {big} ORDER BY id")
        assert len(conn.execute("FETCH 900 FROM c").fetchall()) == 900
        with pytest.raises(psycopg.Error) as info:
            conn.execute("FETCH 900 FROM c").fetchall()
        assert info.value.sqlstate == "DBF06" and "max_result_rows (1000 rows)" in str(info.value)


def test_sql_cursor_in_simple_queries_delivers_at_most_the_limit(fw: DbfwProcess, tables: tuple[str, str, str]) -> None:
    big = tables[0]
    with RawPg(fw.host, fw.port) as raw:
        raw.query("BEGIN")
        raw.query(f"DECLARE c CURSOR FOR SELECT id FROM {big} ORDER BY id")
        rows, errors = 0, []
        for _ in range(6):
            for msg in raw.query("FETCH 300 FROM c"):
                rows += isinstance(msg, m.DataRow)
                if isinstance(msg, m.ErrorResponse):
                    errors.append(msg.sqlstate)
        assert rows == 1000
        assert errors and set(errors) == {"DBF06"}
        # MOVE does not deliver rows, and the cursor's allowance stays spent.
        assert not any(isinstance(x, m.ErrorResponse) for x in raw.query("MOVE ABSOLUTE 0 FROM c"))
        assert any(isinstance(x, m.ErrorResponse) and x.sqlstate == "DBF06" for x in raw.query("FETCH 5 FROM c"))
        assert raw.query("COMMIT")[-1].status == "I"  # type: ignore[attr-defined]


def test_psycopg_server_side_cursor_is_cut_off_across_its_fetches(fw: DbfwProcess,
                                                                  tables: tuple[str, str, str]) -> None:
    big = tables[0]
    got = 0
    with psycopg.connect(fw.conninfo()) as conn, conn.cursor(name="chunks") as cur:
        cur.itersize = 400
        cur.execute(f"SELECT id FROM {big} ORDER BY id")
        with pytest.raises(psycopg.Error) as info:
            for _ in cur:
                got += 1
    assert info.value.sqlstate == "DBF06"
    assert got <= 1000


def test_asyncpg_cursor_with_prefetch_is_cut_off_across_portal_suspensions(fw: DbfwProcess,
                                                                          tables: tuple[str, str, str]) -> None:
    big = tables[0]

    async def scenario() -> tuple[int, str | None]:
        conn = await asyncpg.connect(host=fw.host, port=fw.port, user=AGENT, password=AGENT_PASSWORD, database="test")
        got, state = 0, None
        try:
            async with conn.transaction():
                try:
                    async for _ in conn.cursor(f"SELECT id FROM {big} ORDER BY id", prefetch=300):
                        got += 1
                except asyncpg.PostgresError as e:
                    state = e.sqlstate
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        return got, state

    got, state = asyncio.run(scenario())
    assert state == "DBF06" and got <= 1000


def test_an_aggregate_that_packs_a_table_into_one_row_passes_the_byte_limit(fw: DbfwProcess,
                                                                           tables: tuple[str, str, str]) -> None:
    big = tables[0]
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn:
        for sql in (f"SELECT json_agg(t) FROM {big} t", f"SELECT string_agg(pad, ',') FROM {big}"):
            with pytest.raises(psycopg.Error) as info:
                conn.execute(sql).fetchall()
            assert info.value.sqlstate == "DBF06" and "max_result_bytes" in str(info.value)
        # A small aggregate is no export.
        assert conn.execute(f"SELECT count(*) FROM {big}").fetchone() == (5000,)


def test_a_policy_may_carry_its_own_limits(fw: DbfwProcess, tables: tuple[str, str, str]) -> None:
    big, wide, _ = tables
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn:
        assert len(conn.execute(f"SELECT id FROM {wide} ORDER BY id LIMIT 3000").fetchall()) == 3000
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"SELECT id FROM {wide}").fetchall()
        assert "max_result_rows (3000 rows)" in str(info.value)
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"SELECT id FROM {big} LIMIT 3000").fetchall()
        assert "max_result_rows (1000 rows)" in str(info.value)


# --- time ------------------------------------------------------------------------------------------------


def test_a_statement_past_max_statement_seconds_is_cancelled_upstream(fw: DbfwProcess, pg: PgTarget) -> None:
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as info:
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 10
        assert str(info.value).startswith("dbfw: the statement ran longer than limits.max_statement_seconds (1 s)")
        assert conn.execute("SELECT 2").fetchone() == (2,)  # the session goes on
    with psycopg.connect(pg.conninfo(), autocommit=True) as direct:
        sleeping = direct.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
                                  "AND state = 'active'").fetchone()
    assert sleeping == (0,)


def test_the_time_limit_holds_in_the_extended_protocol_and_spares_quick_statements(fw: DbfwProcess) -> None:
    async def scenario() -> str | None:
        conn = await asyncpg.connect(host=fw.host, port=fw.port, user=AGENT, password=AGENT_PASSWORD, database="test")
        try:
            for _ in range(20):  # quick statements, back to back, never cancelled
                assert await conn.fetchval("SELECT pg_sleep(0.01)::text || $1", "x") == "x"
            try:
                await conn.fetchval("SELECT pg_sleep($1)", 20.0)
            except asyncpg.PostgresError as e:
                return e.sqlstate
            return None
        finally:
            await conn.close()

    assert asyncio.run(scenario()) == "57014"


# --- masking however a cursor is read ----------------------------------------------------------------


def test_a_with_hold_cursor_executed_as_a_portal_is_masked(fw: DbfwProcess, tables: tuple[str, str, str]) -> None:
    small = tables[2]
    with RawPg(fw.host, fw.port) as raw:
        answer = raw.query(f"DECLARE c CURSOR WITH HOLD FOR SELECT id, email FROM {small} ORDER BY id")
        assert not any(isinstance(x, m.ErrorResponse) for x in answer)
        raw.send(m.Execute("c", 0), m.Sync())  # no Bind: the cursor is a portal already
        rows = [x.values for x in raw.until_ready() if isinstance(x, m.DataRow)]  # type: ignore[attr-defined]
        # Without a RowDescription the column types are unknown: a masked value goes as NULL, never in clear.
        assert [r[0] for r in rows] == [b"1", b"2"] and all(r[1] in (None, b"****") for r in rows)
        raw.query("CLOSE c")


def test_a_cursor_dbfw_did_not_see_declared_is_masked_whole(fw: DbfwProcess, tables: tuple[str, str, str],
                                                            pg: PgTarget) -> None:
    small = tables[2]
    fn = f"{small}_open"
    with psycopg.connect(pg.conninfo(), autocommit=True) as direct:
        direct.execute(f"CREATE FUNCTION {fn}() RETURNS refcursor LANGUAGE plpgsql AS $$ DECLARE r refcursor "
                       f":= 'opened'; BEGIN OPEN r FOR SELECT id, email FROM {small} ORDER BY id; RETURN r; END $$")
    try:
        with psycopg.connect(fw.conninfo()) as conn:
            conn.execute(f"SELECT {fn}()")  # procedural: allowed by these rules
            rows = conn.execute("FETCH ALL FROM opened").fetchall()
        assert rows and all("example.com" not in str(v) for row in rows for v in row)
    finally:
        with psycopg.connect(pg.conninfo(), autocommit=True) as direct:
            direct.execute(f"DROP FUNCTION {fn}()")


# --- prepared statements ------------------------------------------------------------------------------


def scrape(proc: DbfwProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.admin_port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def executions(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("dbfw_statements_total{") and 'class="read"' in line and 'action="allow"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def overhead_count(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("dbfw_overhead_seconds_count{"))


def test_every_execution_of_a_prepared_statement_is_counted(fw: DbfwProcess, tables: tuple[str, str, str]) -> None:
    small = tables[2]
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn:
        conn.execute(f"SELECT id FROM {small} WHERE id = %s", (1,), prepare=True)  # parsed once from here on
        before = scrape(fw)
        for i in range(20):
            conn.execute(f"SELECT id FROM {small} WHERE id = %s", (i,), prepare=True)
        after = scrape(fw)
        assert executions(after) - executions(before) == 20
        # dbfw's own time is observed per execution too (the metrics scrape itself is not a statement).
        assert overhead_count(after) - overhead_count(before) == 20


def test_a_statement_prepared_in_sql_cannot_be_bound_through_the_protocol(fw: DbfwProcess) -> None:
    with RawPg(fw.host, fw.port) as raw:
        raw.query("PREPARE sneaky AS SELECT 1")
        raw.send(m.Bind("", "sneaky", [], [], []), m.Execute("", 0), m.Sync())
        errors = [x for x in raw.until_ready() if isinstance(x, m.ErrorResponse)]
        assert [e.sqlstate for e in errors] == ["DBF02"]
        # A Parse of a name in use fails as the server fails it, and the name keeps its statement.
        raw.send(m.Parse("s1", "SELECT 1", []), m.Sync())
        raw.until_ready()
        raw.send(m.Parse("s1", "SELECT 2", []), m.Bind("", "s1", [], [], []), m.Execute("", 0), m.Sync())
        answer = raw.until_ready()
        assert [e.sqlstate for e in answer if isinstance(e, m.ErrorResponse)] == ["42P05"]
        raw.send(m.Bind("", "s1", [], [], []), m.Execute("", 0), m.Sync())
        assert [x.values for x in raw.until_ready() if isinstance(x, m.DataRow)] == [[b"1"]]  # type: ignore[attr-defined]


def _reload(proc: DbfwProcess) -> None:
    count = proc.log().count("reload.ok")
    proc.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while proc.log().count("reload.ok") == count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.log().count("reload.ok") > count


def test_a_prepared_statement_is_decided_again_after_a_reload(pg: PgTarget, tables: tuple[str, str, str],
                                                            tmp_path: Path) -> None:
    small = tables[2]
    with running_dbfw(tmp_path, pg, "defaults: {action: allow}\npolicies: []\n", admin=False) as proc:
        with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
            assert conn.execute(f"SELECT id FROM {small} WHERE id = %s", (1,), prepare=True).fetchall() == [(1,)]
            (tmp_path / "rules.yaml").write_text(
                "defaults: {action: allow}\npolicies:\n  - {name: no-reads, match: {classes: [read]}, action: deny}\n")
            _reload(proc)
            with pytest.raises(psycopg.Error) as info:
                conn.execute(f"SELECT id FROM {small} WHERE id = %s", (1,), prepare=True).fetchall()
            assert info.value.sqlstate == "DBF02" and "no-reads" in str(info.value)
            (tmp_path / "rules.yaml").write_text("defaults: {action: allow}\npolicies: []\n")
            _reload(proc)
            assert conn.execute(f"SELECT id FROM {small} WHERE id = %s", (2,), prepare=True).fetchall() == [(2,)]


# --- the session's cursors and statements change when the server says so ------------------------------


def test_a_failed_redeclare_keeps_the_cursor_its_counters_and_mask(fw: DbfwProcess,
                                                                  tables: tuple[str, str, str]) -> None:
    big = tables[0]
    with RawPg(fw.host, fw.port) as raw:
        raw.query(f"DECLARE c CURSOR WITH HOLD FOR SELECT id, email || '' AS e FROM {big} ORDER BY id")
        rows: list[list[bytes | None]] = []
        errors: list[str] = []
        for _ in range(4):
            redeclared = raw.query("DECLARE c CURSOR WITH HOLD FOR SELECT 1")  # fails: c exists
            assert [x.sqlstate for x in redeclared if isinstance(x, m.ErrorResponse)] == ["42P03"]
            for x in raw.query("FETCH 400 FROM c"):
                if isinstance(x, m.DataRow):
                    rows.append(x.values)  # type: ignore[attr-defined]
                elif isinstance(x, m.ErrorResponse):
                    errors.append(x.sqlstate)
        assert len(rows) == 1000 and "DBF06" in errors
        assert all(b"example.com" not in (r[1] or b"") for r in rows)
        # A CLOSE the server never ran (an earlier statement failed) closes nothing here either.
        raw.query("SELECT 1/0; CLOSE c")
        assert any(isinstance(x, m.ErrorResponse) and x.sqlstate == "DBF06" for x in raw.query("FETCH 1 FROM c"))
        # A Bind naming the cursor fails as the server fails it, and the cursor stays as it was.
        raw.send(m.Parse("", "SELECT 1", []), m.Bind("c", "", [], [], []), m.Sync())
        assert [x.sqlstate for x in raw.until_ready() if isinstance(x, m.ErrorResponse)] == ["42P03"]
        assert any(isinstance(x, m.ErrorResponse) and x.sqlstate == "DBF06" for x in raw.query("FETCH 1 FROM c"))
        raw.query("CLOSE c")
        assert [x.sqlstate for x in raw.query("FETCH 1 FROM c") if isinstance(x, m.ErrorResponse)] == ["34000"]


def test_portals_end_with_their_transaction(fw: DbfwProcess, tables: tuple[str, str, str]) -> None:
    small = tables[2]
    with RawPg(fw.host, fw.port) as raw:
        for _ in range(3):  # the same portal name in one transaction after another
            raw.query("BEGIN")
            raw.send(m.Parse("", f"SELECT id FROM {small}", []), m.Bind("p", "", [], [], []), m.Execute("p", 1),
                     m.Sync())
            answer = raw.until_ready()
            assert not any(isinstance(x, m.ErrorResponse) for x in answer)
            raw.query("COMMIT")


def test_an_approval_is_not_reused_through_a_deallocate_that_failed(pg: PgTarget, tmp_path: Path) -> None:
    with scratch_table(pg, "counter", "n int", "INSERT INTO {t} VALUES (0)") as counter:
        rules = ("defaults: {action: allow}\npolicies:\n  - {name: reviewed, match: {classes: [destructive_write]}, "
                 "action: require_approval, reviewers: [role:reviewer]}\n")
        with running_dbfw(tmp_path, pg, rules) as proc, RawPg(proc.host, proc.port) as raw:
            update = f"UPDATE {counter} SET n = n + 1"
            raw.send(m.Parse("s1", update, []), m.Bind("", "s1", [], [], []), m.Execute("", 0), m.Sync())
            refused = [x for x in raw.until_ready() if isinstance(x, m.ErrorResponse)]
            assert refused[0].sqlstate == "DBF01"
            request = refused[0].message.split("request ")[1].split()[0]
            _approve(proc, request)
            raw.send(m.Parse("s1", update, []), m.Bind("", "s1", [], [], []), m.Execute("", 0), m.Sync())
            assert not any(isinstance(x, m.ErrorResponse) for x in raw.until_ready())
            raw.query("SELECT 1/0; DEALLOCATE s1")  # the server never runs the DEALLOCATE
            raw.send(m.Parse("s1", "SELECT 1", []), m.Sync())
            assert [x.sqlstate for x in raw.until_ready() if isinstance(x, m.ErrorResponse)] == ["42P05"]
            for _ in range(3):
                raw.send(m.Bind("", "s1", [], [], []), m.Execute("", 0), m.Sync())
                assert [x.sqlstate for x in raw.until_ready() if isinstance(x, m.ErrorResponse)] == ["DBF04"]
        with psycopg.connect(pg.conninfo()) as direct:
            assert direct.execute(f"SELECT n FROM {counter}").fetchone() == (1,)


def _approve(proc: DbfwProcess, request: str) -> None:
    import json

    req = urllib.request.Request(f"http://127.0.0.1:{proc.admin_port}/api/v1/approvals/{request}/approve",
                                 data=json.dumps({}).encode(), method="POST",
                                 headers={"Authorization": "Bearer alice-api-key", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_the_time_limit_holds_without_a_sync_and_for_cursors_run_as_portals(fw: DbfwProcess) -> None:
    with RawPg(fw.host, fw.port) as raw:
        started = time.monotonic()
        raw.send(m.Parse("", "SELECT pg_sleep(20)", []), m.Bind("", "", [], [], []), m.Execute("", 0), m.Flush())
        while not isinstance(msg := raw.receive(), m.ErrorResponse):
            pass
        assert msg.sqlstate == "57014" and msg.message.startswith("dbfw:")
        assert time.monotonic() - started < 10
        raw.send(m.Sync())
        raw.until_ready()
        raw.query("BEGIN")
        raw.query("DECLARE slow CURSOR FOR SELECT pg_sleep(20)")
        started = time.monotonic()
        raw.send(m.Execute("slow", 0), m.Sync())
        answer = raw.until_ready()
        assert [x.sqlstate for x in answer if isinstance(x, m.ErrorResponse)] == ["57014"]
        assert time.monotonic() - started < 10
        raw.query("ROLLBACK")


def test_a_cursor_read_a_piece_at_a_time_spends_one_time_allowance(fw: DbfwProcess) -> None:
    with RawPg(fw.host, fw.port) as raw:
        raw.query("BEGIN")
        raw.query("DECLARE slow CURSOR FOR SELECT pg_sleep(0.3), g FROM generate_series(1, 20) g")
        started, errors = time.monotonic(), []
        for _ in range(10):  # each FETCH takes 0.6 s, under the 1 s limit; together they pass it
            errors += [x.sqlstate for x in raw.query("FETCH 2 FROM slow") if isinstance(x, m.ErrorResponse)]
            if errors:
                break
        assert errors == ["57014"] and time.monotonic() - started < 4
        raw.query("ROLLBACK")
