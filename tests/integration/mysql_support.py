"""What the MySQL listener's tests share: the tables they read and attack, and the default rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import MyTarget

DEFAULT_RULES = (Path(__file__).resolve().parents[2] / "rules" / "default.yaml").read_text()


def canary(mysql: MyTarget) -> list[tuple[Any, ...]]:
    conn = mysql.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT id, v FROM dbfw_my_canary ORDER BY id")
        rows = list(cur.fetchall())
    conn.close()
    return rows
