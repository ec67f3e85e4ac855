"""Stored functions as the MySQL classifier sees them, from rows shaped as information_schema.routines
gives them (no server): a RETURN body is classified as its expression, in the function's own database
and sql_mode; anything else is procedural."""

from __future__ import annotations

import pytest

from dbfw.protocol.mysql.catalog import build_catalog
from dbfw.sql.classify import SQLClassifier

COLUMNS = [[b"shop", b"customers", b"id", b"int"], [b"shop", b"customers", b"email", b"varchar"],
           [b"shop", b"orders", b"id", b"int"]]
ROUTINES = [
    [b"shop", b"fmt", b"FUNCTION", b"RETURN CONCAT('#', x)", b"STRICT_TRANS_TABLES"],
    [b"shop", b"mail_of", b"FUNCTION", b"RETURN (SELECT email FROM customers WHERE id = x)", b""],
    [b"shop", b"wipe", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"shop", b"wrap", b"FUNCTION", b"return fmt(x)", b""],
    [b"shop", b"loop1", b"FUNCTION", b"RETURN loop1(x)", b""],
    [b"shop", b"sneaky", b"FUNCTION", b"RETURN (SELECT SLEEP(5))", b""],
    [b"shop", b"purge", b"FUNCTION", b"RETURN (SELECT COUNT(*) FROM orders INTO OUTFILE '/tmp/x')", b""],
    [b"shop", b"dq", b"FUNCTION", b'RETURN "a"', b"ANSI_QUOTES"],  # "a" is a column there: unknown
    [b"shop", b"unread", b"FUNCTION", None, b""],  # dbfw's user may not read the body
    [b"shop", b"proc1", b"PROCEDURE", b"BEGIN SELECT 1; END", b""],
    [b"other", b"fmt", b"FUNCTION", b"BEGIN RETURN 1; END", b""],
    [b"shop", b"customers", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    # Names MariaDB does not have as built-ins in the default sql_mode, or that are not plain words: a stored
    # function of that name is what runs.
    [b"shop", b"to_date", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"shop", b"key", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"shop", b"nested", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"shop", b"path", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"shop", b"range", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"shop", b"date_trunc", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"other", b"concat", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],  # elsewhere: not ours
    [b"shop", b"x-y", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
    [b"shop", b"f\xc3\xa9", b"FUNCTION", b"BEGIN DELETE FROM orders; RETURN 1; END", b""],
]
VIEWS = [[b"shop", b"v_evil", b"select `shop`.`wipe`() AS `x`"],
         [b"shop", b"v_fine", b"select `shop`.`fmt`(`customers`.`id`) AS `f` from `shop`.`customers`"],
         [b"shop", b"v_nap", b"select sleep(1) AS `s`"]]
FUNCTIONS = build_catalog(COLUMNS, VIEWS, ROUTINES).functions


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT fmt(id) FROM customers", "read"),
    ("SELECT FMT(1), `fmt`(2), shop.fmt(3)", "read"),
    ("SELECT mail_of(1)", "read"),  # (masking follows the body: see the integration test)
    ("SELECT wrap(1)", "read"),  # through another function of the catalog
    ("INSERT INTO customers (id) VALUES (fmt(1))", "write"),
    ("SET @x = fmt(1)", "bulk_export"),  # a stored function's result into a variable: masking cannot follow
    ("SELECT wipe()", "procedural"),
    ("SET @x = wipe()", "procedural"),
    ("SELECT loop1(1)", "procedural"),  # recursion stops
    ("SELECT sneaky()", "admin"),
    ("SELECT purge()", "bulk_export"),
    ("SELECT dq()", "procedural"),
    ("SELECT unread()", "procedural"),
    ("SELECT proc1()", "procedural"),
    ("SELECT other.fmt(1)", "procedural"),  # the same name in another database is another function
    ("SELECT nope(1)", "procedural"),
    ("SELECT customers() FROM customers", "procedural"),  # a function named as a table it reads
    ("DO wipe()", "procedural"),
    ("SELECT to_date('2026-01-01', 'YYYY-MM-DD')", "procedural"),
    ("SELECT `key`(1)", "procedural"),
    ("SELECT nested(1), path(2), range(3)", "procedural"),
    ("SELECT `x-y`(1)", "procedural"),
    ("SELECT f\u00e9(1)", "procedural"),
    ("SELECT `unknown name`(1)", "procedural"),
    ("SET @a = mail_of(1)", "bulk_export"),  # a variable is never masked
    ("EXPLAIN SELECT * FROM (SELECT wipe() AS x) t", "procedural"),  # the optimizer may run it
    ("EXPLAIN SELECT * FROM (SELECT @x := (SELECT GROUP_CONCAT(email) FROM customers)) t", "bulk_export"),
    ("EXPLAIN SELECT * FROM orders WHERE id = 1", "read"),
    ("SELECT * FROM v_evil", "procedural"),  # reading a view runs what it calls
    ("SELECT x FROM shop.v_evil WHERE 1", "procedural"),
    ("SELECT * FROM v_nap", "admin"),
    ("SELECT * FROM v_fine", "read"),
    ("SELECT date_trunc('a', 'b') FROM orders AS date_trunc", "procedural"),  # an alias named as the call
    ("SELECT CONCAT('a', 'b')", "read"),  # another database's concat() is not what runs here
    ("SELECT other.concat('a')", "procedural"),
])
def test_calls_are_as_risky_as_the_function_body(sql: str, expected: str) -> None:
    assert SQLClassifier("mysql").classify(sql, "shop", 0, FUNCTIONS).cls == expected


def test_an_unqualified_call_outside_a_database_finds_no_function() -> None:
    assert SQLClassifier("mysql").classify("SELECT fmt(1)", None, 0, FUNCTIONS).cls == "procedural"


def test_the_statement_goes_on_in_its_own_database_after_a_function_was_read() -> None:
    """Reading a body classifies it in the function's database; the calling statement's own names must
    still resolve in the session's database afterwards (a SET list, a second call)."""
    c = SQLClassifier("mysql")
    assert c.classify("SET @a = fmt(1), @b = wipe()", "shop", 0, FUNCTIONS).cls == "procedural"
    assert c.classify("SELECT fmt(1), wrap(2)", "shop", 0, FUNCTIONS).cls == "read"
