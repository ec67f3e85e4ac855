"""The MySQL listener through real clients (PyMySQL, mysql-connector pure and C, the mariadb CLI) against the
real MariaDB: logins, results equal to a direct connection, prepared statements, refusals that send nothing,
approvals that run once, limits, packets over 16 MB."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from mysql import connector as myconnector

from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    IN_CI,
    DbfwProcess,
    MyTarget,
    start_dbfw,
    write_mysql_config,
)
from tests.integration.mysql_support import DEFAULT_RULES, MASKING, approve, canary, request_id, serving

pytestmark = pytest.mark.timeout(120)



def through(fw: DbfwProcess, user: str = AGENT, password: str = AGENT_PASSWORD, **kw: Any) -> Any:
    # PyMySQL encodes a str password as latin-1; dbfw (like the server) reads UTF-8.
    return pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=user, password=password.encode(),
                           database=kw.pop("database", "test"), autocommit=True, **kw)


@pytest.fixture(scope="module")
def fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    """dbfw allowing everything: the protocol itself is under test."""
    with serving(tmp_path_factory.mktemp("dbfw-my"), mysql) as proc:
        yield proc


@pytest.fixture(scope="module")
def guarded(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    """dbfw with the project's default rules."""
    directory = tmp_path_factory.mktemp("dbfw-my-default")
    with serving(directory, mysql, rules=DEFAULT_RULES) as proc:
        yield proc


# --- logins ----------------------------------------------------------------------------------------------


def test_an_identity_logs_in_and_reads_what_a_direct_connection_reads(fw: DbfwProcess, mysql: MyTarget) -> None:
    queries = ["SELECT id, name, email, card, note FROM dbfw_my_customers ORDER BY id",
               "SELECT customer_id, COUNT(*), SUM(total), MAX(created) FROM dbfw_my_orders GROUP BY customer_id "
               "ORDER BY customer_id",
               "SELECT 1, 'x', NULL, 1.5, CAST('2026-01-02' AS DATE), _utf8mb4'h\u00e9'",
               "SHOW COLUMNS FROM dbfw_my_orders"]
    direct = mysql.connect()
    conn = through(fw)
    try:
        for sql in queries:
            with direct.cursor() as a, conn.cursor() as b:
                a.execute(sql)
                b.execute(sql)
                assert b.fetchall() == a.fetchall(), sql
                assert b.description == a.description, sql
    finally:
        conn.close()
        direct.close()


def test_wrong_passwords_and_the_servers_own_users_are_refused_with_1045(fw: DbfwProcess, mysql: MyTarget) -> None:
    for user, password in [(AGENT, "wrong"), (mysql.user, mysql.password), ("nobody", "x"), ("scram-only", "x")]:
        with pytest.raises(pymysql.err.OperationalError) as e:
            through(fw, user, password)
        assert e.value.args[0] == 1045, (user, e.value)
        assert "dbfw:" in e.value.args[1]


def test_an_identity_without_the_agent_role_may_not_connect(fw: DbfwProcess) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e:
        through(fw, "alice", "alice-secret")
    assert e.value.args[0] == 1227


@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "c-extension"])
@pytest.mark.parametrize("plugin", ["mysql_native_password", "caching_sha2_password"])
def test_mysql_connector_logs_in_with_either_plugin_and_runs_prepared_statements(
        fw: DbfwProcess, use_pure: bool, plugin: str) -> None:
    conn = myconnector.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD,
                                   database="test", use_pure=use_pure, auth_plugin=plugin)
    try:
        cur = conn.cursor(prepared=True)
        for i in (1, 7, 20):
            cur.execute("SELECT id, email, note FROM dbfw_my_customers WHERE id = ?", (i,))
            assert cur.fetchall() == [(i, f"user{i}@example.com", None if i % 3 else "n")]
        cur.execute("SELECT ? + 1, ?", (41, "text"))
        assert cur.fetchall() == [(42, "text")]
        cur.close()
    finally:
        conn.close()


def test_the_mariadb_cli_runs_statements(fw: DbfwProcess) -> None:
    cli = shutil.which("mariadb") or shutil.which("mysql")
    if cli is None:
        pytest.fail("the mariadb CLI is not installed") if IN_CI else pytest.skip("no mariadb CLI")
    out = subprocess.run([cli, "-h127.0.0.1", f"-P{fw.ports['my']}", f"-u{AGENT}", f"-p{AGENT_PASSWORD}", "test",
                          "--batch", "-e", "SELECT COUNT(*) FROM dbfw_my_orders; SELECT DATABASE()"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["COUNT(*)", "50", "DATABASE()", "test"]


# --- commands -----------------------------------------------------------------------------------------


def test_several_statements_in_one_message_return_every_result(fw: DbfwProcess) -> None:
    from pymysql.constants import CLIENT

    conn = through(fw, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1; SELECT id FROM dbfw_my_canary ORDER BY id; SELECT 'last'")
            results = [cur.fetchall()]
            while cur.nextset():
                results.append(cur.fetchall())
        assert results == [((1,),), ((1,), (2,), (3,)), (("last",),)]
        with conn.cursor() as cur:  # the session goes on
            cur.execute("SELECT 2")
            assert cur.fetchall() == ((2,),)
    finally:
        conn.close()


def test_changing_database_follows_the_server(fw: DbfwProcess, mysql: MyTarget) -> None:
    conn = through(fw)
    try:
        conn.select_db("mysql")  # COM_INIT_DB
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchall() == (("mysql",),)
            cur.execute("USE test")
            cur.execute("SELECT DATABASE(), COUNT(*) FROM dbfw_my_canary")
            assert cur.fetchall() == (("test", 3),)
        with pytest.raises(pymysql.err.OperationalError) as e:
            conn.select_db("no_such_database_dbfw")
        assert e.value.args[0] == 1049  # the server's own answer
        conn.ping()
    finally:
        conn.close()


def test_commands_dbfw_does_not_relay_are_refused_and_the_session_goes_on(fw: DbfwProcess) -> None:
    conn = through(fw)
    try:
        for command in (0x09, 0x0A, 0x0D, 0x12):  # STATISTICS, PROCESS_INFO, DEBUG, BINLOG_DUMP
            conn._execute_command(command, b"")
            with pytest.raises(pymysql.err.OperationalError) as e:
                conn._read_ok_packet()
            assert e.value.args[0] == 1047 and e.value.args[1].startswith("dbfw:"), command
        with conn.cursor() as cur:
            cur.execute("SELECT 5")
            assert cur.fetchall() == ((5,),)
    finally:
        conn.close()


def test_a_value_over_16_mb_goes_both_ways(fw: DbfwProcess, mysql: MyTarget) -> None:
    """Payloads of 2^24-1 bytes and more travel as several packets, reassembled and split again."""
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
        cur.execute("DROP TABLE IF EXISTS dbfw_my_big")
        cur.execute("CREATE TABLE dbfw_my_big (id INT PRIMARY KEY, v LONGBLOB)")
    try:
        value = bytes(range(256)) * (17 * 4096 + 3)  # 17 MiB and a bit
        sender = myconnector.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD,
                                     database="test", use_pure=True, autocommit=True)
        try:  # a parameter of a prepared statement: a COM_STMT_EXECUTE of several packets
            cur = sender.cursor(prepared=True)
            cur.execute("INSERT INTO dbfw_my_big VALUES (?, ?)", (1, value))
        finally:
            sender.close()
        conn = through(fw, max_allowed_packet=64 * 1024 * 1024)
        try:  # a text row of several packets
            with conn.cursor() as cur:
                cur.execute("SELECT v, LENGTH(v) FROM dbfw_my_big WHERE id = 1")
                got, length = cur.fetchone()
            assert length == len(value) and got == value
        finally:
            conn.close()
    finally:
        with direct.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS dbfw_my_big")
            cur.execute(f"SET GLOBAL max_allowed_packet = {int(before)}")
        direct.close()


# --- decisions ------------------------------------------------------------------------------------------


def test_a_refused_statement_reaches_nothing_and_the_session_goes_on(guarded: DbfwProcess, mysql: MyTarget) -> None:
    from pymysql.constants import CLIENT

    conn = through(guarded, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            for sql in ["DELETE FROM dbfw_my_canary", "DROP TABLE dbfw_my_canary",
                        "SELECT 1; DELETE FROM dbfw_my_canary", "SELECT * FROM dbfw_my_canary INTO OUTFILE '/tmp/x'"]:
                with pytest.raises(pymysql.err.OperationalError) as e:
                    cur.execute(sql)
                assert e.value.args[0] == 1644, sql
                assert e.value.args[1].startswith("dbfw:"), sql
            cur.execute("SELECT COUNT(*) FROM dbfw_my_canary")
            assert cur.fetchall() == ((3,),)
    finally:
        conn.close()
    assert canary(mysql) == [(1, "a"), (2, "b"), (3, "c")]


def test_an_approved_statement_runs_once(guarded: DbfwProcess, mysql: MyTarget) -> None:
    conn = through(guarded)
    sql = "UPDATE dbfw_my_canary SET v = CONCAT(v, '!')"
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as e:
                cur.execute(sql)
            assert "DBF01" in str(e.value) or e.value.args[0] == 1644
            rid = request_id(e.value)
            assert approve(guarded, rid)["status"] == "approved"
            cur.execute(sql)
            assert cur.rowcount == 3
            with pytest.raises(pymysql.err.OperationalError) as again:
                cur.execute(sql)  # one approval, one execution: this is a new request
            assert request_id(again.value) != rid
    finally:
        conn.close()
    assert canary(mysql) == [(1, "a!"), (2, "b!"), (3, "c!")]
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("UPDATE dbfw_my_canary SET v = TRIM(TRAILING '!' FROM v)")
    direct.close()


def test_an_approved_prepared_statement_runs_once(guarded: DbfwProcess, mysql: MyTarget) -> None:
    sql = "UPDATE dbfw_my_canary SET v = CONCAT(v, ?)"
    conn = myconnector.connect(host="127.0.0.1", port=guarded.ports["my"], user=AGENT,
                                   password=AGENT_PASSWORD, database="test", use_pure=True, autocommit=True)
    try:
        cur = conn.cursor(prepared=True)
        with pytest.raises(myconnector.Error) as e:
            cur.execute(sql, ("?",))
        approve(guarded, request_id(e.value))
        cur = conn.cursor(prepared=True)
        cur.execute(sql, ("#",))
        assert cur.rowcount == 3
        with pytest.raises(myconnector.Error) as again:
            cur.execute(sql, ("#",))  # the same prepared statement, executed again
        assert "DBF04" in str(again.value)
    finally:
        conn.close()
    assert canary(mysql) == [(1, "a#"), (2, "b#"), (3, "c#")]
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("UPDATE dbfw_my_canary SET v = TRIM(TRAILING '#' FROM v)")
    direct.close()


@pytest.fixture(scope="module")
def masked(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("CREATE OR REPLACE VIEW dbfw_my_contacts AS SELECT id, name, email AS contact "
                    "FROM dbfw_my_customers")
    direct.close()
    with serving(tmp_path_factory.mktemp("dbfw-my-masked"), mysql,
                                         rules=DEFAULT_RULES + MASKING) as proc:
        yield proc
        direct = mysql.connect()
        with direct.cursor() as cur:
            cur.execute("DROP VIEW IF EXISTS dbfw_my_contacts")
        direct.close()


MASKED_QUERIES = [
    "SELECT id, email, card FROM dbfw_my_customers WHERE id = 7",
    "SELECT email AS e, card AS c FROM dbfw_my_customers WHERE id = 7",  # renamed
    "SELECT CONCAT(email, ''), UPPER(card) FROM dbfw_my_customers WHERE id = 7",  # computed
    "SELECT x.e, x.c FROM (SELECT email AS e, card AS c FROM dbfw_my_customers) x WHERE x.e LIKE 'user7@%'",
    "WITH c AS (SELECT id, email, card FROM dbfw_my_customers) SELECT email, card FROM c WHERE id = 7",
    "SELECT contact, contact FROM dbfw_my_contacts WHERE id = 7",  # a view
    "SELECT GROUP_CONCAT(email), GROUP_CONCAT(card) FROM dbfw_my_customers WHERE id = 7",
    "SELECT name, email FROM dbfw_my_customers WHERE id = 7 UNION SELECT name, card FROM dbfw_my_customers "
    "WHERE id = 7",
]


@pytest.mark.parametrize("sql", MASKED_QUERIES)
def test_sensitive_columns_are_masked_however_they_are_selected(masked: DbfwProcess, sql: str) -> None:
    conn = through(masked)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            values = [v for row in cur.fetchall() for v in row]
    finally:
        conn.close()
    assert values
    text = " ".join(str(v) for v in values)
    assert "user7@example.com" not in text.lower() and "4111-1111-1111-0007" not in text.upper()
    assert "1111-1111" not in text


def test_masking_keeps_what_is_not_sensitive_and_covers_prepared_and_multi_statement_results(
        masked: DbfwProcess) -> None:
    from pymysql.constants import CLIENT

    conn = through(masked, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, name, email, card FROM dbfw_my_customers WHERE id = 7")
            ((id_, name, email, card),) = cur.fetchall()
            assert (id_, name) == (7, "name 7")  # not masked
            assert email != "user7@example.com" and email.endswith("@example.com")
            assert card.endswith("0007") and "4111" not in card
            cur.execute("SELECT COUNT(*), MAX(id) FROM dbfw_my_customers")
            assert cur.fetchall() == ((20, 20),)  # aggregates of nothing sensitive stay as they are
            cur.execute("SELECT 1; SELECT email FROM dbfw_my_customers WHERE id = 7")  # the second result
            cur.nextset()
            assert cur.fetchall()[0][0] != "user7@example.com"
            with pytest.raises(pymysql.err.IntegrityError) as e:  # a value quoted in an error is withheld
                cur.execute("INSERT INTO dbfw_my_customers (id, email) VALUES (7, 'user7@example.com')")
            assert e.value.args[0] == 1062 and "user7" not in e.value.args[1] and "withheld" in e.value.args[1]
    finally:
        conn.close()
    prepared = myconnector.connect(host="127.0.0.1", port=masked.ports["my"], user=AGENT, password=AGENT_PASSWORD,
                                   database="test", use_pure=True)
    try:  # binary rows
        cur = prepared.cursor(prepared=True)
        cur.execute("SELECT id, email, card FROM dbfw_my_customers WHERE id = ?", (7,))
        ((id_, email, card),) = cur.fetchall()
        assert id_ == 7 and email != "user7@example.com" and "4111" not in str(card)
    finally:
        prepared.close()


def test_limits_count_each_statements_result_in_rows_and_bytes(mysql: MyTarget, tables: None, tmp_path: Path) -> None:
    from pymysql.constants import CLIENT

    from tests.conftest import ALLOW_ALL_RULES

    rules = ALLOW_ALL_RULES + "limits: {max_result_rows: 5, max_result_bytes: 600}\n"
    proc = start_dbfw(write_mysql_config(tmp_path, mysql, rules=rules))
    try:
        conn = through(proc, client_flag=CLIENT.MULTI_STATEMENTS)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM dbfw_my_customers ORDER BY id LIMIT 5")  # at the limit: whole
            assert len(cur.fetchall()) == 5
            with pytest.raises(pymysql.err.OperationalError) as e:
                cur.execute("SELECT id FROM dbfw_my_orders ORDER BY id")
            assert e.value.args[0] == 1644 and "max_result_rows (5 rows)" in e.value.args[1]
            with pytest.raises(pymysql.err.OperationalError) as e:  # one row, too many bytes
                cur.execute("SELECT GROUP_CONCAT(email, card, name) FROM dbfw_my_customers")
            assert "max_result_bytes (600 bytes)" in e.value.args[1]
            # Several statements: each result has the whole allowance.
            cur.execute("SELECT id FROM dbfw_my_canary; SELECT id FROM dbfw_my_canary")
            assert len(cur.fetchall()) == 3 and cur.nextset() and len(cur.fetchall()) == 3
            cur.execute("SELECT 1")  # the session goes on
            assert cur.fetchall() == ((1,),)
        conn.close()
    finally:
        proc.stop()


def test_metrics_and_recordings_cover_mysql_sessions(guarded: DbfwProcess) -> None:
    conn = through(guarded)
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM dbfw_my_canary WHERE id = 2")
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("DROP TABLE dbfw_my_canary")
    conn.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{guarded.admin_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert f'dbfw_statements_total{{action="allow",class="read",identity="{AGENT}",listener="my"}}' in text
    assert 'dbfw_connections_total{listener="my"' in text
    assert "dbfw_statement_duration_seconds_count{" in text and 'listener="my"' in text
    req = urllib.request.Request(f"http://127.0.0.1:{guarded.admin_port}/api/v1/sessions",
                                 headers={"Authorization": "Bearer carol-api-key"})
    deadline = time.monotonic() + 10
    while True:  # recordings are written in batches, off the hot path
        with urllib.request.urlopen(req, timeout=10) as resp:
            sessions = [s for s in json.loads(resp.read())["sessions"] if s["listener"] == "my" and s["ended_at"]]
        events: list[dict[str, Any]] = []
        for s in sessions:
            detail = urllib.request.Request(f"http://127.0.0.1:{guarded.admin_port}/api/v1/sessions/{s['id']}",
                                            headers={"Authorization": "Bearer carol-api-key"})
            with urllib.request.urlopen(detail, timeout=10) as resp:
                events += json.loads(resp.read())["events"]
        sqls = {e.get("sql"): e for e in events if e["kind"] == "statement"}
        if "DROP TABLE dbfw_my_canary" in sqls and "SELECT id FROM dbfw_my_canary WHERE id = 2" in sqls:
            break
        assert time.monotonic() < deadline, sorted(k for k in sqls if k)
        time.sleep(0.2)
    assert sqls["SELECT id FROM dbfw_my_canary WHERE id = 2"]["rows"] == 1
    assert sqls["DROP TABLE dbfw_my_canary"]["refused"] == "DBF01"


def _running(mysql: MyTarget, text: str, timeout: float = 10) -> None:
    """Wait until the server runs a statement (in its process list), as root."""
    direct = mysql.connect()
    try:
        deadline = time.monotonic() + timeout
        while True:
            with direct.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE info = %s", (text,))
                if cur.fetchone()[0]:
                    return
            assert time.monotonic() < deadline, f"{text!r} never ran"
            time.sleep(0.05)
    finally:
        direct.close()


def test_a_statement_past_its_time_limit_is_cancelled_upstream(mysql: MyTarget, tables: None, tmp_path: Path) -> None:
    from tests.conftest import ALLOW_ALL_RULES

    proc = start_dbfw(write_mysql_config(tmp_path, mysql, rules=ALLOW_ALL_RULES
                                         + "limits: {max_statement_seconds: 1}\n"))
    try:
        conn = through(proc)
        with conn.cursor() as cur:
            started = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as e:
                cur.execute("SELECT COUNT(*) FROM dbfw_my_canary a, dbfw_my_canary b WHERE SLEEP(20) = 0")
            assert time.monotonic() - started < 15
            assert e.value.args[0] == 1644 and "max_statement_seconds (1 s)" in e.value.args[1]
            cur.execute("SELECT 7")  # the session goes on
            assert cur.fetchall() == ((7,),)
        conn.close()
    finally:
        proc.stop()


def test_kill_query_from_a_second_connection_stops_the_first_ones_statement(fw: DbfwProcess, guarded: DbfwProcess,
                                                                           mysql: MyTarget) -> None:
    """What the mariadb CLI sends on Ctrl-C: KILL QUERY with the id dbfw's handshake gave the session."""
    import threading

    first = through(fw)
    result: list[object] = []
    sql = "SELECT SLEEP(30)"

    def run() -> None:
        try:
            with first.cursor() as cur:
                cur.execute(sql)
                result.append(cur.fetchone())
        except pymysql.MySQLError as e:
            result.append(e.args[0])

    worker = threading.Thread(target=run)
    started = time.monotonic()
    worker.start()
    _running(mysql, sql)
    other = through(fw)
    try:
        with other.cursor() as cur:
            cur.execute(f"KILL QUERY {first.thread_id()}")
        worker.join(20)
        assert not worker.is_alive() and time.monotonic() - started < 20
        assert result in ([(1,)], [1317])  # SLEEP() stopped early returns 1, or the query is interrupted
        with pytest.raises(pymysql.err.OperationalError) as e:  # no such session: a statement like any other
            with other.cursor() as cur:
                cur.execute("KILL QUERY 999999")
        assert e.value.args[0] == 1094  # the server's "unknown thread" (everything is allowed on this dbfw)
        refused = through(guarded)  # under the default rules, KILL of anything else is admin
        with pytest.raises(pymysql.err.OperationalError) as e, refused.cursor() as cur:
            cur.execute(f"KILL QUERY {first.thread_id()}")
        assert e.value.args[0] == 1644
        refused.close()
    finally:
        other.close()
        first.close()


def test_a_server_side_cursor_is_fetched_masked_and_limited_across_fetches(mysql: MyTarget, tables: None,
                                                                           tmp_path: Path) -> None:
    """COM_STMT_EXECUTE with a cursor, then COM_STMT_FETCH (what JDBC's useCursorFetch sends), spoken raw
    with dbfw's own protocol code as the client: rows come masked, and the row limit counts every fetch."""
    import asyncio

    from dbfw.config import Upstream, UpstreamTLS
    from dbfw.protocol.mysql import packets as p
    from dbfw.protocol.mysql.upstream import connect, read_packet

    rules = DEFAULT_RULES.replace("max_result_rows: 100000", "max_result_rows: 5") + MASKING
    proc = start_dbfw(write_mysql_config(tmp_path, mysql, rules=rules))

    async def exchange(conn: Any, command: bytes) -> list[bytes]:
        conn.writer.write(p.frame(command, 0)[0])
        out = []
        while True:
            packet = await read_packet(conn.reader, conn.packets)
            out.append(packet.payload)
            if packet.first == p.ERR:
                return out
            if command[0] == p.Command.STMT_PREPARE:
                if len(out) == 1 + 4:  # OK, then 4 column definitions (no parameters, no EOF)
                    return out
            elif packet.first == p.EOF and len(packet.payload) < 9:  # binary rows start with 0x00: only EOF ends
                return out

    async def scenario() -> tuple[list[list[bytes]], list[bytes]]:
        up = Upstream(host="127.0.0.1", port=proc.ports["my"], user=AGENT, password=AGENT_PASSWORD,
                      tls=UpstreamTLS(mode="disable"))
        conn = await connect(up, int(p.SUPPORTED), "test", p.UTF8MB4_GENERAL_CI)
        try:
            prepared = await exchange(conn, bytes((p.Command.STMT_PREPARE,))
                                      + b"SELECT id, name, email, card FROM dbfw_my_customers ORDER BY id")
            stmt = prepared[0][1:5]
            opened = await exchange(conn, bytes((p.Command.STMT_EXECUTE,)) + stmt + b"\x01" + (1).to_bytes(4, "little"))
            fetches = []
            for _ in range(3):
                fetches.append(await exchange(conn, bytes((p.Command.STMT_FETCH,)) + stmt + (2).to_bytes(4, "little")))
            return fetches, opened
        finally:
            conn.writer.close()

    try:
        fetches, opened = asyncio.run(scenario())
    finally:
        proc.stop()
    assert opened[-1][0] == p.EOF and p.eof_status(opened[-1]) & p.Status.CURSOR_EXISTS
    rows = [payload for fetch in fetches for payload in fetch if payload[:1] == b"\x00"]
    assert len(rows) == 5, fetches  # two fetches of two, then the limit's fifth row
    assert all(b"@example.com" in r for r in rows)  # the email column is there, masked
    assert not any(f"user{i}@example.com".encode() in r for r in rows for i in range(1, 21))
    assert not any(b"4111-1111" in r for r in rows)
    last = fetches[-1][-1]
    assert last[0] == p.ERR and b"DBF06" in last


def test_the_session_database_follows_use_and_init_db_for_what_names_mean(guarded: DbfwProcess) -> None:
    """After USE mysql (or COM_INIT_DB), `user` is mysql.user: admin, as when written in full."""
    for switch in ("query", "init_db"):
        conn = through(guarded)
        try:
            with conn.cursor() as cur:
                if switch == "query":
                    cur.execute("USE mysql")
                else:
                    conn.select_db("mysql")
                with pytest.raises(pymysql.err.OperationalError) as e:
                    cur.execute("SELECT User FROM user")
                assert e.value.args[0] == 1644, switch
                cur.execute("SELECT DATABASE()")
                assert cur.fetchall() == (("mysql",),)
        finally:
            conn.close()


def test_a_client_character_set_that_can_hide_a_backslash_is_refused(guarded: DbfwProcess) -> None:
    with pytest.raises(pymysql.err.OperationalError) as e:  # at login
        through(guarded, charset="gbk")
    assert e.value.args[0] == 1115 and e.value.args[1].startswith("dbfw:")
    conn = through(guarded)
    try:
        with conn.cursor() as cur:
            for sql in ("SET character_set_client = 28", "SET NAMES gbk",
                        "SET character_set_client = CONCAT('g','bk')"):
                with pytest.raises(pymysql.err.OperationalError) as e:
                    cur.execute(sql)
                assert e.value.args[0] == 1644, sql
            cur.execute("SELECT @@character_set_client")
            assert cur.fetchone()[0].startswith("utf8")
    finally:
        conn.close()


def test_an_approval_binds_both_readings_of_a_versioned_comment(guarded: DbfwProcess, mysql: MyTarget) -> None:
    """Approved: a delete of nothing. Sent: the same text inside /*!50700 */, which MariaDB skips (so the
    server would delete everything). It is another statement: a new request, not the approval."""
    plain = "DELETE FROM dbfw_my_canary WHERE v LIKE 'zzz%'"  # a LIKE is no proof: it needs an approval
    conn = through(guarded)
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as first:
                cur.execute(plain)
            approved = request_id(first.value)
            approve(guarded, approved)
            with pytest.raises(pymysql.err.OperationalError) as versioned:
                cur.execute("DELETE FROM dbfw_my_canary /*!50700 WHERE v LIKE 'zzz%' */")
            assert versioned.value.args[0] == 1644 and request_id(versioned.value) != approved
            cur.execute(plain)  # the approved statement itself, once
            assert cur.rowcount == 0
    finally:
        conn.close()
    assert canary(mysql) == [(1, "a"), (2, "b"), (3, "c")]


def test_masked_values_do_not_leave_through_diagnostics_returning_or_writes(masked: DbfwProcess,
                                                                           mysql: MyTarget) -> None:
    secret = "user7@example.com"
    conn = through(masked)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 0 + email FROM dbfw_my_customers WHERE id = 7")  # a warning quoting the value
            cur.fetchall()
            cur.execute("SHOW WARNINGS")
            assert secret not in str(cur.fetchall())
            cur.execute("EXPLAIN FORMAT=JSON SELECT * FROM dbfw_my_orders o, dbfw_my_customers c "
                        "WHERE c.id = 7 AND o.id = c.email")
            assert secret not in str(cur.fetchall())
            one = "(SELECT email FROM dbfw_my_customers WHERE id = 7)"
            for sql in ("REPLACE INTO dbfw_my_canary VALUES (9, 'r') RETURNING "
                        "(SELECT GROUP_CONCAT(email) FROM dbfw_my_customers)",
                        f"INSERT INTO dbfw_my_canary VALUES (10, {one})",
                        f"INSERT INTO dbfw_my_canary SET id = 11, v = {one}",
                        f"INSERT INTO dbfw_my_canary (id, v) VALUES (1, 'x') ON DUPLICATE KEY UPDATE v = {one}",
                        "SELECT @a := email FROM dbfw_my_customers WHERE id = 7"):
                with pytest.raises(pymysql.err.OperationalError) as e:
                    cur.execute(sql)
                assert e.value.args[0] == 1644, sql
    finally:
        conn.close()
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dbfw_my_canary WHERE v LIKE '%@%'")
        assert cur.fetchone() == (0,)
        cur.execute("DELETE FROM dbfw_my_canary WHERE id > 3")
    direct.close()


def test_errors_and_warnings_quoting_masked_values_are_withheld_whole(masked: DbfwProcess) -> None:
    """Quotes inside the quoted values defeat any scrub of the quoted parts: the whole text goes."""
    secret = "user7@example.com"
    conn = through(masked)
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.MySQLError) as e:
                cur.execute("SELECT EXTRACTVALUE(1, (SELECT CONCAT('~'' ', email, ' ''') FROM dbfw_my_customers "
                            "WHERE id = 7))")
            assert secret not in str(e.value.args) and "withheld" in e.value.args[1]
            cur.execute("SELECT CAST(CONCAT('x'' ', email, ' ''') AS INT) FROM dbfw_my_customers WHERE id = 7")
            cur.fetchall()
            cur.execute("SHOW WARNINGS")
            warnings = cur.fetchall()
            assert warnings and secret not in str(warnings)
    finally:
        conn.close()


# --- caching_sha2's full authentication without TLS ---------------------------------------------------


@pytest.mark.parametrize("client", ["pymysql", "mariadb-cli"])
def test_an_identity_known_only_by_its_scram_verifier_logs_in_with_dbfws_rsa_key(fw: DbfwProcess,
                                                                                   client: str) -> None:
    """No TLS and no digest to check a scramble: the client asks for dbfw's RSA public key and sends the
    password encrypted with it (the listener offers mysql_native_password first: such an identity is
    switched to caching_sha2_password). A wrong password is 1045 all the same. (mysql-connector does not
    implement the RSA exchange; it logs such an identity in over TLS, in test_mysql_tls.py.)"""
    if client == "mariadb-cli":
        cli = shutil.which("mariadb") or shutil.which("mysql")
        if cli is None:
            pytest.fail("the mariadb CLI is not installed") if IN_CI else pytest.skip("no mariadb CLI")
        for password, code, out in [("scram-only-secret", 0, "11"), ("not-the-secret", 1, "1045")]:
            done = subprocess.run([cli, "-h127.0.0.1", f"-P{fw.ports['my']}", "-uscram-only", f"-p{password}",
                                   "--ssl=0", "--batch", "-N", "-e", "SELECT 11", "test"],
                                  capture_output=True, text=True, timeout=30)
            assert done.returncode == code and out in done.stdout + done.stderr, done
        return
    conn = pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user="scram-only",
                           password=b"scram-only-secret", database="test", ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 11")
            assert cur.fetchall() == ((11,),)
    finally:
        conn.close()
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user="scram-only", password=b"not-the-secret",
                        database="test", ssl_disabled=True)
    assert info.value.args[0] == 1045
