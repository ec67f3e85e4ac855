"""Wires listeners, the admin API and the firewall together; starts, reloads and drains."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from . import __version__ as VERSION
from . import log, metrics
from .approvals.impact import estimate_postgres
from .approvals.notify import Notifier
from .approvals.service import ApprovalService, ApprovalSettings
from .audit.recorder import Recorder
from .config import ConfigError, Listener, Settings, load_settings
from .context import StatementContext
from .firewall import Firewall
from .identity import Identities
from .masking.catalog import Catalog, CatalogCache
from .masking.service import Masking, masking_key
from .policy.rules import RuleSet, load_rules
from .protocol.common import Runtime
from .protocol.mysql.catalog import MyCatalogCache
from .protocol.mysql.impact import estimate_mysql
from .protocol.mysql.session import MySession
from .protocol.postgres.session import PgSession
from .sideconn import SyntaxChecker
from .sql.classify import LEX_BACKSLASH_ESCAPES, Classification
from .sql.offload import ClassifyPool
from .store.base import Store, StoreError
from .store.factory import open_store


def server_tls_context(listener: Listener) -> ssl.SSLContext | None:
    if listener.tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(listener.tls.cert_file), str(listener.tls.key_file))
    return ctx


class Server:
    def __init__(self, settings: Settings, config_path: Path | None = None, firewall: Firewall | None = None):
        self.config_path = config_path
        if firewall is None:
            rules = load_rules(settings.rules) if settings.rules is not None else None
            if rules is None:
                log.warning("rules.none", note="no rules configured: every statement needs an approval")
            firewall = Firewall(rules)
        self.catalogs = CatalogCache()
        self.my_catalogs = MyCatalogCache()
        self._masking_key = masking_key(settings.masking_key)
        if firewall.masking is None:
            firewall.masking = self._new_masking(firewall.rules)
        self.syntax = SyntaxChecker()
        self.classify_pool = ClassifyPool(settings.classification.budget)
        self.firewall = firewall
        if firewall.catalogs is None:
            firewall.catalogs = self._catalog_for
            firewall.invalidate_catalogs = self._invalidate_catalogs
            firewall.syntax_check = self._syntax_check
            firewall.classify_pool = self.classify_pool
            firewall.offload_size = settings.classification.offload_size
            for classifier in firewall.classifiers.values():
                classifier.max_size = settings.classification.max_size
        self.rt = Runtime(settings, Identities.from_settings(settings), firewall)
        metrics.callbacks.cache_stats = self._cache_stats
        metrics.init_series([lst.name for lst in settings.listeners])
        metrics.callbacks.masked_counts = lambda: dict(self.firewall.masking.counts) \
            if self.firewall.masking is not None else {}
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._admin: _AdminServer | None = None
        self.bound: dict[str, tuple[str, int]] = {}  # listener name -> actual address (port 0 resolved)
        self.store: Store | None = None
        self.approvals: ApprovalService | None = None
        self.recorder: Recorder | None = None

    def _cache_stats(self) -> dict[str, int]:
        classifiers = self.firewall.classifiers
        return {"hit": sum(c.hits for c in classifiers.values()),
                "shape_hit": sum(c.shape_hits for c in classifiers.values()),
                "miss": sum(c.misses for c in classifiers.values())}

    def _new_masking(self, rules: RuleSet) -> Masking | None:
        if not rules.masking:
            return None
        masking = Masking(rules.masking, self._masking_key, self._catalog_for)
        masking.on_invalidate = lambda database: self.catalogs.invalidate(database)
        return masking

    async def _catalog_for(self, ctx: StatementContext) -> Catalog:
        listener = next(lst for lst in self.settings.listeners if lst.name == ctx.listener)
        if listener.protocol == "mysql":
            return await self.my_catalogs.get(listener.upstream, self.settings.upstreams[listener.upstream],
                                              ctx.database)
        return await self.catalogs.get(listener.upstream, self.settings.upstreams[listener.upstream], ctx.database)

    async def _impact(self, ctx: StatementContext, classification: Classification) -> dict[str, Any]:
        """What a statement waiting for approval would do (dbfw.approvals.impact)."""
        listener = next(lst for lst in self.settings.listeners if lst.name == ctx.listener)
        up = self.settings.upstreams[listener.upstream]
        if listener.protocol == "mysql":
            return await estimate_mysql(up, ctx.database, classification)
        return await estimate_postgres(up, ctx.database, classification)

    def _invalidate_catalogs(self, database: str) -> None:
        self.catalogs.invalidate(database)
        self.my_catalogs.invalidate(database)

    async def _syntax_check(self, ctx: StatementContext, sql: str) -> object:
        listener = next(lst for lst in self.settings.listeners if lst.name == ctx.listener)
        return await self.syntax.check(listener.upstream, self.settings.upstreams[listener.upstream], ctx.database,
                                       sql, not ctx.lex & LEX_BACKSLASH_ESCAPES)

    @property
    def settings(self) -> Settings:
        return self.rt.settings

    @property
    def admin_address(self) -> tuple[str, int] | None:
        """Where the admin API listens (port 0 in the config resolved), once started."""
        return self._admin.address if self._admin is not None else None

    async def _open_store(self) -> None:
        base = self.config_path.resolve().parent if self.config_path else None
        self.store = open_store(self.settings.storage, base)
        try:
            await self.store.open()
        except StoreError as e:
            raise RuntimeError(str(e)) from None
        notify = self.settings.notify
        admin = self.settings.admin
        public = self.settings.approvals.public_url or (f"http://{admin.listen}" if admin else "")
        self.approvals = ApprovalService(self.store, ApprovalSettings(self.settings.approvals.pending_ttl, public),
                                         Notifier(notify.webhook_url, slack_url=notify.slack_webhook_url)
                                         if notify.webhook_url or notify.slack_webhook_url else None)
        self.approvals.impact = self._impact
        self.approvals.start()
        if self.settings.audit.record:
            await self.store.start_writer()
            self.recorder = Recorder(self.store, self.settings.audit.redact_literals)
            self.recorder.start()
            self.firewall.recorder = self.recorder
            self.rt.recorder = self.recorder
        metrics.callbacks.pending = lambda: self.approvals.pending if self.approvals else 0
        if self.firewall.approvals is None:
            self.firewall.approvals = self.approvals
        log.event("store.open", backend=self.settings.storage.split("://")[0])

    async def start(self) -> None:
        await self._open_store()
        for listener in self.settings.listeners:
            tls = server_tls_context(listener)
            host, port = listener.address

            def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, _l: Listener = listener,
                        _t: ssl.SSLContext | None = tls) -> None:
                self._accept(_l, _t, r, w)

            srv = await asyncio.start_server(handler, host, port, backlog=1024, limit=1 << 20)
            self._servers.append(srv)
            sock = srv.sockets[0].getsockname()
            self.bound[listener.name] = (sock[0], sock[1])
            log.event("listener.start", listener=listener.name, protocol=listener.protocol,
                      address=f"{sock[0]}:{sock[1]}", upstream=listener.upstream, tls=tls is not None)
        if self.settings.admin is not None:
            self._admin = _AdminServer(self)
            await self._admin.start()

    def _accept(self, listener: Listener, tls: ssl.SSLContext | None, r: asyncio.StreamReader,
                w: asyncio.StreamWriter) -> None:
        if self.rt.draining:
            w.close()
            return
        session_class = MySession if listener.protocol == "mysql" else PgSession
        session = session_class(self.rt, listener, r, w, tls)
        task = asyncio.get_running_loop().create_task(session.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def reload(self) -> bool:
        """Re-read the config file (SIGHUP): identities and rules change; listeners do not."""
        return not self.reload_with_problems()

    def reload_with_problems(self) -> list[str]:
        if self.config_path is None:
            return ["dbfw was started without a config file to reload from"]
        try:
            settings = load_settings(self.config_path)
            rules = load_rules(settings.rules) if settings.rules is not None else RuleSet.fail_closed()
        except ConfigError as e:
            for p in e.problems:
                log.warning("reload.failed", problem=str(p))
            log.warning("reload.kept_old", note="the running config and rules stay in force")
            metrics.rules_reloads.labels("failed").inc()
            return [str(p) for p in e.problems]
        self.firewall.reload(rules, self._new_masking(rules))
        if [(lst.name, lst.listen, lst.protocol) for lst in settings.listeners] != [
                (lst.name, lst.listen, lst.protocol) for lst in self.settings.listeners]:
            log.warning("reload.listeners_unchanged", note="listener changes need a restart")
            settings = settings.model_copy(update={"listeners": self.settings.listeners})
        self.rt.identities = Identities.from_settings(settings, self.rt.identities)
        self.rt.settings = settings
        for session in list(self.rt.sessions.values()):
            session.rules_changed()  # statements prepared before are decided again when bound
        log.event("reload.ok", identities=len(self.rt.identities), policies=len(rules.policies))
        metrics.rules_reloads.labels("ok").inc()
        return []

    def stop(self) -> None:
        self._stop.set()

    async def serve_until_stopped(self) -> None:
        await self._stop.wait()
        await self.drain(self.settings.shutdown_grace)

    async def drain(self, grace: float) -> None:
        """Stop accepting, let statements in flight finish within ``grace`` seconds, then close."""
        started = time.monotonic()
        self.rt.draining = True
        for srv in self._servers:
            srv.close()
        log.event("shutdown.draining", sessions=len(self.rt.sessions), grace=grace)
        for session in list(self.rt.sessions.values()):
            session.request_drain()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for session in list(self.rt.sessions.values()):
                session.force_close()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._admin is not None:
            await self._admin.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        if self.approvals is not None:
            await self.approvals.stop()
        if self.store is not None:
            await self.store.close()
        with contextlib.suppress(Exception):
            await self.syntax.close()
        self.classify_pool.close()
        log.event("shutdown.done", seconds=round(time.monotonic() - started, 3))


class _AdminServer:
    """The admin HTTP API, served by uvicorn inside dbfw's own event loop."""

    def __init__(self, server: Server):
        from .admin.app import build_app

        admin = server.settings.admin
        assert admin is not None
        host, port = admin.address
        config = uvicorn.Config(build_app(server), host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")
        self.uvicorn = _EmbeddedUvicorn(config)
        self.task: asyncio.Task[None] | None = None
        self.address = (host, port)

    async def _serve(self) -> None:
        try:
            await self.uvicorn.serve()
        except SystemExit:  # uvicorn exits the process when it cannot bind; dbfw reports it instead
            raise RuntimeError(f"cannot start the admin API on {self.address[0]}:{self.address[1]} "
                               "(is the port taken?)") from None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._serve())
        while not self.uvicorn.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("the admin API did not start")
            await asyncio.sleep(0.01)
        for srv in self.uvicorn.servers:
            sock = srv.sockets[0].getsockname()
            self.address = (sock[0], sock[1])
        log.event("admin.start", address=f"{self.address[0]}:{self.address[1]}")

    async def stop(self) -> None:
        self.uvicorn.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 5)


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # dbfw owns SIGTERM/SIGINT/SIGHUP; uvicorn must not replace those handlers.
        yield


def _tune_gc() -> None:
    """What is loaded at start (modules, rules, parsers) lives as long as the process: moved out of the
    collector's sight, so a full collection does not walk it again and again. A relayed message makes
    a handful of short-lived objects; collecting the young generation every 10,000 allocations instead
    of every 700 took ~15% off the CPU per statement under pgbench."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def run(settings: Settings, config_path: Path | None) -> None:
    server = Server(settings, config_path)
    await server.start()
    server.install_signal_handlers()
    _tune_gc()
    log.event("dbfw.ready", version=VERSION, listeners=len(server.bound))
    await server.serve_until_stopped()
