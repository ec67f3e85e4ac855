"""limits.max_result_rows: a result past it is cut off with DBF06 after the rows already sent."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    DbfwProcess,
    PgTarget,
    client_binary,
    running_dbfw,
)

RULES = """\
defaults: {action: allow}
policies: []
limits: {max_result_rows: 50}
"""


@pytest.fixture(scope="module", params=["plain", "masking"])
def limited(request: pytest.FixtureRequest, pg: PgTarget,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    extra = ""
    if request.param == "masking":  # the same limit holds where results are followed for masking
        extra = "masking:\n  - {name: m, columns: ['*.*.never_a_column_here'], mask: redact}\n"
    with running_dbfw(tmp_path_factory.mktemp("limits"), pg, RULES + extra, admin=False) as proc:
        yield proc


def test_a_result_within_the_limit_passes(limited: DbfwProcess) -> None:
    with psycopg.connect(limited.conninfo()) as conn:
        assert len(conn.execute("select g from generate_series(1, 50) g").fetchall()) == 50


def test_a_result_past_the_limit_is_cut_off_with_dbf06(limited: DbfwProcess, pg: PgTarget) -> None:
    with psycopg.connect(limited.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute("select g, repeat('x', 100) from generate_series(1, 200000) g").fetchall()
        assert info.value.sqlstate == "DBF06"
        assert "limits.max_result_rows (50 rows)" in str(info.value)
        # The session goes on, and the upstream is not still producing the big result.
        assert conn.execute("select 1").fetchone() == (1,)
    with psycopg.connect(pg.conninfo()) as direct:
        running = direct.execute("select count(*) from pg_stat_activity where query like "
                                 "'%generate_series(1, 200000)%' and pid <> pg_backend_pid()").fetchone()
    assert running == (0,)


def test_extended_protocol_and_psql_see_the_cut_off(limited: DbfwProcess) -> None:
    async def scenario() -> str:
        conn = await asyncpg.connect(host=limited.host, port=limited.port, user=AGENT, password=AGENT_PASSWORD,
                                     database="test")
        try:
            with pytest.raises(asyncpg.PostgresError) as info:
                await conn.fetch("select g from generate_series(1, $1::int) g", 1000)
            assert await conn.fetchval("select count(*) from generate_series(1, 10)") == 10
            return info.value.sqlstate
        finally:
            await conn.close()

    assert asyncio.run(scenario()) == "DBF06"
    env = {**os.environ, "PGPASSWORD": AGENT_PASSWORD}
    out = subprocess.run([client_binary("psql"), "-X", "-h", limited.host, "-p", str(limited.port), "-U", AGENT,
                          "-d", "test", "-c", "select generate_series(1, 1000)"], env=env, capture_output=True,
                         text=True, timeout=30)
    assert (out.returncode != 0 and "DBF06" in out.stderr) or "max_result_rows" in out.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_a_result_far_past_the_limit_is_stopped_upstream(limited: DbfwProcess, pg: PgTarget, prepare: bool) -> None:
    """Ten billion rows: past the limit dbfw drops rows by their headers, and once it has dropped some 16,000
    (or 16 MB) it cancels the statement on the server rather than read the rest for hours; the client gets
    the DBF06 the cut would have been, and its session goes on."""
    sql = "select generate_series(1, 10000000000) as g, 'far past the limit' as tag"
    with psycopg.connect(limited.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(sql, prepare=prepare).fetchall()
        assert info.value.sqlstate == "DBF06", info.value
        assert "limits.max_result_rows (50 rows)" in str(info.value)
        for _ in range(3):  # the cancel hit the flood, not the statements after it
            assert conn.execute("select 1", prepare=prepare).fetchone() == (1,)
    with psycopg.connect(pg.conninfo()) as direct:
        running = direct.execute("select count(*) from pg_stat_activity where query like "
                                 "'%far past the limit%' and pid <> pg_backend_pid()").fetchone()
    assert running == (0,)
    assert "session.result_stopped_upstream" in limited.log_path.read_text()
