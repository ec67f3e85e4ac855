"""dbfw as a MySQL client: connect and authenticate to the upstream with the held credential."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from ... import mysql_auth as auth
from ...config import Upstream
from . import packets as p


class UpstreamError(Exception):
    """The upstream could not be reached or refused dbfw. ``error`` is the server's own ERR, if it sent one."""

    def __init__(self, message: str, error: p.Err | None = None):
        super().__init__(message)
        self.error = error


@dataclass
class MyUpstream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    packets: p.PacketReader
    handshake: p.Handshake
    capabilities: int  # what dbfw and the upstream agreed on
    status: int
    tls: bool = False


async def read_packet(reader: asyncio.StreamReader, packets: p.PacketReader) -> p.Packet:
    """The next logical packet (EOF: IncompleteReadError)."""
    while True:
        for packet in packets.packets():
            return packet
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        packets.feed(data)


def _tls_context(up: Upstream) -> ssl.SSLContext:
    if up.tls.mode == "verify-full":
        ctx = ssl.create_default_context(cafile=str(up.tls.ca_file))
        ctx.check_hostname = True
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def scramble(plugin: str, password: str, salt: bytes) -> bytes:
    if plugin == auth.CACHING_SHA2:
        return auth.sha2_scramble(password, salt)
    if plugin == auth.NATIVE:
        return auth.native_scramble(password, salt)
    raise UpstreamError(f"the upstream asks for the {plugin} authentication plugin, which dbfw does not speak")


def _rsa_encrypted(password: str, salt: bytes, pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise UpstreamError("the upstream's public key is not an RSA key")
    clear = password.encode() + b"\x00"
    mixed = bytes(c ^ salt[i % len(salt)] for i, c in enumerate(clear))
    return key.encrypt(mixed, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))


class _Login:
    """The authentication exchange after the handshake response, until OK or ERR."""

    def __init__(self, conn: MyUpstream, password: str, plugin: str, salt: bytes, seq: int):
        self.conn, self.password, self.plugin, self.salt, self.seq = conn, password, plugin, salt, seq

    async def send(self, payload: bytes) -> None:
        data, self.seq = p.frame(payload, self.seq)
        self.conn.writer.write(data)
        await self.conn.writer.drain()

    async def finish(self) -> p.Ok:
        conn = self.conn
        while True:
            packet = await read_packet(conn.reader, conn.packets)
            self.seq = (packet.seq + 1) & 0xFF
            first, payload = packet.first, packet.payload
            if first == p.OK:
                return p.Ok.decode(payload)
            if first == p.ERR:
                err = p.Err.decode(payload)
                raise UpstreamError(f"the upstream refused dbfw's login: {err.message}", err)
            if first == p.AUTH_SWITCH:
                r = p.Reader(payload, 1)
                self.plugin = p.text(r.cstr())
                self.salt = r.rest().rstrip(b"\x00")[:20]
                await self.send(scramble(self.plugin, self.password, self.salt))
            elif first == p.AUTH_MORE_DATA and self.plugin == auth.CACHING_SHA2:
                await self._sha2_more(payload)
            else:
                raise UpstreamError(f"unexpected packet 0x{first:02x} while logging in to the upstream")

    async def _sha2_more(self, payload: bytes) -> None:
        if payload == auth.FAST_AUTH_OK:
            return  # the OK follows
        if payload == auth.FULL_AUTH:
            if self.conn.tls:
                await self.send(self.password.encode() + b"\x00")
            else:
                await self.send(auth.PUBLIC_KEY_REQUEST)
            return
        # The server's RSA public key, asked for above.
        await self.send(_rsa_encrypted(self.password, self.salt, payload[1:]))


async def connect(up: Upstream, capabilities: int, database: str | None, charset: int,
                  attributes: dict[str, str] | None = None) -> MyUpstream:
    """Open a session on the upstream as dbfw, with the client's capabilities where the upstream has them."""
    try:
        if up.host.startswith("/"):
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(up.host, limit=1 << 20),
                                                    up.connect_timeout)
        else:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(up.host, up.port, limit=1 << 20),
                                                    up.connect_timeout)
    except (OSError, TimeoutError) as e:
        raise UpstreamError(f"cannot reach the upstream at {up.host}:{up.port}: {e}") from e
    try:
        return await asyncio.wait_for(_login(reader, writer, up, capabilities, database, charset, attributes),
                                      up.connect_timeout)
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:  # TLS refused, reset, silent
        writer.close()
        raise UpstreamError(f"cannot open a session on the upstream at {up.host}:{up.port}: "
                            f"{type(e).__name__}: {e}") from e
    except BaseException:
        writer.close()
        raise


async def _login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: Upstream, capabilities: int,
                 database: str | None, charset: int, attributes: dict[str, str] | None) -> MyUpstream:
    packets = p.PacketReader()
    try:
        first = await read_packet(reader, packets)
        hs = p.Handshake.decode(first.payload)
    except p.PacketError as e:
        raise UpstreamError(f"the upstream did not greet as a MySQL server: {e}") from e
    caps = (capabilities & p.SUPPORTED & hs.capabilities) | p.REQUIRED
    caps &= ~p.Capability.CONNECT_WITH_DB
    if database:
        caps |= p.Capability.CONNECT_WITH_DB
    if not attributes:
        caps &= ~p.Capability.CONNECT_ATTRS
    conn = MyUpstream(reader, writer, packets, hs, caps, hs.status)
    seq = (first.seq + 1) & 0xFF
    wants_tls = up.tls.mode != "disable"
    if wants_tls and hs.capabilities & p.Capability.SSL:
        caps |= p.Capability.SSL
        conn.capabilities = caps
        data, seq = p.frame(p.HandshakeResponse(caps, charset=charset, ssl_request=True).encode(), seq)
        writer.write(data)
        await writer.drain()
        await writer.start_tls(_tls_context(up), server_hostname=up.host if up.tls.mode == "verify-full" else None)
        conn.tls = True
    elif up.tls.mode in ("require", "verify-full"):
        raise UpstreamError("the upstream does not offer TLS and the upstream's tls.mode requires it")
    password = up.password or ""
    plugin = hs.plugin if hs.plugin in auth.PLUGINS else auth.NATIVE
    response = p.HandshakeResponse(caps, charset=charset, user=up.user, auth=scramble(plugin, password, hs.nonce),
                                   database=database, plugin=plugin, attributes=dict(attributes or {}))
    login = _Login(conn, password, plugin, hs.nonce, seq)
    await login.send(response.encode())
    ok = await login.finish()
    conn.status = ok.status
    return conn


async def query_rows(conn: MyUpstream, sql: str) -> list[list[bytes | None]]:
    """dbfw's own query on a connection of its own (text rows, every column)."""
    deprecate_eof = bool(conn.capabilities & p.Capability.DEPRECATE_EOF)
    conn.writer.write(p.frame(bytes((p.Command.QUERY,)) + sql.encode(), 0)[0])
    await conn.writer.drain()
    first = await read_packet(conn.reader, conn.packets)
    if first.first == p.ERR:
        raise UpstreamError(f"the upstream refused {sql!r}: {p.Err.decode(first.payload).message}")
    if first.first == p.OK:
        return []
    n = p.column_count(first.payload)
    for _ in range(n + (0 if deprecate_eof else 1)):
        await read_packet(conn.reader, conn.packets)
    rows: list[list[bytes | None]] = []
    while True:
        packet = await read_packet(conn.reader, conn.packets)
        if packet.first == p.ERR:
            raise UpstreamError(f"the upstream failed {sql!r}: {p.Err.decode(packet.payload).message}")
        if p.is_eof(packet.payload, deprecate_eof):
            conn.status = p.eof_status(packet.payload)
            return rows
        rows.append(p.text_row_values(packet.payload, n))
