#!/usr/bin/env python3
"""Capture byte transcripts of a real PostgreSQL server for the sans-I/O session core's unit tests.

    .venv/bin/python scripts/capture_pg_transcripts.py [--host 127.0.0.1] [--port 5432] [--user postgres]
        [--database test] [--out tests/unit/data/pg15_transcripts.json]

Connects straight to the server over a raw socket (trust authentication: AuthenticationOk comes at once)
and speaks the protocol by hand with ``dbfw.protocol.postgres.messages``. For each scenario it sends the
client's bytes of each round trip and records exactly the server's bytes that come back, up to the
expected number of ReadyForQuery messages (or, for the start of COPY FROM STDIN, up to CopyInResponse).

The output is a JSON list of {"name", "steps": [{"client": hex, "server": hex}, ...]}, one step per round
trip. Before each scenario the scratch table ``core_t(id int primary key, email text)`` is reset to the same
five rows (not recorded); it is dropped at the end. Table OIDs in RowDescription messages differ from one
capture to the next: the tests never assert them.

The pipelined scenario's middle statement is ``dbfw_refused_000000000000``, the shape of the text dbfw
sends in place of a refused statement: the tests put the token dbfw chose (same length) in its place.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dbfw.protocol.postgres import messages as m  # noqa: E402

PLACEHOLDER = "dbfw_refused_000000000000"
OUT = ROOT / "tests" / "unit" / "data" / "pg15_transcripts.json"
_HDR = struct.Struct("!cI")
ROWS = [(1, "ann@example.com"), (2, "bob@example.com"), (3, "cy@example.com"), (4, "dee@example.com"),
        (5, "eve@example.com")]


@dataclass
class Step:
    client: bytes
    ready: int = 1  # ReadyForQuery messages that end the server's answer
    until: bytes | None = None  # or: the message type that ends it (CopyInResponse)
    cancel_after: float | None = None  # send a CancelRequest on a second connection this long after sending


class Conn:
    def __init__(self, host: str, port: int, user: str, database: str):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=30)
        self.buf = b""
        self.sock.sendall(m.StartupMessage({"user": user, "database": database}).encode())
        self.pid = 0
        self.secret = b""
        for tag, payload in self._messages(ready=1, until=None):
            if tag == b"R":
                auth = m.Authentication.decode(payload)
                if auth.code != m.AUTH_OK:
                    raise SystemExit(f"the server asks for authentication {auth.code}: trust authentication needed")
            elif tag == b"K":
                key = m.BackendKeyData.decode(payload)
                self.pid, self.secret = key.pid, key.secret
            elif tag == b"E":
                raise SystemExit(f"the server refused the connection: {m.ErrorResponse.decode(payload).message}")
        if not self.secret:
            raise SystemExit("no BackendKeyData at start-up")

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise SystemExit("the server closed the connection")
        self.buf += data

    def _messages(self, ready: int, until: bytes | None) -> list[tuple[bytes, bytes]]:
        """Whole messages up to the ``ready``-th ReadyForQuery (or the first ``until`` message)."""
        out: list[tuple[bytes, bytes]] = []
        seen = 0
        while True:
            while len(self.buf) < 5:
                self._recv()
            tag, length = _HDR.unpack_from(self.buf)
            while len(self.buf) < 1 + length:
                self._recv()
            payload = self.buf[5:1 + length]
            self.buf = self.buf[1 + length:]
            out.append((tag, payload))
            if tag == b"Z":
                seen += 1
            if (until is not None and tag == until) or (until is None and seen >= ready):
                if self.buf:
                    raise SystemExit(f"the server sent more than expected: {self.buf[:40]!r}")
                return out

    def step(self, step: Step) -> bytes:
        timer = None
        if step.cancel_after is not None:
            timer = threading.Timer(step.cancel_after, self.cancel)
            timer.start()
        self.sock.sendall(step.client)
        try:
            messages = self._messages(step.ready, step.until)
        finally:
            if timer is not None:
                timer.join()
        return b"".join(_HDR.pack(tag, len(payload) + 4) + payload for tag, payload in messages)

    def cancel(self) -> None:
        with socket.create_connection((self.host, self.port), timeout=10) as s:
            s.sendall(m.CancelRequest(self.pid, self.secret).encode())
            s.recv(1)  # the server closes the connection when it has read the request

    def query(self, sql: str) -> bytes:
        return self.step(Step(q(sql)))

    def close(self) -> None:
        self.sock.sendall(m.Terminate().encode())
        self.sock.close()


def q(sql: str) -> bytes:
    return m.Query(sql).encode()


def extended(sql: str, *, portal: str = "", max_rows: int = 0, describe: bool = True) -> bytes:
    """Parse/Bind/Describe(P)/Execute/Sync of one statement."""
    return b"".join([
        m.Parse("", sql).encode(),
        m.Bind(portal, "").encode(),
        m.Describe("P", portal).encode() if describe else b"",
        m.Execute(portal, max_rows).encode(),
        m.Sync().encode(),
    ])


def scenarios() -> list[tuple[str, list[Step]]]:
    sync = m.Sync().encode()
    return [
        ("simple_query", [Step(q("SELECT id, email FROM core_t ORDER BY id"))]),
        ("multi_statement", [Step(q("SELECT 1; SELECT 2"))]),
        ("multi_statement_rows", [Step(q("SELECT 1; SELECT id, email FROM core_t ORDER BY id"))]),
        ("pipelined_refused_middle", [Step(b"".join([
            extended("SELECT id, email FROM core_t ORDER BY id LIMIT 2"),
            extended(PLACEHOLDER),
            extended("SELECT count(*) FROM core_t"),
        ]), ready=3)]),
        ("copy_out", [Step(q("COPY core_t TO STDOUT"))]),
        ("copy_in", [
            Step(q("COPY core_t FROM STDIN"), ready=0, until=b"G"),
            Step(m.CopyData(b"100\tzed@example.com\n").encode() + m.CopyData(b"101\tyan@example.com\n").encode()
                 + m.CopyDone().encode()),
        ]),
        ("cursor", [
            Step(q("BEGIN")),
            Step(q("DECLARE c CURSOR FOR SELECT id, email FROM core_t ORDER BY id")),
            Step(q("FETCH 2 FROM c")),
            Step(q("FETCH 2 FROM c")),
            Step(m.Execute("c", 1).encode() + sync),
            Step(q("CLOSE c")),
            Step(q("COMMIT")),
        ]),
        ("portal_suspended", [
            Step(q("BEGIN")),
            Step(m.Parse("", "SELECT g FROM generate_series(1, 10) g").encode() + m.Bind("p1", "").encode()
                 + m.Execute("p1", 4).encode() + sync),
            Step(m.Execute("p1", 4).encode() + sync),
            Step(m.Execute("p1", 4).encode() + sync),
            Step(q("COMMIT")),
        ]),
        ("error_in_transaction", [
            Step(q("BEGIN")),
            Step(q("SELECT 1/0")),
            Step(q("SELECT 1")),
            Step(q("ROLLBACK")),
        ]),
        ("cancelled", [Step(q("SELECT pg_sleep(10)"), cancel_after=0.5)]),
        ("parameter_status", [
            Step(q("SET standard_conforming_strings = off")),
            Step(q("RESET standard_conforming_strings")),
            Step(q("SET client_encoding = 'LATIN1'")),
            Step(q("RESET client_encoding")),
        ]),
    ]


def reset_table(conn: Conn) -> None:
    values = ", ".join(f"({i}, '{e}')" for i, e in ROWS)
    out = conn.query(f"TRUNCATE core_t; INSERT INTO core_t VALUES {values}")
    if b"E" in _tags(out):
        raise SystemExit(f"could not reset core_t: {out!r}")


def _tags(data: bytes) -> list[bytes]:
    tags, pos = [], 0
    while pos < len(data):
        tag, length = _HDR.unpack_from(data, pos)
        tags.append(tag)
        pos += 1 + length
    return tags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--database", default="test")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    conn = Conn(args.host, args.port, args.user, args.database)
    conn.query("SET client_min_messages = warning")  # no NOTICE from DROP ... IF EXISTS
    conn.query("DROP TABLE IF EXISTS core_t")
    conn.query("CREATE TABLE core_t (id int PRIMARY KEY, email text)")
    conn.query("RESET client_min_messages")
    out = []
    try:
        for name, steps in scenarios():
            reset_table(conn)
            recorded = []
            for step in steps:
                started = time.monotonic()
                server = conn.step(step)
                recorded.append({"client": step.client.hex(), "server": server.hex()})
                print(f"{name}: {' '.join(t.decode() for t in _tags(server))} ({time.monotonic() - started:.2f} s)",
                      file=sys.stderr)
            out.append({"name": name, "steps": recorded})
    finally:
        conn.query("DROP TABLE IF EXISTS core_t")
        conn.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(out)} scenarios to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
