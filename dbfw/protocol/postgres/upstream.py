"""dbfw as a PostgreSQL client: connect and authenticate to the upstream with the held credential."""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass, field

from ...config import Settings, Upstream
from ...scram import AuthError, ScramClient, md5_password
from . import messages as m


class UpstreamError(Exception):
    """The upstream could not be reached or refused dbfw. ``error`` is the server's own, if it sent one."""

    def __init__(self, message: str, error: m.ErrorResponse | None = None):
        super().__init__(message)
        self.error = error


@dataclass
class UpstreamConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    frames: m.FrameReader
    pid: int = 0
    secret: bytes = b""
    parameters: dict[str, str] = field(default_factory=dict)
    # Messages the client must see from the upstream's start-up (ParameterStatus, notices), as raw bytes.
    startup_messages: list[bytes] = field(default_factory=list)
    status: str = "I"


def _client_ssl_context(up: Upstream) -> ssl.SSLContext:
    if up.tls.mode == "verify-full":
        ctx = ssl.create_default_context(cafile=str(up.tls.ca_file))
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def open_stream(up: Upstream, *, limit: int = 1 << 20) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the transport to the upstream and negotiate TLS as its ``tls.mode`` says."""
    if up.host.startswith("/"):
        path = os.path.join(up.host, f".s.PGSQL.{up.port}")
        return await asyncio.open_unix_connection(path, limit=limit)
    reader, writer = await asyncio.open_connection(up.host, up.port, limit=limit)
    if up.tls.mode == "disable":
        return reader, writer
    writer.write(m.SSLRequest().encode())
    await writer.drain()
    answer = await reader.readexactly(1)
    if answer == b"S":
        await writer.start_tls(_client_ssl_context(up), server_hostname=up.host if up.tls.mode == "verify-full"
                               else None)
    elif answer == b"N":
        if up.tls.mode in ("require", "verify-full"):
            writer.close()
            raise UpstreamError(f"the database does not offer TLS, and tls.mode is {up.tls.mode}")
    else:
        writer.close()
        raise UpstreamError("the database answered the TLS request with an invalid byte")
    return reader, writer


async def _read_frame(conn_reader: asyncio.StreamReader, frames: m.FrameReader) -> m.Frame:
    while True:
        for frame in frames.frames():
            return frame
        data = await conn_reader.read(65536)
        if not data:
            raise UpstreamError("the database closed the connection during start-up")
        frames.feed(data)


async def connect(up: Upstream, database: str, params: dict[str, str], *,
                  max_message_size: int = m.DEFAULT_MAX_MESSAGE) -> UpstreamConnection:
    """Connect, authenticate and read the start-up messages up to the first ReadyForQuery."""
    try:
        reader, writer = await asyncio.wait_for(open_stream(up), up.connect_timeout)
    except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError) as e:
        raise UpstreamError(f"cannot reach the database: {type(e).__name__}: {e}") from None
    frames = m.FrameReader(max_message_size, streamable=frozenset(b"Dd"))
    conn = UpstreamConnection(reader, writer, frames)
    try:
        await asyncio.wait_for(_start(conn, up, database, params), up.connect_timeout)
    except BaseException:
        writer.close()
        raise
    return conn


async def _start(conn: UpstreamConnection, up: Upstream, database: str, params: dict[str, str]) -> None:
    startup = {**params, "user": up.user, "database": database}
    conn.writer.write(m.StartupMessage(startup).encode())
    await conn.writer.drain()
    scram: ScramClient | None = None
    try:
        while True:
            frame = await _read_frame(conn.reader, conn.frames)
            if frame.streamed:
                raise UpstreamError("the database sent an oversized message during start-up")
            msg = m.decode_frame(frame, backend=True)
            if isinstance(msg, m.Authentication):
                if msg.code == m.AUTH_OK:
                    continue
                if up.password is None:
                    raise UpstreamError("the database asks for a password and the upstream has none configured")
                if msg.code == m.AUTH_CLEARTEXT:
                    reply: m.Message = m.PasswordMessage(up.password.encode() + b"\0")
                elif msg.code == m.AUTH_MD5:
                    reply = m.PasswordMessage(md5_password(up.user, up.password, msg.data).encode() + b"\0")
                elif msg.code == m.AUTH_SASL:
                    if "SCRAM-SHA-256" not in msg.mechanisms():
                        raise UpstreamError(f"the database offers no SASL mechanism dbfw supports: "
                                            f"{msg.mechanisms()}")
                    scram = ScramClient(up.password)
                    reply = m.SASLInitialResponse("SCRAM-SHA-256", scram.first())
                elif msg.code == m.AUTH_SASL_CONTINUE and scram is not None:
                    reply = m.PasswordMessage(scram.final(msg.data))
                elif msg.code == m.AUTH_SASL_FINAL and scram is not None:
                    scram.verify(msg.data)
                    continue
                else:
                    raise UpstreamError(f"the database asks for an authentication method dbfw does not "
                                        f"support (code {msg.code})")
                conn.writer.write(reply.encode())
                await conn.writer.drain()
            elif isinstance(msg, m.ErrorResponse):
                raise UpstreamError(msg.message, msg)
            elif isinstance(msg, m.BackendKeyData):
                conn.pid, conn.secret = msg.pid, msg.secret
            elif isinstance(msg, m.ParameterStatus):
                conn.parameters[msg.name] = msg.value
                conn.startup_messages.append(bytes(frame.raw))
            elif isinstance(msg, m.NoticeResponse):
                conn.startup_messages.append(bytes(frame.raw))
            elif isinstance(msg, m.NegotiateProtocolVersion):
                continue
            elif isinstance(msg, m.ReadyForQuery):
                conn.status = msg.status
                return
            else:
                raise UpstreamError(f"unexpected message {frame.kind!r} from the database during start-up")
    except AuthError as e:
        raise UpstreamError(str(e)) from None
    except m.ProtocolError as e:
        raise UpstreamError(f"the database sent an invalid message: {e}") from None


async def send_cancel(up: Upstream, pid: int, secret: bytes) -> None:
    """Ask the upstream to cancel the statement running in backend ``pid``. Best effort, bounded in time."""
    try:
        reader, writer = await asyncio.wait_for(open_stream(up), up.connect_timeout)
    except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError, UpstreamError):
        return
    try:
        writer.write(m.CancelRequest(pid, secret).encode())
        await writer.drain()
        # The server closes the connection once it has read the request.
        await asyncio.wait_for(reader.read(1), 5)
    except (OSError, TimeoutError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def upstreams_reachable(settings: Settings, timeout: float = 2.0) -> dict[str, bool]:
    async def probe(up_name: str) -> bool:
        up = settings.upstreams[up_name]
        try:
            _, w = await asyncio.wait_for(open_stream(up), timeout)
        except Exception:
            return False
        w.close()
        return True

    names = list(settings.upstreams)
    results = await asyncio.gather(*(probe(n) for n in names))
    return dict(zip(names, results, strict=True))
