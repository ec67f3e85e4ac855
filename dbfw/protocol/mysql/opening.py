"""Opening a MySQL session: dbfw's handshake, the client's authentication as a dbfw identity (optionally
over TLS), and the upstream session with dbfw's own credential. What comes out is the session core."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import ssl

from ... import log, metrics
from ... import mysql_auth as auth
from ...config import Listener, Upstream
from ...context import StatementContext
from ...identity import Principal
from ...masking.plan import ColumnMask
from ...scram import ScramVerifier
from ...sql.classify import LEX_MYSQL_ANSI_QUOTES, LEX_MYSQL_LATIN1, LEX_MYSQL_NO_BACKSLASH_ESCAPES
from ..common import Runtime, Session
from ..tls import start_server_tls
from . import packets as p
from .core import EndReason, MaskLookup, MyCore
from .upstream import MyUpstream, UpstreamError, connect, query_rows, read_packet

AUTH_TIMEOUT = 60.0
ERRNO_ACCESS_DENIED = 1045
ERRNO_TOO_MANY = 1040
ERRNO_HANDSHAKE = 1043  # ER_HANDSHAKE_ERROR
ERRNO_NOT_ALLOWED = 1227  # ER_SPECIFIC_ACCESS_DENIED_ERROR

_connection_ids = itertools.count(1)


class ClientGone(Exception):
    pass


class Refused(Exception):
    """The opening ends with an ERR to the client."""

    def __init__(self, reason: EndReason, err: p.Err):
        super().__init__(err.message)
        self.reason, self.err = reason, err


# What each upstream says about itself (version, capabilities), read once without logging in: dbfw's own
# handshake must promise only what the upstream can keep.
_greetings: dict[str, p.Handshake] = {}


async def upstream_greeting(name: str, up: Upstream) -> p.Handshake:
    found = _greetings.get(name)
    if found is not None:
        return found
    if up.host.startswith("/"):
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(up.host), up.connect_timeout)
    else:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(up.host, up.port), up.connect_timeout)
    try:
        packet = await asyncio.wait_for(read_packet(reader, p.PacketReader()), up.connect_timeout)
        found = _greetings[name] = p.Handshake.decode(packet.payload)
        return found
    finally:
        writer.close()


class Opening:
    """Everything before the relay, for one client connection."""

    def __init__(self, rt: Runtime, listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tls: ssl.SSLContext | None, session: Session, client_addr: str):
        self.rt, self.listener, self.reader, self.writer, self.tls_context = rt, listener, reader, writer, tls
        self.session, self.session_id, self.client_addr = session, session.session_id, client_addr
        self.packets = p.PacketReader(65536)
        self.seq = 0
        self.tls_active = False
        self.connection_id = next(_connection_ids)
        self.upstream: MyUpstream | None = None
        self.ctx: StatementContext | None = None
        self.core: MyCore | None = None
        self.crowded = False
        self.nonce, self.offered, self.client_capabilities = b"", 0, 0

    async def open(self) -> EndReason | None:
        """None when the relay may start, else why the session ends (the client was told)."""
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                return await self._open()
        except Refused as e:
            await self.refuse_quietly(e.err)
            return e.reason

    async def _open(self) -> EndReason | None:
        up_cfg = self.rt.settings.upstreams[self.listener.upstream]
        try:
            greeting = await upstream_greeting(self.listener.upstream, up_cfg)
        except (OSError, TimeoutError, p.PacketError) as e:
            metrics.upstream_errors.labels(self.listener.name).inc()
            log.warning("upstream.connect_failed", session=self.session_id, upstream=self.listener.upstream,
                        error=str(e))
            raise Refused(EndReason.UPSTREAM_UNAVAILABLE, p.Err(2003, "08S01", "dbfw: cannot connect to the "
                                                                 "database; try again later")) from e
        if self.crowded:
            log.warning("session.too_many_connections", listener=self.listener.name, client=self.client_addr)
            raise Refused(EndReason.TOO_MANY_CONNECTIONS, p.Err(
                ERRNO_TOO_MANY, "08004", f"dbfw: too many connections on listener {self.listener.name}; try again "
                "later"))
        nonce = auth.nonce()
        caps = (p.SUPPORTED & greeting.capabilities) | p.REQUIRED
        if self.tls_context is not None:
            caps |= p.Capability.SSL
        plugin = self.listener.auth_methods[0]
        hello = p.Handshake(greeting.server_version, self.connection_id, nonce, caps, p.UTF8MB4_GENERAL_CI,
                            p.Status.AUTOCOMMIT, plugin)
        await self._send(hello.encode())
        response = await self._handshake_response()
        self.nonce, self.offered, self.client_capabilities = nonce, caps, response.capabilities
        principal = await self._authenticate(response, nonce, plugin)
        await self._connect_upstream(principal, response, caps)
        return None

    async def change_user(self, payload: bytes) -> EndReason | None:
        """COM_CHANGE_USER (read from ``self.reader``, the relay's client bytes): the new user logs in as a dbfw
        identity, scrambling with the session's nonce as a server expects, and gets a new upstream session
        with dbfw's credential (``self.upstream``, ``self.ctx`` and ``self.core`` are replaced: nothing of the
        old session's state, statements or settings carries over). None: done; else why the session ends."""
        self.seq = 1
        try:
            async with asyncio.timeout(AUTH_TIMEOUT):
                request = p.change_user_request(payload, self.client_capabilities)
                self._check_charset(request)
                principal = await self._authenticate(request, self.nonce, self.listener.auth_methods[0])
                await self._connect_upstream(principal, request, self.offered)
            return None
        except Refused as e:
            await self.refuse_quietly(e.err)
            return e.reason

    # --- bytes ---------------------------------------------------------------------------------------

    async def _send(self, payload: bytes) -> None:
        data, self.seq = p.frame(payload, self.seq)
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self) -> p.Packet:
        while True:
            for packet in self.packets.packets():
                if packet.seq != self.seq:
                    raise p.PacketError(f"sequence id {packet.seq} where {self.seq} was due")
                self.seq = (packet.seq + 1) & 0xFF
                return packet
            data = await self.reader.read(65536)
            if not data:
                raise ClientGone()
            self.packets.feed(data)

    async def refuse_quietly(self, err: p.Err) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._send(err.encode()), 5)

    # --- the client -----------------------------------------------------------------------------------

    async def _handshake_response(self) -> p.HandshakeResponse:
        response = p.HandshakeResponse.decode((await self._read()).payload)
        if response.ssl_request:
            if self.tls_context is None:
                raise p.PacketError("an SSL request to a listener without TLS")
            # The client's first TLS bytes may have come with the request: TLS starts with them.
            self.reader, self.writer = await start_server_tls(self.reader, self.writer, self.tls_context,
                                                              self.packets.take_buffered())
            self.tls_active = True
            response = p.HandshakeResponse.decode((await self._read()).payload)
            if response.ssl_request:
                raise p.PacketError("a second SSL request")
        tls = self.listener.tls
        if tls is not None and tls.required and not self.tls_active:
            raise Refused(EndReason.AUTH_FAILED, p.Err(ERRNO_ACCESS_DENIED, "28000",
                                                       "dbfw: this listener requires TLS; connect with --ssl"))
        self._check_charset(response)
        missing = p.REQUIRED & ~response.capabilities
        if missing:
            raise Refused(EndReason.AUTH_FAILED, p.Err(ERRNO_HANDSHAKE, "08S01", "dbfw: the client lacks "
                                                       f"capabilities dbfw needs: {p.Capability(missing)!r}"))
        return response

    @staticmethod
    def _check_charset(response: p.HandshakeResponse) -> None:
        if response.charset not in p.SAFE_COLLATIONS:
            # In GBK, Big5, SJIS... a backslash byte can hide inside a character: the server would read a text
            # dbfw reads as one string as several statements.
            raise Refused(EndReason.AUTH_FAILED, p.Err(1115, "42000", f"dbfw: character set {response.charset} is "
                                                       "not supported; connect with utf8mb4, utf8, latin1, ascii or "
                                                       "binary"))

    async def _authenticate(self, response: p.HandshakeResponse, nonce: bytes, plugin: str) -> Principal:
        user = response.user
        principal = self.rt.identities.get(user)
        token = response.auth
        used = response.plugin or auth.NATIVE
        # A plugin dbfw does not offer here, or another offered one with no answer yet (the client waits to be
        # switched to it, as a server would for the account's plugin): the client answers again.
        target = plugin if used not in self.listener.auth_methods else used if used != plugin and not token else None
        if target is None and used == auth.NATIVE and principal is not None and principal.mysql is None \
                and auth.CACHING_SHA2 in self.listener.auth_methods:
            target = auth.CACHING_SHA2  # no digest to check a native scramble: caching_sha2 asks for the password
        if target is not None:
            await self._send(p.auth_switch(target, nonce + b"\x00"))
            token = (await self._read()).payload
            used = target
        ok = False
        if principal is not None:
            ok = await self._check(principal, used, token, nonce)
        if not ok or principal is None:
            log.warning("auth.failed", user=user, client=self.client_addr, listener=self.listener.name, method=used)
            if self.rt.recorder is not None:
                self.rt.recorder.login_failed(user, self.client_addr, self.listener.name, "wrong password or user")
            raise Refused(EndReason.AUTH_FAILED, p.Err(ERRNO_ACCESS_DENIED, "28000", f"dbfw: access denied for "
                                                       f"user '{user}' (log in with your dbfw identity and its "
                                                       "password)"))
        if not principal.can_connect:
            if self.rt.recorder is not None:
                self.rt.recorder.login_failed(user, self.client_addr, self.listener.name, "no agent role")
            raise Refused(EndReason.AUTH_FAILED, p.Err(ERRNO_NOT_ALLOWED, "28000", f"dbfw: identity '{user}' may "
                                                       "not connect through a listener; ask a dbfw admin for the "
                                                       "agent role"))
        return principal

    async def _check(self, principal: Principal, plugin: str, token: bytes, nonce: bytes) -> bool:
        v = principal.mysql
        if plugin == auth.NATIVE:
            return v is not None and auth.native_check(token, nonce, v.native)
        if plugin != auth.CACHING_SHA2:
            return False
        if v is not None and token:
            if not auth.sha2_check(token, nonce, v.sha2):
                return False
            await self._send(auth.FAST_AUTH_OK)
            return True
        # Only a SCRAM verifier is kept for this identity: the password itself is needed, over TLS or
        # encrypted with dbfw's RSA key (a password sent in clear on a plain connection is not read).
        if principal.scram is None:
            return False
        await self._send(auth.FULL_AUTH)
        answer = (await self._read()).payload
        if self.tls_active:
            password: str | None = auth.cleartext(answer)
        else:
            if answer != auth.PUBLIC_KEY_REQUEST:
                return False
            key = await asyncio.to_thread(auth.server_rsa_key)
            await self._send(b"\x01" + auth.public_key_pem(key))
            password = auth.rsa_password(key, (await self._read()).payload, nonce)
        if password is None:
            return False
        s = principal.scram
        return hmac.compare_digest(ScramVerifier.from_password(password, salt=s.salt, iterations=s.iterations)
                                   .stored_key, s.stored_key)

    # --- the upstream -----------------------------------------------------------------------------------

    async def _connect_upstream(self, principal: Principal, response: p.HandshakeResponse, offered: int) -> None:
        up_cfg = self.rt.settings.upstreams[self.listener.upstream]
        database = up_cfg.database or response.database or ""
        caps = response.capabilities & offered & ~p.Capability.SSL
        try:
            self.upstream = await connect(up_cfg, caps, database or None, response.charset,
                                          {"_client_name": "dbfw", "dbfw_identity": principal.name})
        except UpstreamError as e:
            metrics.upstream_errors.labels(self.listener.name).inc()
            log.warning("upstream.connect_failed", session=self.session_id, upstream=self.listener.upstream,
                        error=str(e), errno=e.error.errno if e.error else None)
            if e.error is not None and e.error.errno not in (1045, 1044, 1698):
                raise Refused(EndReason.UPSTREAM_UNAVAILABLE, e.error) from e  # no such database, too many
            if e.error is not None:
                raise Refused(EndReason.UPSTREAM_UNAVAILABLE, p.Err(1045, "28000", "dbfw: the database refused "
                                                                    "dbfw's own credential; tell the operator")) from e
            raise Refused(EndReason.UPSTREAM_UNAVAILABLE, p.Err(2003, "08S01", "dbfw: cannot connect to the "
                                                                "database; try again later")) from e
        up = self.upstream
        if p.wire_format(caps) != p.wire_format(up.capabilities):
            # The upstream's greeting changed since dbfw read it (a failover to another server version): the
            # client was promised a wire format this session does not speak. Read it again; the client retries.
            _greetings.pop(self.listener.upstream, None)
            raise Refused(EndReason.UPSTREAM_UNAVAILABLE, p.Err(2003, "08S01", "dbfw: the database's capabilities "
                                                                "changed since dbfw last saw it; connect again"))
        try:
            # How the server reads text in this session: ANSI_QUOTES is not in its status flags, nor the
            # character set (the server's default is what COM_RESET_CONNECTION goes back to).
            (row,) = await query_rows(up, "SELECT @@SESSION.sql_mode, @@SESSION.character_set_client, "
                                          "@@GLOBAL.character_set_client") or [[None, None, None]]
        except (UpstreamError, ValueError) as e:
            raise Refused(EndReason.UPSTREAM_UNAVAILABLE, p.Err(2013, "HY000", f"dbfw: {e}")) from e
        mode = (row[0] or b"").upper().split(b",")
        latin1 = any((charset or b"").lower().startswith(b"latin1") for charset in row[1:])
        lex = (LEX_MYSQL_ANSI_QUOTES if b"ANSI_QUOTES" in mode else 0) | (
            LEX_MYSQL_NO_BACKSLASH_ESCAPES if b"NO_BACKSLASH_ESCAPES" in mode else 0) | (
            LEX_MYSQL_LATIN1 if latin1 else 0)
        self.ctx = StatementContext(identity=principal.name, roles=principal.roles, database=database,
                                    listener=self.listener.name, protocol="mysql", session_id=self.session_id,
                                    client_addr=self.client_addr, lex=lex)
        fw = self.rt.firewall
        await fw.prepare(self.ctx)  # the database's column types, before its first statement is classified
        core = MyCore(self.ctx, up.capabilities, limits=fw.rules.limits, recorder=self.rt.recorder,
                      masks=self._column_masks(self.ctx), max_packet=self.listener.max_message_size, status=up.status)
        core.decide_now = fw.check_now
        core.generation = fw.generation
        self.core = core
        await self._send(p.Ok(status=up.status).encode())
        if self.rt.recorder is not None:
            self.rt.recorder.session_started(self.ctx)
        log.event("session.start", session=self.session_id, identity=principal.name, listener=self.listener.name,
                  client=self.client_addr, database=database, tls=self.tls_active)

    def _column_masks(self, ctx: StatementContext) -> MaskLookup | None:
        """Masking's second line for this identity: a result column whose definition names a table column
        a rule covers (org_table, org_name) is masked even if lineage missed it. None: no rule applies."""
        masking = self.rt.firewall.masking
        if masking is None or not masking.applies(ctx):
            return None
        planner = masking.planner
        rules = planner.applicable(ctx)

        def lookup(database: str, columns: list[p.Column]) -> list[ColumnMask | None]:
            out: list[ColumnMask | None] = []
            for c in columns:
                rule = planner.rule_for(rules, (c.schema or database).lower(), c.org_table.lower(),
                                        c.org_name.lower()) if c.org_table and c.org_name else None
                out.append(None if rule is None else ColumnMask(
                    rule.name, None if rule.mask == "null" else planner.maskers[rule.name]))
            return out

        return lookup
