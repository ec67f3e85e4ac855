"""PostgreSQL v3 wire protocol, sans-I/O.

Two layers, neither touching a socket:

* :class:`FrameReader` splits a byte stream into frames (``tag`` + ``payload``), enforcing a size
  bound on every message dbfw must hold whole. Messages dbfw only relays (data rows, COPY data,
  Bind) may be streamed through in pieces instead of being buffered, so a 500 MB row costs dbfw a
  few hundred kilobytes of memory, not 500 MB.
* Message classes decode a frame's payload into typed fields and encode themselves back to bytes.
  Relayed messages are never re-encoded: the session forwards the frame's original bytes.

Malformed input raises :class:`ProtocolError`; nothing else escapes from decoding.

Text fields are decoded as UTF-8 with ``surrogateescape`` so that any byte string round-trips
exactly; the session re-decodes SQL text with the client's encoding when that is not UTF-8.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

PROTOCOL_3_0 = 196608  # 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

# PostgreSQL itself refuses any message over 1 GiB; dbfw never exceeds that even when streaming.
ABSOLUTE_MAX_MESSAGE = 1 << 30
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
STREAM_CHUNK = 256 * 1024

_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_HDR = struct.Struct("!cI")


class ProtocolError(Exception):
    """The peer sent bytes that are not valid protocol. The connection must be closed."""

    sqlstate = "08P01"


# --- framing -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Frame:
    """One message, or one piece of a streamed message.

    ``raw`` is the bytes exactly as received (header included for a whole message or for the first
    piece of a streamed one). ``tag`` is the type byte, 0 for the untyped startup-phase messages.
    ``final`` is False for every piece of a streamed message but the last.
    """

    tag: int
    raw: memoryview
    header_len: int = 5
    final: bool = True
    streamed: bool = False

    @property
    def payload(self) -> memoryview:
        return self.raw[self.header_len:]

    @property
    def kind(self) -> str:
        return chr(self.tag) if self.tag else ""


class FrameReader:
    """Splits bytes into frames.

    ``startup=True`` reads the untyped length-prefixed messages of the startup phase; call
    :meth:`set_typed` when the startup phase is over. Messages whose tag is in ``streamable`` and
    that are larger than ``STREAM_CHUNK`` are emitted in pieces as they arrive; every other message
    is held until complete and may not exceed ``max_size``.
    """

    __slots__ = ("_buf", "_need", "_parts", "_parts_len", "_pos", "_remaining", "_stream_tag", "max_size", "startup",
                 "streamable")

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE, *, startup: bool = False,
                 streamable: frozenset[int] = frozenset()):
        # The bytes read and not yet framed. Immutable, so a frame is a view into them, not a copy.
        self._buf = b""
        self._pos = 0
        # A message arriving in many reads is gathered here and joined once it can be complete, so
        # a large message costs one copy, not one per read.
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._need = 0  # bytes from _pos needed before another frame can come out
        self._remaining = 0  # bytes still to come of a message being streamed
        self._stream_tag = 0
        self.max_size = max_size
        self.startup = startup
        self.streamable = streamable

    def set_typed(self) -> None:
        self.startup = False

    def take_buffered(self) -> bytes:
        """Hand over the bytes read but not yet framed (to a RelayScanner taking over the stream)."""
        data = b"".join([self._buf[self._pos:], *self._parts])
        self._buf, self._pos, self._parts, self._parts_len = b"", 0, [], 0
        return data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos + self._parts_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        rest = len(self._buf) - self._pos
        if not rest and not self._parts:
            self._buf, self._pos = data, 0
            return
        if not self._parts:
            self._parts, self._parts_len = [self._buf[self._pos:]], rest
            self._buf, self._pos = b"", 0
        self._parts.append(data)
        self._parts_len += len(data)
        if self._parts_len >= self._need:
            self._buf, self._pos = b"".join(self._parts), 0
            self._parts, self._parts_len = [], 0

    def frames(self) -> Iterator[Frame]:
        """Yield every frame (or streamed piece) available now. Raises ProtocolError on bad input."""
        while True:
            frame = self._next()
            if frame is None:
                if self._pos and self._pos >= len(self._buf):
                    self._buf, self._pos = b"", 0  # an idle session holds no read buffer
                return
            yield frame

    def _next(self) -> Frame | None:
        if self._parts:
            return None  # still gathering
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if self._remaining:
            if not avail:
                self._need = 1
                return None
            n = min(avail, self._remaining)
            self._remaining -= n
            self._pos = pos + n
            return Frame(self._stream_tag, memoryview(buf)[pos:pos + n], 0,
                         final=self._remaining == 0, streamed=True)
        if self.startup:
            if avail < 4:
                self._need = 4
                return None
            (length,) = _I32.unpack_from(buf, pos)
            if length < 8 or length > min(self.max_size, 10_000):
                raise ProtocolError(f"invalid startup packet length {length}")
            if avail < length:
                self._need = length
                return None
            self._pos = pos + length
            return Frame(0, memoryview(buf)[pos:pos + length], 4)
        if avail < 5:
            self._need = 5
            return None
        tag = buf[pos]
        (length,) = _U32.unpack_from(buf, pos + 1)
        if length < 4:
            raise ProtocolError(f"invalid length {length} in message of type {chr(tag)!r}")
        total = length + 1
        if avail >= total and total <= self.max_size:
            self._pos = pos + total
            return Frame(tag, memoryview(buf)[pos:pos + total])
        if tag in self.streamable and length <= ABSOLUTE_MAX_MESSAGE:
            if avail >= total:
                self._pos = pos + total
                return Frame(tag, memoryview(buf)[pos:pos + total])
            if avail >= STREAM_CHUNK or total > self.max_size:
                self._stream_tag = tag
                self._remaining = total - avail
                self._pos = pos + avail
                return Frame(tag, memoryview(buf)[pos:pos + avail], final=False, streamed=True)
            self._need = min(total, STREAM_CHUNK)
            return None
        if total > self.max_size:
            raise ProtocolError(
                f"message of type {chr(tag)!r} is {length} bytes, over the limit of {self.max_size}"
            )
        self._need = total
        return None




class RelayScanner:
    """Finds message boundaries in a relayed byte stream without copying it.

    ``feed`` returns, in order, what to forward: spans of the data to pass untouched (memoryviews),
    rebuilt DataRows (bytes, from ``row_fn``), and a ``(tag, message)`` pair for each complete message
    whose tag is in ``wanted``. After one such pair it stops before the next DataRow or CopyData, so the
    caller can act on the messages handed out (start masking the rows that follow, say) before calling
    ``feed(b"", ...)`` to go on while ``more`` is true. A message that is not wanted is forwarded as its
    bytes arrive, even when it is larger than any buffer; a wanted or rebuilt message is held until
    complete and may not exceed ``max_size``. Per message the cost is one header read: no object is
    made for a message nobody looks at.

    ``rows_left`` and ``bytes_left`` are what the result arriving now may still deliver (None: no
    limit). A DataRow past either is dropped as it arrives, so memory stays flat, and ``limit_hit``
    says so; the caller sets them as results start and end.
    """

    __slots__ = ("_carry", "_data", "_drop", "_pos", "_skip", "bytes_left", "dropped", "limit_hit", "max_size",
                 "more", "rows_left")

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE, initial: bytes = b""):
        self._carry = initial
        self._data = b""
        self._pos = 0
        self._skip = 0  # bytes still to come of a message being forwarded (or dropped) without a look
        self._drop = False
        self.more = False
        self.max_size = max_size
        self.rows_left: int | None = None
        self.bytes_left: int | None = None
        self.limit_hit = False
        self.dropped = 0  # rows dropped past the limit, each weighed as its bytes and 1 KiB more

    def feed(self, data: bytes, wanted: frozenset[int],
             row_fn: Callable[[memoryview], bytes] | None = None) -> list[memoryview | bytes | tuple[int, memoryview]]:
        out: list[memoryview | bytes | tuple[int, memoryview]] = []
        if data:
            if self._skip:
                k = min(self._skip, len(data))
                if not self._drop:
                    out.append(memoryview(data)[:k])
                self._skip -= k
                data = data[k:]
                if not data:
                    return out
            if self._carry:
                data = self._carry + data
                self._carry = b""
            self._data, self._pos = data, 0
        self._scan(wanted, row_fn, out)
        return out

    def _scan(self, wanted: frozenset[int], row_fn: Callable[[memoryview], bytes] | None,
              out: list[memoryview | bytes | tuple[int, memoryview]]) -> None:
        data, pos = self._data, self._pos
        n = len(data)
        mv = memoryview(data)
        seg = pos
        unpack = _U32.unpack_from
        self.more = False
        handed = False  # a wanted message went out in this call: rows after it wait for the caller
        while pos + 5 <= n:
            tag = data[pos]
            if handed and (tag == 68 or tag == 100):  # DataRow, CopyData
                # What the caller does with the message handed out (a new result's limits or masks, COPY
                # starting) decides how these are read: stop, the caller feeds b"" to go on.
                if pos > seg:
                    out.append(mv[seg:pos])
                self._data, self._pos, self.more = data, pos, True
                return
            (length,) = unpack(data, pos + 1)
            if length < 4:
                raise ProtocolError(f"invalid length {length} in message of type {chr(tag)!r}")
            end = pos + 1 + length
            if tag == 68:  # DataRow
                if end > n and (row_fn is not None or tag in wanted):
                    if length >= self.max_size:
                        raise ProtocolError(f"a data row of {length} bytes is over the limit of {self.max_size}")
                    break  # wait for the whole row
                if (self.rows_left is not None or self.bytes_left is not None) and self._over(end - pos):
                    if pos > seg:
                        out.append(mv[seg:pos])
                    if end > n:
                        self._skip, self._drop = end - n, True
                        pos = seg = n
                        break
                    pos = seg = end
                    continue
                if row_fn is not None:
                    if pos > seg:
                        out.append(mv[seg:pos])
                    pos = seg = self._masked(data, mv, pos, end, n, row_fn, out)
                    continue
            if tag not in wanted:
                if end > n:
                    self._skip, self._drop = end - n, False
                    pos = n
                    break
                pos = end
                continue
            if length >= self.max_size:
                raise ProtocolError(f"message of type {chr(tag)!r} has an invalid length {length}")
            if end > n:
                break
            if pos > seg:
                out.append(mv[seg:pos])
            out.append((tag, mv[pos:end]))
            pos = seg = end
            handed = True
        self._rest(mv, pos, seg, out)

    def _rest(self, mv: memoryview, pos: int, seg: int, out: list[memoryview | bytes | tuple[int, memoryview]]) -> None:
        """The end of what arrived: the span not yet forwarded goes out, a partial message waits for more."""
        if pos > seg:
            out.append(mv[seg:pos])
        if pos < len(mv):
            self._carry = bytes(mv[pos:])
        self._data, self._pos = b"", 0

    def _over(self, size: int) -> bool:
        """A DataRow of ``size`` bytes against the allowance: True when it is past it (and must be dropped)."""
        rows_left, bytes_left = self.rows_left, self.bytes_left
        if (rows_left is not None and rows_left <= 0) or (bytes_left is not None and bytes_left < size):
            self.limit_hit = True
            self.dropped += size + 1024
            if bytes_left is not None:
                self.bytes_left = 0  # no shorter row after it: the result is cut here
            return True
        if rows_left is not None:
            self.rows_left = rows_left - 1
        if bytes_left is not None:
            self.bytes_left = bytes_left - size
        return False

    def _masked(self, data: bytes, mv: memoryview, pos: int, end: int, n: int, row_fn: Callable[[memoryview], bytes],
                out: list[memoryview | bytes | tuple[int, memoryview]]) -> int:
        """The whole DataRow at ``pos`` masked, with the whole rows after it that ``row_fn`` masks in the same
        run (counted against the allowance). Returns where the run ends."""
        rows = getattr(row_fn, "rows", None)
        if rows is None:
            out.append(row_fn(mv[pos:end]))
            return end
        # A byte allowance ends the run where the allowance does.
        stop = n if self.bytes_left is None else min(n, end + self.bytes_left)
        masked, run_end, taken = rows(data, pos, stop, self.rows_left)
        if self.rows_left is not None:
            self.rows_left -= taken - 1  # the first row was counted above
        if self.bytes_left is not None:
            self.bytes_left -= run_end - end
        out.append(masked)
        return run_end


# --- payload reading -------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview):
        self.data = bytes(data)
        self.pos = 0

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("message is shorter than its contents")

    def int16(self) -> int:
        self._need(2)
        (v,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return v

    def uint16(self) -> int:
        self._need(2)
        (v,) = _U16.unpack_from(self.data, self.pos)
        self.pos += 2
        return v

    def int32(self) -> int:
        self._need(4)
        (v,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def uint32(self) -> int:
        self._need(4)
        (v,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def byte(self) -> int:
        self._need(1)
        v = self.data[self.pos]
        self.pos += 1
        return v

    def bytes(self, n: int) -> bytes:
        self._need(n)
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def rest(self) -> bytes:
        v = self.data[self.pos:]
        self.pos = len(self.data)
        return v

    def cstr(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError("string is not NUL-terminated")
        v = self.data[self.pos:end].decode("utf-8", "surrogateescape")
        self.pos = end + 1
        return v

    def nullable_bytes(self) -> bytes | None:
        n = self.int32()
        if n == -1:
            return None
        if n < -1:
            raise ProtocolError(f"invalid value length {n}")
        return self.bytes(n)

    def count(self, elem_size: int) -> int:
        # PostgreSQL reads every Int16 count unsigned (pq_getmsgint) and libpq sends up to 65535 parameters,
        # so a signed read would refuse valid Parse/Bind messages with more than 32767 of them.
        n = self.uint16()
        if n * elem_size > len(self.data) - self.pos:
            raise ProtocolError(f"invalid element count {n}")
        return n

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError("message has trailing bytes")


def _cstr(s: str) -> bytes:
    b = s.encode("utf-8", "surrogateescape")
    if b"\0" in b:
        raise ValueError("a protocol string cannot contain NUL")
    return b + b"\0"


def _frame(tag: bytes, body: bytes) -> bytes:
    return tag + _U32.pack(len(body) + 4) + body


def _i16s(values: list[int]) -> bytes:
    return _U16.pack(len(values)) + b"".join(_I16.pack(v) for v in values)


def _values(values: list[bytes | None]) -> bytes:
    out = [_U16.pack(len(values))]
    for v in values:
        out.append(_I32.pack(-1) if v is None else _I32.pack(len(v)) + v)
    return b"".join(out)


class Message:
    """Base of every message. Subclasses define ``TAG`` (b'' for untyped) and decode/encode."""

    TAG: ClassVar[bytes] = b""

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> Message:
        r = _Reader(payload)
        msg = cls._read(r)
        r.end()
        return msg

    @classmethod
    def _read(cls, r: _Reader) -> Message:
        return cls()

    def body(self) -> bytes:
        return b""

    def encode(self) -> bytes:
        return _frame(self.TAG, self.body())


# --- startup phase (untyped) ------------------------------------------------------------------------


@dataclass
class StartupMessage(Message):
    params: dict[str, str] = field(default_factory=dict)
    protocol: int = PROTOCOL_3_0

    @classmethod
    def _read(cls, r: _Reader) -> StartupMessage:
        protocol = r.int32()
        params: dict[str, str] = {}
        while True:
            key = r.cstr()
            if key == "":
                break
            params[key] = r.cstr()
        return cls(params, protocol)

    def encode(self) -> bytes:
        body = _I32.pack(self.protocol) + b"".join(_cstr(k) + _cstr(v) for k, v in self.params.items()) + b"\0"
        return _I32.pack(len(body) + 4) + body


@dataclass
class SSLRequest(Message):
    def encode(self) -> bytes:
        return _I32.pack(8) + _I32.pack(SSL_REQUEST_CODE)


@dataclass
class GSSENCRequest(Message):
    def encode(self) -> bytes:
        return _I32.pack(8) + _I32.pack(GSSENC_REQUEST_CODE)


@dataclass
class CancelRequest(Message):
    pid: int
    secret: bytes

    def encode(self) -> bytes:
        body = _I32.pack(CANCEL_REQUEST_CODE) + _I32.pack(self.pid) + self.secret
        return _I32.pack(len(body) + 4) + body


def decode_startup(payload: bytes | memoryview) -> StartupMessage | SSLRequest | GSSENCRequest | CancelRequest:
    """Decode an untyped startup-phase message (payload without its length word)."""
    r = _Reader(payload)
    code = r.int32()
    if code == SSL_REQUEST_CODE:
        r.end()
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        r.end()
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        pid = r.int32()
        secret = r.rest()
        if not 4 <= len(secret) <= 256:
            raise ProtocolError("invalid cancel request key")
        return CancelRequest(pid, secret)
    if code >> 16 != 3:
        raise ProtocolError(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}")
    r.pos = 0
    msg = StartupMessage._read(r)
    r.end()
    return msg


# --- frontend messages ------------------------------------------------------------------------------


@dataclass
class Query(Message):
    TAG = b"Q"
    query: str

    @classmethod
    def _read(cls, r: _Reader) -> Query:
        return cls(r.cstr())

    def body(self) -> bytes:
        return _cstr(self.query)


def query_text(payload: bytes | memoryview) -> str:
    """A Query message's text: Query.decode(payload).query, without making the message object (this runs
    for every simple-protocol statement)."""
    data = bytes(payload)
    end = data.find(0)
    if end < 0:
        raise ProtocolError("string is not NUL-terminated")
    if end != len(data) - 1:
        raise ProtocolError("message has trailing bytes")
    return data[:end].decode("utf-8", "surrogateescape")


@dataclass
class Parse(Message):
    TAG = b"P"
    name: str
    query: str
    param_types: list[int] = field(default_factory=list)

    @classmethod
    def _read(cls, r: _Reader) -> Parse:
        name, query = r.cstr(), r.cstr()
        n = r.count(4)
        return cls(name, query, [r.uint32() for _ in range(n)])

    def body(self) -> bytes:
        return (_cstr(self.name) + _cstr(self.query) + _U16.pack(len(self.param_types))
                + b"".join(_U32.pack(t) for t in self.param_types))


@dataclass
class Bind(Message):
    TAG = b"B"
    portal: str
    statement: str
    param_formats: list[int] = field(default_factory=list)
    params: list[bytes | None] = field(default_factory=list)
    result_formats: list[int] = field(default_factory=list)

    @staticmethod
    def frame(payload: bytes) -> bytes:
        """A Bind message around a payload already laid out (portal, statement, then the rest as sent)."""
        return _frame(b"B", payload)

    @classmethod
    def _read(cls, r: _Reader) -> Bind:
        portal, stmt = r.cstr(), r.cstr()
        pf = [r.int16() for _ in range(r.count(2))]
        params = [r.nullable_bytes() for _ in range(r.count(4))]
        rf = [r.int16() for _ in range(r.count(2))]
        return cls(portal, stmt, pf, params, rf)

    def body(self) -> bytes:
        return (_cstr(self.portal) + _cstr(self.statement) + _i16s(self.param_formats)
                + _values(self.params) + _i16s(self.result_formats))


def bind_targets(payload: bytes | memoryview) -> tuple[str, str, list[int]]:
    """A Bind's portal, statement and result formats, without copying its parameter values. Anything
    malformed is left to Bind.decode, which says what is wrong."""
    data = bytes(payload[:256]) if len(payload) > 256 else bytes(payload)
    end = data.find(0)
    stmt_end = data.find(0, end + 1) if end >= 0 else -1
    if stmt_end < 0:
        b = Bind.decode(payload)
        return b.portal, b.statement, b.result_formats
    if len(data) < len(payload):
        data = bytes(payload)
    try:
        pos = stmt_end + 1
        (n,) = _U16.unpack_from(data, pos)
        pos += 2 + 2 * n
        (n,) = _U16.unpack_from(data, pos)
        pos += 2
        for _ in range(n):
            (size,) = _I32.unpack_from(data, pos)
            if size < -1:
                raise struct.error("invalid parameter length")
            pos += 4 + (size if size > 0 else 0)
        (n,) = _U16.unpack_from(data, pos)
        formats = list(struct.unpack_from(f"!{n}h", data, pos + 2)) if n else []
        if pos + 2 + 2 * n != len(data):
            raise struct.error("trailing bytes")
    except struct.error:
        b = Bind.decode(payload)
        return b.portal, b.statement, b.result_formats
    return (data[:end].decode("utf-8", "surrogateescape"), data[end + 1:stmt_end].decode("utf-8", "surrogateescape"),
            formats)


@dataclass
class Describe(Message):
    TAG = b"D"
    kind: str  # 'S' statement, 'P' portal
    name: str

    @classmethod
    def _read(cls, r: _Reader) -> Describe:
        kind = chr(r.byte())
        if kind not in "SP":
            raise ProtocolError(f"invalid Describe target {kind!r}")
        return cls(kind, r.cstr())

    def body(self) -> bytes:
        return self.kind.encode() + _cstr(self.name)


@dataclass
class Close(Describe):
    TAG = b"C"


@dataclass
class Execute(Message):
    TAG = b"E"
    portal: str
    max_rows: int = 0

    @classmethod
    def _read(cls, r: _Reader) -> Execute:
        return cls(r.cstr(), r.int32())

    def body(self) -> bytes:
        return _cstr(self.portal) + _I32.pack(self.max_rows)


@dataclass
class Sync(Message):
    TAG = b"S"


@dataclass
class Flush(Message):
    TAG = b"H"


@dataclass
class Terminate(Message):
    TAG = b"X"


@dataclass
class CopyData(Message):
    TAG = b"d"
    data: bytes

    @classmethod
    def _read(cls, r: _Reader) -> CopyData:
        return cls(r.rest())

    def body(self) -> bytes:
        return self.data


@dataclass
class CopyDone(Message):
    TAG = b"c"


@dataclass
class CopyFail(Message):
    TAG = b"f"
    message: str

    @classmethod
    def _read(cls, r: _Reader) -> CopyFail:
        return cls(r.cstr())

    def body(self) -> bytes:
        return _cstr(self.message)


@dataclass
class FunctionCall(Message):
    TAG = b"F"
    oid: int
    arg_formats: list[int] = field(default_factory=list)
    args: list[bytes | None] = field(default_factory=list)
    result_format: int = 0

    @classmethod
    def _read(cls, r: _Reader) -> FunctionCall:
        oid = r.uint32()
        af = [r.int16() for _ in range(r.count(2))]
        args = [r.nullable_bytes() for _ in range(r.count(4))]
        return cls(oid, af, args, r.int16())

    def body(self) -> bytes:
        return _U32.pack(self.oid) + _i16s(self.arg_formats) + _values(self.args) + _I16.pack(self.result_format)


@dataclass
class PasswordMessage(Message):
    """'p': a password, or a SASL/GSS response; which one depends on the authentication exchange."""

    TAG = b"p"
    data: bytes

    @classmethod
    def _read(cls, r: _Reader) -> PasswordMessage:
        return cls(r.rest())

    def body(self) -> bytes:
        return self.data

    def password(self) -> str:
        r = _Reader(self.data)
        pw = r.cstr()
        r.end()
        return pw


@dataclass
class SASLInitialResponse(Message):
    TAG = b"p"
    mechanism: str
    data: bytes | None

    @classmethod
    def _read(cls, r: _Reader) -> SASLInitialResponse:
        return cls(r.cstr(), r.nullable_bytes())

    def body(self) -> bytes:
        data = self.data
        return _cstr(self.mechanism) + (_I32.pack(-1) if data is None else _I32.pack(len(data)) + data)


# --- backend messages -------------------------------------------------------------------------------

AUTH_OK = 0
AUTH_KERBEROS_V5 = 2
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_GSS = 7
AUTH_GSS_CONTINUE = 8
AUTH_SSPI = 9
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


@dataclass
class Authentication(Message):
    """'R': every authentication request; ``data`` is the salt, the SASL data or the GSS data."""

    TAG = b"R"
    code: int
    data: bytes = b""

    @classmethod
    def _read(cls, r: _Reader) -> Authentication:
        code = r.int32()
        data = r.rest()
        if code == AUTH_MD5 and len(data) != 4:
            raise ProtocolError("MD5 authentication request without a 4-byte salt")
        if code in (AUTH_OK, AUTH_CLEARTEXT, AUTH_KERBEROS_V5, AUTH_GSS, AUTH_SSPI) and data:
            raise ProtocolError("authentication request has trailing bytes")
        return cls(code, data)

    def body(self) -> bytes:
        return _I32.pack(self.code) + self.data

    @classmethod
    def sasl(cls, mechanisms: list[str]) -> Authentication:
        return cls(AUTH_SASL, b"".join(_cstr(m) for m in mechanisms) + b"\0")

    def mechanisms(self) -> list[str]:
        r = _Reader(self.data)
        out = []
        while (m := r.cstr()) != "":
            out.append(m)
        return out


@dataclass
class BackendKeyData(Message):
    TAG = b"K"
    pid: int
    secret: bytes

    @classmethod
    def _read(cls, r: _Reader) -> BackendKeyData:
        pid = r.int32()
        secret = r.rest()
        if not 4 <= len(secret) <= 256:
            raise ProtocolError("invalid backend key length")
        return cls(pid, secret)

    def body(self) -> bytes:
        return _I32.pack(self.pid) + self.secret


@dataclass
class BindComplete(Message):
    TAG = b"2"


@dataclass
class CloseComplete(Message):
    TAG = b"3"


@dataclass
class ParseComplete(Message):
    TAG = b"1"


@dataclass
class NoData(Message):
    TAG = b"n"


@dataclass
class PortalSuspended(Message):
    TAG = b"s"


@dataclass
class EmptyQueryResponse(Message):
    TAG = b"I"


@dataclass
class CommandComplete(Message):
    TAG = b"C"
    tag: str

    @classmethod
    def _read(cls, r: _Reader) -> CommandComplete:
        return cls(r.cstr())

    def body(self) -> bytes:
        return _cstr(self.tag)


def command_rows(payload: bytes | memoryview) -> int | None:
    """The row count a CommandComplete tag reports ("SELECT 5", "INSERT 0 5", "UPDATE 5"), if any."""
    words = bytes(payload).rstrip(b"\x00").split()
    return int(words[-1]) if len(words) > 1 and words[-1].isdigit() else None


@dataclass
class CopyInResponse(Message):
    TAG = b"G"
    format: int = 0
    column_formats: list[int] = field(default_factory=list)

    @classmethod
    def _read(cls, r: _Reader) -> CopyInResponse:
        fmt = r.byte()
        return cls(fmt, [r.int16() for _ in range(r.count(2))])

    def body(self) -> bytes:
        return bytes([self.format]) + _i16s(self.column_formats)


@dataclass
class CopyOutResponse(CopyInResponse):
    TAG = b"H"


@dataclass
class CopyBothResponse(CopyInResponse):
    TAG = b"W"


@dataclass
class DataRow(Message):
    TAG = b"D"
    values: list[bytes | None] = field(default_factory=list)

    @classmethod
    def _read(cls, r: _Reader) -> DataRow:
        n = r.count(4)
        return cls([r.nullable_bytes() for _ in range(n)])

    def body(self) -> bytes:
        return _values(self.values)


# Fields of ErrorResponse / NoticeResponse, by their one-letter codes.
FIELD_SEVERITY = "S"
FIELD_SEVERITY_V = "V"
FIELD_CODE = "C"
FIELD_MESSAGE = "M"
FIELD_DETAIL = "D"
FIELD_HINT = "H"
FIELD_POSITION = "P"
FIELD_WHERE = "W"
FIELD_INTERNAL_QUERY = "q"


@dataclass
class ErrorResponse(Message):
    TAG = b"E"
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def _read(cls, r: _Reader) -> ErrorResponse:
        fields: dict[str, str] = {}
        while True:
            code = r.byte()
            if code == 0:
                break
            fields[chr(code)] = r.cstr()
        return cls(fields)

    def body(self) -> bytes:
        return b"".join(k.encode("latin-1") + _cstr(v) for k, v in self.fields.items()) + b"\0"

    @classmethod
    def make(cls, severity: str, sqlstate: str, message: str, detail: str | None = None,
             hint: str | None = None, position: int | None = None) -> ErrorResponse:
        fields = {FIELD_SEVERITY: severity, FIELD_SEVERITY_V: severity, FIELD_CODE: sqlstate,
                  FIELD_MESSAGE: message}
        if detail:
            fields[FIELD_DETAIL] = detail
        if hint:
            fields[FIELD_HINT] = hint
        if position is not None:
            fields[FIELD_POSITION] = str(position)
        return cls(fields)

    @property
    def sqlstate(self) -> str:
        return self.fields.get(FIELD_CODE, "")

    @property
    def severity(self) -> str:
        return self.fields.get(FIELD_SEVERITY_V) or self.fields.get(FIELD_SEVERITY, "")

    @property
    def message(self) -> str:
        return self.fields.get(FIELD_MESSAGE, "")


@dataclass
class NoticeResponse(ErrorResponse):
    TAG = b"N"


@dataclass
class FunctionCallResponse(Message):
    TAG = b"V"
    value: bytes | None

    @classmethod
    def _read(cls, r: _Reader) -> FunctionCallResponse:
        return cls(r.nullable_bytes())

    def body(self) -> bytes:
        return _I32.pack(-1) if self.value is None else _I32.pack(len(self.value)) + self.value


@dataclass
class NegotiateProtocolVersion(Message):
    TAG = b"v"
    newest_version: int  # the whole version word, as PostgreSQL sends it (196608 for 3.0)
    unrecognized: list[str] = field(default_factory=list)

    @classmethod
    def _read(cls, r: _Reader) -> NegotiateProtocolVersion:
        version = r.int32()
        n = r.int32()
        if n < 0 or n > len(r.data):
            raise ProtocolError(f"invalid option count {n}")
        return cls(version, [r.cstr() for _ in range(n)])

    def body(self) -> bytes:
        return (_I32.pack(self.newest_version) + _I32.pack(len(self.unrecognized))
                + b"".join(_cstr(o) for o in self.unrecognized))


@dataclass
class NotificationResponse(Message):
    TAG = b"A"
    pid: int
    channel: str
    payload: str

    @classmethod
    def _read(cls, r: _Reader) -> NotificationResponse:
        return cls(r.int32(), r.cstr(), r.cstr())

    def body(self) -> bytes:
        return _I32.pack(self.pid) + _cstr(self.channel) + _cstr(self.payload)


@dataclass
class ParameterDescription(Message):
    TAG = b"t"
    type_oids: list[int] = field(default_factory=list)

    @classmethod
    def _read(cls, r: _Reader) -> ParameterDescription:
        n = r.uint16()
        if n * 4 > len(r.data) - r.pos:
            raise ProtocolError(f"invalid parameter count {n}")
        return cls([r.uint32() for _ in range(n)])

    def body(self) -> bytes:
        return _U16.pack(len(self.type_oids)) + b"".join(_U32.pack(t) for t in self.type_oids)


@dataclass
class ParameterStatus(Message):
    TAG = b"S"
    name: str
    value: str

    @classmethod
    def _read(cls, r: _Reader) -> ParameterStatus:
        return cls(r.cstr(), r.cstr())

    def body(self) -> bytes:
        return _cstr(self.name) + _cstr(self.value)


@dataclass
class ReadyForQuery(Message):
    TAG = b"Z"
    status: str = "I"  # I idle, T in a transaction, E in a failed transaction

    @classmethod
    def _read(cls, r: _Reader) -> ReadyForQuery:
        status = chr(r.byte())
        if status not in "ITE":
            raise ProtocolError(f"invalid transaction status {status!r}")
        return cls(status)

    def body(self) -> bytes:
        return self.status.encode()


@dataclass
class FieldDescription:
    name: str
    table_oid: int = 0
    column: int = 0
    type_oid: int = 25
    type_size: int = -1
    type_modifier: int = -1
    format: int = 0


_FIELD = struct.Struct("!IhIhih")


@dataclass
class RowDescription(Message):
    TAG = b"T"
    fields: list[FieldDescription] = field(default_factory=list)

    @classmethod
    def _read(cls, r: _Reader) -> RowDescription:
        n = r.count(19)
        out = []
        for _ in range(n):
            name = r.cstr()
            r._need(18)
            vals = _FIELD.unpack_from(r.data, r.pos)
            r.pos += 18
            out.append(FieldDescription(name, *vals))
        return cls(out)

    def body(self) -> bytes:
        return _U16.pack(len(self.fields)) + b"".join(
            _cstr(f.name) + _FIELD.pack(f.table_oid, f.column, f.type_oid, f.type_size, f.type_modifier, f.format)
            for f in self.fields
        )


FRONTEND: dict[int, type[Message]] = {
    ord(c.TAG): c
    for c in (Query, Parse, Bind, Describe, Close, Execute, Sync, Flush, Terminate, CopyData, CopyDone,
              CopyFail, FunctionCall, PasswordMessage)
}
BACKEND: dict[int, type[Message]] = {
    ord(c.TAG): c
    for c in (Authentication, BackendKeyData, BindComplete, CloseComplete, ParseComplete, NoData,
              PortalSuspended, EmptyQueryResponse, CommandComplete, CopyInResponse, CopyOutResponse,
              CopyBothResponse, CopyData, CopyDone, DataRow, ErrorResponse, NoticeResponse,
              FunctionCallResponse, NegotiateProtocolVersion, NotificationResponse, ParameterDescription,
              ParameterStatus, ReadyForQuery, RowDescription)
}


def decode_frontend(tag: int, payload: bytes | memoryview) -> Message:
    cls = FRONTEND.get(tag)
    if cls is None:
        raise ProtocolError(f"invalid frontend message type {tag!r}")
    return cls.decode(payload)


def decode_backend(tag: int, payload: bytes | memoryview) -> Message:
    cls = BACKEND.get(tag)
    if cls is None:
        raise ProtocolError(f"invalid backend message type {tag!r}")
    return cls.decode(payload)


def decode_frame(frame: Frame, *, backend: bool) -> Message:
    """Decode a whole frame; a streamed piece cannot be decoded."""
    if frame.streamed:
        raise ProtocolError("a streamed message cannot be decoded")
    if frame.header_len == 4:  # untyped startup-phase frame; a typed frame with tag byte 0 is just invalid
        return decode_startup(frame.payload)
    return (decode_backend if backend else decode_frontend)(frame.tag, frame.payload)
