"""What the MySQL listener's tests share: the tables they read and attack, and the default rules."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import DbfwProcess, MyTarget, start_dbfw, write_mysql_config

DEFAULT_RULES = (Path(__file__).resolve().parents[2] / "rules" / "default.yaml").read_text()
# The masking rules the MySQL tests add to the default rules.
MASKING = """
masking:
  - name: email
    columns: ["test.dbfw_my_customers.email"]
    mask: email
  - name: card
    columns: ["*.*.card"]
    mask: partial
    options: {keep_last: 4}
"""


def query(fw: DbfwProcess, sql: str) -> tuple[tuple[Any, ...], ...]:
    """One statement through dbfw as the agent, on a connection of its own: its rows."""
    import pymysql

    from tests.conftest import AGENT, AGENT_PASSWORD

    conn = pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def canary(mysql: MyTarget) -> list[tuple[Any, ...]]:
    conn = mysql.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT id, v FROM dbfw_my_canary ORDER BY id")
        rows = list(cur.fetchall())
    conn.close()
    return rows


def approve(fw: DbfwProcess, request_id: str, key: str = "alice-api-key") -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{fw.admin_port}/api/v1/approvals/{request_id}/approve",
                                 data=b"{}", method="POST", headers={"Authorization": f"Bearer {key}",
                                                                     "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def request_id(error: BaseException) -> str:
    text = str(error)
    start = text.index("req_")
    return text[start:start + 20]


@contextmanager
def serving(directory: Path, mysql: MyTarget, **config: Any) -> Iterator[DbfwProcess]:
    """dbfw with a MySQL listener in front of ``mysql`` (write_mysql_config's options), stopped after."""
    proc = start_dbfw(write_mysql_config(directory, mysql, **config))
    try:
        yield proc
    finally:
        proc.stop()
