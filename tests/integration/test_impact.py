"""What a statement waiting for approval would do, estimated when the request is made: the planner's rows
for a DELETE or UPDATE, what a DROP takes with it. Checked against seeded tables whose row counts are known,
through the real proxy, the agent's DBF01 detail and the admin API; the statement itself never runs."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pymysql
import pytest

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, MyTarget, PgTarget, running_dbfw
from tests.integration.mysql_support import DEFAULT_RULES, serving
from tests.integration.test_approvals import RULES, _api, request_id_of

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pg_schema(pg: PgTarget) -> Iterator[str]:
    name = f"impact_{uuid4().hex[:8]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(f"CREATE TABLE {name}.items (id int PRIMARY KEY, v text)")
        conn.execute(f"INSERT INTO {name}.items SELECT g, 'v' || g FROM generate_series(1, 1000) g")
        conn.execute(f"CREATE TABLE {name}.refs (id int PRIMARY KEY, item int REFERENCES {name}.items (id))")
        conn.execute(f"CREATE VIEW {name}.items_v AS SELECT id FROM {name}.items")
        conn.execute(f"ANALYZE {name}.items")
    yield name
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(scope="module")
def fw(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with running_dbfw(tmp_path_factory.mktemp("impact"), pg, RULES) as proc:
        yield proc


def _refused(fw: DbfwProcess, sql: str) -> psycopg.Error:
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(sql, prepare=False)
    assert info.value.sqlstate == "DBF01", info.value
    return info.value


def _items(pg: PgTarget, schema: str) -> int:
    with psycopg.connect(pg.conninfo()) as conn:
        return conn.execute(f"SELECT count(*) FROM {schema}.items").fetchone()[0]  # type: ignore[index]


def test_a_delete_shows_the_rows_it_would_remove(fw: DbfwProcess, pg: PgTarget, pg_schema: str) -> None:
    err = _refused(fw, f"DELETE FROM {pg_schema}.items WHERE v IS NOT NULL")
    assert "about 1,000 rows" in str(err.diag.message_detail), err.diag.message_detail
    status, body = _api(fw, "GET", f"/api/v1/approvals/{request_id_of(err)}", "alice-api-key")
    assert status == 200 and body["impact"]["estimated_rows"] == 1000, body
    assert _items(pg, pg_schema) == 1000  # estimated, never run


def test_a_drop_shows_what_the_table_holds_and_what_depends_on_it(fw: DbfwProcess, pg: PgTarget,
                                                                  pg_schema: str) -> None:
    err = _refused(fw, f"DROP TABLE {pg_schema}.items CASCADE")
    status, body = _api(fw, "GET", f"/api/v1/approvals/{request_id_of(err)}", "alice-api-key")
    assert status == 200, body
    (obj,) = body["impact"]["objects"]
    assert obj["name"] == f"{pg_schema}.items" and obj["kind"] == "table" and obj["estimated_rows"] == 1000
    assert obj["bytes"] > 0
    assert f"view {pg_schema}.items_v" in obj["dependents"]
    assert any(d.startswith("foreign key") and f"{pg_schema}.refs" in d for d in obj["dependents"])
    assert _items(pg, pg_schema) == 1000


def test_a_statement_the_server_cannot_plan_is_requested_all_the_same(fw: DbfwProcess, pg_schema: str) -> None:
    err = _refused(fw, f"DELETE FROM {pg_schema}.items WHERE no_such_column > 1")
    status, body = _api(fw, "GET", f"/api/v1/approvals/{request_id_of(err)}", "alice-api-key")
    assert status == 200 and "not estimated" in body["impact"]["note"], body


@pytest.fixture(scope="module")
def my_fw(mysql: MyTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dbfw_my_impact")
        cur.execute("CREATE TABLE dbfw_my_impact (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany("INSERT INTO dbfw_my_impact VALUES (%s, %s)", [(i, f"v{i}") for i in range(1, 201)])
        cur.execute("ANALYZE TABLE dbfw_my_impact")
        cur.fetchall()
    with serving(tmp_path_factory.mktemp("dbfw-my-impact"), mysql, rules=DEFAULT_RULES) as proc:
        yield proc
    with direct.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dbfw_my_impact")
    direct.close()


def test_mysql_a_delete_and_a_drop_show_their_impact(my_fw: DbfwProcess, mysql: MyTarget) -> None:
    conn = pymysql.connect(host="127.0.0.1", port=my_fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", autocommit=True)
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as info:
            cur.execute("DELETE FROM dbfw_my_impact WHERE v IS NOT NULL")
        assert "about 200 rows" in info.value.args[1], info.value.args[1]
        with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as info:
            cur.execute("DROP TABLE dbfw_my_impact")
        assert "test.dbfw_my_impact (about 200 rows" in info.value.args[1], info.value.args[1]
    finally:
        conn.close()
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT count(*) FROM dbfw_my_impact")
        assert cur.fetchone() == (200,)
    direct.close()
