"""What the MySQL listener's tests share: the tables they read and attack, and the default rules."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import DbfwProcess, MyTarget

DEFAULT_RULES = (Path(__file__).resolve().parents[2] / "rules" / "default.yaml").read_text()


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
