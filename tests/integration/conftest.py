"""Fixtures for tests that need a PostgreSQL of their own (restartable, TLS, password-protected roles), and the
MySQL tests' tables."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import DbfwProcess, MyTarget, start_dbfw, write_config
from tests.integration.support import OwnedPostgres


@pytest.fixture(scope="session")
def owned() -> Iterator[OwnedPostgres]:
    pg = OwnedPostgres()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture(scope="session")
def dbfw_owned(owned: OwnedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    proc = start_dbfw(write_config(tmp_path_factory.mktemp("dbfw-owned"), owned.target))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def tables(mysql: MyTarget) -> Iterator[None]:
    """The MySQL tests' tables (customers, orders, a canary hostile statements aim at), made afresh per module."""
    conn = mysql.connect()
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dbfw_my_customers, dbfw_my_orders, dbfw_my_canary")
        cur.execute("CREATE TABLE dbfw_my_customers (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100), "
                    "card VARCHAR(32), note TEXT)")
        cur.execute("CREATE TABLE dbfw_my_orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(10,2), "
                    "created DATETIME)")
        cur.execute("CREATE TABLE dbfw_my_canary (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.executemany("INSERT INTO dbfw_my_customers VALUES (%s, %s, %s, %s, %s)",
                        [(i, f"name {i}", f"user{i}@example.com", f"4111-1111-1111-{i:04d}", None if i % 3 else "n")
                         for i in range(1, 21)])
        cur.executemany("INSERT INTO dbfw_my_orders VALUES (%s, %s, %s, %s)",
                        [(i, i % 20 + 1, i * 1.5, f"2026-01-{i % 28 + 1:02d} 10:00:00") for i in range(1, 51)])
        cur.executemany("INSERT INTO dbfw_my_canary VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
    conn.close()
    yield
    conn = mysql.connect()
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS dbfw_my_customers, dbfw_my_orders, dbfw_my_canary")
    conn.close()
