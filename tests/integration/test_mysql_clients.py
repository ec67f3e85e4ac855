"""More MySQL clients through the listener: SQLAlchemy on PyMySQL and on mysql-connector, aiomysql, a 100 MB
result streamed with dbfw's memory staying flat (TLS: ``test_mysql_tls.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import quote

import pymysql
import pytest

from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    ASCII_AGENT,
    ASCII_AGENT_PASSWORD,
    DbfwProcess,
    MyTarget,
)
from tests.integration.mysql_support import serving

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with serving(tmp_path_factory.mktemp("dbfw-my-clients"), mysql) as proc:
        yield proc


@pytest.mark.parametrize("driver", ["pymysql", "mysqlconnector"])
def test_sqlalchemy_reads_and_writes_through_dbfw(fw: DbfwProcess, driver: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"mysql+{driver}://{quote(ASCII_AGENT)}:{quote(ASCII_AGENT_PASSWORD)}@127.0.0.1:"
                              f"{fw.ports['my']}/test?charset=utf8mb4")
    try:
        with engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT id, email FROM dbfw_my_customers WHERE id IN (:a, :b) ORDER BY id"),
                                {"a": 3, "b": 4}).all()
            assert [tuple(r) for r in rows] == [(3, "user3@example.com"), (4, "user4@example.com")]
            conn.execute(sa.text("UPDATE dbfw_my_orders SET total = total WHERE id = :id"), {"id": 5})
        orders = sa.Table("dbfw_my_orders", sa.MetaData(), autoload_with=engine)  # reflection: SHOW, DESCRIBE
        assert {c.name for c in orders.columns} == {"id", "customer_id", "total", "created"}
    finally:
        engine.dispose()


def test_aiomysql_runs_statements(fw: DbfwProcess) -> None:
    import aiomysql

    async def scenario() -> list[tuple[object, ...]]:
        conn = await aiomysql.connect(host="127.0.0.1", port=fw.ports["my"], user=ASCII_AGENT,
                                      password=ASCII_AGENT_PASSWORD, db="test")
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT id, v FROM dbfw_my_canary WHERE id = %s", (2,))
                return list(await cur.fetchall())
        finally:
            conn.close()

    assert asyncio.run(scenario()) == [(2, "b")]


def test_a_100_mb_result_streams_with_flat_memory(fw: DbfwProcess) -> None:
    """Rows go through as they come: dbfw holds one read's worth, not the result."""
    before = fw.rss_peak_kib()
    conn = pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", cursorclass=pymysql.cursors.SSCursor)
    total = 0
    try:
        with conn.cursor() as cur:
            # 100,000 rows of 1,000 bytes, made by the server (MariaDB's sequence tables).
            cur.execute("SELECT seq, REPEAT('x', 1000) FROM seq_1_to_100000")
            for _i, text in cur:
                total += len(text)
    finally:
        conn.close()
    assert total == 100_000_000
    assert fw.rss_peak_kib() - before < 60 * 1024, "dbfw's memory grew with the result"
