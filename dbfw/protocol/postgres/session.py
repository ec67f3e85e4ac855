"""One client connection on a PostgreSQL listener: start-up, authentication, then the relay.

The relay runs two pumps. Client -> upstream: every statement text (Query, Parse) goes through
``Firewall.check()`` before any of it reaches the upstream. Upstream -> client: messages are relayed
as their original bytes, with ReadyForQuery tracked so dbfw knows when the upstream is busy.

A refused statement is replaced, on its way to the upstream, by a statement that fails to parse
there. The upstream then does exactly what PostgreSQL does with any failing statement: reports
the error in the right place of the response stream, discards the rest of an extended-protocol
batch until Sync, and aborts an open transaction. dbfw swaps the upstream's syntax error for its own
ErrorResponse (DBF.. SQLSTATE) on the way back, so the client sees dbfw's refusal with PostgreSQL's
own semantics, and the session stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from ... import log, metrics
from ...config import Listener
from ...context import StatementContext
from ...firewall import Verdict
from ...identity import Principal
from ...masking.service import StatementMask
from ...sql.classify import LEX_ASCII_ONLY, LEX_BACKSLASH_ESCAPES, LEX_STANDARD
from ...sql.pglex import unsafe_encoding
from ...sql.settings import SettingNotAllowed, check_startup_settings, parse_libpq_options
from ..common import Runtime
from . import messages as m
from .auth import AuthError, ScramServer, ScramVerifier, check_md5
from .results import ResultTracker, mask_copy_line
from .upstream import UpstreamConnection, UpstreamError, connect, send_cancel

STREAMABLE_FRONTEND = frozenset(b"Bd")  # Bind, CopyData: relayed, never held whole
AUTH_TIMEOUT = 60.0

_Q, _P, _S, _X, _F = (ord(c) for c in "QPSXF")
_RELAYED = frozenset(b"BEDCHdcf")  # Bind Execute Describe Close Flush CopyData CopyDone CopyFail
_DECIDED = frozenset((_Q, _P, _F))  # what the firewall decides on: Query, Parse, FunctionCall
_Z, _E, _PS = ord("Z"), ord("E"), ord("S")
_BIND, _DESCRIBE, _EXECUTE, _CLOSE = ord("B"), ord("D"), ord("E"), ord("C")  # frontend
_TRACKED = frozenset((_BIND, _DESCRIBE, _EXECUTE, _CLOSE))
_ROW_DESCRIPTION, _NO_DATA, _COPY_OUT, _COPY_DATA = ord("T"), ord("n"), ord("H"), ord("d")
_DONE = frozenset(b"CIs")  # CommandComplete, EmptyQueryResponse, PortalSuspended
_COMMAND_COMPLETE = ord("C")
_RESULT_TAGS = frozenset(b"DTnCIsEZHd")
# Backend messages the relay looks at; every other one is forwarded by its header alone.
_WANTED = frozenset(b"ZES")
# DataRows are not "wanted": the scanner masks the rows of a masked result itself (row_fn) and skips
# the others by their headers.
_WANTED_MASKING = _WANTED | (_RESULT_TAGS - {ord("D")})
# Following results for masking, outside a COPY whose lines are masked: CopyData passes untouched.
_WANTED_TRACKING = _WANTED_MASKING - {_COPY_DATA}

# PostgreSQL encoding names -> Python codecs, for reading SQL text in the client's encoding.
_ENCODINGS = {"UTF8": "utf-8", "UNICODE": "utf-8", "SQL_ASCII": "latin-1", "LATIN1": "latin-1",
              "LATIN2": "iso8859-2", "LATIN9": "iso8859-15", "WIN1250": "cp1250", "WIN1251": "cp1251",
              "WIN1252": "cp1252", "EUC_JP": "euc_jp", "SJIS": "shift_jis", "EUC_KR": "euc_kr",
              "GBK": "gbk", "BIG5": "big5", "KOI8R": "koi8_r", "UHC": "cp949", "GB18030": "gb18030"}


_LEXING_PARAMETERS = frozenset({"client_encoding", "standard_conforming_strings"})


def _startup_path(params: dict[str, str]) -> str:
    """The search_path a session starts with, when the client set one (a start-up parameter or -c option)."""
    value = next((v for k, v in params.items() if k.lower() == "search_path"), None)
    if "options" in params:
        try:
            value = next((v for k, v in parse_libpq_options(params["options"]) if k.lower() == "search_path"), value)
        except ValueError:
            pass
    return "" if value is None else f"startup:{value}"


def _lex_mode(parameters: dict[str, str]) -> int:
    """How the server reads SQL text, from what it reported."""
    lex = LEX_STANDARD
    if parameters.get("standard_conforming_strings", "on").lower() != "on":
        lex |= LEX_BACKSLASH_ESCAPES
    if unsafe_encoding(parameters.get("client_encoding", "UTF8")) is not None:
        lex |= LEX_ASCII_ONLY
    return lex


class _ClientGone(Exception):
    pass


@dataclass
class _Substitution:
    token: str
    batch: int  # the sync point (count of Query/Sync/FunctionCall sent) whose ReadyForQuery ends it
    verdict: Verdict


def _counted(verdict: Verdict) -> StatementMask:
    """What a session remembers of a statement the upstream masks itself: which rules to count per row."""
    mask = verdict.masks[0] if verdict.masks else None
    plan = mask.plan if mask is not None else None
    rules = tuple(c.rule for c in plan.columns if c is not None) if plan is not None else ()
    return StatementMask(counted=rules)


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


def _execute_portal(raw: memoryview) -> str:
    """The portal an Execute message runs (its name, NUL, then a row limit)."""
    if len(raw) == 10 and raw[5] == 0:
        return ""  # the unnamed portal: almost every Execute
    payload = bytes(raw[5:])
    end = payload.find(0)
    if end < 0 or len(payload) != end + 5:
        raise m.ProtocolError("malformed Execute message")
    return payload[:end].decode("utf-8", "surrogateescape")


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
        self.ctx: StatementContext | None = None
        self.codec = "utf-8"
        self.parameters: dict[str, str] = {}  # the server's reported settings, as they change
        # Relay state, shared by the two pumps.
        self.inflight = 0  # sync points sent upstream whose ReadyForQuery has not come back
        self.sent_sync_points = 0
        self.received_ready = 0
        self.substitutions: deque[_Substitution] = deque()
        self.draining = False
        self._drain_now = asyncio.Event()
        self._upstream_fatal_sent = False
        self.statements = 0
        self.tracker: ResultTracker | None = None
        # For dbfw_statement_duration_seconds: per sync point sent upstream, when it started and its class.
        self._timing: deque[tuple[float, str, list[dict[str, object]]]] = deque()
        self._batch_details: list[dict[str, object]] = []
        # For recordings: what each prepared statement is, and which statement each portal runs.
        self._prepared: dict[str, dict[str, object] | None] = {}
        self._portals: dict[str, str] = {}
        # Prepared statements allowed by an approval, which covers one execution: name -> (request, bound)
        self._single_use: dict[str, tuple[str, bool]] = {}
        self._batch_start = 0.0
        self._batch_cls = ""
        # The relay, once both transports are handed over to it.
        self._done: asyncio.Future[tuple[str, str | None, BaseException | None]] | None = None
        self._client_t: asyncio.BaseTransport | None = None
        self._up_t: asyncio.BaseTransport | None = None
        self._client_holds: set[str] = set()
        self._client_task: asyncio.Task[None] | None = None
        self._client_backlog: list[bytes] = []
        self._arrived = 0.0
        self._scanner: m.RelayScanner | None = None
        self._cut_off = False  # the current result passed the row limit: its remaining rows are dropped
        self._rows: int | None = None
        self._error: str | None = None
        self._durations: dict[str, object] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.rt.add(self)
        started = time.monotonic()
        reason = "closed"
        active = metrics.connections_active.labels(self.listener.name)
        active.inc()
        try:
            reason = await self._run()
        except m.ProtocolError as e:
            reason = "protocol_error"
            log.warning("session.protocol_error", session=self.session_id, client=self.client_addr, error=str(e))
            await self._fatal_quietly("08P01", f"dbfw: invalid message from the client: {e}")
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            reason = "client_gone"
            log.debug("session.client_gone", session=self.session_id, error=type(e).__name__)
        except TimeoutError:
            reason = "auth_timeout"
            await self._fatal_quietly("08006", "dbfw: authentication timed out")
        except Exception as e:  # a bug must cost one session, never the server
            reason = "internal_error"
            log.event("session.internal_error", 40, session=self.session_id, error=repr(e))
            await self._fatal_quietly("XX000", "dbfw: internal error; the session was closed")
        finally:
            active.dec()
            metrics.connections_total.labels(self.listener.name, reason).inc()
            self.rt.remove(self, self.cancel_key)
            if self.upstream is not None:
                self._close_upstream()
            self._close_client()
            if self.ctx is not None and self.rt.recorder is not None:
                self.rt.recorder.session_ended(self.ctx, reason)
            ended = getattr(self.rt.firewall, "session_ended", None)
            if self.ctx is not None and ended is not None:
                ended(self.ctx)
            if self.ctx is not None:
                log.event("session.end", session=self.session_id, identity=self.ctx.identity,
                          listener=self.listener.name, reason=reason, statements=self.statements,
                          seconds=round(time.monotonic() - started, 3))

    async def _run(self) -> str:
        startup = await self._startup()
        if startup is None:
            return "startup_only"
        principal = await self._authenticate(startup)
        if principal is None:
            return "auth_failed"
        if not await self._connect_upstream(principal, startup):
            return "upstream_unavailable"
        return await self._relay()

    def request_drain(self) -> None:
        self.draining = True
        if self.inflight == 0:
            self._drain_now.set()

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
        self.codec = _ENCODINGS.get(encoding, "utf-8")
        self.parameters = dict(up.parameters)
        self.cancel_key = self.rt.issue_cancel_key(self, up.pid)
        self.ctx = StatementContext(identity=principal.name, roles=principal.roles, database=database,
                                    listener=self.listener.name, protocol="postgres",
                                    session_id=self.session_id, client_addr=self.client_addr,
                                    lex=_lex_mode(up.parameters), path=_startup_path(params))
        prepare = getattr(self.rt.firewall, "prepare", None)
        if prepare is not None:
            await prepare(self.ctx)  # the database's functions, before its first statement is classified
        masking = getattr(self.rt.firewall, "masking", None)
        if masking is not None and masking.enabled:
            # Results may need masking: follow every result, and hold rows whole so they can be rebuilt.
            catalog = None
            if masking.catalogs is not None:
                try:
                    catalog = await masking.catalogs(self.ctx)
                except Exception as e:  # lineage still masks; this only loses the second line of defence
                    log.warning("masking.catalog_unavailable", session=self.session_id, error=type(e).__name__)
            self.tracker = ResultTracker(masking, masking.oid_lookup(self.ctx, catalog))
            up.frames.max_size = m.ABSOLUTE_MAX_MESSAGE
            self.frames.streamable = frozenset(b"d")
        if self.rt.recorder is not None:
            # A recording must know which statement each portal runs: Bind is read whole (up to the
            # listener's max_message_size), never relayed in pieces past that bookkeeping.
            self.frames.streamable = frozenset(b"d")
        pid, secret = self.cancel_key
        await self._send(b"".join(up.startup_messages) + m.BackendKeyData(pid, secret).encode()
                         + m.ReadyForQuery(up.status).encode())
        if self.rt.recorder is not None:
            self.rt.recorder.session_started(self.ctx)
        log.event("session.start", session=self.session_id, identity=principal.name, listener=self.listener.name,
                  client=self.client_addr, database=database, tls=self.tls_active)
        return True

    # --- relay -------------------------------------------------------------------------------------

    async def _relay(self) -> str:
        """Relay until one side ends. Both transports are driven by protocol callbacks from here on: a
        message that needs no decision is handled in the callback itself, without a task switch."""
        assert self.upstream is not None
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        up = self.upstream
        client_t, up_t = self.writer.transport, up.writer.transport
        self._client_t, self._up_t = client_t, up_t
        self._bytes_in = metrics.bytes_total.labels(self.listener.name, "client_to_upstream")
        self._bytes_out = metrics.bytes_total.labels(self.listener.name, "upstream_to_client")
        self._scanner = m.RelayScanner(up.frames.max_size, up.frames.take_buffered())
        if self.rt.recorder is not None and self.tracker is None:
            self._scanner.noted = frozenset((_COMMAND_COMPLETE,))  # row counts, for the recording
        # What the stream readers of start-up had read ahead is handed to the relay.
        client_rest, client_eof = _take_buffered(self.reader)
        up_rest, up_eof = _take_buffered(up.reader)
        client_t.set_protocol(_Side(self._client_data, self._client_end, self._client_write_paused))
        up_t.set_protocol(_Side(self._upstream_data, self._upstream_end, self._upstream_write_paused))
        client_t.resume_reading()
        up_t.resume_reading()
        if up_rest or self._scanner.more:
            self._upstream_data(up_rest)
        if up_eof:
            self._upstream_end(None)
        if client_rest or self.frames.buffered:
            self._client_data(client_rest)
        if client_eof:
            self._client_end(None)
        drain = asyncio.create_task(self._drain_now.wait())
        try:
            done, _ = await asyncio.wait({self._done, drain}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drain.cancel()
            if self._client_task is not None:
                self._client_task.cancel()
            self._finish("relay", "closed")
        side, reason, exc = self._done.result()
        if drain in done or reason == "drained":
            await self._fatal_quietly("57P01", "dbfw: the firewall is shutting down",
                                      detail="reconnect to continue")
            return "drained"
        if side == "client":
            if exc is not None:
                raise exc
            if reason != "terminate" and self.inflight > 0:
                # The client vanished mid-statement: stop the work it left running upstream.
                log.event("session.client_vanished_busy", session=self.session_id, inflight=self.inflight)
                await self.cancel_upstream()
            return reason or "client_gone"
        if isinstance(exc, m.ProtocolError):
            log.warning("upstream.protocol_error", session=self.session_id, error=str(exc))
            await self._fatal_quietly("08P01", "dbfw: the database sent an invalid message")
            return "upstream_protocol_error"
        if exc is not None:
            raise exc
        if reason == "client_gone":
            if self.inflight > 0:
                await self.cancel_upstream()
            return reason
        if not self._upstream_fatal_sent:
            await self._fatal_quietly("08006", "dbfw: lost the connection to the database",
                                      detail="the statement in progress, if any, may not have completed")
        metrics.upstream_errors.labels(self.listener.name).inc()
        log.warning("upstream.lost", session=self.session_id, upstream=self.listener.upstream)
        return "upstream_lost"

    def _finish(self, side: str, reason: str | None, exc: BaseException | None = None) -> None:
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
        self._finish("client", "client_gone")

    def _upstream_end(self, exc: BaseException | None) -> None:
        self._finish("upstream", "upstream_gone")

    def _reported(self, name: str, value: str) -> None:
        """The server reports every change of a setting that decides how it reads SQL text, however the
        change was made (SET, set_config, a function's SET clause, RESET): dbfw reads the next statement
        the same way."""
        self.parameters[name] = value
        if name == "client_encoding":
            self.codec = _ENCODINGS.get(value.upper(), "utf-8")
        ctx = self.ctx
        if ctx is not None:
            lex = _lex_mode(self.parameters)
            if lex != ctx.lex:
                self.ctx = replace(ctx, lex=lex)
                log.event("session.lexing", session=self.session_id, standard_conforming_strings=self.parameters.get(
                    "standard_conforming_strings"), client_encoding=self.parameters.get("client_encoding"))

    def _sql_text(self, text: str) -> str:
        if self.codec == "utf-8":
            return text
        return text.encode("utf-8", "surrogateescape").decode(self.codec, "replace")

    def _substitute(self, verdict: Verdict, batch: int) -> str:
        token = f"dbfw_refused_{secrets.token_hex(6)}"
        self.substitutions.append(_Substitution(token, batch, verdict))
        return token

    # --- client -> upstream --------------------------------------------------------------------------

    def _client_data(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            return
        if self._client_task is not None:  # read before the pause took effect: kept in order
            self._client_backlog.append(data)
            return
        if data:
            if self.draining and self.inflight == 0:
                # Shutting down and nothing in flight: new work is not started; the client is told why.
                self._finish("client", "drained")
                return
            self._bytes_in.inc(len(data))
            self._arrived = time.perf_counter()
            self.frames.feed(data)
        out: list[bytes | memoryview] = []
        try:
            self._client_frames(self.frames.frames(), out)
        except Exception as e:
            self._finish("client", None, e)

    def _client_frames(self, frames: Iterator[m.Frame], out: list[bytes | memoryview]) -> None:
        """The messages that need no decision, handled here; at the first one that does (a statement, or
        an execution that must be recorded durably before it runs), the rest goes to a task."""
        for frame in frames:
            tag = frame.tag
            if tag == _BIND and self._single_use and not frame.streamed:
                replaced = self._single_use_bind(frame)
                if replaced is not None:
                    out.append(replaced)
                    continue
            if tag in _RELAYED or frame.streamed:
                durable = self._relayed(tag, frame)
                if durable is not None:
                    self._go_async(frames, out, frame, durable)
                    return
                out.append(frame.raw)
            elif tag == _S:
                self._sync(frame, out)
            elif tag == _X:
                self._to_upstream(out)
                self._finish("client", "terminate")
                return
            elif tag in _DECIDED:
                if not self._decided_now(tag, frame, out):
                    self._go_async(frames, out, frame, None)
                    return
            else:
                raise m.ProtocolError(f"unexpected message type {frame.kind!r}")
        self._to_upstream(out)

    def _decided_now(self, tag: int, frame: m.Frame, out: list[bytes | memoryview]) -> bool:
        """A statement the firewall can decide on without waiting (see Firewall.check_now)."""
        fw, ctx = self.rt.firewall, self.ctx
        assert ctx is not None
        if tag == _Q:
            query = m.Query.decode(frame.payload)
            verdict = fw.check_now(ctx, self._sql_text(query.query))
            if verdict is None:
                return False
            self.inflight += 1
            self.sent_sync_points += 1
            self._query_decided(frame, verdict, self._arrived, out)
            return True
        if tag == _P:
            parse = m.Parse.decode(frame.payload)
            verdict = fw.check_now(ctx, self._sql_text(parse.query), record=False)
            if verdict is None:
                return False
            if not self._batch_start:
                self._batch_start = self._arrived
            self._parse_decided(frame, parse, verdict, out)
            return True
        return False

    def _to_upstream(self, out: list[bytes | memoryview]) -> None:
        if out:
            self._up_t.writelines(out)  # type: ignore[union-attr]
            out.clear()

    def _relayed(self, tag: int, frame: m.Frame) -> dict[str, object] | None:
        """Bookkeeping for a message relayed as is: which statement a portal runs (for masking and for
        recordings). Returns the event to record durably before an execution, if any."""
        if frame.streamed:
            return None
        tracker, recorder = self.tracker, self.rt.recorder
        if tag == _BIND:
            if tracker is not None or recorder is not None:
                portal, statement, formats = m.bind_targets(frame.payload)
                if tracker is not None:
                    tracker.bind(portal, statement, formats)
                if recorder is not None:
                    self._portals[portal] = statement
        elif tag == _EXECUTE:
            if tracker is not None or recorder is not None:
                portal = _execute_portal(frame.raw)
                if tracker is not None:
                    tracker.execute(portal)
                if recorder is not None:
                    detail = self._prepared.get(self._portals.get(portal, ""))
                    if detail is not None:
                        if not recorder.deferred(detail):
                            return detail  # high-risk: durable before it runs
                        self._batch_details.append(detail)  # recorded with its result
        elif tracker is not None and tag in _TRACKED:
            self._track_frontend(tracker, tag, frame)
        return None

    def _single_use_bind(self, frame: m.Frame) -> bytes | None:
        """An approval covers one execution. The first Bind of a prepared statement an approval allowed
        goes on; a later one goes on naming a statement that does not exist, and the server's error comes
        back as dbfw's DBF04. None: the Bind is relayed as it is."""
        _, statement, _ = m.bind_targets(frame.payload)
        single = self._single_use.get(statement)
        if single is None:
            return None
        request, bound = single
        if not bound:
            self._single_use[statement] = (request, True)
            return None
        verdict = Verdict(False, "DBF04", f"dbfw: the approval of request {request} covered one execution of "
                          "this prepared statement, and it has run", None,
                          "run the statement again to request a new approval")
        token = self._substitute(verdict, self.sent_sync_points + 1)
        payload = bytes(frame.payload)
        portal_end = payload.index(0)
        statement_end = payload.index(0, portal_end + 1)
        return m.Bind.frame(payload[:portal_end + 1] + token.encode() + payload[statement_end:])

    def _sync(self, frame: m.Frame, out: list[bytes | memoryview]) -> None:
        self.inflight += 1
        self.sent_sync_points += 1
        self._timing.append((self._batch_start or self._arrived, self._batch_cls or "read", self._batch_details))
        self._batch_start = 0.0
        self._batch_details = []
        if self.tracker is not None:
            self.tracker.sync()
        out.append(frame.raw)

    def _go_async(self, frames: Iterator[m.Frame], out: list[bytes | memoryview], frame: m.Frame,
                  durable: dict[str, object] | None) -> None:
        self._hold_client("deciding", True)
        self._client_task = asyncio.get_running_loop().create_task(
            self._client_frames_async(frames, out, frame, durable))

    async def _client_frames_async(self, frames: Iterator[m.Frame], out: list[bytes | memoryview],
                                   frame: m.Frame, durable: dict[str, object] | None) -> None:
        """The one message that needs waiting for; the rest of the read then goes on as any read does
        (and may come back here at its next such message)."""
        try:
            self._to_upstream(out)
            if durable is not None:
                await self.rt.recorder.statement(self.ctx, durable)  # type: ignore[union-attr,arg-type]
                out.append(frame.raw)
            else:
                await self._decided(frame.tag, frame, out)
        except asyncio.CancelledError:
            self._finish("client", "cancelled")  # never leave the client paused with the relay running
            raise
        except Exception as e:
            self._finish("client", None, e)
            return
        finally:
            self._client_task = None
        try:
            self._client_frames(frames, out)
        except Exception as e:
            self._finish("client", None, e)
            return
        while self._client_task is None and self._client_backlog:
            self._client_data(self._client_backlog.pop(0))
        if self._client_task is None:
            self._hold_client("deciding", False)

    async def _decided(self, tag: int, frame: m.Frame, out: list[bytes | memoryview]) -> None:
        """A statement (Query, Parse) or a fast-path function call: the firewall decides before it goes on."""
        fw, ctx, tracker = self.rt.firewall, self.ctx, self.tracker
        assert ctx is not None
        arrived = self._arrived
        if tag == _Q:
            self.inflight += 1
            self.sent_sync_points += 1
            query = m.Query.decode(frame.payload)
            self._to_upstream(out)
            verdict = await fw.check(ctx, self._sql_text(query.query))
            self._query_decided(frame, verdict, arrived, out)
        elif tag == _P:
            parse = m.Parse.decode(frame.payload)
            self._to_upstream(out)
            if not self._batch_start:
                self._batch_start = arrived
            verdict = await fw.check(ctx, self._sql_text(parse.query), record=False)
            self._parse_decided(frame, parse, verdict, out)
        else:  # FunctionCall
            self._timing.append((arrived, "procedural", []))
            if tracker is not None:
                tracker.sync()  # answered by FunctionCallResponse and ReadyForQuery
            call = m.FunctionCall.decode(frame.payload)
            self.inflight += 1
            self.sent_sync_points += 1
            verdict = await fw.check_function_call(ctx, call.oid)
            self.statements += 1
            if verdict.allowed:
                out.append(frame.raw)
            else:
                out.append(m.Query(self._substitute(verdict, self.sent_sync_points)).encode())

    def _query_decided(self, frame: m.Frame, verdict: Verdict, arrived: float, out: list[bytes | memoryview]) -> None:
        fw, ctx, tracker = self.rt.firewall, self.ctx, self.tracker
        assert ctx is not None
        self.statements += 1
        rewritten = self._rewritten(verdict)
        pending_records = getattr(fw, "recording", None) if self.rt.recorder is not None else None
        deferred = pending_records.pop(ctx.session_id, None) if pending_records is not None else None
        self._timing.append((arrived, verdict.cls, [deferred] if deferred else []))
        if tracker is not None:
            tracker.query([_counted(verdict)] if rewritten else (verdict.masks or []))
        if rewritten:
            out.append(m.Query(rewritten).encode())
        elif verdict.allowed:
            out.append(frame.raw)
        else:
            out.append(m.Query(self._substitute(verdict, self.sent_sync_points)).encode())

    def _parse_decided(self, frame: m.Frame, parse: m.Parse, verdict: Verdict, out: list[bytes | memoryview]) -> None:
        fw, ctx, tracker = self.rt.firewall, self.ctx, self.tracker
        assert ctx is not None
        recording = getattr(fw, "recording", None)
        if recording is not None:
            self._prepared[parse.name] = recording.pop(ctx.session_id, None)
        self._batch_cls = verdict.cls
        self.statements += 1
        rewritten = self._rewritten(verdict)
        if tracker is not None:
            tracker.parse(parse.name, _counted(verdict) if rewritten else (
                verdict.masks[0] if verdict.masks else None))
        if verdict.allowed and verdict.request_id is not None:
            self._single_use[parse.name] = (verdict.request_id, False)
            self.frames.streamable = frozenset(b"d")  # Binds are read whole: which statement each runs
        elif self._single_use:
            self._single_use.pop(parse.name, None)  # the name now holds another statement
        if rewritten:
            out.append(m.Parse(parse.name, rewritten, parse.param_types).encode())
        elif verdict.allowed:
            out.append(frame.raw)
        else:
            token = self._substitute(verdict, self.sent_sync_points + 1)
            out.append(m.Parse(parse.name, token, parse.param_types).encode())

    # --- upstream -> client --------------------------------------------------------------------------

    def _upstream_data(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            return
        try:
            self._upstream_messages(data)
        except Exception as e:
            self._finish("upstream", None, e)

    def _upstream_messages(self, data: bytes) -> None:
        scanner, tracker, recorder, ctx = self._scanner, self.tracker, self.rt.recorder, self.ctx
        settled = getattr(self.rt.firewall, "settled", None)
        assert scanner is not None
        if data:
            self._bytes_out.inc(len(data))
        out: list[bytes | memoryview] = []
        limit = self._row_limit()
        wanted = (_WANTED_MASKING if tracker.copying else _WANTED_TRACKING) if tracker is not None else _WANTED
        scanner.limit = limit
        if limit is None:
            scanner.rows_left = None
        elif scanner.rows_left is None:
            scanner.rows_left = limit
        row_fn = tracker.row_masker() if tracker is not None else None
        pieces = scanner.feed(data, wanted, row_fn)
        timing = self._timing
        while True:
            for piece in pieces:
                if type(piece) is not tuple:  # bytes to forward, or a row already masked
                    out.append(piece)  # type: ignore[arg-type]
                    continue
                tag, raw = piece
                if scanner.limit_hit and not self._cut_off:
                    # Rows past the limit are dropped as they arrive (memory stays flat); the upstream is
                    # not cancelled, since a late cancel could hit the session's next statement.
                    self._cut_off = True
                    log.warning("session.row_limit", session=self.session_id, limit=limit)
                if limit is not None and tag in m.RESULT_BOUNDS:
                    scanner.rows_left = limit  # the next result starts with the whole allowance
                    if self._cut_off and tag != _ROW_DESCRIPTION:
                        self._cut_off = scanner.limit_hit = False
                        if tracker is not None:
                            tracker.error() if tag == _E else tracker.statement_done()
                        out.append(m.ErrorResponse.make(
                            "ERROR", "DBF06", f"dbfw: the result passed limits.max_result_rows ({limit} rows) "
                            "and was cut off", "The rows before the limit were sent.",
                            "add a WHERE or LIMIT, or ask for an approved export").encode())
                        continue
                if tracker is not None and tag in _RESULT_TAGS:
                    rebuilt = self._track_backend(tracker, tag, raw)
                    if rebuilt is not None:
                        out.append(rebuilt)
                        continue
                if recorder is not None:
                    if tag == _COMMAND_COMPLETE:
                        counted = m.command_rows(raw[5:])
                        if counted is not None:
                            self._rows = (self._rows or 0) + counted
                    elif tag == _E:
                        self._error = m.ErrorResponse.decode(raw[5:]).sqlstate
                if tag == _Z:
                    self.inflight -= 1
                    self.received_ready += 1
                    if self.received_ready == self.sent_sync_points and self._client_task is None \
                            and settled is not None and ctx is not None:
                        settled(ctx)  # any change of how the server reads text is reported by now
                    notes = scanner.notes
                    if notes:
                        for note in notes:
                            counted = m.command_rows(note)
                            if counted is not None:
                                self._rows = (self._rows or 0) + counted
                        notes.clear()
                    if timing:
                        began, cls, details = timing.popleft()
                        hist = self._durations.get(cls)
                        if hist is None:
                            hist = self._durations[cls] = metrics.statement_duration.labels(self.listener.name, cls)
                        elapsed = time.perf_counter() - began
                        hist.observe(elapsed)
                        if recorder is not None and ctx is not None:
                            recorder.executed(ctx, details, elapsed, self._rows, self._error)
                    self._rows = self._error = None
                    subs = self.substitutions
                    while subs and subs[0].batch <= self.received_ready:
                        subs.popleft()
                elif tag == _E:
                    replaced = self._replace_error(raw)
                    if replaced is not None:
                        out.append(replaced)
                        continue
                elif tag == _PS:
                    ps = m.ParameterStatus.decode(raw[5:])
                    if ps.name in _LEXING_PARAMETERS:
                        self._reported(ps.name, ps.value)
                out.append(raw)
            if not scanner.more:
                break
            if tracker is not None:
                row_fn = tracker.row_masker()
                wanted = _WANTED_MASKING if tracker.copying else _WANTED_TRACKING
            pieces = scanner.feed(b"", wanted, row_fn)
        if out:
            client_t = self._client_t
            if client_t is None or client_t.is_closing():
                self._finish("upstream", "client_gone")
                return
            client_t.writelines(out)
        if self.draining and self.inflight == 0:
            self._drain_now.set()

    def _rewritten(self, verdict: Verdict) -> str | None:
        """The statement as the upstream should run it, with its masks inside, when that is possible:
        one plain SELECT whose masked columns are text columns with a mask SQL can express."""
        masks = verdict.masks
        if not verdict.allowed or not masks or len(masks) != 1 or masks[0] is None or self.codec != "utf-8":
            return None
        return masks[0].rewritten

    def _row_limit(self) -> int | None:
        rules = getattr(self.rt.firewall, "rules", None)
        return rules.limits.max_result_rows if rules is not None else None

    def _track_frontend(self, tracker: ResultTracker, tag: int, frame: m.Frame) -> None:
        if tag == _DESCRIBE:
            d = m.Describe.decode(frame.payload)
            tracker.describe(d.kind, d.name)
        elif tag == _CLOSE:
            c = m.Close.decode(frame.payload)
            tracker.close(c.kind, c.name)

    def _track_backend(self, tracker: ResultTracker, tag: int, raw: memoryview) -> bytes | None:
        """Follow which result the message belongs to; return a rebuilt message when it must be masked."""
        masking = tracker.masking
        if tag == _ROW_DESCRIPTION:
            tracker.row_description(raw[5:])
        elif tag in _DONE:
            tracker.statement_done(raw[5:] if tag == _COMMAND_COMPLETE else None)
        elif tag == _NO_DATA:
            tracker.no_data()
        elif tag == _E:
            tracker.error()
        elif tag == _Z:
            tracker.ready()
        elif tag == _COPY_OUT:
            tracker.copy_out()
        elif tag == _COPY_DATA and tracker.copying and tracker.active is not None and masking is not None:
            return m.CopyData(mask_copy_line(bytes(raw[5:]), tracker.active, masking)).encode()
        return None

    def _replace_error(self, raw: memoryview) -> bytes | None:
        """Swap the upstream's error for a refused statement's stand-in back to dbfw's own refusal."""
        err = m.ErrorResponse.decode(raw[5:])
        if err.severity == "FATAL":
            self._upstream_fatal_sent = True
        if not self.substitutions:
            return None
        for i, sub in enumerate(self.substitutions):
            if sub.token in err.message:
                del self.substitutions[i]
                v = sub.verdict
                return m.ErrorResponse.make("ERROR", v.sqlstate, v.message, v.detail, v.hint, v.position).encode()
        return None
