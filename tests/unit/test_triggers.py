"""What a write fires, without a database: trigger bodies and rule actions read as statements, which events
which statements fire, and the class a write gets from them."""

from __future__ import annotations

import pytest

from dbfw.protocol.mysql.catalog import triggers
from dbfw.sql.classify import SQLClassifier
from dbfw.sql.functions import UNREAD, FunctionCatalog, Proc, Trigger
from dbfw.sql.triggers import fired_events, row_statements, rule_actions

COLUMNS = frozenset({("test", "orders", "id"), ("test", "items", "id"), ("test", "canary", "id")})


def _mysql_catalog(*rows: tuple[str, str, str, str, str]) -> FunctionCatalog:
    encoded = [[v.encode() for v in row] + [b"STRICT_TRANS_TABLES"] for row in rows]
    return FunctionCatalog(live=True, triggers=triggers(encoded), number_columns=COLUMNS, columns=COLUMNS)


@pytest.mark.parametrize(("body", "statements"), [
    ("SET NEW.a = UPPER(NEW.b), NEW.n := OLD.n + 1", "SELECT UPPER(?), OLD.n + 1".replace("OLD.n", "?")),
    ("BEGIN INSERT INTO log VALUES (NEW.x, 'NEW.y'); END", "INSERT INTO log VALUES (?, 'NEW.y')"),
    ("lbl: BEGIN DELETE FROM t WHERE id = OLD.id; END lbl", "DELETE FROM t WHERE id = ?"),
    ("UPDATE t SET v = new.v WHERE id = old.id", "UPDATE t SET v = ? WHERE id = ?"),
])
def test_mysql_bodies_read_as_statements(body: str, statements: str) -> None:
    assert row_statements(body, "mysql") == statements


def test_a_mysql_body_keeping_a_rows_values_in_the_session_is_an_export() -> None:
    catalog = _mysql_catalog(("test", "orders", "tk", "DELETE", "SET NEW.a = 1, @v = OLD.b"))
    result = SQLClassifier("mysql").classify("DELETE FROM orders WHERE id = 1", "test", functions=catalog)
    assert result.cls == "bulk_export" and "session" in result.statements[0].reason


def test_rule_actions_are_every_reading_after_do() -> None:
    assert rule_actions("CREATE RULE r AS\n    ON INSERT TO public.t DO INSTEAD  DELETE FROM x;") == ["DELETE FROM x"]
    assert rule_actions("CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING;") == [""]
    readings = rule_actions("CREATE RULE r AS ON UPDATE TO t WHERE (new.s = 'a DO b') DO ALSO (INSERT INTO a "
                            "VALUES (1); DELETE FROM b);")
    assert "INSERT INTO a VALUES (1); DELETE FROM b" in [r.strip() for r in readings]
    assert "SELECT (new.s = 'a DO b')" in readings  # the condition runs for every row too


def test_a_rules_condition_counts_even_when_it_does_nothing() -> None:
    fn = Proc("app", "wipe", "v", "f", "plpgsql", 0, 0, False, None, False)
    catalog = FunctionCatalog(user={"wipe": (fn,)}, live=True, triggers={"t": (Trigger(
        "app", "t", "r", frozenset({"INSERT"}),
        "CREATE RULE r AS\n    ON INSERT TO app.t\n   WHERE (app.wipe() IS NOT NULL) DO INSTEAD NOTHING;"),)})
    assert SQLClassifier("postgres").classify("INSERT INTO app.t VALUES (1)", functions=catalog).cls == "procedural"


@pytest.mark.parametrize(("keyword", "command", "written", "mysql", "events"), [
    ("UPDATE", "UPDATE", ["t"], True, {"UPDATE"}),
    ("INSERT", "INSERT", ["t"], True, {"INSERT", "UPDATE"}),
    ("INSERT", "INSERT", ["t"], False, {"INSERT", "UPDATE"}),
    ("REPLACE", "INSERT", ["t"], True, {"INSERT", "UPDATE", "DELETE"}),
    ("WITH", "DELETE", ["t"], False, {"INSERT", "UPDATE", "DELETE"}),
    ("UPDATE", "UPDATE", ["t", "u"], True, {"INSERT", "UPDATE", "DELETE"}),
    ("TRUNCATE", "TRUNCATE", ["t"], False, {"TRUNCATE"}),
    ("TRUNCATE", "TRUNCATE", ["t"], True, set()),
    ("DROP", "DROP", ["t"], True, set()),
])
def test_which_events_a_statement_fires(keyword: str, command: str, written: list[str], mysql: bool,
                                        events: set[str]) -> None:
    assert fired_events(keyword, command, written, mysql) == events
    if keyword == "INSERT":  # without ON CONFLICT / ON DUPLICATE KEY UPDATE it only inserts
        assert fired_events(keyword, command, written, mysql, upsert=False) == {"INSERT"}


@pytest.mark.parametrize(("sql", "cls"), [
    ("INSERT INTO orders VALUES (1)", "destructive_write"),          # BEFORE INSERT: DELETE FROM canary
    ("REPLACE INTO orders VALUES (1)", "destructive_write"),
    ("LOAD DATA LOCAL INFILE 'f' INTO TABLE orders", "destructive_write"),
    ("INSERT INTO other.orders VALUES (1)", "write"),                 # another database's table
    ("UPDATE orders SET a = 1 WHERE id = 1", "write"),                # SET NEW.x: a read
    ("INSERT INTO items VALUES (1) ON DUPLICATE KEY UPDATE id = 2", "bulk_export"),  # the UPDATE trigger too
    ("INSERT INTO items VALUES (1)", "write"),                        # a log and a restricted update
    ("DELETE FROM items WHERE id = 1", "procedural"),                 # control flow
    ("UPDATE items SET a = 1 WHERE id = 1", "bulk_export"),           # SET @v = OLD.col
    ("DROP TABLE orders", "ddl"),
])
def test_a_mysql_write_takes_the_class_of_its_triggers(sql: str, cls: str) -> None:
    catalog = _mysql_catalog(
        ("test", "orders", "t_del", "INSERT", "DELETE FROM canary"),
        ("test", "orders", "t_ts", "UPDATE", "SET NEW.updated = NOW(), NEW.n = OLD.n + 1"),
        ("test", "items", "t_log", "INSERT", "BEGIN INSERT INTO audit (x) VALUES (NEW.email); "
                                             "UPDATE canary SET v = NEW.v WHERE id = OLD.id; END"),
        ("test", "items", "t_flow", "DELETE", "BEGIN IF OLD.a > 1 THEN DELETE FROM canary WHERE id = 1; END IF; END"),
        ("test", "items", "t_keep", "UPDATE", "SET @kept = OLD.email"))
    assert SQLClassifier("mysql").classify(sql, "test", functions=catalog).cls == cls


def test_triggers_firing_triggers_are_followed_to_a_depth() -> None:
    catalog = _mysql_catalog(("test", "a", "ta", "INSERT", "INSERT INTO b VALUES (NEW.id)"),
                             ("test", "b", "tb", "INSERT", "INSERT INTO c VALUES (NEW.id)"),
                             ("test", "c", "tc", "INSERT", "DELETE FROM canary"))
    assert SQLClassifier("mysql").classify("INSERT INTO a VALUES (1)", "test", functions=catalog).cls == \
        "destructive_write"
    loop = _mysql_catalog(("test", "a", "ta", "INSERT", "INSERT INTO b VALUES (NEW.id)"),
                          ("test", "b", "tb", "INSERT", "INSERT INTO a VALUES (NEW.id)"))
    assert SQLClassifier("mysql").classify("INSERT INTO a VALUES (1)", "test", functions=loop).cls == "procedural"


def test_postgres_triggers_are_as_risky_as_their_function_and_rules_as_their_action() -> None:
    fn = Proc("app", "wipe", "v", "f", "plpgsql", 0, 0, False, None, False)
    catalog = FunctionCatalog(user={"wipe": (fn,)}, live=True, triggers={
        "w": (Trigger("app", "w", "t", frozenset({"INSERT"}), function=("app", "wipe")),),
        "r": (Trigger("app", "r", "rl", frozenset({"DELETE"}),
                      "CREATE RULE rl AS ON DELETE TO app.r DO INSTEAD UPDATE app.t SET v = old.v;"),)})
    c = SQLClassifier("postgres")
    assert c.classify("INSERT INTO app.w VALUES (1)", functions=catalog).cls == "procedural"
    assert c.classify('INSERT INTO "W" VALUES (1)', functions=catalog).cls == "procedural"  # any schema
    assert c.classify("UPDATE app.w SET v = 1 WHERE id = 1", functions=catalog).cls == "write"
    assert c.classify("DELETE FROM app.r WHERE id = 1", functions=catalog).cls == "destructive_write"


def test_a_database_whose_triggers_could_not_be_read_fails_closed() -> None:
    for dialect in ("mysql", "postgres"):
        result = SQLClassifier(dialect).classify("INSERT INTO t VALUES (1)", "test", functions=UNREAD)
        assert result.cls == "procedural" and "triggers" in result.statements[0].reason


@pytest.mark.parametrize("sql", [
    "UPDATE items, orders SET orders.id = 2 WHERE items.id = 1 AND orders.id = 1",   # several tables
    "DELETE o FROM orders o JOIN items i ON i.id = o.id WHERE i.id = 1",              # an alias
    "DELETE FROM o USING orders o JOIN items i ON i.id = o.id WHERE i.id = 1",
    "UPDATE orders_v SET id = 2 WHERE id = 1",                                        # through a view
])
def test_a_table_written_under_another_name_fires_its_triggers(sql: str) -> None:
    catalog = _mysql_catalog(("test", "orders", "t_up", "UPDATE", "CALL wipe()"),
                             ("test", "orders", "t_del", "DELETE", "CALL wipe()"))
    catalog.views = {("test", "orders_v"): "select `test`.`orders`.`id` AS `id` from `test`.`orders`"}
    assert SQLClassifier("mysql").classify(sql, "test", functions=catalog).cls == "procedural", sql


def test_a_postgres_view_written_through_fires_its_tables_triggers() -> None:
    fn = Proc("app", "wipe", "v", "f", "plpgsql", 0, 0, False, None, False)
    catalog = FunctionCatalog(user={"wipe": (fn,)}, live=True, views={("app", "vw"): "SELECT id FROM app.t"},
                              triggers={"t": (Trigger("app", "t", "tr", frozenset({"UPDATE"}),
                                                      function=("app", "wipe")),)})
    assert SQLClassifier("postgres").classify("UPDATE app.vw SET id = 2 WHERE id = 1",
                                              functions=catalog).cls == "procedural"


def test_a_mysql_body_with_executable_comments_is_not_read() -> None:
    catalog = _mysql_catalog(("test", "orders", "t", "INSERT", "BEGIN /*!50000 DELETE FROM canary; */ END"))
    assert SQLClassifier("mysql").classify("INSERT INTO orders VALUES (1)", "test", functions=catalog).cls == \
        "procedural"


def test_mysql_triggers_dbfw_cannot_see_fail_closed() -> None:
    catalog = _mysql_catalog()
    catalog.trigger_schemas = frozenset({"test"})
    c = SQLClassifier("mysql")
    assert c.classify("INSERT INTO orders VALUES (1)", "test", functions=catalog).cls == "write"
    result = c.classify("INSERT INTO other.orders VALUES (1)", "test", functions=catalog)
    assert result.cls == "procedural" and "TRIGGER privilege" in result.statements[0].reason
