#!/usr/bin/env python3
"""Capture byte transcripts from a real MariaDB/MySQL for the MySQL core's unit tests.

    .venv/bin/python scripts/capture_mariadb_transcripts.py [host] [port] [user]

Logs in with dbfw's own upstream code (both with and without CLIENT_DEPRECATE_EOF), sends each
scenario's commands and keeps the server's bytes that answered each one. Writes
tests/unit/data/mariadb_transcripts.json. The server's answer is read until it has been quiet for a
moment: this is a capture tool, not a test.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

from dbfw.config import Upstream, UpstreamTLS
from dbfw.protocol.mysql import packets as p
from dbfw.protocol.mysql.upstream import connect

OUT = Path(__file__).resolve().parent.parent / "tests" / "unit" / "data" / "mariadb_transcripts.json"
SETUP = ["DROP TABLE IF EXISTS dbfw_tx", "CREATE TABLE dbfw_tx (id INT PRIMARY KEY, email VARCHAR(100), n INT, "
         "d DATETIME)", "INSERT INTO dbfw_tx VALUES (1, 'a@example.com', 10, '2026-01-01 10:00:00'), "
         "(2, NULL, 20, NULL), (3, 'c@example.com', NULL, '2026-03-03 03:03:03')"]


def query(sql: str) -> bytes:
    return bytes((p.Command.QUERY,)) + sql.encode()


def prepare(sql: str) -> bytes:
    return bytes((p.Command.STMT_PREPARE,)) + sql.encode()


def execute(stmt_id: int, params: list[int]) -> bytes:
    body = bytes((p.Command.STMT_EXECUTE,)) + stmt_id.to_bytes(4, "little") + b"\x00" + (1).to_bytes(4, "little")
    if params:
        body += bytes((len(params) + 7) // 8) + b"\x01" + b"\x03\x00" * len(params)
        body += b"".join(v.to_bytes(4, "little", signed=True) for v in params)
    return body


def execute_prepared(previous: bytes) -> bytes:
    """COM_STMT_EXECUTE of the statement the previous answer (COM_STMT_PREPARE's OK) prepared."""
    reader = p.PacketReader()
    reader.feed(previous)
    ok = next(reader.packets()).payload
    return execute(int.from_bytes(ok[1:5], "little"), [0])


SCENARIOS: dict[str, list[bytes | Callable[[bytes], bytes]]] = {
    "select": [query("SELECT id, email, n, d FROM dbfw_tx ORDER BY id")],
    "empty": [query("SELECT id FROM dbfw_tx WHERE id < 0")],
    "ok": [query("UPDATE dbfw_tx SET n = n WHERE id = 1")],
    "error": [query("SELECT * FROM no_such_table_dbfw")],
    "multi": [query("SELECT 1; UPDATE dbfw_tx SET n = n WHERE id = 2; SELECT email FROM dbfw_tx WHERE id = 3")],
    "multi_error": [query("SELECT 1; SELECT * FROM no_such_table_dbfw; SELECT 2")],
    "prepared": [prepare("SELECT id, email, n, d FROM dbfw_tx WHERE id > ?"), execute_prepared],
    "ping": [bytes((p.Command.PING,))],
    "init_db": [bytes((p.Command.INIT_DB,)) + b"test"],
}


async def capture(up: Upstream, deprecate_eof: bool) -> list[dict[str, object]]:
    caps = int(p.SUPPORTED | p.Capability.MULTI_STATEMENTS)
    if not deprecate_eof:
        caps &= ~p.Capability.DEPRECATE_EOF
    out = []
    for name, commands in SCENARIOS.items():
        conn = await connect(up, caps, "test", p.UTF8MB4_GENERAL_CI)
        steps: list[dict[str, str]] = []
        for item in commands:
            command = item if isinstance(item, bytes) else item(bytes.fromhex(steps[-1]["server"]))
            conn.writer.write(p.frame(command, 0)[0])
            await conn.writer.drain()
            data = b""
            while True:
                try:
                    chunk = await asyncio.wait_for(conn.reader.read(1 << 20), 0.3)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
            steps.append({"client": command.hex(), "server": data.hex()})
        conn.writer.close()
        out.append({"name": name, "deprecate_eof": deprecate_eof, "capabilities": conn.capabilities,
                    "steps": steps})
    return out


async def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 3306
    user = sys.argv[3] if len(sys.argv) > 3 else "root"
    up = Upstream(host=host, port=port, user=user, tls=UpstreamTLS(mode="disable"))
    conn = await connect(up, int(p.SUPPORTED), "test", p.UTF8MB4_GENERAL_CI)
    for sql in SETUP:
        conn.writer.write(p.frame(query(sql), 0)[0])
        await asyncio.wait_for(conn.reader.read(1 << 16), 5)
    conn.writer.close()
    transcripts = await capture(up, True) + await capture(up, False)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"server": conn.handshake.server_version, "transcripts": transcripts}, indent=1))
    print(f"wrote {len(transcripts)} transcripts to {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
