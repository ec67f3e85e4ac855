"""Stored functions, read from the upstream's information_schema.routines: a function whose body is one
RETURN expression is as risky as that expression (a call to a harmless one is a read), any other body is
`procedural`, and masking follows a function's body to the columns it reads, as it does views."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest

from tests.conftest import DbfwProcess, MyTarget
from tests.integration.mysql_support import DEFAULT_RULES, MASKING, canary, query, serving

pytestmark = pytest.mark.timeout(120)


FUNCTIONS = {
    "dbfw_my_fmt": "(x INT) RETURNS VARCHAR(20) DETERMINISTIC RETURN CONCAT('#', x)",
    "dbfw_my_mail": "(x INT) RETURNS VARCHAR(100) READS SQL DATA "
                    "RETURN (SELECT email FROM dbfw_my_customers WHERE id = x)",
    "dbfw_my_wipe": "() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM dbfw_my_canary; RETURN 1; END",
    "dbfw_my_nap": "() RETURNS INT RETURN (SELECT SLEEP(0))",
    # Through a view, with the values rewritten so no detector would know them.
    # Names sqlglot reads as its own functions, or a built-in's name called with the database's name.
    "months_between": "(a INT, b INT) RETURNS VARCHAR(100) READS SQL DATA "
                      "RETURN (SELECT email FROM dbfw_my_customers WHERE id = b)",
    "upper": "(a VARCHAR(10)) RETURNS VARCHAR(100) READS SQL DATA RETURN (SELECT card FROM dbfw_my_customers "
             "WHERE id = 3)",
    "dbfw_my_via_view": "() RETURNS TEXT READS SQL DATA RETURN (SELECT GROUP_CONCAT(REPLACE(contact, '@', ' AT ')) "
                        "FROM dbfw_my_contacts_v)",
}


@pytest.fixture(scope="module")
def fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("CREATE OR REPLACE VIEW dbfw_my_contacts_v AS SELECT id, email AS contact FROM dbfw_my_customers")
        for name, definition in FUNCTIONS.items():
            cur.execute(f"CREATE OR REPLACE FUNCTION {name}{definition}")
        cur.execute("CREATE OR REPLACE VIEW dbfw_my_evil_v AS SELECT dbfw_my_wipe() AS x")
    with serving(tmp_path_factory.mktemp("dbfw-my-routines"), mysql,
                                         rules=DEFAULT_RULES + MASKING) as proc:
        yield proc
        with direct.cursor() as cur:
            for name in FUNCTIONS:
                cur.execute(f"DROP FUNCTION IF EXISTS {name}")
            cur.execute("DROP VIEW IF EXISTS dbfw_my_contacts_v, dbfw_my_evil_v")
        direct.close()


def test_a_function_returning_an_expression_is_a_read(fw: DbfwProcess) -> None:
    assert query(fw, "SELECT dbfw_my_fmt(7), test.dbfw_my_fmt(8)") == (("#7", "#8"),)


def test_masking_follows_a_functions_body_to_the_columns_it_reads(fw: DbfwProcess, mysql: MyTarget) -> None:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT email FROM dbfw_my_customers WHERE id = 3")
        (clear,) = cur.fetchone()
    direct.close()
    ((value,),) = query(fw, "SELECT dbfw_my_mail(3)")
    assert value != clear, "a stored function carried a masked column out in clear"
    ((renamed,),) = query(fw, "SELECT UPPER(dbfw_my_mail(3)) AS x")
    assert renamed is None or clear.upper() != renamed


@pytest.mark.parametrize(("sql", "cls"), [
    ("SELECT dbfw_my_wipe()", "procedural"),  # a BEGIN ... END body: not read, so not trusted
    ("SET @x = dbfw_my_wipe()", "procedural"),
    ("SELECT dbfw_my_fmt(1), dbfw_my_wipe()", "procedural"),
    ("SELECT dbfw_my_nap()", "admin"),  # what the body calls counts
    ("SELECT * FROM dbfw_my_evil_v", "procedural"),  # reading a view runs what its definition calls
    ("EXPLAIN SELECT * FROM (SELECT dbfw_my_wipe() AS x) t", "procedural"),  # the optimizer may run it
    ("DO (SELECT x FROM dbfw_my_evil_v)", "procedural"),  # DO evaluates what SELECT would
])
def test_a_function_dbfw_cannot_read_or_that_does_more_than_read_needs_an_approval(
        fw: DbfwProcess, mysql: MyTarget, sql: str, cls: str) -> None:
    before = canary(mysql)
    with pytest.raises(pymysql.err.OperationalError) as info:
        query(fw, sql)
    assert info.value.args[0] == 1644 and cls in info.value.args[1]
    assert canary(mysql) == before


def test_masking_follows_a_function_through_the_views_it_reads(fw: DbfwProcess, mysql: MyTarget) -> None:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT email FROM dbfw_my_customers")
        local_parts = {row[0].split("@")[0] for row in cur.fetchall()}
    direct.close()
    ((value,),) = query(fw, "SELECT dbfw_my_via_view()")
    assert not any(part in str(value) for part in local_parts), value


def test_a_stored_functions_result_is_not_kept_in_a_variable(fw: DbfwProcess) -> None:
    """A user variable is never masked: SET @a = f() would keep what f read in clear for SELECT @a."""
    with pytest.raises(pymysql.err.OperationalError) as info:
        query(fw, "SET @a = dbfw_my_mail(3)")
    assert info.value.args[0] == 1644 and "bulk_export" in info.value.args[1]


@pytest.mark.parametrize("sql", [
    "INSERT INTO dbfw_my_orders (id, customer_id, total) VALUES (9001, 1, 1) ON DUPLICATE KEY UPDATE total = 1",
])
def test_writes_of_ordinary_values_still_run(fw: DbfwProcess, mysql: MyTarget, sql: str) -> None:
    query(fw, sql)
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("DELETE FROM dbfw_my_orders WHERE id = 9001")
    direct.close()


@pytest.mark.parametrize("sql", ["SELECT months_between(1, 3)", "SELECT test.upper('a')",
                                 "SELECT x FROM (SELECT test.upper('b') AS x) t"])
def test_stored_functions_with_the_names_of_other_functions_are_masked(fw: DbfwProcess, mysql: MyTarget,
                                                                       sql: str) -> None:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT email, card FROM dbfw_my_customers WHERE id = 3")
        clear = set(cur.fetchone())
    direct.close()
    try:
        rows = query(fw, sql)
    except pymysql.err.OperationalError as e:
        assert e.args[0] == 1644
        return
    assert not {str(v) for row in rows for v in row} & clear, rows


@pytest.mark.parametrize("sql", [
    "INSERT INTO dbfw_my_canary (id, v) VALUES (1, 'x') ON DUPLICATE KEY UPDATE v = dbfw_my_mail(3)",
    "INSERT INTO dbfw_my_canary (id, v) VALUES (9002, dbfw_my_mail(3))",
    "UPDATE dbfw_my_canary SET v = dbfw_my_mail(3) WHERE id = 1",
    "INSERT INTO dbfw_my_canary (id, v) SELECT 9003, dbfw_my_mail(3)",
    "REPLACE INTO dbfw_my_canary (id, v) VALUES (9004, dbfw_my_mail(3))",
])
def test_a_function_reading_masked_values_does_not_launder_them_into_a_table(fw: DbfwProcess, mysql: MyTarget,
                                                                           sql: str) -> None:
    before = canary(mysql)
    with pytest.raises(pymysql.err.OperationalError) as info:
        query(fw, sql)
    assert info.value.args[0] == 1644
    assert canary(mysql) == before
