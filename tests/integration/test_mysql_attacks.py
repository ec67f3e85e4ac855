"""Attacks on the MySQL listener found by a cold attack (eighth round), through the wire against MariaDB,
under the default rules with masking, each checked on the server afterwards: a shape-cached LIMIT, the
latin1 byte 0xA0, masking around versioned comments and SHOW WARNINGS, a masked column rewritten to show
another through its mask, LAST_INSERT_ID(expr) as a channel, an approval for one table's case covering
another, and a query built to stall masking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, MyTarget
from tests.integration.mysql_support import DEFAULT_RULES, MASKING, approve, canary, request_id, serving

pytestmark = pytest.mark.timeout(180)

@pytest.fixture(scope="module")
def fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with serving(tmp_path_factory.mktemp("dbfw-my-attacks"), mysql,
                                         rules=DEFAULT_RULES + MASKING) as proc:
        yield proc


def through(fw: DbfwProcess, **kw: Any) -> Any:
    return pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", autocommit=True, **kw)


def refused(conn: Any, sql: str | bytes) -> str:
    with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as info:
        cur.execute(sql)
    assert info.value.args[0] == 1644 and info.value.args[1].startswith("dbfw:"), info.value
    return str(info.value.args[1])


def clear_values(mysql: MyTarget) -> set[str]:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT email, card FROM dbfw_my_customers")
        out = {v for row in cur.fetchall() for v in row}
    direct.close()
    return out


def test_a_limit_seen_first_does_not_prove_a_larger_one_bounded(fw: DbfwProcess, mysql: MyTarget) -> None:
    conn = through(fw)
    try:
        with conn.cursor() as cur:  # bounded: one order's id, and there is none this large
            cur.execute("DELETE c FROM dbfw_my_canary c JOIN (SELECT id FROM dbfw_my_orders WHERE total > 100000 "
                        "LIMIT 1) q1 WHERE c.id = q1.id")
        refused(conn, "DELETE c FROM dbfw_my_canary c JOIN (SELECT id FROM dbfw_my_orders WHERE total > 0 "
                      "LIMIT 100000000) q1 WHERE c.id = q1.id")
        refused(conn, "UPDATE dbfw_my_canary c JOIN (SELECT id FROM dbfw_my_orders WHERE total > 0 LIMIT 100000000) "
                      "q2 ON 1 SET c.v = 'pwned' WHERE c.id = q2.id")
    finally:
        conn.close()
    assert canary(mysql) == [(1, "a"), (2, "b"), (3, "c")]


@pytest.mark.parametrize("sql", [
    b"DELETE FROM dbfw_my_canary WHERE id = 1 AND id\xa0OR\xa0id",
    b"UPDATE dbfw_my_canary SET v = 'pwned' WHERE id = 1 AND id\xa0OR\xa0id",
    b"SELECT LOAD_FILE\xa0('/etc/hostname')",
    b"SELECT SLEEP\xa0(1)",
    b"USE mysql\xa0",
    b"SELECT REPLACE(email, '@', ' at ') FROM dbfw_my_customers\xa0c",
])
def test_in_a_latin1_session_the_byte_a0_is_a_space_dbfw_does_not_read(fw: DbfwProcess, mysql: MyTarget,
                                                                       sql: bytes) -> None:
    conn = through(fw, charset="latin1")
    try:
        refused(conn, sql.decode("latin1"))
    finally:
        conn.close()
    assert canary(mysql) == [(1, "a"), (2, "b"), (3, "c")]


def test_a_session_may_not_switch_to_latin1(fw: DbfwProcess) -> None:
    """Only a session that starts in latin1 is read as latin1 (where 0xA0 is watched for)."""
    conn = through(fw)
    try:
        for sql in ("SET NAMES latin1", "SET CHARACTER SET latin1", "SET character_set_client = 'latin1'",
                    "SET NAMES utf8mb4, character_set_connection = latin1"):
            assert "admin" in refused(conn, sql)
        with conn.cursor() as cur:
            cur.execute("SET NAMES utf8mb4")
    finally:
        conn.close()


@pytest.mark.parametrize("sql", [
    "SELECT name /*!50000 , upper(email), concat(card, '') */ FROM dbfw_my_customers",
    "SELECT /*M!100000 reverse(reverse(email)) AS */ name FROM dbfw_my_customers",
])
def test_versioned_comments_do_not_hide_columns_from_masking(fw: DbfwProcess, mysql: MyTarget, sql: str) -> None:
    secrets = clear_values(mysql) | {v.upper() for v in clear_values(mysql)}
    conn = through(fw)
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(sql)
                rows = cur.fetchall()
            except pymysql.MySQLError as e:
                assert e.args[0] == 1644, e
                rows = ()
        assert not {str(v) for row in rows for v in row} & secrets
    finally:
        conn.close()


def test_show_warnings_behind_a_comment_still_loses_quoted_values(fw: DbfwProcess, mysql: MyTarget) -> None:
    secrets = clear_values(mysql)
    conn = through(fw)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CAST(email AS SIGNED) FROM dbfw_my_customers WHERE id < 4")
            cur.fetchall()
            for show in ("SHOW/*!50000 */WARNINGS", "SHOW /**/ WARNINGS", "SHOW /* x */ ERRORS"):
                try:
                    cur.execute(show)
                    text = " ".join(str(v) for row in cur.fetchall() for v in row)
                except pymysql.MySQLError as e:
                    assert e.args[0] == 1644
                    continue
                assert not any(s in text for s in secrets), text
    finally:
        conn.close()


@pytest.mark.parametrize("sql", [
    "UPDATE dbfw_my_customers SET email = CONCAT('x@', card) WHERE id IN (1, 2, 3)",
    "UPDATE dbfw_my_customers SET email = CONCAT('x@', REPLACE(email, '@', '_')) WHERE id IN (1, 2, 3)",
    "UPDATE dbfw_my_customers SET card = CONCAT('XXXXXXXX', SUBSTRING(email, 1, 4)) WHERE id = 1",
    "INSERT INTO dbfw_my_customers (id, name, email, card) SELECT id + 1000, name, CONCAT('x@', card), card "
    "FROM dbfw_my_customers WHERE id IN (1, 2, 3) RETURNING email",
])
def test_a_masked_column_is_not_rewritten_to_show_others_through_its_mask(fw: DbfwProcess, mysql: MyTarget,
                                                                          sql: str) -> None:
    _refused_for_masking(fw, mysql, sql)


def _refused_for_masking(fw: DbfwProcess, mysql: MyTarget, sql: str) -> None:
    """Refused because of masking, with the masked values unchanged on the server."""
    before = clear_values(mysql)
    conn = through(fw)
    try:
        assert "masked" in refused(conn, sql)
    finally:
        conn.close()
    assert clear_values(mysql) == before


def test_last_insert_id_is_no_channel_for_masked_values(fw: DbfwProcess) -> None:
    conn = through(fw, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        assert "bulk_export" in refused(
            conn, "SELECT LAST_INSERT_ID(CONV(HEX(SUBSTRING(card, 1, 8)), 16, 10)) FROM dbfw_my_customers WHERE id = 2")
        refused(conn, "DO LAST_INSERT_ID((SELECT id FROM dbfw_my_customers LIMIT 1))")
    finally:
        conn.close()


def test_an_isolation_level_is_given_by_name(fw: DbfwProcess) -> None:
    conn = through(fw)
    try:
        for sql in ("SET tx_isolation = 0", "SET @@session.transaction_isolation = 0",
                    "SET tx_isolation = 'READ-UNCOMMITTED'"):
            assert "admin" in refused(conn, sql)
        with conn.cursor() as cur:
            cur.execute("SET tx_isolation = 'READ-COMMITTED'")
            cur.execute("SELECT @@tx_isolation")
            assert cur.fetchone() == ("READ-COMMITTED",)
    finally:
        conn.close()


def test_an_approval_binds_a_table_names_case(fw: DbfwProcess, mysql: MyTarget) -> None:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS `Temp` (id INT)")
        cur.execute("CREATE TABLE IF NOT EXISTS `temp` (v VARCHAR(20))")
    conn = through(fw)
    try:
        rid = request_id(pymysql.MySQLError(refused(conn, "DROP TABLE Temp")))
        assert approve(fw, rid)["status"] == "approved"
        assert request_id(pymysql.MySQLError(refused(conn, "DROP TABLE temp"))) != rid
        with conn.cursor() as cur:
            cur.execute("DROP TABLE Temp")  # the approved statement itself
        with direct.cursor() as cur:
            cur.execute("SHOW TABLES LIKE 'temp'")
            assert cur.fetchall() == (("temp",),)
    finally:
        conn.close()
        with direct.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS `Temp`, `temp`")
        direct.close()


def test_a_compound_statement_whose_end_is_ambiguous_is_not_read(fw: DbfwProcess, mysql: MyTarget) -> None:
    conn = through(fw, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        for sql in ("CREATE PROCEDURE dbfw_my_p() BEGIN SELECT 1 AS begin; END; DROP TABLE dbfw_my_canary",
                    "CREATE PROCEDURE dbfw_my_p() BEGIN SELECT end FROM dbfw_my_canary; END; "
                    "DROP TABLE dbfw_my_canary"):
            assert "unknown" in refused(conn, sql)
    finally:
        conn.close()
    assert canary(mysql) == [(1, "a"), (2, "b"), (3, "c")]


def test_a_query_built_to_stall_masking_is_masked_whole(fw: DbfwProcess, mysql: MyTarget) -> None:
    """400 nested derived tables: tracing each column through them would hold the event loop for minutes.
    Past dbfw's budget the query is untraceable: near a masked table, every column is masked."""
    secrets = clear_values(mysql)
    sql = "SELECT * FROM " + "(SELECT * FROM " * 30 + "dbfw_my_customers" + ") x" * 30
    conn = through(fw)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
        assert rows and not {str(v) for row in rows for v in row} & secrets
        assert {row[0] for row in rows} <= {None, "****"}  # even the id: every column
    finally:
        conn.close()


def test_joins_without_on_that_would_stall_the_parser_are_not_read(fw: DbfwProcess) -> None:
    """sqlglot's parser doubles its time with each JOIN still waiting for an ON: 31 of them would hold every
    session for days. Past ten, the statement is unknown, at once; the session and dbfw go on."""
    conn = through(fw)
    try:
        sql = "SELECT * FROM dbfw_my_customers c0 " + " ".join(f"JOIN dbfw_my_customers c{i}" for i in range(1, 31))
        assert "unknown" in refused(conn, sql)
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM dbfw_my_customers c0 JOIN dbfw_my_orders o ON o.customer_id = c0.id")
            assert cur.fetchone() == (50,)
    finally:
        conn.close()


def test_a_result_far_past_its_limit_is_stopped_upstream(mysql: MyTarget, tables: None, tmp_path: Path) -> None:
    """Ten billion rows: past the limit dbfw sends DBF06 and, once it has dropped some 16,000 rows (or 16 MB)
    more, stops the statement on the server instead of reading and dropping the rest (hours of the relay's
    thread, with every other session waiting)."""
    rules = DEFAULT_RULES.replace("max_result_rows: 100000", "max_result_rows: 1000")
    with serving(tmp_path, mysql, rules=rules) as fw:
        _past_the_limit(fw)


def _past_the_limit(fw: DbfwProcess) -> None:
    conn = through(fw, read_timeout=120)
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            with pytest.raises(pymysql.MySQLError) as info:
                cur.execute("SELECT seq FROM seq_1_to_10000000000")
                for _ in cur:
                    pass
            assert info.value.args[0] == 1644 and "cut off" in str(info.value)
        with conn.cursor() as cur:  # the session goes on
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()
    assert "session.cancel_failed" not in fw.log_path.read_text()


@pytest.mark.parametrize("sql", [
    "INSERT INTO dbfw_my_customers (id) VALUES (2) ON DUPLICATE KEY UPDATE note = email",
    "INSERT INTO dbfw_my_customers (id) VALUES (2) ON DUPLICATE KEY UPDATE name = card",
    "INSERT INTO dbfw_my_customers (id) VALUES (2) ON DUPLICATE KEY UPDATE email = SUBSTRING(email, 2)",
    "INSERT INTO dbfw_my_customers (id) VALUES (2) ON DUPLICATE KEY UPDATE card = LEFT(card, LENGTH(card) - 4)",
])
def test_on_duplicate_key_update_does_not_launder_masked_values(fw: DbfwProcess, mysql: MyTarget, sql: str) -> None:
    _refused_for_masking(fw, mysql, sql)


def test_a_huge_expression_is_masked_whole_not_traced_for_seconds(fw: DbfwProcess, mysql: MyTarget) -> None:
    secrets = clear_values(mysql)
    conn = through(fw)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CONCAT(" + ", ".join(["email"] * 3000) + ") FROM dbfw_my_customers WHERE id = 1")
            ((value,),) = cur.fetchall()
        assert not any(s in str(value) for s in secrets)
    finally:
        conn.close()


# --- a tenth round ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "EXECUTE IMMEDIATE @dbfw_q",
    "PREPARE dbfw_s FROM @dbfw_q",
    "EXECUTE IMMEDIATE CONCAT('UPDATE dbfw_my_canary SET v = ''x''', '')",
    "EXECUTE IMMEDIATE 'EXECUTE IMMEDIATE @dbfw_q'",
    "PREPARE dbfw_s FROM '/*!DELETE FROM dbfw_my_canary */ SELECT 1'",
])
def test_sql_text_dbfw_cannot_see_never_runs(fw: DbfwProcess, mysql: MyTarget, sql: str) -> None:
    """An approval of EXECUTE IMMEDIATE @q would cover whatever @q holds when it runs: such text is refused
    outright (DBF05), and no request is made that a reviewer could approve blind."""
    before = canary(mysql)
    conn = through(fw)
    try:
        with conn.cursor() as cur:
            cur.execute("SET @dbfw_q = 'UPDATE dbfw_my_canary SET v = ''swapped'''")
        message = refused(conn, sql)
        assert "cannot see" in message or "cannot classify" in message, message
        assert "req_" not in message
    finally:
        conn.close()
    assert canary(mysql) == before


def test_sql_text_given_as_a_literal_is_judged_and_approved_as_that_text(fw: DbfwProcess, mysql: MyTarget) -> None:
    sql = "EXECUTE IMMEDIATE 'UPDATE dbfw_my_canary SET v = ''approved'' WHERE id = 3'"
    conn = through(fw)
    try:
        with conn.cursor() as cur:
            message = refused(conn, sql)
            assert "procedural" in message
            approve(fw, request_id(message))
            cur.execute("SET @dbfw_x = 1")  # anything that may change what the approved statement runs
            message = refused(conn, sql)  # ... and the approval made before it no longer applies here
            approve(fw, request_id(message))
            cur.execute(sql)
        assert (3, "approved") in canary(mysql)
        refused(conn, sql)  # once
    finally:
        with mysql.connect().cursor() as cur:
            cur.execute("UPDATE dbfw_my_canary SET v = 'c' WHERE id = 3")
        conn.close()


def test_an_approval_request_keeps_text_that_is_not_utf8(fw: DbfwProcess, mysql: MyTarget) -> None:
    before = canary(mysql)
    conn = through(fw)
    try:
        message = refused(conn, b"UPDATE dbfw_my_canary SET v = 'p' #\xc0\n")
        assert "req_" in message, message  # a request was made, not "cannot record the request"
    finally:
        conn.close()
    assert canary(mysql) == before


@pytest.mark.parametrize("sql", ["SHOW CREATE TABLE mysql.user", "SHOW COLUMNS FROM `mysql`.`user`",
                                 "SHOW TABLES FROM mysql", "SHOW INDEX FROM performance_schema.threads"])
def test_show_about_the_servers_own_schemas_is_admin(fw: DbfwProcess, sql: str) -> None:
    conn = through(fw)
    try:
        assert "admin" in refused(conn, sql)
    finally:
        conn.close()


def test_an_approval_does_not_survive_a_change_of_the_variables_it_reads(fw: DbfwProcess, mysql: MyTarget) -> None:
    """EXECUTE ... USING @a runs with whatever @a holds: after anything that may set a variable (a SET in a
    message with other statements, sent twice so the second takes the fast path), approvals made before no
    longer apply in the session."""
    sql = "EXECUTE IMMEDIATE 'UPDATE dbfw_my_canary SET v = ''y'' WHERE id = ?' USING @dbfw_a"
    conn = through(fw, client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            cur.execute("SET @dbfw_a = 3")
            approve(fw, request_id(refused(conn, sql)))
            for _ in range(2):
                cur.execute("UPDATE dbfw_my_orders SET total = 1 WHERE id = 1; SET @dbfw_a = 2")
                while cur.nextset():
                    pass
            refused(conn, sql)  # a new request: the approval was for the session as it was
    finally:
        conn.close()
    assert (2, "b") in canary(mysql)
