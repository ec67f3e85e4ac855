"""LOAD DATA LOCAL INFILE through the MySQL listener: a `bulk_import` that needs an approval under the
default rules; once allowed, the server may ask the client for the one file the statement names, which
the client sends through dbfw; the rows arrive once. The refusal of a request for any other file is in
the core's unit tests (only a misbehaving server sends one)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, MyTarget
from tests.integration.mysql_support import DEFAULT_RULES, approve, request_id, serving

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def imports(mysql: MyTarget) -> Iterator[None]:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dbfw_my_import")
        cur.execute("CREATE TABLE dbfw_my_import (id INT PRIMARY KEY, name VARCHAR(50))")
    yield
    with direct.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dbfw_my_import")
    direct.close()


def _rows(mysql: MyTarget) -> list[tuple[object, ...]]:
    direct = mysql.connect()
    with direct.cursor() as cur:
        cur.execute("SELECT id, name FROM dbfw_my_import ORDER BY id")
        rows = list(cur.fetchall())
        cur.execute("DELETE FROM dbfw_my_import")
    direct.close()
    return rows


def _client(fw: DbfwProcess, **kw: object) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", autocommit=True, **kw)


@pytest.fixture(scope="module")
def open_fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with serving(tmp_path_factory.mktemp("dbfw-my-infile"), mysql) as proc:
        yield proc


@pytest.fixture(scope="module")
def guarded(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with serving(tmp_path_factory.mktemp("dbfw-my-infile-default"), mysql,
                                         rules=DEFAULT_RULES) as proc:
        yield proc


def _csv(directory: Path, name: str, n: int) -> Path:
    path = directory / name
    path.write_text("".join(f"{i},name {i}\n" for i in range(1, n + 1)))
    return path


def _literal(path: Path) -> str:
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_the_file_the_statement_names_is_sent_through_dbfw(open_fw: DbfwProcess, imports: None, mysql: MyTarget,
                                                           tmp_path: Path) -> None:
    # 50,000 rows (about 700 KB, many packets), and a file name with a quote and a space in it.
    path = _csv(tmp_path, "it's a file.csv", 50_000)
    conn = _client(open_fw, local_infile=True)
    try:
        with conn.cursor() as cur:
            loaded = cur.execute(f"LOAD DATA LOCAL INFILE {_literal(path)} INTO TABLE dbfw_my_import "
                                 "FIELDS TERMINATED BY ','")
            assert loaded == 50_000
            cur.execute("SELECT COUNT(*) FROM dbfw_my_import")  # the session goes on
            assert cur.fetchone() == (50_000,)
    finally:
        conn.close()
    rows = _rows(mysql)
    assert len(rows) == 50_000 and rows[0] == (1, "name 1") and rows[-1] == (50_000, "name 50000")


def test_a_client_that_does_not_allow_local_files_gets_the_servers_refusal(open_fw: DbfwProcess, imports: None,
                                                                          mysql: MyTarget, tmp_path: Path) -> None:
    path = _csv(tmp_path, "rows.csv", 3)
    conn = _client(open_fw)
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.MySQLError) as info:
                cur.execute(f"LOAD DATA LOCAL INFILE {_literal(path)} INTO TABLE dbfw_my_import "
                            "FIELDS TERMINATED BY ','")
            assert info.value.args[0] in (1148, 4166)  # the used command is not allowed / LOCAL INFILE disabled
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()
    assert _rows(mysql) == []


def test_a_load_needs_an_approval_and_runs_once(guarded: DbfwProcess, imports: None, mysql: MyTarget,
                                                tmp_path: Path) -> None:
    path = _csv(tmp_path, "approved.csv", 5)
    sql = f"LOAD DATA LOCAL INFILE {_literal(path)} INTO TABLE dbfw_my_import FIELDS TERMINATED BY ','"
    conn = _client(guarded, local_infile=True)
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.OperationalError) as first:
                cur.execute(sql)
            assert first.value.args[0] == 1644 and "bulk_import" in first.value.args[1]
            assert _rows(mysql) == []
            rid = request_id(first.value)
            assert approve(guarded, rid)["status"] == "approved"
            assert cur.execute(sql) == 5
            with pytest.raises(pymysql.err.OperationalError) as again:
                cur.execute(sql)  # one approval, one load
            assert request_id(again.value) != rid
    finally:
        conn.close()
    assert _rows(mysql) == [(i, f"name {i}") for i in range(1, 6)]
