"""The MySQL corpora (``mysql_corpus.py``) through the wire, under the project's default rules: every
everyday statement runs, and no hostile one reaches the server — checked in the server's own general
log, and on the tables afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, MyTarget
from tests.integration.mysql_corpus import EVERYDAY, HOSTILE, NUMERIC_KEY_WRITES
from tests.integration.mysql_support import DEFAULT_RULES, canary, serving

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def guarded(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with serving(tmp_path_factory.mktemp("dbfw-my-corpus"), mysql, rules=DEFAULT_RULES) as proc:
        yield proc


def through(fw: DbfwProcess) -> Any:
    return pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS)


def test_the_corpora_are_large_and_distinct() -> None:
    assert len(set(EVERYDAY)) == len(EVERYDAY) >= 60
    assert len(set(HOSTILE)) == len(HOSTILE) >= 100
    assert not set(EVERYDAY) & set(HOSTILE)


def test_every_everyday_statement_runs(guarded: DbfwProcess) -> None:
    conn = through(guarded)
    failures = []
    try:
        for sql in EVERYDAY + NUMERIC_KEY_WRITES:  # the latter: the key columns are numbers in the catalog
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    while cur.nextset():
                        pass
            except pymysql.MySQLError as e:
                failures.append((sql, e.args))
    finally:
        conn.close()
    assert failures == []


def test_no_hostile_statement_reaches_the_server(guarded: DbfwProcess, mysql: MyTarget) -> None:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.general_log, @@GLOBAL.log_output")
        general_log, log_output = cur.fetchone()
        cur.execute("SET GLOBAL log_output = 'TABLE'")
        cur.execute("TRUNCATE TABLE mysql.general_log")
        cur.execute("SET GLOBAL general_log = 1")
    try:
        conn = through(guarded)
        refused = []
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                (thread,) = cur.fetchone()
            for sql in HOSTILE:
                with conn.cursor() as cur:
                    try:
                        cur.execute(sql)
                    except pymysql.MySQLError as e:
                        refused.append((sql, e.args[0], e.args[1][:5]))
                        continue
                pytest.fail(f"a hostile statement ran: {sql!r}")
        finally:
            conn.close()
        with direct.cursor() as cur:
            cur.execute("SET GLOBAL general_log = 0")
            cur.execute("SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log WHERE thread_id = %s "
                        "AND command_type = 'Query'", (thread,))
            reached = {row[0] for row in cur.fetchall()}
    finally:
        with direct.cursor() as cur:
            cur.execute("SET GLOBAL general_log = 0")
            cur.execute("SET GLOBAL log_output = %s", (log_output,))
            cur.execute(f"SET GLOBAL general_log = {int(general_log)}")
        direct.close()
    assert len(refused) == len(HOSTILE)
    assert all(errno == 1644 and text == "dbfw:" for _, errno, text in refused), [
        r for r in refused if r[1] != 1644 or r[2] != "dbfw:"]
    assert "SELECT CONNECTION_ID()" in reached  # the log does see this session's statements
    assert reached & set(HOSTILE) == set()
    assert canary(mysql) == [(1, "a"), (2, "b"), (3, "c")]
    with mysql.connect().cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'dbfw_my_%'")
        assert {r[0] for r in cur.fetchall()} >= {"dbfw_my_customers", "dbfw_my_orders", "dbfw_my_canary"}


