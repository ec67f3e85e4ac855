"""Triggers, read from the upstream's information_schema.triggers: a write is as risky as the triggers it
fires (their body classified like a statement, NEW.col and OLD.col as the row's values), and in a session
masking applies to, a write whose trigger reads masked values is refused. The server is checked after
every refusal: nothing the trigger would have done happened."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest
from mysql import connector as myconnector

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, MyTarget
from tests.integration.mysql_support import DEFAULT_RULES, MASKING, approve, canary, query, request_id, serving

pytestmark = pytest.mark.timeout(120)

TABLES = {
    "dbfw_my_trg_wipe": "(id INT PRIMARY KEY, v VARCHAR(50))",
    "dbfw_my_trg_touch": "(id INT PRIMARY KEY, v VARCHAR(50), n INT DEFAULT 0)",
    "dbfw_my_trg_flow": "(id INT PRIMARY KEY, v VARCHAR(50))",
    "dbfw_my_trg_people": "(id INT PRIMARY KEY, name VARCHAR(50), card VARCHAR(32))",
    "dbfw_my_trg_log": "(id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100))",
    "dbfw_my_trg_late": "(id INT PRIMARY KEY)",
    "dbfw_my_trg_chain": "(id INT PRIMARY KEY)",
    "dbfw_my_trg_stage": "(id INT PRIMARY KEY)",
    "dbfw_my_trg_viewed": "(id INT PRIMARY KEY)",
}
TRIGGERS = [
    # an INSERT that empties another table
    "CREATE TRIGGER dbfw_t_wipe BEFORE INSERT ON dbfw_my_trg_wipe FOR EACH ROW DELETE FROM dbfw_my_canary",
    # what most triggers are: the row's own columns, and a log of the row
    "CREATE TRIGGER dbfw_t_touch BEFORE UPDATE ON dbfw_my_trg_touch FOR EACH ROW "
    "SET NEW.v = UPPER(NEW.v), NEW.n = OLD.n + 1",
    "CREATE TRIGGER dbfw_t_log AFTER INSERT ON dbfw_my_trg_touch FOR EACH ROW BEGIN "
    "INSERT INTO dbfw_my_trg_log (v) VALUES (NEW.v); UPDATE dbfw_my_canary SET v = v WHERE id = NEW.id; END",
    # control flow: not read, so procedural
    "CREATE TRIGGER dbfw_t_flow AFTER DELETE ON dbfw_my_trg_flow FOR EACH ROW BEGIN "
    "IF OLD.id > 0 THEN UPDATE dbfw_my_canary SET v = 'flow'; END IF; END",
    # a row's values into the session, past masking
    "CREATE TRIGGER dbfw_t_keep AFTER UPDATE ON dbfw_my_trg_flow FOR EACH ROW SET @dbfw_kept = OLD.v",
    # masked values copied where they are not masked
    "CREATE TRIGGER dbfw_t_copy AFTER UPDATE ON dbfw_my_trg_people FOR EACH ROW "
    "INSERT INTO dbfw_my_trg_log (v) VALUES (OLD.card)",
    # ... through another trigger, and through a view
    "CREATE TRIGGER dbfw_t_chain AFTER INSERT ON dbfw_my_trg_chain FOR EACH ROW "
    "INSERT INTO dbfw_my_trg_stage VALUES (NEW.id)",
    "CREATE TRIGGER dbfw_t_stage AFTER INSERT ON dbfw_my_trg_stage FOR EACH ROW "
    "INSERT INTO dbfw_my_trg_log (v) SELECT card FROM dbfw_my_trg_people WHERE id = NEW.id",
    "CREATE TRIGGER dbfw_t_viewed AFTER INSERT ON dbfw_my_trg_viewed FOR EACH ROW "
    "INSERT INTO dbfw_my_trg_log (v) SELECT c FROM dbfw_my_trg_people_v WHERE id = NEW.id",
]


@pytest.fixture(scope="module")
def fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    direct = mysql.connect()
    with direct.cursor() as cur:
        for name, columns in TABLES.items():
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE TABLE {name} {columns}")
        cur.execute("CREATE OR REPLACE VIEW dbfw_my_trg_people_v AS SELECT id, card AS c FROM dbfw_my_trg_people")
        for trigger in TRIGGERS:
            cur.execute(trigger)
        cur.execute("INSERT INTO dbfw_my_trg_touch (id, v) VALUES (1, 'a')")
        cur.execute("INSERT INTO dbfw_my_trg_flow VALUES (1, 'secret-ish'), (2, 'b')")
        cur.execute("INSERT INTO dbfw_my_trg_people VALUES (1, 'ann', '4111-2222-3333-4444')")
        cur.execute("DELETE FROM dbfw_my_trg_log")
    with serving(tmp_path_factory.mktemp("dbfw-my-triggers"), mysql, rules=DEFAULT_RULES + MASKING) as proc:
        yield proc
    with direct.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
        cur.execute("DROP VIEW IF EXISTS dbfw_my_trg_people_v")
    direct.close()


def _connect(fw: DbfwProcess) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", autocommit=True)


def _direct(mysql: MyTarget, sql: str) -> list[tuple[object, ...]]:
    conn = mysql.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.mark.parametrize(("sql", "cls"), [
    ("INSERT INTO dbfw_my_trg_wipe VALUES (1, 'x')", "destructive_write"),
    ("INSERT INTO test.DBFW_MY_TRG_WIPE (id, v) SELECT 2, 'y'", "destructive_write"),
    ("REPLACE INTO dbfw_my_trg_wipe VALUES (3, 'z')", "destructive_write"),
    ("INSERT INTO dbfw_my_trg_wipe VALUES (4, 'w'); SELECT 1", "destructive_write"),
    ("DELETE FROM dbfw_my_trg_flow WHERE id = 2", "procedural"),
    ("UPDATE dbfw_my_trg_flow SET v = 'c' WHERE id = 2", "bulk_export"),
])
def test_a_write_is_as_risky_as_the_triggers_it_fires(fw: DbfwProcess, mysql: MyTarget, sql: str, cls: str) -> None:
    before = canary(mysql)
    with pytest.raises(pymysql.err.OperationalError) as info:
        query(fw, sql)
    assert info.value.args[0] == 1644 and cls in info.value.args[1], info.value.args[1]
    assert "dbfw_t_" in info.value.args[1]  # the message names the trigger
    assert canary(mysql) == before
    assert _direct(mysql, "SELECT count(*) FROM dbfw_my_trg_wipe") == [(0,)]
    assert _direct(mysql, "SELECT id, v FROM dbfw_my_trg_flow ORDER BY id") == [(1, "secret-ish"), (2, "b")]


def test_a_trigger_prepared_statement_is_judged_the_same(fw: DbfwProcess, mysql: MyTarget) -> None:
    conn = myconnector.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD,
                                   database="test", autocommit=True)
    before = canary(mysql)
    try:
        cur = conn.cursor(prepared=True)
        with pytest.raises(myconnector.Error) as info:
            cur.execute("INSERT INTO dbfw_my_trg_wipe VALUES (?, ?)", (5, "p"))
        assert info.value.errno == 1644 and "destructive_write" in str(info.value)
    finally:
        conn.close()
    assert canary(mysql) == before


def test_triggers_that_touch_only_their_row_or_log_it_keep_writes_everyday(fw: DbfwProcess, mysql: MyTarget) -> None:
    query(fw, "UPDATE dbfw_my_trg_touch SET v = 'bee' WHERE id = 1")
    query(fw, "INSERT INTO dbfw_my_trg_touch (id, v) VALUES (2, 'cat')")
    assert _direct(mysql, "SELECT id, v, n FROM dbfw_my_trg_touch ORDER BY id") == [(1, "BEE", 1), (2, "cat", 0)]
    assert _direct(mysql, "SELECT v FROM dbfw_my_trg_log") == [("cat",)]
    _direct(mysql, "DELETE FROM dbfw_my_trg_log")


def test_an_approval_runs_the_write_and_its_trigger_once(fw: DbfwProcess, mysql: MyTarget) -> None:
    sql = "INSERT INTO dbfw_my_trg_wipe VALUES (10, 'approved')"
    conn = _connect(fw)
    direct = mysql.connect()
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute(sql)
            approve(fw, request_id(info.value))
            cur.execute(sql)
        assert canary(mysql) == []  # the trigger ran, as approved
        assert _direct(mysql, "SELECT id FROM dbfw_my_trg_wipe") == [(10,)]
    finally:
        with direct.cursor() as cur:
            cur.execute("DELETE FROM dbfw_my_trg_wipe")
            cur.execute("DROP TRIGGER dbfw_t_wipe")  # (the canary is the module's: put it back)
            cur.executemany("INSERT INTO dbfw_my_canary VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
            cur.execute("CREATE TRIGGER dbfw_t_wipe BEFORE INSERT ON dbfw_my_trg_wipe FOR EACH ROW "
                        "DELETE FROM dbfw_my_canary")
        direct.close()
        conn.close()


def test_a_trigger_created_through_dbfw_is_known_at_once(fw: DbfwProcess, mysql: MyTarget) -> None:
    conn = _connect(fw)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO dbfw_my_trg_late VALUES (1)")  # no trigger yet: a write
            create = ("CREATE TRIGGER dbfw_t_late AFTER INSERT ON dbfw_my_trg_late FOR EACH ROW "
                      "DELETE FROM dbfw_my_canary")
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute(create)
            approve(fw, request_id(info.value))
            cur.execute(create)
            before = canary(mysql)
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute("INSERT INTO dbfw_my_trg_late VALUES (2)")
            assert "destructive_write" in info.value.args[1] and "dbfw_t_late" in info.value.args[1]
            assert canary(mysql) == before
    finally:
        conn.close()
    assert _direct(mysql, "SELECT id FROM dbfw_my_trg_late") == [(1,)]


def test_a_trigger_reading_masked_values_is_not_fired_by_a_masked_identity(fw: DbfwProcess, mysql: MyTarget) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        query(fw, "UPDATE dbfw_my_trg_people SET name = 'bob' WHERE id = 1")
    assert info.value.args[0] == 1644 and "dbfw_t_copy" in info.value.args[1] and "masked" in info.value.args[1]
    assert _direct(mysql, "SELECT name FROM dbfw_my_trg_people") == [("ann",)]
    assert _direct(mysql, "SELECT count(*) FROM dbfw_my_trg_log") == [(0,)]


@pytest.mark.parametrize("sql", ["INSERT INTO dbfw_my_trg_chain VALUES (1)",
                                 "INSERT INTO dbfw_my_trg_viewed VALUES (1)",
                                 "UPDATE dbfw_my_trg_people_v SET c = c WHERE id = 1"])
def test_a_trigger_reading_masked_values_further_on_is_not_fired_either(fw: DbfwProcess, mysql: MyTarget,
                                                                       sql: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        query(fw, sql)
    assert info.value.args[0] == 1644 and "masked" in info.value.args[1], info.value.args[1]
    assert _direct(mysql, "SELECT count(*) FROM dbfw_my_trg_log") == [(0,)]
