"""Opening a PostgreSQL session: start-up, the client's authentication as a dbfw identity, and the
connection to the upstream with dbfw's own credential. What comes out is the session core the relay
runs (see ``session.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import ssl

from ... import log, metrics
from ...config import Listener
from ...context import StatementContext
from ...identity import Principal
from ...scram import AuthError, ScramServer, ScramVerifier, check_md5
from ...sql.pglex import unsafe_encoding
from ...sql.settings import SettingNotAllowed, check_startup_settings, parse_libpq_options
from ..common import Runtime, Session
from . import messages as m
from .core import EndReason, PgCore, lex_mode
from .results import Responses
from .upstream import UpstreamConnection, UpstreamError, connect

AUTH_TIMEOUT = 60.0


class ClientGone(Exception):
    pass


def _startup_path(params: dict[str, str]) -> str:
    """The search_path a session starts with, when the client set one (a start-up parameter or -c option)."""
    value = next((v for k, v in params.items() if k.lower() == "search_path"), None)
    if "options" in params:
        try:
            value = next((v for k, v in parse_libpq_options(params["options"]) if k.lower() == "search_path"), value)
        except ValueError:
            pass
    return "" if value is None else f"startup:{value}"


def _is_true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "on", "yes", "database")


class Opening:
    """Everything before the relay, for one client connection."""

    def __init__(self, rt: Runtime, listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tls: ssl.SSLContext | None, session: Session, client_addr: str, frames: m.FrameReader):
        self.rt, self.listener, self.reader, self.writer, self.tls_context = rt, listener, reader, writer, tls
        self.session, self.session_id, self.client_addr, self.frames = session, session.session_id, client_addr, frames
        self.tls_active = False
        self.upstream: UpstreamConnection | None = None
        self.cancel_key: tuple[int, bytes] | None = None
        self.ctx: StatementContext | None = None
        self.core: PgCore | None = None
        self.crowded = False  # the listener has more connections than its max_connections

    async def open(self) -> EndReason | None:
        """Start-up, authentication, the upstream: None when the relay may start, else why the session ends."""
        startup = await self._startup()
        if startup is None:
            return EndReason.STARTUP_ONLY
        if self.crowded:  # refused before any authentication work
            log.warning("session.too_many_connections", listener=self.listener.name, client=self.client_addr)
            await self._fatal("53300", f"dbfw: sorry, too many clients already on listener {self.listener.name}",
                              hint="try again later; the operator sets listeners[].max_connections")
            return EndReason.TOO_MANY_CONNECTIONS
        principal = await self._authenticate(startup)
        if principal is None:
            return EndReason.AUTH_FAILED
        if not await self._connect_upstream(principal, startup):
            return EndReason.UPSTREAM_UNAVAILABLE
        return None

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _fatal(self, sqlstate: str, message: str, detail: str | None = None, hint: str | None = None) -> None:
        await self._send(m.ErrorResponse.make("FATAL", sqlstate, message, detail, hint).encode())

    async def fatal_quietly(self, sqlstate: str, message: str, detail: str | None = None) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._fatal(sqlstate, message, detail), 5)

    async def _read_frame(self) -> m.Frame:
        """The next whole client message during start-up and authentication."""
        while True:
            for frame in self.frames.frames():
                if frame.streamed:
                    raise m.ProtocolError("oversized message during authentication")
                return frame
            data = await self.reader.read(65536)
            if not data:
                raise ClientGone()
            self.frames.feed(data)

    # --- start-up ---------------------------------------------------------------------------------

    async def _startup(self) -> m.StartupMessage | None:
        async with asyncio.timeout(AUTH_TIMEOUT):
            while True:
                frame = await self._read_frame()
                msg = m.decode_startup(frame.payload)
                if isinstance(msg, m.SSLRequest):
                    if self.tls_active:
                        raise m.ProtocolError("SSLRequest over an encrypted connection")
                    if self.tls_context is None:
                        await self._send(b"N")
                        continue
                    # Bytes sent after SSLRequest but before the handshake would bypass TLS.
                    if self.frames.buffered or len(getattr(self.reader, "_buffer", b"")):
                        raise m.ProtocolError("unencrypted data after SSLRequest")
                    await self._send(b"S")
                    await self.writer.start_tls(self.tls_context)
                    self.tls_active = True
                elif isinstance(msg, m.GSSENCRequest):
                    await self._send(b"N")
                elif isinstance(msg, m.CancelRequest):
                    await self._forward_cancel(msg)
                    return None
                else:
                    assert isinstance(msg, m.StartupMessage)
                    self.frames.set_typed()
                    return msg

    async def _forward_cancel(self, msg: m.CancelRequest) -> None:
        target = self.rt.session_for_cancel(msg.pid, msg.secret)
        log.event("cancel.request", client=self.client_addr, matched=target is not None)
        if target is not None:
            await target.cancel_upstream()

    # --- client authentication ---------------------------------------------------------------------

    def _choose_method(self, principal: Principal | None) -> str:
        for method in self.listener.auth_methods:
            if method == "scram-sha-256" and (principal is None or principal.scram is not None):
                return method
            if method == "md5" and (principal is None or principal.password is not None):
                return method
            can_check = principal is None or principal.scram is not None or principal.password is not None
            if method == "password" and self.tls_active and can_check:
                return method
        return ""

    async def _authenticate(self, startup: m.StartupMessage) -> Principal | None:
        params = startup.params
        user = params.get("user", "")
        if not user:
            await self._fatal("28000", "dbfw: no user name in the start-up packet",
                              hint="connect as your dbfw identity")
            return None
        if _is_true(params.get("replication", "false")):
            await self._fatal("0A000", "dbfw: replication connections are not allowed through dbfw",
                              hint="connect to the database directly for replication")
            return None
        tls = self.listener.tls
        if tls is not None and tls.required and not self.tls_active:
            await self._fatal("28000", "dbfw: this listener requires TLS", hint="connect with sslmode=require")
            return None
        try:
            check_startup_settings(params, frozenset(n.lower() for n in self.listener.allowed_startup_settings))
        except SettingNotAllowed as e:
            log.warning("session.startup_setting_refused", user=user, client=self.client_addr, setting=e.name)
            await self._fatal("42501", f'dbfw: the start-up setting "{e.name}" is not allowed through dbfw',
                              hint="connect without it; settings changed with SET are checked by the firewall")
            return None
        unsupported = [k for k in params if k.startswith("_pq_.")]
        if startup.protocol & 0xFFFF or unsupported:
            await self._send(m.NegotiateProtocolVersion(m.PROTOCOL_3_0, unsupported).encode())
        principal = self.rt.identities.get(user)
        method = self._choose_method(principal)
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                ok = await self._run_auth(method, user, principal)
        except AuthError as e:
            ok = False
            log.debug("auth.error", error=str(e))
        if not ok or principal is None:
            log.warning("auth.failed", user=user, client=self.client_addr, listener=self.listener.name,
                        method=method or "none")
            if self.rt.recorder is not None:
                self.rt.recorder.login_failed(user, self.client_addr, self.listener.name, "wrong password or user")
            await self._fatal("28P01", f'dbfw: password authentication failed for user "{user}"',
                              hint="log in with your dbfw identity and its password")
            return None
        if not principal.can_connect:
            log.warning("auth.refused_role", user=user, client=self.client_addr, listener=self.listener.name)
            if self.rt.recorder is not None:
                self.rt.recorder.login_failed(user, self.client_addr, self.listener.name, "no agent role")
            await self._fatal("28000", f'dbfw: identity "{user}" may not connect through a listener',
                              detail="Only identities with the agent role can run statements.",
                              hint="ask a dbfw admin to grant the agent role to this identity")
            return None
        return principal

    async def _read_password_message(self) -> bytes:
        frame = await self._read_frame()
        if frame.tag != ord("p"):
            raise m.ProtocolError(f"expected a password message, got {frame.kind!r}")
        return bytes(frame.payload)

    async def _run_auth(self, method: str, user: str, principal: Principal | None) -> bool:
        if method == "scram-sha-256":
            await self._send(m.Authentication.sasl(["SCRAM-SHA-256"]).encode())
            initial = m.SASLInitialResponse.decode(await self._read_password_message())
            if initial.mechanism != "SCRAM-SHA-256" or initial.data is None:
                raise AuthError(f"unsupported SASL mechanism {initial.mechanism!r}")
            server = ScramServer(principal.scram if principal else None, user)
            first = server.first(initial.data)
            await self._send(m.Authentication(m.AUTH_SASL_CONTINUE, first).encode())
            final = server.final(await self._read_password_message())
            await self._send(m.Authentication(m.AUTH_SASL_FINAL, final).encode())
            return True
        if method == "md5":
            salt = secrets.token_bytes(4)
            await self._send(m.Authentication(m.AUTH_MD5, salt).encode())
            answer = m.PasswordMessage(await self._read_password_message()).password()
            return principal is not None and principal.password is not None and check_md5(
                user, principal.password, salt, answer)
        if method == "password":
            await self._send(m.Authentication(m.AUTH_CLEARTEXT).encode())
            answer = m.PasswordMessage(await self._read_password_message()).password()
            if principal is None:
                return False
            if principal.password is not None:
                return hmac.compare_digest(principal.password.encode("utf-8", "surrogateescape"),
                                           answer.encode("utf-8", "surrogateescape"))
            v = principal.scram
            assert v is not None
            return hmac.compare_digest(ScramVerifier.from_password(answer, salt=v.salt,
                                                                   iterations=v.iterations).stored_key, v.stored_key)
        return False

    # --- upstream --------------------------------------------------------------------------------

    async def _connect_upstream(self, principal: Principal, startup: m.StartupMessage) -> bool:
        up_cfg = self.rt.settings.upstreams[self.listener.upstream]
        params = {k: v for k, v in startup.params.items()
                  if k not in ("user", "database", "replication") and not k.startswith("_pq_.")}
        database = up_cfg.database or startup.params.get("database") or startup.params["user"]
        await self._send(m.Authentication(m.AUTH_OK).encode())
        try:
            self.upstream = await connect(up_cfg, database, params, max_message_size=self.listener.max_message_size)
        except UpstreamError as e:
            metrics.upstream_errors.labels(self.listener.name).inc()
            log.warning("upstream.connect_failed", session=self.session_id, upstream=self.listener.upstream,
                        error=str(e), sqlstate=e.error.sqlstate if e.error else None)
            if e.error is not None and e.error.sqlstate not in ("28P01", "28000"):
                await self._send(e.error.encode())  # the server's own words: no such database, too many clients
            elif e.error is not None:
                await self._fatal("08004", "dbfw: the database refused dbfw's own credential",
                                  hint=f"the operator must fix upstreams.{self.listener.upstream} in dbfw.yaml")
            else:
                await self._fatal("08006", "dbfw: cannot connect to the database", detail=str(e),
                                  hint="try again later; if it persists, tell the dbfw operator")
            return False
        up = self.upstream
        encoding = up.parameters.get("client_encoding", "UTF8").upper()
        if unsafe_encoding(encoding) is not None:
            # A multibyte character can end in a backslash or quote byte: dbfw could not read statements
            # exactly as the server does.
            await self._fatal("22023", f"dbfw: client encoding {encoding} is not supported",
                              detail="in this encoding a character can hide a quote or backslash byte, so dbfw "
                              "could not read statements exactly as the database does",
                              hint="connect with client_encoding UTF8")
            return False
        self.cancel_key = self.rt.issue_cancel_key(self.session, up.pid)
        self.ctx = StatementContext(identity=principal.name, roles=principal.roles, database=database,
                                    listener=self.listener.name, protocol="postgres",
                                    session_id=self.session_id, client_addr=self.client_addr,
                                    lex=lex_mode(up.parameters), path=_startup_path(params))
        fw = self.rt.firewall
        await fw.prepare(self.ctx)  # the database's functions, before its first statement is classified
        responses = await self._responses(self.ctx)
        if responses.masking is not None:
            up.frames.max_size = m.ABSOLUTE_MAX_MESSAGE  # masked rows are held whole, up to PostgreSQL's bound
        self.core = PgCore(self.ctx, dict(up.parameters), self.frames,
                           m.RelayScanner(up.frames.max_size, up.frames.take_buffered()), responses=responses,
                           recorder=self.rt.recorder, limits=fw.rules.limits, generation=fw.generation)
        self.core.decide_now = fw.check_now
        pid, secret = self.cancel_key
        await self._send(b"".join(up.startup_messages) + m.BackendKeyData(pid, secret).encode()
                         + m.ReadyForQuery(up.status).encode())
        if self.rt.recorder is not None:
            self.rt.recorder.session_started(self.ctx)
        log.event("session.start", session=self.session_id, identity=principal.name, listener=self.listener.name,
                  client=self.client_addr, database=database, tls=self.tls_active)
        return True

    async def _responses(self, ctx: StatementContext) -> Responses:
        """How results are followed: with masking, every result, and rows held whole to be rebuilt."""
        masking = self.rt.firewall.masking
        if masking is None or not masking.enabled:
            return Responses(None)
        catalog = None
        if masking.catalogs is not None:
            try:
                catalog = await masking.catalogs(ctx)
            except Exception as e:  # lineage still masks; this only loses the second line of defence
                log.warning("masking.catalog_unavailable", session=self.session_id, error=type(e).__name__)
        self.frames.streamable = frozenset(b"d")  # a Bind's result formats decide how its rows are read
        return Responses(masking, masking.oid_lookup(ctx, catalog), masking.untraceable(ctx, catalog),
                         sanitize=masking.applies(ctx))

