"""asyncpg through dbfw: binary protocol, prepared statements, COPY, cancellation on timeout.

asyncpg talks the extended protocol with binary formats only, caches named prepared statements and
introspects types with its own catalog queries: a different exercise of the relay than libpq's.
pytest-asyncio is not installed, so each test runs its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import psycopg
import pytest

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, PgTarget

pytestmark = pytest.mark.timeout(60)


def _name(prefix: str = "t_asyncpg") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def _connect_dbfw(dbfw: DbfwProcess, **kwargs: Any) -> asyncpg.Connection:
    return await asyncpg.connect(host=dbfw.host, port=dbfw.port, user=AGENT, password=AGENT_PASSWORD,
                                 database="test", ssl=False, **kwargs)


async def _connect_pg(pg: PgTarget, **kwargs: Any) -> asyncpg.Connection:
    return await asyncpg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                                 database=pg.dbname, ssl=False, **kwargs)


def both(dbfw: DbfwProcess, pg: PgTarget, scenario: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
    """Run ``scenario(conn)`` through dbfw and directly; the results must be equal. Returns dbfw's."""

    async def run(connect: Callable[[], Awaitable[asyncpg.Connection]]) -> Any:
        conn = await connect()
        try:
            return await scenario(conn)
        finally:
            await conn.close(timeout=5)

    through = asyncio.run(run(lambda: _connect_dbfw(dbfw)))
    direct = asyncio.run(run(lambda: _connect_pg(pg)))
    assert through == direct, f"through dbfw: {through!r}\ndirectly:     {direct!r}"
    return through


def _drop(pg: PgTarget, *tables: str) -> None:
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        for table in tables:
            conn.execute(f'drop table if exists "{table}"')


def test_prepared_statements_are_reused(dbfw: DbfwProcess, pg: PgTarget) -> None:
    async def scenario(conn: asyncpg.Connection) -> tuple[Any, ...]:
        stmt = await conn.prepare("select $1::int + $2::int as total, $3::text || '!' as shout")
        results = [tuple(await stmt.fetchrow(i, i * 10, f"n{i}")) for i in range(20)]
        value = await stmt.fetchval(1, 2, "x")
        many = await stmt.fetch(5, 5, "é")
        params = [t.name for t in stmt.get_parameters()]
        attrs = [(a.name, a.type.name) for a in stmt.get_attributes()]
        # A statement whose execution fails, then succeeds again with other arguments.
        div = await conn.prepare("select 100 / $1::int")
        outcomes: list[Any] = []
        for arg in (0, 4, 0, 5):
            try:
                outcomes.append(await div.fetchval(arg))
            except asyncpg.DivisionByZeroError as e:
                outcomes.append(e.sqlstate)
        # The statement cache: the same query text through conn.fetch* many times.
        cached = [await conn.fetchval("select $1::bigint * 2", i) for i in range(10)]
        server_side = await conn.fetchval("select count(*) from pg_prepared_statements")
        return results, value, [tuple(r) for r in many], params, attrs, outcomes, cached, server_side > 0

    got = both(dbfw, pg, scenario)
    assert got[0] == [(i * 11, f"n{i}!") for i in range(20)]
    assert got[1] == 3
    assert got[2] == [(10, "é!")]
    assert got[3] == ["int4", "int4", "text"]
    assert got[4] == [("total", "int4"), ("shout", "text")]
    assert got[5] == ["22012", 25, "22012", 20]
    assert got[6] == [i * 2 for i in range(10)]
    assert got[7] is True


def test_binary_types_round_trip(dbfw: DbfwProcess, pg: PgTarget) -> None:
    table = _name()
    values = (
        2**31 - 1, -(2**63), Decimal("123456789012345678901234567890.123456789"), Decimal("-0.00000001"),
        3.5, "grüße 🐘 中文", b"\x00\x01\xfe\xff" * 3,
        dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC), dt.datetime(1970, 1, 1, 0, 0, 1),
        dt.date(1, 1, 1), dt.time(12, 30, 15, 5), dt.timedelta(days=-3, seconds=7, microseconds=11),
        json.dumps({"x": [1, 2.5, "three", None, {"nested": True}], "ü": "✓"}),
        [1, None, 3], [["a", "b"], ["c", None]], [Decimal("1.1"), Decimal("NaN")],
        uuid.UUID("12345678-1234-5678-1234-567812345678"), [uuid.uuid5(uuid.NAMESPACE_DNS, "dbfw")], True, None,
    )
    cols = ("a int4, b int8, c numeric, d numeric, e float8, f text, g bytea, h timestamptz, i timestamp, j date, "
            "k time, l interval, m jsonb, n int[], o text[], p numeric[], q uuid, r uuid[], s bool, t text")

    async def scenario(conn: asyncpg.Connection) -> tuple[Any, ...]:
        await conn.execute(f"create table if not exists {table} ({cols})")
        await conn.execute(f"truncate {table}")
        placeholders = ", ".join(f"${i + 1}" for i in range(len(values)))
        await conn.execute(f"insert into {table} values ({placeholders})", *values)
        row = await conn.fetchrow(f"select * from {table}")
        assert row is not None
        by_param = await conn.fetchval(f"select count(*) from {table} where q = $1 and g = $2 and c = $3",
                                       values[16], values[6], values[2])
        literal = await conn.fetchrow("select 'NaN'::numeric, 'infinity'::timestamptz, '{}'::int[], "
                                      "'{\"k\": 1}'::json, array[1.5, null]::float8[]")
        values_back = list(row)
        values_back[15] = [str(v) for v in values_back[15]]  # Decimal('NaN') != Decimal('NaN')
        return tuple(values_back), by_param, tuple(str(v) for v in literal)

    try:
        row, by_param, literal = both(dbfw, pg, scenario)
    finally:
        _drop(pg, table)
    expected = list(values)
    expected[12] = json.loads(values[12])  # type: ignore[arg-type]
    got = list(row)
    got[12] = json.loads(got[12])
    expected[15] = ["1.1", "NaN"]
    assert got == expected
    assert by_param == 1
    assert literal == ("NaN", str(dt.datetime.max), "[]", '{"k": 1}', "[1.5, None]")


def test_copy_records_and_copy_out(dbfw: DbfwProcess, pg: PgTarget) -> None:
    source, target = _name(), _name()
    records = [(i, f"row {i} Ω", None if i % 5 == 0 else Decimal(i) / 8,
                dt.datetime(2021, 6, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)) for i in range(3000)]

    async def scenario(conn: asyncpg.Connection) -> tuple[Any, ...]:
        for table in (source, target):
            await conn.execute(f"create table if not exists {table} (id int, name text, amount numeric, "
                               f"at timestamptz)")
            await conn.execute(f"truncate {table}")
        status_in = await conn.copy_records_to_table(source, records=records)
        # COPY out of a query into memory, text and binary, then back into the other table.
        text_out = io.BytesIO()
        status_query = await conn.copy_from_query(f"select * from {source} where id < $1 order by id", 1000,
                                                  output=text_out, format="csv")
        binary_out = io.BytesIO()
        status_table = await conn.copy_from_table(source, output=binary_out, format="binary")
        binary_out.seek(0)
        status_back = await conn.copy_to_table(target, source=binary_out, format="binary")
        text_out.seek(0)
        status_csv = await conn.copy_to_table(target, source=text_out, format="csv", columns=["id", "name",
                                                                                             "amount", "at"])
        # A COPY the server rejects, then the connection is still usable.
        try:
            await conn.copy_to_table(target, source=io.BytesIO(b"1,x,not-a-number,2020-01-01\n"), format="csv")
            failed = None
        except asyncpg.InvalidTextRepresentationError as e:
            failed = e.sqlstate
        counts = await conn.fetchrow(f"select (select count(*) from {source}), (select count(*) from {target}), "
                                     f"(select count(distinct id) from {target})")
        back = await conn.fetch(f"select * from {source} order by id")
        return (status_in, status_query, status_table, status_back, status_csv, failed, tuple(counts),
                [tuple(r) for r in back], text_out.getvalue().count(b"\n"))

    try:
        got = both(dbfw, pg, scenario)
    finally:
        _drop(pg, source, target)
    assert got[:6] == ("COPY 3000", "COPY 1000", "COPY 3000", "COPY 3000", "COPY 1000", "22P02")
    assert got[6] == (3000, 4000, 3000)
    assert got[7] == records
    assert got[8] == 1000


def test_executemany_and_transactions(dbfw: DbfwProcess, pg: PgTarget) -> None:
    table = _name()

    async def scenario(conn: asyncpg.Connection) -> tuple[Any, ...]:
        await conn.execute(f"create table if not exists {table} (id int primary key, v text)")
        await conn.execute(f"truncate {table}")
        await conn.executemany(f"insert into {table} values ($1, $2)", [(i, f"v{i}") for i in range(500)])
        # executemany failing part-way is atomic.
        try:
            await conn.executemany(f"insert into {table} values ($1, $2)", [(1000, "a"), (1, "dup"), (1001, "b")])
            dup = None
        except asyncpg.UniqueViolationError as e:
            dup = e.sqlstate
        async with conn.transaction():
            await conn.execute(f"update {table} set v = 'committed' where id = 1")
        try:
            async with conn.transaction():
                await conn.execute(f"update {table} set v = 'rolled back' where id = 2")
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        async with conn.transaction():
            await conn.execute(f"update {table} set v = 'outer' where id = 3")
            try:
                async with conn.transaction():  # savepoint
                    await conn.execute(f"update {table} set v = 'inner' where id = 3")
                    await conn.execute("select 1/0")
            except asyncpg.DivisionByZeroError:
                pass
            in_tx = conn.is_in_transaction()
        tx = conn.transaction(isolation="serializable", readonly=True)
        await tx.start()
        iso = await conn.fetchval("show transaction_isolation")
        try:
            await conn.execute(f"delete from {table}")
            ro = None
        except asyncpg.ReadOnlySQLTransactionError as e:
            ro = e.sqlstate
        await tx.rollback()
        rows = await conn.fetch(f"select id, v from {table} where id in (1, 2, 3, 1000) order by id")
        return dup, in_tx, conn.is_in_transaction(), iso, ro, [tuple(r) for r in rows], \
            await conn.fetchval(f"select count(*) from {table}")

    try:
        got = both(dbfw, pg, scenario)
    finally:
        _drop(pg, table)
    assert got == ("23505", True, False, "serializable", "25006", [(1, "committed"), (2, "v2"), (3, "outer")], 500)


def test_listeners_and_log_messages(dbfw: DbfwProcess, pg: PgTarget) -> None:
    channel = _name("chan")

    async def scenario(conn: asyncpg.Connection) -> tuple[Any, ...]:
        got: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        logs: list[tuple[str, str]] = []
        def on_notify(_c: Any, _pid: int, ch: str, payload: str) -> None:
            got.put_nowait((ch, payload))

        await conn.add_listener(channel, on_notify)
        conn.add_log_listener(lambda _c, msg: logs.append((msg.severity, msg.message)))
        await conn.execute("select pg_notify($1, 'payload Ω')", channel)
        await conn.execute("do $$ begin raise notice 'from asyncpg'; end $$")
        note = await asyncio.wait_for(got.get(), 5)
        await conn.remove_listener(channel, on_notify)
        return note, logs

    got = both(dbfw, pg, scenario)
    assert got == ((channel, "payload Ω"), [("NOTICE", "from asyncpg")])


def test_cursors_fetch_in_batches(dbfw: DbfwProcess, pg: PgTarget) -> None:
    # asyncpg's cursors are portals executed with a row limit: PortalSuspended between batches.
    async def scenario(conn: asyncpg.Connection) -> tuple[Any, ...]:
        async with conn.transaction():
            streamed = [r[0] async for r in conn.cursor("select g from generate_series(1, $1) g", 1000,
                                                         prefetch=77)]
            cur = await conn.cursor("select g, g * 1.5 from generate_series(1, 100) g")
            first = [tuple(r) for r in await cur.fetch(3)]
            moved = await cur.forward(50)
            row = await cur.fetchrow()
            stmt = await conn.prepare("select $1::text || g from generate_series(1, 5) g")
            prepared = [r[0] async for r in stmt.cursor("p", prefetch=2)]
        return len(streamed), sum(streamed), first, moved, tuple(row) if row else None, prepared

    got = both(dbfw, pg, scenario)
    assert got == (1000, 500500, [(1, Decimal("1.5")), (2, Decimal("3.0")), (3, Decimal("4.5"))], 50,
                   (54, Decimal("81.0")), ["p1", "p2", "p3", "p4", "p5"])


def test_server_settings_and_reset(dbfw: DbfwProcess, pg: PgTarget) -> None:
    async def run(connect: Callable[..., Awaitable[asyncpg.Connection]], target: Any) -> tuple[Any, ...]:
        conn = await connect(target, server_settings={"application_name": "asyncpg-app", "search_path": "pg_catalog"})
        try:
            startup = (conn.get_settings().application_name, await conn.fetchval("show search_path"))
            await conn.execute("set work_mem = '7MB'")
            await conn.reset()
            return startup, await conn.fetchval("show work_mem"), conn.get_server_version()[:1]
        finally:
            await conn.close(timeout=5)

    through = asyncio.run(run(_connect_dbfw, dbfw))
    direct = asyncio.run(run(_connect_pg, pg))
    assert through == direct
    assert through[0] == ("asyncpg-app", "pg_catalog")


def test_pool_runs_concurrent_queries(dbfw: DbfwProcess) -> None:
    async def main() -> list[int]:
        async with asyncpg.create_pool(host=dbfw.host, port=dbfw.port, user=AGENT, password=AGENT_PASSWORD,
                                       database="test", ssl=False, min_size=2, max_size=5) as pool:
            async def one(i: int) -> int:
                async with pool.acquire() as conn:
                    return await conn.fetchval("select $1::int * $1::int from pg_sleep(0.05)", i)

            return list(await asyncio.gather(*(one(i) for i in range(30))))

    assert asyncio.run(main()) == [i * i for i in range(30)]


def _cancels(dbfw: DbfwProcess, matched: bool) -> int:
    return sum(1 for line in dbfw.log().splitlines() if " cancel.request " in line and f"matched={matched}" in line)


def _running_sleeps(pg: PgTarget, marker: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        return conn.execute("select pid, state, query from pg_stat_activity where query like %s "
                            "and pid <> pg_backend_pid() and state = 'active'", (f"%{marker}%",)).fetchall()


def _wait_until_no_sleep(pg: PgTarget, marker: str, timeout: float = 5.0) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout
    while True:
        running = _running_sleeps(pg, marker)
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.1)


@pytest.mark.parametrize("through", ["dbfw", "direct"])
def test_timeout_cancels_the_query_upstream(dbfw: DbfwProcess, pg: PgTarget, through: str) -> None:
    marker = f"cancel_{uuid.uuid4().hex[:8]}"
    matched_before = _cancels(dbfw, True)

    async def main() -> tuple[float, Any]:
        conn = await (_connect_dbfw(dbfw) if through == "dbfw" else _connect_pg(pg))
        try:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetch(f"select pg_sleep(10) /* {marker} */", timeout=0.5)
            elapsed = time.monotonic() - started
            running = await asyncio.to_thread(_wait_until_no_sleep, pg, marker)
            assert running == [], f"the query still runs upstream after the client's timeout: {running}"
            after = await conn.fetchval("select 'usable'", timeout=5)
            return elapsed, after
        finally:
            await conn.close(timeout=5)

    elapsed, after = asyncio.run(main())
    assert elapsed < 2, f"the timeout took {elapsed:.2f}s"
    assert after == "usable"
    if through == "dbfw":
        assert _cancels(dbfw, True) > matched_before


def test_timeout_cancels_a_prepared_statement(dbfw: DbfwProcess, pg: PgTarget) -> None:
    marker = f"cancelprep_{uuid.uuid4().hex[:8]}"

    async def main() -> Any:
        conn = await _connect_dbfw(dbfw)
        try:
            stmt = await conn.prepare(f"select pg_sleep($1) /* {marker} */")
            with pytest.raises(asyncio.TimeoutError):
                await stmt.fetch(10, timeout=0.5)
            running = await asyncio.to_thread(_wait_until_no_sleep, pg, marker)
            assert running == [], running
            return await stmt.fetchval(0)
        finally:
            await conn.close(timeout=5)

    assert asyncio.run(main()) is None  # pg_sleep returns void


def test_psycopg_cancel_from_another_thread(dbfw: DbfwProcess, pg: PgTarget) -> None:
    marker = f"pgcancel_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbfw.conninfo(), autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute(f"select pg_sleep(10) /* {marker} */")
        finally:
            timer.cancel()
        assert time.monotonic() - started < 3
        assert _wait_until_no_sleep(pg, marker) == []
        assert conn.execute("select 1").fetchone() == (1,)


def test_a_cancel_with_a_wrong_key_cancels_nothing(dbfw: DbfwProcess, pg: PgTarget) -> None:
    # A CancelRequest for a key dbfw never issued must not cancel anyone's statement.
    marker = f"nocancel_{uuid.uuid4().hex[:8]}"
    unmatched_before = _cancels(dbfw, False)

    async def main() -> Any:
        conn = await _connect_dbfw(dbfw)
        try:
            task = asyncio.create_task(conn.fetchval(f"select 'finished' from pg_sleep(1.5) /* {marker} */"))
            await asyncio.sleep(0.5)
            reader, writer = await asyncio.open_connection(dbfw.host, dbfw.port)
            writer.write((16).to_bytes(4, "big") + (80877102).to_bytes(4, "big") + (12345).to_bytes(4, "big")
                         + b"nope")
            await writer.drain()
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return await asyncio.wait_for(task, 5)
        finally:
            await conn.close(timeout=5)

    assert asyncio.run(main()) == "finished"
    assert _cancels(dbfw, False) == unmatched_before + 1
