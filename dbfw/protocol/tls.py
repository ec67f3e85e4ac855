"""Server-side TLS over a connection that has already been read from.

A MySQL client sends its TLS ClientHello right after its SSL request, without waiting for an answer, so
the first encrypted bytes often arrive in the same read as the request. asyncio's ``start_tls`` cannot be
handed bytes that were already read (and uvloop's takes only its own transports). This layer runs TLS on
an ``ssl.SSLObject`` over memory buffers instead: it takes the bytes read ahead, sits between the socket's
transport and whatever protocol reads the plaintext, and looks like an ordinary transport to that
protocol (writes, flow control both ways, close), so the opening's stream reader and the relay's
protocols run over it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

READ_SIZE = 256 * 1024


class TlsTransport(asyncio.Transport):
    """The plaintext side of one TLS connection. ``handshake`` completes when TLS is established."""

    def __init__(self, raw: asyncio.Transport, context: ssl.SSLContext, early: bytes = b""):
        super().__init__()
        self._raw = raw
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._protocol: asyncio.BaseProtocol | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._paused = False  # the plaintext reader asked for no more data
        self._closing = False
        self._eof = False
        raw.set_protocol(_Wire(self))
        if early:
            self._received(early)
        raw.resume_reading()

    # --- ciphertext in ---------------------------------------------------------------------------------

    def _received(self, data: bytes) -> None:
        self._incoming.write(data)
        if not self.handshake.done():
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except (ssl.SSLError, OSError) as e:
                self._flush()
                self.handshake.set_exception(e)
                self._raw.abort()
                return
            self._flush()
            self.handshake.set_result(None)
        self._deliver()

    def _deliver(self) -> None:
        """Hand the plaintext decrypted so far to the reader, for as long as it wants more."""
        while not self._paused and self._protocol is not None:
            try:
                data = self._tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                self._eof_now()
                break
            except ssl.SSLError as e:
                self._lost(e)
                break
            if not data:
                self._eof_now()
                break
            self._protocol.data_received(data)  # type: ignore[attr-defined]
        self._flush()  # what reading produced (key updates, alerts)
        if self._eof and not self._paused:
            self._eof_now()

    def _eof_now(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            with contextlib.suppress(Exception):
                protocol.eof_received()  # type: ignore[attr-defined]
            protocol.connection_lost(None)
        self._raw.close()

    def _lost(self, exc: BaseException | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionResetError("the client closed the connection during TLS"))
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.connection_lost(exc)
        self._raw.abort()

    # --- plaintext out ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._outgoing.pending:
            data = self._outgoing.read()
            if not self._raw.is_closing():
                self._raw.write(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        self._tls.write(data)
        self._flush()

    def writelines(self, lines: Any) -> None:
        if self._closing:
            return
        for data in lines:
            if data:
                self._tls.write(data)
        self._flush()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    # --- the transport's other duties ----------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self._paused:
            self._paused = True
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            # Plaintext already decrypted waits in the TLS object: hand it over first, outside the caller.
            asyncio.get_running_loop().call_soon(self._resume)

    def _resume(self) -> None:
        if self._paused or self._raw.is_closing():
            return
        self._deliver()
        if not self._paused:
            self._raw.resume_reading()

    def is_reading(self) -> bool:
        return not self._paused

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing or self._raw.is_closing()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(ssl.SSLError, OSError):
            self._tls.unwrap()  # close_notify; the peer's is not waited for
        self._flush()
        self._raw.close()

    def abort(self) -> None:
        self._closing = True
        self._raw.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls
        if name == "cipher":
            return self._tls.cipher()
        if name == "peercert":
            return self._tls.getpeercert()
        return self._raw.get_extra_info(name, default)


class _Wire(asyncio.Protocol):
    """The socket's protocol while TLS runs on it: ciphertext in, end and flow control passed on."""

    def __init__(self, tls: TlsTransport):
        self._tls = tls

    def data_received(self, data: bytes) -> None:
        self._tls._received(data)

    def eof_received(self) -> bool:
        t = self._tls
        if t._paused:
            t._eof = True  # after the plaintext still waiting is read
        else:
            t._deliver()
            if t._protocol is not None:
                t._eof_now()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._tls._lost(exc)

    def pause_writing(self) -> None:
        p = self._tls._protocol
        if p is not None:
            p.pause_writing()

    def resume_writing(self) -> None:
        p = self._tls._protocol
        if p is not None:
            p.resume_writing()


async def start_server_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext,
                           early: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TLS on the connection behind ``reader``/``writer``, given the ciphertext already read from it
    (``early``, plus what the reader holds). Returns a reader and writer of the plaintext."""
    buffer = getattr(reader, "_buffer", None)
    if buffer:
        early += bytes(buffer)
        buffer.clear()
    raw = writer.transport
    tls = TlsTransport(raw, context, early)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    new_reader = asyncio.StreamReader(limit=2 ** 16, loop=loop)
    protocol = asyncio.StreamReaderProtocol(new_reader, loop=loop)
    tls.set_protocol(protocol)
    protocol.connection_made(tls)
    await tls.handshake
    return new_reader, asyncio.StreamWriter(tls, protocol, new_reader, loop)
