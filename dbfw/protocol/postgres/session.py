"""One client connection on a PostgreSQL listener: start-up, authentication, then the relay.

This is the asyncio shell around the sans-I/O session core (``core.py``): it reads from both sockets,
feeds the core, writes what the core gives back, and answers the core's questions (the firewall's
verdict on a statement, an audit record written before a statement runs). Start-up and the client's
authentication happen here first; then both transports are driven by protocol callbacks, so a
message that needs no waiting costs no task switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import ssl
import time
from collections.abc import Callable

from ... import log, metrics
from ...config import Listener
from ...context import StatementContext
from ...firewall import Verdict
from ...identity import Principal
from ...scram import AuthError, ScramServer, ScramVerifier, check_md5
from ...sql.pglex import unsafe_encoding
from ...sql.settings import SettingNotAllowed, check_startup_settings, parse_libpq_options
from ..common import Runtime
from . import messages as m
from .core import Ask, EndReason, PgCore, Question, lex_mode
from .results import Responses
from .upstream import UpstreamConnection, UpstreamError, connect, send_cancel

STREAMABLE_FRONTEND = frozenset(b"Bd")  # Bind, CopyData: relayed, never held whole
AUTH_TIMEOUT = 60.0


def _startup_path(params: dict[str, str]) -> str:
    """The search_path a session starts with, when the client set one (a start-up parameter or -c option)."""
    value = next((v for k, v in params.items() if k.lower() == "search_path"), None)
    if "options" in params:
        try:
            value = next((v for k, v in parse_libpq_options(params["options"]) if k.lower() == "search_path"), value)
        except ValueError:
            pass
    return "" if value is None else f"startup:{value}"


class _ClientGone(Exception):
    pass


class _Side(asyncio.Protocol):
    """One end of the relay: what arrives, ends or backs up is handed straight to the session."""

    __slots__ = ("_end", "_paused", "data_received")

    def __init__(self, on_data: Callable[[bytes], None], on_end: Callable[[BaseException | None], None],
                 on_paused: Callable[[bool], None]):
        self.data_received = on_data  # type: ignore[method-assign]
        self._end, self._paused = on_end, on_paused

    def eof_received(self) -> None:
        self._end(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._end(exc)

    def pause_writing(self) -> None:
        self._paused(True)

    def resume_writing(self) -> None:
        self._paused(False)


def _take_buffered(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """What a stream reader has read ahead (the relay takes the transport over), and whether it saw EOF."""
    buffer = getattr(reader, "_buffer", None)
    data = bytes(buffer) if buffer else b""
    if buffer:
        buffer.clear()
    return data, reader.at_eof()


def _is_true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "on", "yes", "database")


class PgSession:
    def __init__(self, rt: Runtime, listener: Listener, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, tls: ssl.SSLContext | None):
        self.rt = rt
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.tls_context = tls
        self.session_id = rt.new_session_id()
        peer = writer.get_extra_info("peername")
        self.client_addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local"
        self.frames = m.FrameReader(listener.max_message_size, startup=True, streamable=STREAMABLE_FRONTEND)
        self.tls_active = False
        self.upstream: UpstreamConnection | None = None
        self.cancel_key: tuple[int, bytes] | None = None
        self.ctx: StatementContext | None = None  # the session's context as it started (the core's changes)
        self.core: PgCore | None = None  # the relay's state, once the upstream is connected
        self.draining = False
        self._drain_now = asyncio.Event()
        # The relay, once both transports are handed over to it.
        self._done: asyncio.Future[tuple[str, EndReason | None, BaseException | None]] | None = None
        self._client_t: asyncio.WriteTransport | None = None
        self._up_t: asyncio.WriteTransport | None = None
        self._client_holds: set[str] = set()
        self._task: asyncio.Task[None] | None = None  # answering the core's question
        self._timer: asyncio.TimerHandle | None = None  # the running statement's time limit
        self._cancelling: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.rt.add(self)
        started = time.monotonic()
        reason = EndReason.CLOSED
        active = metrics.connections_active.labels(self.listener.name)
        active.inc()
        try:
            reason = await self._run()
        except m.ProtocolError as e:
            reason = EndReason.PROTOCOL_ERROR
            log.warning("session.protocol_error", session=self.session_id, client=self.client_addr, error=str(e))
            await self._fatal_quietly("08P01", f"dbfw: invalid message from the client: {e}")
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            reason = EndReason.CLIENT_GONE
            log.debug("session.client_gone", session=self.session_id, error=type(e).__name__)
        except TimeoutError:
            reason = EndReason.AUTH_TIMEOUT
            await self._fatal_quietly("08006", "dbfw: authentication timed out")
        except Exception as e:  # a bug must cost one session, never the server
            reason = EndReason.INTERNAL_ERROR
            log.event("session.internal_error", 40, session=self.session_id, error=repr(e))
            await self._fatal_quietly("XX000", "dbfw: internal error; the session was closed")
        finally:
            active.dec()
            metrics.connections_total.labels(self.listener.name, str(reason)).inc()
            self.rt.remove(self, self.cancel_key)
            if self.upstream is not None:
                self._close_upstream()
            self._close_client()
            self._ended(reason, started)

    def _ended(self, reason: EndReason, started: float) -> None:
        if self.ctx is None:
            return
        if self.rt.recorder is not None:
            self.rt.recorder.session_ended(self.ctx, str(reason))
        self.rt.firewall.session_ended(self.ctx)
        log.event("session.end", session=self.session_id, identity=self.ctx.identity, listener=self.listener.name,
                  reason=str(reason), statements=self.core.executions if self.core is not None else 0,
                  seconds=round(time.monotonic() - started, 3))

    async def _run(self) -> EndReason:
        startup = await self._startup()
        if startup is None:
            return EndReason.STARTUP_ONLY
        principal = await self._authenticate(startup)
        if principal is None:
            return EndReason.AUTH_FAILED
        if not await self._connect_upstream(principal, startup):
            return EndReason.UPSTREAM_UNAVAILABLE
        return await self._relay()

    def request_drain(self) -> None:
        self.draining = True
        if self.core is None or self.core.inflight == 0:
            self._drain_now.set()

    def rules_changed(self) -> None:
        """Rules or identities were reloaded."""
        if self.core is not None:
            fw = self.rt.firewall
            self.core.rules_changed(fw.generation, fw.rules.limits)

    def force_close(self) -> None:
        if self.upstream is not None:
            self._close_upstream()
        self._close_client()

    async def cancel_upstream(self) -> None:
        up = self.upstream
        if up is not None:
            await send_cancel(self.rt.settings.upstreams[self.listener.upstream], up.pid, up.secret)

    def _close_client(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    def _close_upstream(self) -> None:
        up = self.upstream
        if up is None:
            return
        with contextlib.suppress(Exception):
            if not up.writer.is_closing():
                up.writer.write(m.Terminate().encode())
            up.writer.close()

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _fatal(self, sqlstate: str, message: str, detail: str | None = None, hint: str | None = None) -> None:
        await self._send(m.ErrorResponse.make("FATAL", sqlstate, message, detail, hint).encode())

    async def _fatal_quietly(self, sqlstate: str, message: str, detail: str | None = None) -> None:
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
                raise _ClientGone()
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
        self.cancel_key = self.rt.issue_cancel_key(self, up.pid)
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
        return Responses(masking, masking.oid_lookup(ctx, catalog), masking.untraceable(ctx, catalog))

    # --- relay -------------------------------------------------------------------------------------

    async def _relay(self) -> EndReason:
        """Relay until one side ends. Both transports are driven by protocol callbacks from here on: a
        message that needs no waiting is handled in the callback itself, without a task switch."""
        assert self.upstream is not None and self.core is not None
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        up = self.upstream
        client_t, up_t = self.writer.transport, up.writer.transport
        self._client_t, self._up_t = client_t, up_t
        self._bytes_in = metrics.bytes_total.labels(self.listener.name, "client_to_upstream")
        self._bytes_out = metrics.bytes_total.labels(self.listener.name, "upstream_to_client")
        # What the stream readers of start-up had read ahead is handed to the relay.
        client_rest, client_eof = _take_buffered(self.reader)
        up_rest, up_eof = _take_buffered(up.reader)
        client_t.set_protocol(_Side(self._client_data, self._client_end, self._client_write_paused))
        up_t.set_protocol(_Side(self._upstream_data, self._upstream_end, self._upstream_write_paused))
        client_t.resume_reading()
        up_t.resume_reading()
        if up_rest or self.core.scanner.more:
            self._upstream_data(up_rest)
        if up_eof:
            self._upstream_end(None)
        if client_rest or self.core.frames.buffered:
            self._client_data(client_rest)
        if client_eof:
            self._client_end(None)
        drain = asyncio.create_task(self._drain_now.wait())
        try:
            done, _ = await asyncio.wait({self._done, drain}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drain.cancel()
            if self._task is not None:
                self._task.cancel()
            if self._timer is not None:
                self._timer.cancel()
            self._finish("relay", EndReason.CLOSED)
        return await self._relay_ended(drain in done)

    async def _relay_ended(self, drained: bool) -> EndReason:
        assert self._done is not None and self.core is not None
        side, reason, exc = self._done.result()
        if drained or reason == EndReason.DRAINED:
            await self._fatal_quietly("57P01", "dbfw: the firewall is shutting down", detail="reconnect to continue")
            return EndReason.DRAINED
        if side == "client":
            if exc is not None:
                raise exc
            if reason != EndReason.TERMINATE and self.core.inflight > 0:
                # The client vanished mid-statement: stop the work it left running upstream.
                log.event("session.client_vanished_busy", session=self.session_id, inflight=self.core.inflight)
                await self.cancel_upstream()
            return reason or EndReason.CLIENT_GONE
        if isinstance(exc, m.ProtocolError):
            log.warning("upstream.protocol_error", session=self.session_id, error=str(exc))
            await self._fatal_quietly("08P01", "dbfw: the database sent an invalid message")
            return EndReason.UPSTREAM_PROTOCOL_ERROR
        if exc is not None:
            raise exc
        if reason == EndReason.CLIENT_GONE:
            if self.core.inflight > 0:
                await self.cancel_upstream()
            return reason
        if not self.core.upstream_fatal:
            await self._fatal_quietly("08006", "dbfw: lost the connection to the database",
                                      detail="the statement in progress, if any, may not have completed")
        metrics.upstream_errors.labels(self.listener.name).inc()
        log.warning("upstream.lost", session=self.session_id, upstream=self.listener.upstream)
        return EndReason.UPSTREAM_LOST

    def _finish(self, side: str, reason: EndReason | None, exc: BaseException | None = None) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result((side, reason, exc))

    # Reading from the client stops while a statement is being decided (so messages stay in order) and
    # while the upstream cannot take more; reading from the upstream stops while the client cannot.
    def _hold_client(self, why: str, on: bool) -> None:
        holds = self._client_holds
        before = bool(holds)
        if on:
            holds.add(why)
        else:
            holds.discard(why)
        if bool(holds) != before and self._client_t is not None and not self._client_t.is_closing():
            self._client_t.pause_reading() if holds else self._client_t.resume_reading()

    def _upstream_write_paused(self, paused: bool) -> None:
        self._hold_client("upstream_full", paused)

    def _client_write_paused(self, paused: bool) -> None:
        up_t = self._up_t
        if up_t is not None and not up_t.is_closing():
            up_t.pause_reading() if paused else up_t.resume_reading()

    def _client_end(self, exc: BaseException | None) -> None:
        self._finish("client", EndReason.CLIENT_GONE)

    def _upstream_end(self, exc: BaseException | None) -> None:
        self._finish("upstream", EndReason.UPSTREAM_GONE)

    def _client_data(self, data: bytes) -> None:
        core = self.core
        if self._done is None or self._done.done() or core is None:
            return
        if data:
            if self.draining and core.inflight == 0 and core.question is None:
                # Shutting down and nothing in flight: new work is not started; the client is told why.
                self._finish("client", EndReason.DRAINED)
                return
            self._bytes_in.inc(len(data))
            core.arrived = time.perf_counter()
        try:
            core.client_data(data)
            self._pump()
        except Exception as e:
            self._finish("client", None, e)

    def _upstream_data(self, data: bytes) -> None:
        core = self.core
        if self._done is None or self._done.done() or core is None:
            return
        if data:
            self._bytes_out.inc(len(data))
        try:
            core.server_data(data)
            self._pump()
        except Exception as e:
            self._finish("upstream", None, e)
            return
        if self.draining and core.inflight == 0:
            self._drain_now.set()

    def _pump(self) -> None:
        """Carry out what the core asks: bytes to each side, a time limit to arm, a question to answer (at
        once when the firewall can, else in a task while the client's reading is held)."""
        core = self.core
        assert core is not None
        while True:
            up, down = core.take()
            if up:
                self._up_t.writelines(up)  # type: ignore[union-attr]
            if down:
                client_t = self._client_t
                if client_t is None or client_t.is_closing():
                    self._finish("upstream", EndReason.CLIENT_GONE)
                    return
                client_t.writelines(down)
            if core.timer is not None:
                self._arm(*core.timer)
                core.timer = None
            if core.settled:
                core.settled = False
                self.rt.firewall.settled(core.ctx)
            if core.ended is not None:
                self._finish("client", core.ended)
                return
            question = core.question
            if question is None or self._task is not None:
                return
            verdict = self._answer_now(question)
            if verdict is None:
                self._hold_client("deciding", True)
                self._task = asyncio.get_running_loop().create_task(self._answer(question))
                return
            core.answer(verdict)

    def _answer_now(self, question: Question) -> Verdict | None:
        """The firewall's decision without waiting, when it can make one (see Firewall.check_now)."""
        fw, core = self.rt.firewall, self.core
        assert core is not None
        if question.kind == Ask.QUERY:
            return fw.check_now(core.ctx, question.sql)
        if question.kind == Ask.PARSE or question.kind == Ask.REDECIDE:
            return fw.check_now(core.ctx, question.sql, record=False)
        return None

    async def _answer(self, question: Question) -> None:
        fw, core, recorder = self.rt.firewall, self.core, self.rt.recorder
        assert core is not None
        verdict: Verdict | None = None
        try:
            if question.kind == Ask.QUERY:
                verdict = await fw.check(core.ctx, question.sql)
            elif question.kind == Ask.CALL:
                verdict = await fw.check_function_call(core.ctx, question.oid)
            elif question.kind == Ask.RECORD:
                assert recorder is not None and question.record is not None
                await recorder.statement(core.ctx, question.record)
            else:
                verdict = await fw.check(core.ctx, question.sql, record=False)
        except asyncio.CancelledError:
            self._finish("client", EndReason.CANCELLED)  # never leave the client paused with the relay running
            raise
        except Exception as e:
            self._finish("client", None, e)
            return
        finally:
            self._task = None
        try:
            core.answer(verdict)
            self._pump()
        except Exception as e:
            self._finish("client", None, e)
            return
        if self._task is None:
            self._hold_client("deciding", False)

    def _arm(self, point: int, seconds: float | None) -> None:
        """The statement running now has a time limit (or none)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = asyncio.get_running_loop().call_later(seconds, self._time_is_up, point)

    def _time_is_up(self, point: int) -> None:
        self._timer = None
        core = self.core
        if core is not None and core.timed_out(point):
            self._cancelling = asyncio.get_running_loop().create_task(self.cancel_upstream())
