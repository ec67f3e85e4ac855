"""psycopg 3 through dbfw: every client feature behaves exactly as it does directly against PostgreSQL.

Most tests run one scenario twice, once through dbfw and once on the database directly, and compare
what the client saw; they also check the results against the expected values, so that a scenario
broken the same way on both sides would still fail.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from tests.conftest import DbfwProcess, PgTarget

pytestmark = pytest.mark.timeout(60)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@contextmanager
def scratch_table(pg: PgTarget, columns: str, prefix: str = "t_psycopg") -> Iterator[str]:
    """A uniquely named table, created and dropped directly on the database."""
    name = _name(prefix)
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("create table {} ({})").format(sql.Identifier(name), sql.SQL(columns)))
    try:
        yield name
    finally:
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(name)))


def both(dbfw: DbfwProcess, pg: PgTarget, scenario: Callable[[str], Any]) -> Any:
    """Run ``scenario(conninfo)`` through dbfw and directly; the results must be equal. Returns dbfw's."""
    through = scenario(dbfw.conninfo())
    direct = scenario(pg.conninfo())
    assert through == direct, f"through dbfw: {through!r}\ndirectly:     {direct!r}"
    return through


TYPES_QUERY = """
select 42::int4 as i4, 9007199254740993::int8 as i8, (-32768)::int2 as i2,
       12345.6789::numeric(10, 4) as num, 'NaN'::numeric as nan, 1.5::float8 as f8, true as b,
       'héllo wörld Ω 🐘 日本語'::text as txt, E'\\\\x00ff10deadbeef'::bytea as bin,
       '2024-02-29 12:34:56.789+01'::timestamptz as tstz, '2024-02-29 12:34:56'::timestamp as ts,
       '2024-02-29'::date as d, interval '1 day 02:03:04' as iv,
       '{"a": [1, 2, {"b": null}], "ü": "✓"}'::jsonb as jb,
       array[1, 2, null]::int[] as ints, array['a', 'b c', 'Ω', null]::text[] as texts,
       '{{1,2},{3,4}}'::int[] as matrix,
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u, null::int as nothing, null::text as nothing_text
"""

TYPES_EXPECTED = (
    42, 9007199254740993, -32768, Decimal("12345.6789"), Decimal("NaN"), 1.5, True,
    "héllo wörld Ω 🐘 日本語", b"\x00\xff\x10\xde\xad\xbe\xef",
    dt.datetime(2024, 2, 29, 11, 34, 56, 789000, tzinfo=dt.UTC), dt.datetime(2024, 2, 29, 12, 34, 56),
    dt.date(2024, 2, 29), dt.timedelta(days=1, hours=2, minutes=3, seconds=4),
    {"a": [1, 2, {"b": None}], "ü": "✓"}, [1, 2, None], ["a", "b c", "Ω", None], [[1, 2], [3, 4]],
    uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), None, None,
)


def _comparable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # NaN != NaN; compare its text instead.
    return tuple(str(v) if isinstance(v, Decimal) and v.is_nan() else v for v in row)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_result_types_text_and_binary(dbfw: DbfwProcess, pg: PgTarget, binary: bool) -> None:
    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo) as conn:
            cur = conn.cursor(binary=binary)
            cur.execute(TYPES_QUERY)
            row = cur.fetchone()
            assert row is not None
            assert cur.pgresult is not None
            fmt = [cur.pgresult.fformat(i) for i in range(cur.pgresult.nfields)]
            return (*_comparable(row), tuple(d.name for d in cur.description), tuple(fmt))

    got = both(dbfw, pg, scenario)
    assert got[: len(TYPES_EXPECTED)] == _comparable(TYPES_EXPECTED)
    assert set(got[-1]) == {1 if binary else 0}


@pytest.mark.parametrize("fmt", ["%t", "%b"], ids=["text-params", "binary-params"])
def test_parameters_round_trip(dbfw: DbfwProcess, pg: PgTarget, fmt: str) -> None:
    values = (7, 2**62, Decimal("-0.000001"), "naïve ☃ \t tab 'quote' \"dq\" \\ backslash", bytes(range(256)),
              dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), Jsonb({"k": ["v", 1, None, True]}),
              [1.5, -2.25], ["x", None, "ÿ"], uuid.UUID("00000000-0000-0000-0000-000000000001"), None)
    cols = ("a int4, b int8, c numeric, d text, e bytea, f timestamptz, g jsonb, h float8[], i text[], "
            "j uuid, k text")
    with scratch_table(pg, cols) as table:
        def scenario(conninfo: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(sql.Identifier(table)))
                placeholders = sql.SQL(", ").join(sql.SQL(fmt) for _ in values)
                conn.execute(sql.SQL("insert into {} values ({})").format(sql.Identifier(table), placeholders),
                             values)
                # Parameters in a WHERE clause, too, each of them matching.
                cur = conn.execute(
                    sql.SQL("select * from {} where a = {f} and d = {f} and e = {f} and k is not distinct from {f}")
                    .format(sql.Identifier(table), f=sql.SQL(fmt)), (values[0], values[3], values[4], None))
                return cur.fetchall()

        rows = both(dbfw, pg, scenario)
    assert len(rows) == 1
    row = rows[0]
    assert row[:6] == values[:6]
    assert row[6] == {"k": ["v", 1, None, True]}
    assert row[7:] == values[7:]


def test_large_values_are_streamed_intact(dbfw: DbfwProcess, pg: PgTarget) -> None:
    # Rows and Bind messages well over dbfw's 256 KiB streaming chunk, both directions.
    big_text = ("abcdefghij" * 100_000) + "Ω"
    big_bytes = bytes(range(256)) * 12_000  # ~3 MB
    with scratch_table(pg, "id int, t text, b bytea") as table:
        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(sql.Identifier(table)))
                conn.execute(sql.SQL("insert into {} values (1, %s, %b)").format(sql.Identifier(table)),
                             (big_text, big_bytes))
                text_row = conn.execute(sql.SQL("select t, b from {}").format(sql.Identifier(table))).fetchone()
                bin_row = conn.cursor(binary=True).execute(
                    sql.SQL("select t, b from {}").format(sql.Identifier(table))).fetchone()
                generated = conn.execute("select repeat('xyz', 2000000), generate_series(1, 3)").fetchall()
                assert text_row is not None and bin_row is not None
                return (text_row == (big_text, big_bytes), bin_row == (big_text, big_bytes),
                        [(len(t), n) for t, n in generated])

        assert both(dbfw, pg, scenario) == (True, True, [(6_000_000, 1), (6_000_000, 2), (6_000_000, 3)])


def test_executemany(dbfw: DbfwProcess, pg: PgTarget) -> None:
    rows = [(i, f"name-{i}-é", Decimal(i) / 7) for i in range(200)]
    with scratch_table(pg, "id int primary key, name text, amount numeric") as table:
        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(sql.Identifier(table)))
                cur = conn.cursor()
                cur.executemany(sql.SQL("insert into {} values (%s, %s, %s)").format(sql.Identifier(table)),
                                rows)
                inserted = cur.rowcount
                cur.executemany(sql.SQL("update {} set name = name || '!' where id = %s returning id")
                                .format(sql.Identifier(table)), [(1,), (2,), (999,)], returning=True)
                returned = []
                while True:
                    returned.append(cur.fetchall())
                    if not cur.nextset():
                        break
                everything = conn.execute(sql.SQL("select * from {} order by id").format(
                    sql.Identifier(table))).fetchall()
                return inserted, returned, everything

        inserted, returned, everything = both(dbfw, pg, scenario)
    assert inserted == 200
    assert returned == [[(1,)], [(2,)], []]
    assert everything[1] == (1, "name-1-é!", Decimal(1) / 7)
    assert len(everything) == 200


def test_pipeline_with_an_error_in_the_middle(dbfw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "id int primary key, v text") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                outcomes: list[str] = []
                with conn.pipeline() as p:
                    c1 = conn.execute(sql.SQL("insert into {} values (1, 'a') returning id").format(ident))
                    c2 = conn.execute(sql.SQL("insert into {} values (%s, %s) returning id").format(ident), (2, "b"))
                    c3 = conn.execute("select %s::int + 1", (41,))
                    p.sync()
                    first = (c1.fetchone(), c2.fetchone(), c3.fetchone())
                    # In pipeline mode the error surfaces at whichever call first reads the results (a later
                    # execute() or the sync, depending on timing, directly too); a nested pipeline block syncs
                    # on its way out whatever happened, so the outer pipeline goes on.
                    try:
                        with conn.pipeline():
                            conn.execute("select 1 / 0")
                            conn.execute(sql.SQL("insert into {} values (3, 'c')").format(ident))
                    except errors.DivisionByZero as e:
                        outcomes.append(f"{type(e).__name__} {e.sqlstate}")
                    # The pipeline goes on after the failed batch.
                    after = conn.execute(sql.SQL("insert into {} values (4, 'd') returning v").format(ident))
                    p.sync()
                    after_row = after.fetchone()
                assert conn.info.transaction_status == TransactionStatus.IDLE
                rows = conn.execute(sql.SQL("select id, v from {} order by id").format(ident)).fetchall()
                return first, outcomes, after_row, rows, conn.execute("select 'still usable'").fetchone()

        got = both(dbfw, pg, scenario)
    assert got[0] == ((1,), (2,), (42,))
    assert got[1] == ["DivisionByZero 22012"]
    assert got[2] == ("d",)
    assert got[3] == [(1, "a"), (2, "b"), (4, "d")]
    assert got[4] == ("still usable",)


def test_pipeline_in_a_transaction_error_rolls_back(dbfw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "id int primary key") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                conn.commit()
                error = None
                try:
                    with conn.pipeline():
                        for i in range(5):
                            conn.execute(sql.SQL("insert into {} values (%s)").format(ident), (i,))
                        conn.execute(sql.SQL("insert into {} values (%s)").format(ident), (2,))  # duplicate key
                        conn.execute(sql.SQL("insert into {} values (%s)").format(ident), (99,))
                except psycopg.Error as e:
                    error = (type(e).__name__, e.sqlstate)
                status = conn.info.transaction_status
                conn.rollback()
                count = conn.execute(sql.SQL("select count(*) from {}").format(ident)).fetchone()
                conn.rollback()
                return error, status, count

        got = both(dbfw, pg, scenario)
    assert got == (("UniqueViolation", "23505"), TransactionStatus.INERROR, (0,))


def test_copy_from_stdin_and_to_stdout_text(dbfw: DbfwProcess, pg: PgTarget) -> None:
    rows = [(i, f"line {i}\twith tab, 'quote' and Ω", None if i % 3 == 0 else Decimal(i) / 4) for i in range(1000)]
    with scratch_table(pg, "id int, t text, n numeric") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                cur = conn.cursor()
                with cur.copy(sql.SQL("copy {} (id, t, n) from stdin").format(ident)) as copy:
                    for row in rows[:500]:
                        copy.write_row(row)
                loaded_rows = cur.rowcount
                # Raw text-format data written in arbitrary chunks.
                raw = "".join(f"{i}\t{t.replace(chr(9), chr(92) + 't')}\t{chr(92) + 'N' if n is None else n}\n"
                              for i, t, n in rows[500:]).encode()
                with cur.copy(sql.SQL("copy {} from stdin").format(ident)) as copy:
                    for start in range(0, len(raw), 7777):
                        copy.write(raw[start:start + 7777])
                out = bytearray()
                with cur.copy(sql.SQL("copy (select * from {} order by id) to stdout").format(ident)) as copy:
                    for chunk in copy:
                        out += chunk
                with cur.copy(sql.SQL("copy (select * from {} order by id) to stdout").format(ident)) as copy:
                    copy.set_types(["int4", "text", "numeric"])
                    back = list(copy.rows())
                return loaded_rows, bytes(out), back

        loaded, out, back = both(dbfw, pg, scenario)
    assert loaded == 500
    assert back == rows
    assert out.count(b"\n") == 1000 and out.startswith(b"0\tline 0\\twith tab, 'quote' and \xce\xa9\t\\N\n")


def test_copy_binary_both_ways(dbfw: DbfwProcess, pg: PgTarget) -> None:
    rows = [(i, f"Ω{i}", bytes([i % 256]) * (i % 50), [i, -i], dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
             + dt.timedelta(seconds=i)) for i in range(2000)]
    with scratch_table(pg, "id int, t text, b bytea, a int[], ts timestamptz") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                cur = conn.cursor()
                types = ["int4", "text", "bytea", "int4[]", "timestamptz"]
                with cur.copy(sql.SQL("copy {} from stdin (format binary)").format(ident)) as copy:
                    copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
                with cur.copy(sql.SQL("copy (select * from {} order by id) to stdout (format binary)")
                              .format(ident)) as copy:
                    copy.set_types(types)
                    back = list(copy.rows())
                return back, conn.execute(sql.SQL("select count(*), sum(id) from {}").format(ident)).fetchone()

        back, totals = both(dbfw, pg, scenario)
    assert back == rows
    assert totals == (2000, sum(range(2000)))


def test_copy_errors_leave_the_session_usable(dbfw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "id int primary key") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            seen = []
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                cur = conn.cursor()
                # The server rejects the data: bad integer.
                try:
                    with cur.copy(sql.SQL("copy {} from stdin").format(ident)) as copy:
                        copy.write(b"1\n2\nnot-a-number\n3\n")
                except errors.InvalidTextRepresentation as e:
                    seen.append(e.sqlstate)
                # The client gives up: psycopg sends CopyFail.
                try:
                    with cur.copy(sql.SQL("copy {} from stdin").format(ident)) as copy:
                        copy.write(b"10\n11\n")
                        raise RuntimeError("client-side failure")
                except RuntimeError:
                    seen.append("RuntimeError")
                seen.append(conn.execute(sql.SQL("select count(*) from {}").format(ident)).fetchone())
                with cur.copy(sql.SQL("copy {} from stdin").format(ident)) as copy:
                    copy.write(b"20\n21\n")
                seen.append(conn.execute(sql.SQL("select array_agg(id order by id) from {}").format(ident))
                            .fetchone())
            return seen

        # psycopg sends CopyFail and re-raises the client's own exception, after the server's 57014.
        assert both(dbfw, pg, scenario) == ["22P02", "RuntimeError", (0,), ([20, 21],)]


def test_server_side_cursor_fetches_in_batches(dbfw: DbfwProcess, pg: PgTarget) -> None:
    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo) as conn:
            batches = []
            with conn.cursor(name=_name("cur")) as cur:
                cur.itersize = 333
                cur.execute("select g, repeat('x', g % 10) from generate_series(1, 1000) g")
                while chunk := cur.fetchmany(250):
                    batches.append((len(chunk), chunk[0][0], chunk[-1][0]))
            with conn.cursor(name=_name("cur"), binary=True, scrollable=True) as cur:
                cur.execute("select g, g::numeric / 3 from generate_series(1, 100) g")
                first = cur.fetchone()
                cur.scroll(50, mode="absolute")
                mid = cur.fetchone()
                cur.scroll(-10)
                back = cur.fetchone()
                iterated = sum(1 for _ in cur)
            conn.commit()
            with conn.cursor(name=_name("held"), withhold=True) as cur:
                cur.execute("select g from generate_series(1, 5) g")
                conn.commit()  # a WITH HOLD cursor survives the commit
                held = cur.fetchall()
            return batches, first, mid, back, iterated, held

    got = both(dbfw, pg, scenario)
    assert got[0] == [(250, 1, 250), (250, 251, 500), (250, 501, 750), (250, 751, 1000)]
    assert [row[0] for row in got[1:4]] == [1, 51, 42]
    assert got[4] == 58
    assert got[5] == [(1,), (2,), (3,), (4,), (5,)]


def test_listen_notify_between_two_connections(dbfw: DbfwProcess, pg: PgTarget) -> None:
    channel = _name("chan")

    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo, autocommit=True) as listener, \
                psycopg.connect(conninfo, autocommit=True) as sender:
            listener.execute(sql.SQL("listen {}").format(sql.Identifier(channel)))
            sender_pid = sender.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            sender.execute(sql.SQL("notify {}, 'hello Ω payload'").format(sql.Identifier(channel)))
            sender.execute("select pg_notify(%s, %s)", (channel, "second"))
            got = list(listener.notifies(timeout=5, stop_after=2))
            assert all(n.pid == sender_pid for n in got)
            return [(n.channel, n.payload) for n in got]

    assert both(dbfw, pg, scenario) == [(channel, "hello Ω payload"), (channel, "second")]


def test_notification_pid_matches_the_connections_backend_pid(dbfw: DbfwProcess, pg: PgTarget) -> None:
    # Clients tell their own notifications apart by comparing Notify.pid with conn.info.backend_pid (the
    # pid of BackendKeyData); pg_cancel_backend/pg_terminate_backend and pg_stat_activity use it too.
    channel = _name("self")

    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("listen {}").format(sql.Identifier(channel)))
            conn.execute(sql.SQL("notify {}, 'me'").format(sql.Identifier(channel)))
            got = list(conn.notifies(timeout=5, stop_after=1))
            server_pid = conn.execute("select pg_backend_pid()").fetchone()[0]  # type: ignore[index]
            return ([n.pid == conn.info.backend_pid for n in got], server_pid == conn.info.backend_pid)

    assert both(dbfw, pg, scenario) == ([True], True)


def test_notices_reach_the_notice_handler(dbfw: DbfwProcess, pg: PgTarget) -> None:
    missing = _name("dbfw_no_such_table")

    def scenario(conninfo: str) -> list[tuple[Any, ...]]:
        seen: list[tuple[Any, ...]] = []
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.add_notice_handler(lambda d: seen.append((d.severity, d.sqlstate, d.message_primary,
                                                           d.message_detail, d.message_hint)))
            conn.execute("""do $$ begin
                raise notice 'first notice %', 'Ω';
                raise warning 'a warning' using detail = 'some detail', hint = 'a hint';
                raise info 'info message';
                raise notice using message = 'custom', errcode = 'P0042';
            end $$""")
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(missing)))
        return seen

    got = both(dbfw, pg, scenario)
    assert got[:4] == [("NOTICE", "00000", "first notice Ω", None, None),
                       ("WARNING", "01000", "a warning", "some detail", "a hint"),
                       ("INFO", "00000", "info message", None, None),
                       ("NOTICE", "P0042", "custom", None, None)]
    assert got[4][0] == "NOTICE" and "does not exist, skipping" in got[4][2]


def test_parameter_status_is_reflected(dbfw: DbfwProcess, pg: PgTarget) -> None:
    app = f"app-{uuid.uuid4().hex[:6]}"  # PostgreSQL turns non-ASCII in application_name into '?'

    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo, autocommit=True, application_name="initial-name",
                             options="-c statement_timeout=4321 -c DateStyle=German") as conn:
            startup = (conn.info.parameter_status("application_name"), conn.info.parameter_status("DateStyle"),
                       conn.execute("show statement_timeout").fetchone())
            conn.execute(sql.SQL("set application_name = {}").format(sql.Literal(app)))
            conn.execute("set timezone = 'Asia/Kathmandu'")
            conn.execute("set datestyle = 'ISO, MDY'")
            after = (conn.info.parameter_status("application_name"), conn.info.parameter_status("TimeZone"),
                     conn.info.parameter_status("DateStyle"))
            ts = conn.execute("select '2024-01-01 00:00:00+00'::timestamptz").fetchone()
            assert ts is not None
            ts_text = conn.execute("select '2024-01-01 00:00:00+00'::timestamptz::text").fetchone()
            in_activity = conn.execute("select application_name from pg_stat_activity where pid = pg_backend_pid()"
                                       ).fetchone()
            with conn.transaction(force_rollback=True):
                conn.execute("set local application_name = 'temporary'")
                inside = conn.info.parameter_status("application_name")
            restored = conn.info.parameter_status("application_name")
            return (startup, after, ts[0].utcoffset(), ts_text, in_activity, inside, restored,
                    conn.info.parameter_status("server_version"), conn.info.parameter_status("client_encoding"),
                    conn.info.parameter_status("integer_datetimes"))

    got = both(dbfw, pg, scenario)
    assert got[0] == ("initial-name", "German, DMY", ("4321ms",))
    assert got[1] == (app, "Asia/Kathmandu", "ISO, MDY")
    assert got[2] == dt.timedelta(hours=5, minutes=45)
    assert got[3] == ("2024-01-01 05:45:00+05:45",)
    assert got[4] == (app,)
    assert got[5:7] == ("temporary", app)
    assert got[8:] == ("UTF8", "on")


def test_client_encoding_latin1(dbfw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "t text") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                conn.execute("set client_encoding to 'LATIN1'")
                assert conn.info.encoding == "iso8859-1"
                conn.execute(sql.SQL("insert into {} values ('café crème'), (%s)").format(ident), ("naïve",))
                latin = conn.execute(sql.SQL("select t, octet_length(t) from {} where t like 'caf%%' or t = 'naïve' "
                                             "order by t").format(ident)).fetchall()
                conn.execute("reset client_encoding")
                utf8 = conn.execute(sql.SQL("select t from {} order by t").format(ident)).fetchall()
                return latin, utf8, conn.info.encoding

        got = both(dbfw, pg, scenario)
    assert got == ([("café crème", 12), ("naïve", 6)], [("café crème",), ("naïve",)], "utf-8")


def test_transactions_commit_rollback_and_savepoints(dbfw: DbfwProcess, pg: PgTarget) -> None:
    with scratch_table(pg, "id int primary key") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            states = []
            with psycopg.connect(conninfo) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                conn.commit()
                conn.execute(sql.SQL("insert into {} values (1)").format(ident))
                states.append(conn.info.transaction_status)
                conn.rollback()
                states.append(conn.info.transaction_status)
                with conn.transaction():
                    conn.execute(sql.SQL("insert into {} values (2)").format(ident))
                    try:
                        with conn.transaction():  # a savepoint
                            conn.execute(sql.SQL("insert into {} values (3)").format(ident))
                            conn.execute(sql.SQL("insert into {} values (2)").format(ident))
                    except errors.UniqueViolation:
                        states.append("savepoint rolled back")
                    conn.execute(sql.SQL("insert into {} values (4)").format(ident))
                try:
                    with conn.transaction():
                        conn.execute(sql.SQL("insert into {} values (5)").format(ident))
                        raise RuntimeError("abort")
                except RuntimeError:
                    pass
                conn.execute(sql.SQL("insert into {} values (6)").format(ident))
                try:
                    conn.execute("select 1/0")
                except errors.DivisionByZero:
                    states.append(conn.info.transaction_status)
                try:
                    conn.execute("select 1")
                except errors.InFailedSqlTransaction as e:
                    states.append(e.sqlstate)
                conn.rollback()
                ids = conn.execute(sql.SQL("select array_agg(id order by id) from {}").format(ident)).fetchone()
                conn.commit()
            return states, ids

        got = both(dbfw, pg, scenario)
    assert got == ([TransactionStatus.INTRANS, TransactionStatus.IDLE, "savepoint rolled back",
                    TransactionStatus.INERROR, "25P02"], ([2, 4],))


def test_an_error_leaves_the_session_usable(dbfw: DbfwProcess, pg: PgTarget) -> None:
    def scenario(conninfo: str) -> list[Any]:
        out: list[Any] = []
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for query in ("select 1/0", "select * from dbfw_no_such_table_xyz", "select 1 +", "select 'a'::int"):
                try:
                    conn.execute(query)
                except psycopg.Error as e:
                    d = e.diag
                    out.append((type(e).__name__, d.sqlstate, d.severity, d.message_primary, d.statement_position))
                out.append(conn.execute("select 1 + 1").fetchone())
            out.append(conn.info.transaction_status)
            # Simple-protocol multi-statement with an error in the middle.
            try:
                conn.execute("select 1; select 1/0; select 3", prepare=False)
            except errors.DivisionByZero:
                out.append("multi failed")
            out.append(conn.execute("select 'ok'").fetchone())
        return out

    direct = scenario(pg.conninfo())
    through = scenario(dbfw.conninfo())
    assert direct[0] == through[0] == ("DivisionByZero", "22012", "ERROR", "division by zero", None)
    assert direct[1] == through[1] == (2,)
    assert direct[2][:2] == through[2][:2] == ("UndefinedTable", "42P01")
    # Text that does not parse gets PostgreSQL's own syntax error through dbfw, position and all.
    assert direct[4] == through[4]
    assert direct[4][:2] == ("SyntaxError", "42601") and direct[4][4] is not None
    assert direct[5:] == through[5:]
    assert through[-2:] == ["multi failed", ("ok",)]


def test_prepared_statements(dbfw: DbfwProcess, pg: PgTarget) -> None:
    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo, autocommit=True, prepare_threshold=0) as conn:
            results = [conn.execute("select %s::int * 2, %s::text", (i, f"v{i}")).fetchone() for i in range(5)]
            prepared = conn.execute("select count(*) from pg_prepared_statements where not from_sql").fetchone()
            conn.prepare_threshold = None  # never prepare automatically; prepare=True still does
            explicit = [conn.execute("select %s::numeric + 1", (Decimal("1.5"),), prepare=True).fetchone()
                        for _ in range(3)]
            binary = conn.cursor(binary=True).execute("select %s::int[]", ([1, 2],), prepare=True).fetchone()
            # An error in a prepared statement's execution; the statement stays usable.
            errs = []
            for value in (0, 2):
                try:
                    errs.append(conn.execute("select 10 / %s::int", (value,), prepare=True).fetchone())
                except errors.DivisionByZero:
                    errs.append("div0")
            # SQL-level PREPARE / EXECUTE / DEALLOCATE.
            conn.execute("prepare sqlprep(int) as select $1 + 100")
            sql_level = conn.execute("execute sqlprep(1)").fetchone()
            conn.execute("deallocate sqlprep")
            names = conn.execute("select count(*) from pg_prepared_statements").fetchone()
            return results, prepared, explicit, binary, errs, sql_level, names

    got = both(dbfw, pg, scenario)
    assert got[0] == [(i * 2, f"v{i}") for i in range(5)]
    assert got[1][0] >= 2
    assert got[2] == [(Decimal("2.5"),)] * 3
    assert got[3] == ([1, 2],)
    assert got[4] == ["div0", (5,)]
    assert got[5] == (101,)


def test_cancel_a_long_query_from_another_thread(dbfw: DbfwProcess, pg: PgTarget) -> None:
    for conninfo in (dbfw.conninfo(), pg.conninfo()):
        for method in ("cancel", "cancel_safe"):
            with psycopg.connect(conninfo, autocommit=True) as conn:
                timer = threading.Timer(0.5, getattr(conn, method))
                timer.start()
                started = time.monotonic()
                try:
                    with pytest.raises(errors.QueryCanceled) as info:
                        conn.execute("select pg_sleep(10)")
                finally:
                    timer.cancel()
                elapsed = time.monotonic() - started
                assert elapsed < 5, f"{method} via {conninfo.split()[1]} took {elapsed:.1f}s"
                assert "canceling statement due to user request" in str(info.value)
                assert conn.execute("select 'after cancel'").fetchone() == ("after cancel",)


def test_many_connections_concurrently(dbfw: DbfwProcess) -> None:
    errors_seen: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with psycopg.connect(dbfw.conninfo(), autocommit=True) as conn:
                for i in range(20):
                    got = conn.execute("select %s::int + %s::int, pg_backend_pid()", (n, i)).fetchone()
                    assert got is not None and got[0] == n + i
        except BaseException as e:  # collected and re-raised in the main thread
            errors_seen.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors_seen, errors_seen


def test_multiple_result_sets_and_empty_queries(dbfw: DbfwProcess, pg: PgTarget) -> None:
    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            cur = psycopg.ClientCursor(conn)  # the simple query protocol: several statements, several results
            cur.execute("select 1 as a; select 'two' as b, 2; set application_name = 'multi'; select 3")
            results = []
            while True:
                results.append((cur.statusmessage, cur.fetchall() if cur.description else None))
                if not cur.nextset():
                    break
            empty = []
            for query in ("", ";", "  -- only a comment\n"):
                cur.execute(query)
                empty.append((cur.pgresult.status if cur.pgresult else None, cur.statusmessage))
            return results, empty, conn.info.parameter_status("application_name")

    got = both(dbfw, pg, scenario)
    assert got[0] == [("SELECT 1", [(1,)]), ("SELECT 1", [("two", 2)]), ("SET", None), ("SELECT 1", [(3,)])]
    assert got[2] == "multi"


def test_large_statement_text_and_copy_data(dbfw: DbfwProcess, pg: PgTarget) -> None:
    literal = "Ω" * 1_500_000  # a 3 MB statement, over dbfw's read size, in one Query or Parse message
    big_line = "x" * 3_000_000
    with scratch_table(pg, "id int, t text") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                simple = psycopg.ClientCursor(conn).execute(f"select length('{literal}')").fetchone()
                extended = conn.execute(f"select length('{literal}'), %s::int", (1,)).fetchone()
                cur = conn.cursor()
                with cur.copy(sql.SQL("copy {} from stdin").format(ident)) as copy:
                    copy.write(f"1\t{big_line}\n2\t{big_line}\n".encode())  # 6 MB in one CopyData
                back = conn.execute(sql.SQL("select id, length(t), md5(t) from {} order by id").format(ident))
                return simple, extended, back.fetchall()

        got = both(dbfw, pg, scenario)
    assert got[0] == (1_500_000,)
    assert got[1] == (1_500_000, 1)
    assert [row[:2] for row in got[2]] == [(1, 3_000_000), (2, 3_000_000)]


def test_executemany_in_a_big_pipeline(dbfw: DbfwProcess, pg: PgTarget) -> None:
    # Thousands of statements in flight: both directions of the relay busy at once.
    with scratch_table(pg, "id int primary key, payload text") as table:
        ident = sql.Identifier(table)

        def scenario(conninfo: str) -> tuple[Any, ...]:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(sql.SQL("delete from {}").format(ident))
                cur = conn.cursor()
                with conn.pipeline():
                    cur.executemany(sql.SQL("insert into {} values (%s, %s) returning id, length(payload)")
                                    .format(ident), [(i, "p" * (i % 3000)) for i in range(8000)], returning=True)
                    returned = 0
                    while True:
                        returned += len(cur.fetchall())
                        if not cur.nextset():
                            break
                total = conn.execute(sql.SQL("select count(*), sum(length(payload)) from {}").format(ident))
                return returned, total.fetchone()

        got = both(dbfw, pg, scenario)
    assert got == (8000, (8000, sum(i % 3000 for i in range(8000))))


def test_session_terminated_by_the_server(dbfw: DbfwProcess, pg: PgTarget) -> None:
    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            try:
                conn.execute("select pg_terminate_backend(pg_backend_pid())")
                outcome: Any = "no error"
            except psycopg.Error as e:
                outcome = (type(e).__name__, e.sqlstate)
            return outcome, conn.closed, conn.info.status

    got = both(dbfw, pg, scenario)
    assert got[0] == ("AdminShutdown", "57P01")
    assert got[1] is True


def test_idle_in_transaction_timeout(dbfw: DbfwProcess, pg: PgTarget) -> None:
    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo) as conn:
            conn.execute("set idle_in_transaction_session_timeout = '200ms'")
            conn.execute("select 1")  # opens a transaction, then idles in it
            time.sleep(0.7)
            try:
                conn.execute("select 2")
                outcome: Any = "no error"
            except psycopg.Error as e:
                outcome = (type(e).__name__, e.sqlstate, "idle-in-transaction" in str(e))
            return outcome, conn.closed

    assert both(dbfw, pg, scenario) == (("IdleInTransactionSessionTimeout", "25P03", True), True)


def test_protocol_3_2_request_is_negotiated_down(dbfw: DbfwProcess, pg: PgTarget) -> None:
    if psycopg.pq.version() < 180000:
        pytest.skip("libpq < 18 cannot ask for protocol 3.2")

    def scenario(conninfo: str) -> tuple[Any, ...]:
        with psycopg.connect(conninfo + " max_protocol_version=latest", autocommit=True) as conn:
            version = conn.pgconn.full_protocol_version  # type: ignore[attr-defined]
            timer = threading.Timer(0.3, conn.cancel_safe)
            timer.start()
            try:
                conn.execute("select pg_sleep(5)")
                cancelled = False
            except errors.QueryCanceled:
                cancelled = True
            finally:
                timer.cancel()
            return version, cancelled, conn.execute("select 1").fetchone()

    assert both(dbfw, pg, scenario) == (30000, True, (1,))


def _upstream_backends(pg: PgTarget, application_name: str) -> int:
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        row = conn.execute("select count(*) from pg_stat_activity where application_name = %s",
                           (application_name,)).fetchone()
        assert row is not None
        return int(row[0])


def test_closed_sessions_leave_no_upstream_connection(dbfw: DbfwProcess, pg: PgTarget) -> None:
    app = _name("leakcheck")
    for _ in range(15):
        conn = psycopg.connect(dbfw.conninfo(application_name=app))
        conn.execute("select 1")
        conn.close()
    # Also a client that vanishes without Terminate, in and out of a transaction.
    for autocommit in (True, False):
        conn = psycopg.connect(dbfw.conninfo(application_name=app), autocommit=autocommit)
        conn.execute("select 1")
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    deadline = time.monotonic() + 5
    while (left := _upstream_backends(pg, app)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == 0


def test_a_client_vanishing_mid_query_cancels_it_upstream(dbfw: DbfwProcess, pg: PgTarget) -> None:
    app = _name("vanish")
    vanished_before = dbfw.log().count("session.client_vanished_busy")
    conn = psycopg.connect(dbfw.conninfo(application_name=app), autocommit=True)

    def run() -> None:
        with pytest.raises(psycopg.OperationalError):
            conn.execute("select pg_sleep(20)")

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while _upstream_backends(pg, app) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)
    thread.join(10)
    conn.close()
    deadline = time.monotonic() + 5
    while (left := _upstream_backends(pg, app)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == 0, "the statement of a vanished client still runs upstream"
    assert dbfw.log().count("session.client_vanished_busy") > vanished_before
