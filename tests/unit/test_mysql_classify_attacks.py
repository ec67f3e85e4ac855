"""The MySQL classifier against an eighth cold attack's families, without sockets (the same cases run
through the wire in tests/integration/test_mysql_attacks.py)."""

from __future__ import annotations

import dataclasses

import pytest
import sqlglot

from dbfw.masking.plan import MaskPlanner
from dbfw.policy.rules import MaskRule
from dbfw.protocol.mysql.catalog import build_catalog
from dbfw.sql.classify import LEX_MYSQL_LATIN1, SQLClassifier, statement_fingerprint

COLUMNS = [[b"shop", b"canary", b"id", b"int"], [b"shop", b"canary", b"v", b"varchar"],
           [b"shop", b"orders", b"id", b"int"], [b"shop", b"orders", b"total", b"decimal"],
           [b"shop", b"customers", b"id", b"int"], [b"shop", b"customers", b"email", b"varchar"]]
CATALOG = dataclasses.replace(build_catalog(COLUMNS, []), default_schema="shop")


def cls(sql: str, lex: int = 0, classifier: SQLClassifier | None = None) -> str:
    return (classifier or SQLClassifier("mysql")).classify(sql, "shop", lex, CATALOG.functions).cls


def test_a_limit_is_read_for_every_text_not_once_per_shape() -> None:
    c = SQLClassifier("mysql")
    small = "DELETE c FROM canary c JOIN (SELECT id FROM orders WHERE total > 1000 LIMIT 1) q WHERE c.id = q.id"
    large = "DELETE c FROM canary c JOIN (SELECT id FROM orders WHERE total > 0 LIMIT 100000000) q WHERE c.id = q.id"
    assert cls(small, classifier=c) == "write"
    assert cls(large, classifier=c) == "destructive_write"
    pg = SQLClassifier("postgres")
    assert pg.classify("DELETE FROM canary c USING (SELECT id FROM orders LIMIT 1) q WHERE c.id = q.id").cls == "write"
    assert pg.classify("DELETE FROM canary c USING (SELECT id FROM orders LIMIT 100000000) q "
                       "WHERE c.id = q.id").cls == "destructive_write"


@pytest.mark.parametrize(("sql", "expected"), [
    ("SET tx_isolation = 0", "admin"),
    ("SET @@tx_isolation = 1", "admin"),
    ("SET SESSION transaction_isolation = 'READ-UNCOMMITTED'", "admin"),
    ("SET tx_isolation = 'READ-COMMITTED'", "session"),
    ("SET transaction_isolation = 'serializable'", "session"),
    ("SELECT LAST_INSERT_ID(CONV(HEX(SUBSTRING(email, 1, 8)), 16, 10)) FROM customers WHERE id = 2", "bulk_export"),
    ("SELECT LAST_INSERT_ID()", "read"),
    ("DO LAST_INSERT_ID(5)", "bulk_export"),
    ("SET NAMES latin1", "admin"),
    ("SET character_set_client = latin1", "admin"),
    ("SET NAMES utf8mb4", "session"),
    ("SELECT 1; SELECT 2 /*!50000 , 3 */", "unknown"),  # several statements and a versioned comment
    ("SELECT 1 /*!50000 ; DROP TABLE t */", "unknown"),
    ("/*! DROP TABLE t */", "ddl"),
])
def test_settings_channels_and_versioned_messages(sql: str, expected: str) -> None:
    assert cls(sql) == expected


@pytest.mark.parametrize("sql", [
    "DELETE FROM canary WHERE id = 1 AND id\xa0OR\xa0id",  # (bytes read as latin1, decoded by dbfw as UTF-8)
    "DELETE FROM canary WHERE id = 1 AND id\udca0OR\udca0id",
    "SELECT LOAD_FILE\udca0('/etc/hostname')",
    "USE mysql\udca0",
    "SELECT 'voil\xe0' FROM canary",  # U+00E0 is C3 A0 in UTF-8: A0 again
])
def test_in_a_latin1_session_a_text_holding_the_byte_a0_is_not_read(sql: str) -> None:
    assert cls(sql, LEX_MYSQL_LATIN1) == "unknown"


def test_a_latin1_session_reads_other_text_and_may_name_latin1() -> None:
    assert cls("SELECT 'caf\udce9' FROM canary", LEX_MYSQL_LATIN1) == "read"  # é as latin1's one byte
    assert cls("SET NAMES latin1", LEX_MYSQL_LATIN1) == "session"


def test_an_approval_of_one_table_does_not_cover_another_spelt_in_another_case() -> None:
    for a, b in [("DROP TABLE Temp", "DROP TABLE temp"), ("DROP TABLE Comment", "DROP TABLE comment"),
                 ("DELETE FROM View WHERE id = 1", "DELETE FROM view WHERE id = 1")]:
        assert statement_fingerprint(a, "mysql") != statement_fingerprint(b, "mysql")
    assert statement_fingerprint("DROP TABLE Temp", "mysql") == statement_fingerprint("DROP  TABLE Temp -- x",
                                                                                       "mysql")


@pytest.mark.parametrize(("sql", "expected"), [
    ("CREATE PROCEDURE p() BEGIN SELECT 1 AS begin; END; DROP TABLE t", ["unknown"]),
    ("CREATE PROCEDURE p() BEGIN SELECT end FROM t; END; DROP TABLE x", ["unknown"]),
    ("CREATE PROCEDURE p() BEGIN SELECT CASE WHEN 1 THEN begin ELSE 0 END FROM t; END; DROP TABLE t; END",
     ["unknown"]),
    ("CREATE PROCEDURE p() BEGIN IF 1 THEN BEGIN SELECT 1; END; END IF; END", ["unknown"]),  # fails closed
    ("CREATE PROCEDURE p() BEGIN SELECT 1 AS `case`; END; GRANT ALL ON *.* TO x", ["procedural", "privilege"]),
    ("CREATE PROCEDURE p() BEGIN SELECT 1; END; SELECT 2", ["procedural", "read"]),
    ("CREATE PROCEDURE p() BEGIN DECLARE x INT; IF x THEN SELECT 1; END IF; SELECT CASE WHEN x THEN 1 ELSE 2 END; "
     "END", ["procedural"]),
    ("CREATE PROCEDURE p() BEGIN lbl: BEGIN SELECT 1; END; CASE WHEN 1 THEN SELECT 2; END CASE; END",
     ["procedural"]),
])
def test_a_compound_statement_ends_where_the_server_ends_it_or_is_not_read(sql: str, expected: list[str]) -> None:
    got = SQLClassifier("mysql").classify(sql, "shop", 0, CATALOG.functions)
    assert [s.cls for s in got.statements] == expected


def test_lineage_past_its_budget_is_untraceable_not_slow() -> None:
    rules = [MaskRule(name="email", columns=["shop.customers.email"], mask="email")]
    planner = MaskPlanner(rules, b"k")
    nested = "SELECT * FROM " + "(SELECT * FROM " * 400 + "customers" + ") x" * 400
    wide = "SELECT * FROM customers c0 " + " ".join(f"JOIN customers c{i} ON c{i}.id = c0.id" for i in range(1, 200))
    for sql in (nested, wide):
        plan = planner.plan(sqlglot.parse_one(sql, read="mysql"), CATALOG, rules)
        assert plan.every is not None and plan.every.rule == "email" and "too large" in plan.reason
    small = planner.plan(sqlglot.parse_one("SELECT * FROM (SELECT * FROM customers) x", read="mysql"), CATALOG, rules)
    assert small.every is None and small.columns[1] is not None and small.columns[0] is None


@pytest.mark.parametrize("dialect", ["mysql", "postgres"])
def test_joins_waiting_for_on_are_not_parsed_past_a_bound(dialect: str) -> None:
    """sqlglot's parser doubles its time with each JOIN waiting for an ON. An ON or USING that closes none of
    them (CONVERT(x USING utf8), JSON_TABLE's NULL ON EMPTY, one inside a subquery) must not pay for them."""
    bare = " ".join(f"JOIN t t{i}" for i in range(1, 21))
    texts = [f"SELECT * FROM t t0 {bare}"]
    if dialect == "mysql":
        texts += [f"SELECT {', '.join(['CONVERT(a USING utf8)'] * 20)} FROM t t0 {bare}",
                  "SELECT * FROM t t0 " + " ".join(f"JOIN t t{i}" for i in range(1, 8))
                  + " JOIN (SELECT 1 FROM a JOIN b ON 1 JOIN c ON 1 JOIN d ON 1 JOIN e ON 1 JOIN f ON 1) x "
                  + " ".join(f"JOIN t u{i}" for i in range(1, 8))]
    for sql in texts:
        got = SQLClassifier(dialect).classify(sql)
        assert got.cls == "unknown" and "JOIN" in got.statements[0].reason, sql
    ok = "SELECT * FROM t t0 " + " ".join(f"JOIN t t{i} ON t{i}.id = t0.id" for i in range(1, 40))
    assert SQLClassifier(dialect).classify(ok).cls == "read"


def test_a_huge_expression_or_predicate_is_untraceable_not_slow() -> None:
    rules = [MaskRule(name="email", columns=["shop.customers.email"], mask="email")]
    planner = MaskPlanner(rules, b"k")
    for sql in ("SELECT " + "+".join(["email"] * 6000) + " FROM customers",
                "SELECT email FROM customers WHERE id = 1" + " AND id = 1" * 5000):
        plan = planner.plan(sqlglot.parse_one(sql, read="mysql"), CATALOG, rules)
        assert plan.every is not None and "too large" in plan.reason


@pytest.mark.parametrize(("sql", "cls", "unseen"), [
    ("EXECUTE IMMEDIATE @q", "unknown", True),
    ("EXECUTE IMMEDIATE CONCAT('SELECT ', 1)", "unknown", True),
    ("EXECUTE IMMEDIATE _utf8mb4'SELECT 1'", "unknown", True),   # an introducer: not one plain literal
    ("EXECUTE IMMEDIATE 'SELECT 1' 'x'", "unknown", True),        # adjacent literals concatenate
    ("EXECUTE IMMEDIATE 'EXECUTE IMMEDIATE @q'", "unknown", True),
    ("EXECUTE IMMEDIATE 'SELECT 1; DROP TABLE t'", "unknown", True),
    ("PREPARE s FROM @q", "unknown", True),
    ("PREPARE s FROM '/*!DELETE FROM t*/ SELECT 1'", "unknown", True),
    ("EXECUTE IMMEDIATE 'SELECT 1'", "procedural", False),
    ("EXECUTE IMMEDIATE 'SELECT ?' USING @a", "procedural", False),
    ("PREPARE s FROM 'SELECT LOAD_FILE(''/etc/passwd'')'", "admin", False),  # the text's own class counts
    ("EXECUTE s USING @a", "procedural", False),
])
def test_sql_text_a_statement_runs_is_read_or_never_run(sql: str, cls: str, unseen: bool) -> None:
    stmt = SQLClassifier("mysql").classify(sql, "test").statements[0]
    assert (stmt.cls, stmt.unseen) == (cls, unseen), stmt


@pytest.mark.parametrize("sql", ["SHOW CREATE TABLE mysql.user", "SHOW COLUMNS FROM `mysql`.user",
                                 "SHOW TABLES FROM mysql", "SHOW INDEX FROM sys.x_t"])
def test_show_about_the_servers_own_schemas_is_admin(sql: str) -> None:
    assert SQLClassifier("mysql").classify(sql, "test").cls == "admin"


def test_an_approval_binds_which_versioned_comments_a_server_runs() -> None:
    """MariaDB 10.11 runs /*!50000 ... */ and skips /*M!999999 ... */: the same words, other statements."""
    skipped = statement_fingerprint("DELETE FROM canary WHERE id = 1 /*M!999999 OR 1 */", "mysql")
    run = statement_fingerprint("DELETE FROM canary WHERE id = 1 /*!50000 OR 1 */", "mysql")
    assert skipped != run
    assert run == statement_fingerprint("DELETE  FROM canary WHERE id = 1 /*!50000   OR 1 */", "mysql")


@pytest.mark.parametrize(("sql", "cls"), [
    ("SET character_set_results = filename", "admin"),       # ' becomes @0027: quoted values look unquoted
    ("SET @@session.character_set_results := 'filename'", "admin"),
    ("SET character_set_results = utf16", "admin"),
    ("SET character_set_results = NULL", "session"),         # results as stored (Connector/J)
    ("SET character_set_results = utf8mb4", "session"),
    ("SET character_set_results = latin1", "session"),
])
def test_results_are_written_back_only_in_character_sets_masking_reads(sql: str, cls: str) -> None:
    assert SQLClassifier("mysql").classify(sql, "test").cls == cls


def test_a_version_has_five_or_six_digits_as_the_server_reads_it() -> None:
    from dbfw.sql.classify import expand_mysql_executable_comments as expand

    assert expand("SELECT 5 - /*!1 */ 2").split() == ["SELECT", "5", "-", "1", "2"]  # code: a syntax error
    assert expand("SELECT 5 /*!1234+1 */").split() == ["SELECT", "5", "1234+1"]
    assert expand("SELECT 5 /*!12345 + 1 */", False).split() == ["SELECT", "5"]     # a version
    assert expand("SELECT 5 /*!1000001 + 1 */").split() == ["SELECT", "5", "1", "+", "1"]  # six digits, then code


@pytest.mark.parametrize(("sql", "changes"), [
    ("SET @a = 2", True), ("SELECT 1 INTO @a", True), ("SELECT @a := 1", True),
    ("UPDATE t SET c = 1 WHERE id = 1; SET @a = 2", True), ("USE other", True),
    ("PREPARE s FROM 'SELECT 1'", True), ("DEALLOCATE PREPARE s", True),
    ("SET NAMES utf8mb4", False), ("SET autocommit = 1", False), ("SET @@session.autocommit = 0", False),
    ("SELECT @@version", False), ("SELECT 1", False),
])
def test_what_moves_a_mysql_sessions_approval_token(sql: str, changes: bool) -> None:
    from dbfw.firewall import _may_change_path

    assert _may_change_path(SQLClassifier("mysql").classify(sql, "test")) is changes
