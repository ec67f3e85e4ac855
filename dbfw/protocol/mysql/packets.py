"""The MySQL/MariaDB client/server protocol as bytes in, values out: no sockets, no asyncio.

A packet is a 3-byte little-endian payload length, a 1-byte sequence id and the payload. A payload of
2^24-1 bytes or more travels as several packets of 2^24-1 bytes, the last one shorter (an empty one when
the payload is an exact multiple). ``PacketReader`` reassembles them; ``frame`` splits. Everything else
here reads or writes one payload: the handshake and its response, OK/ERR/EOF, column definitions and
result rows. Malformed input raises ``PacketError``; nothing here trusts a length it has not checked.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

MAX_CHUNK = 0xFFFFFF  # the largest payload one physical packet carries
DEFAULT_MAX_PACKET = 64 * 1024 * 1024

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class PacketError(Exception):
    """Bytes that are not a valid packet of the protocol."""


class Capability(IntFlag):
    LONG_PASSWORD = 1
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24
    OPTIONAL_RESULTSET_METADATA = 1 << 25
    ZSTD_COMPRESSION = 1 << 26
    QUERY_ATTRIBUTES = 1 << 27
    MULTI_FACTOR_AUTH = 1 << 28
    CAPABILITY_EXTENSION = 1 << 29
    SSL_VERIFY_SERVER_CERT = 1 << 30
    REMEMBER_OPTIONS = 1 << 31


# What dbfw implements end to end, towards clients and towards the upstream. No compression, no query
# attributes, no optional metadata, no session tracking, no MariaDB extensions (their capability word is
# always 0 from dbfw). LOCAL_FILES: the server may ask only for the file an allowed statement names.
SUPPORTED = (Capability.LONG_PASSWORD | Capability.FOUND_ROWS | Capability.LONG_FLAG | Capability.CONNECT_WITH_DB
             | Capability.ODBC | Capability.IGNORE_SPACE | Capability.PROTOCOL_41 | Capability.INTERACTIVE
             | Capability.IGNORE_SIGPIPE | Capability.TRANSACTIONS | Capability.RESERVED
             | Capability.SECURE_CONNECTION | Capability.MULTI_STATEMENTS | Capability.MULTI_RESULTS
             | Capability.PS_MULTI_RESULTS | Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS
             | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.DEPRECATE_EOF | Capability.LOCAL_FILES)
# Flags that change what travels on the wire once a session runs: the client and dbfw's upstream session
# must agree on them (dbfw relays results as the server frames them).
WIRE_FORMAT = (Capability.DEPRECATE_EOF | Capability.MULTI_RESULTS | Capability.PS_MULTI_RESULTS
               | Capability.MULTI_STATEMENTS | Capability.LOCAL_FILES | Capability.PROTOCOL_41)


def wire_format(capabilities: int) -> int:
    return capabilities & WIRE_FORMAT


# What a client must support to talk to dbfw.
REQUIRED = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH


class Command(IntEnum):
    SLEEP = 0x00
    QUIT = 0x01
    INIT_DB = 0x02
    QUERY = 0x03
    FIELD_LIST = 0x04
    CREATE_DB = 0x05
    DROP_DB = 0x06
    REFRESH = 0x07
    SHUTDOWN = 0x08
    STATISTICS = 0x09
    PROCESS_INFO = 0x0A
    CONNECT = 0x0B
    PROCESS_KILL = 0x0C
    DEBUG = 0x0D
    PING = 0x0E
    TIME = 0x0F
    DELAYED_INSERT = 0x10
    CHANGE_USER = 0x11
    BINLOG_DUMP = 0x12
    TABLE_DUMP = 0x13
    CONNECT_OUT = 0x14
    REGISTER_SLAVE = 0x15
    STMT_PREPARE = 0x16
    STMT_EXECUTE = 0x17
    STMT_SEND_LONG_DATA = 0x18
    STMT_CLOSE = 0x19
    STMT_RESET = 0x1A
    SET_OPTION = 0x1B
    STMT_FETCH = 0x1C
    DAEMON = 0x1D
    BINLOG_DUMP_GTID = 0x1E
    RESET_CONNECTION = 0x1F
    STMT_BULK_EXECUTE = 0xFA  # MariaDB


class Status(IntFlag):
    IN_TRANS = 1
    AUTOCOMMIT = 1 << 1
    MORE_RESULTS_EXISTS = 1 << 3
    NO_GOOD_INDEX_USED = 1 << 4
    NO_INDEX_USED = 1 << 5
    CURSOR_EXISTS = 1 << 6
    LAST_ROW_SENT = 1 << 7
    DB_DROPPED = 1 << 8
    NO_BACKSLASH_ESCAPES = 1 << 9
    METADATA_CHANGED = 1 << 10
    QUERY_WAS_SLOW = 1 << 11
    PS_OUT_PARAMS = 1 << 12
    IN_TRANS_READONLY = 1 << 13
    SESSION_STATE_CHANGED = 1 << 14


class FieldType(IntEnum):
    DECIMAL = 0x00
    TINY = 0x01
    SHORT = 0x02
    LONG = 0x03
    FLOAT = 0x04
    DOUBLE = 0x05
    NULL = 0x06
    TIMESTAMP = 0x07
    LONGLONG = 0x08
    INT24 = 0x09
    DATE = 0x0A
    TIME = 0x0B
    DATETIME = 0x0C
    YEAR = 0x0D
    NEWDATE = 0x0E
    VARCHAR = 0x0F
    BIT = 0x10
    TIMESTAMP2 = 0x11
    DATETIME2 = 0x12
    TIME2 = 0x13
    JSON = 0xF5
    NEWDECIMAL = 0xF6
    ENUM = 0xF7
    SET = 0xF8
    TINY_BLOB = 0xF9
    MEDIUM_BLOB = 0xFA
    LONG_BLOB = 0xFB
    BLOB = 0xFC
    VAR_STRING = 0xFD
    STRING = 0xFE
    GEOMETRY = 0xFF


# Column types whose values are text (or bytes) in both row formats: what a mask can replace.
TEXT_TYPES = frozenset({FieldType.VARCHAR, FieldType.VAR_STRING, FieldType.STRING, FieldType.TINY_BLOB,
                        FieldType.MEDIUM_BLOB, FieldType.LONG_BLOB, FieldType.BLOB, FieldType.JSON,
                        FieldType.ENUM, FieldType.SET, FieldType.DECIMAL, FieldType.NEWDECIMAL})

OK = 0x00
EOF = 0xFE
ERR = 0xFF
LOCAL_INFILE = 0xFB
NULL_VALUE = 0xFB  # a NULL column in a text row
AUTH_SWITCH = 0xFE
AUTH_MORE_DATA = 0x01

UTF8MB4_GENERAL_CI = 45
BINARY_CHARSET = 63
# The collations (by the id a handshake names) of the character sets dbfw reads text in exactly as the
# server does: utf8mb3, utf8mb4, latin1, ascii, binary (MariaDB 10.11's ids below 256, and MySQL 8's 76 and
# 255, utf8mb4_0900_ai_ci, its clients' default).
SAFE_COLLATIONS = frozenset({5, 8, 11, 15, 31, 33, 45, 46, 47, 48, 49, 63, 65, 76, 83, 94, *range(192, 216), 223,
                             *range(224, 248), 255})


# --- framing ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Packet:
    """One logical packet: its payload (split packets reassembled), the sequence id of its first physical
    packet, and how many physical packets carried it."""

    seq: int
    payload: bytes
    parts: int = 1

    @property
    def first(self) -> int:
        return self.payload[0] if self.payload else -1


class PacketReader:
    """Reassembles logical packets from a byte stream. ``feed`` the bytes as they arrive, then take every
    complete packet from ``packets()``. A logical packet larger than ``max_size`` is an error (never
    buffered). The sequence ids of the physical packets of one logical packet must follow each other."""

    __slots__ = ("_buf", "_parts", "_parts_len", "_parts_seq", "_pos", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_PACKET):
        self.max_size = max_size
        self._buf = bytearray()
        self._pos = 0
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._parts_seq = -1

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos + self._parts_len

    def take_buffered(self) -> bytes:
        """Every byte not yet read as a packet (for a relay taking the stream over)."""
        if self._parts:
            raise PacketError("a split packet is being reassembled")
        rest = bytes(self._buf[self._pos:])
        self._buf.clear()
        self._pos = 0
        return rest

    def packets(self) -> Iterator[Packet]:
        while True:
            packet = self._next()
            if packet is None:
                if self._pos > 65536 and self._pos * 2 > len(self._buf):
                    del self._buf[:self._pos]
                    self._pos = 0
                return
            yield packet

    def _next(self) -> Packet | None:
        while True:
            buf, pos = self._buf, self._pos
            if len(buf) - pos < 4:
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            seq = buf[pos + 3]
            if self._parts_len + length > self.max_size:
                raise PacketError(f"a packet of more than {self.max_size} bytes is over the limit")
            if len(buf) - pos - 4 < length:
                return None
            chunk = bytes(buf[pos + 4:pos + 4 + length])
            self._pos = pos + 4 + length
            if self._parts:
                if seq != (self._parts_seq + len(self._parts)) & 0xFF:
                    raise PacketError("out-of-order sequence id inside a split packet")
                self._parts.append(chunk)
                self._parts_len += length
                if length == MAX_CHUNK:
                    continue
                payload = b"".join(self._parts)
                packet = Packet(self._parts_seq, payload, len(self._parts))
                self._parts, self._parts_len, self._parts_seq = [], 0, -1
                return packet
            if length == MAX_CHUNK:
                self._parts, self._parts_len, self._parts_seq = [chunk], length, seq
                continue
            return Packet(seq, chunk)


def frame(payload: bytes, seq: int) -> tuple[bytes, int]:
    """The physical packets carrying ``payload`` from sequence id ``seq``, and the next sequence id."""
    n = len(payload)
    if n < MAX_CHUNK:
        return bytes((n & 0xFF, n >> 8 & 0xFF, n >> 16, seq & 0xFF)) + payload, (seq + 1) & 0xFF
    out = bytearray()
    pos = 0
    while True:
        chunk = payload[pos:pos + MAX_CHUNK]
        k = len(chunk)
        out += bytes((k & 0xFF, k >> 8 & 0xFF, k >> 16, seq & 0xFF))
        out += chunk
        seq = (seq + 1) & 0xFF
        pos += k
        if k < MAX_CHUNK:
            return bytes(out), seq


# --- integers and strings ------------------------------------------------------------------------------


class Reader:
    """Reads the fields of one payload in order."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise PacketError("packet too short")

    def u8(self) -> int:
        self._need(1)
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self) -> int:
        self._need(2)
        (v,) = _U16.unpack_from(self.data, self.pos)
        self.pos += 2
        return v

    def u24(self) -> int:
        self._need(3)
        d, p = self.data, self.pos
        self.pos += 3
        return d[p] | d[p + 1] << 8 | d[p + 2] << 16

    def u32(self) -> int:
        self._need(4)
        (v,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def u64(self) -> int:
        self._need(8)
        (v,) = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return v

    def lenenc(self) -> int:
        first = self.u8()
        if first < 0xFB:
            return first
        if first == 0xFC:
            return self.u16()
        if first == 0xFD:
            return self.u24()
        if first == 0xFE:
            return self.u64()
        raise PacketError(f"invalid length-encoded integer prefix 0x{first:02x}")

    def fixed(self, n: int) -> bytes:
        self._need(n)
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def lenenc_bytes(self) -> bytes:
        return self.fixed(self.lenenc())

    def cstr(self) -> bytes:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise PacketError("string is not NUL-terminated")
        v = self.data[self.pos:end]
        self.pos = end + 1
        return v

    def rest(self) -> bytes:
        v = self.data[self.pos:]
        self.pos = len(self.data)
        return v

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def lenenc_int(n: int) -> bytes:
    if n < 0xFB:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + _U16.pack(n)
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + _U64.pack(n)


def lenenc_bytes(b: bytes) -> bytes:
    return lenenc_int(len(b)) + b


def text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


# --- connection phase ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Handshake:
    """The server's initial handshake (protocol 10)."""

    server_version: str
    connection_id: int
    nonce: bytes  # 20 bytes of auth plugin data
    capabilities: int
    charset: int = UTF8MB4_GENERAL_CI
    status: int = Status.AUTOCOMMIT
    plugin: str = "mysql_native_password"
    mariadb_capabilities: int = 0

    def encode(self) -> bytes:
        caps = self.capabilities
        nonce = self.nonce
        out = bytearray(b"\x0a")
        out += self.server_version.encode() + b"\x00"
        out += _U32.pack(self.connection_id)
        out += nonce[:8] + b"\x00"
        out += _U16.pack(caps & 0xFFFF)
        out += bytes((self.charset,))
        out += _U16.pack(self.status)
        out += _U16.pack(caps >> 16 & 0xFFFF)
        out += bytes((len(nonce) + 1,))
        out += b"\x00" * 6 + _U32.pack(self.mariadb_capabilities)
        out += nonce[8:] + b"\x00"
        out += self.plugin.encode() + b"\x00"
        return bytes(out)

    @classmethod
    def decode(cls, payload: bytes) -> Handshake:
        r = Reader(payload)
        version = r.u8()
        if version == ERR:
            raise PacketError(f"the server refused the connection: {Err.decode(payload).message}")
        if version != 10:
            raise PacketError(f"unsupported handshake protocol version {version}")
        server_version = text(r.cstr())
        connection_id = r.u32()
        nonce = r.fixed(8)
        r.u8()
        caps = r.u16()
        charset = r.u8() if r.left else UTF8MB4_GENERAL_CI
        status = r.u16() if r.left else 0
        caps |= (r.u16() << 16) if r.left else 0
        nonce_len = r.u8() if r.left else 0
        filler = r.fixed(6) if r.left >= 10 else b""
        mariadb = r.u32() if filler and not caps & Capability.LONG_PASSWORD else 0
        if filler and caps & Capability.LONG_PASSWORD:
            r.fixed(4)
        if caps & Capability.SECURE_CONNECTION and r.left:
            nonce += r.fixed(max(13, nonce_len - 8))  # 12 bytes and a NUL
        plugin = text(r.cstr()) if caps & Capability.PLUGIN_AUTH and r.left else "mysql_native_password"
        return cls(server_version, connection_id, nonce[:20], caps, charset, status, plugin, mariadb)


@dataclass(slots=True)
class HandshakeResponse:
    """The client's answer to the handshake (HandshakeResponse41), or its SSLRequest (``ssl_request``)."""

    capabilities: int
    max_packet: int = DEFAULT_MAX_PACKET
    charset: int = UTF8MB4_GENERAL_CI
    user: str = ""
    auth: bytes = b""
    database: str | None = None
    plugin: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    ssl_request: bool = False

    @classmethod
    def decode(cls, payload: bytes) -> HandshakeResponse:
        r = Reader(payload)
        caps = r.u32()
        if not caps & Capability.PROTOCOL_41:
            raise PacketError("the client does not speak protocol 4.1")
        max_packet = r.u32()
        charset = r.u8()
        r.fixed(23)
        if not r.left and caps & Capability.SSL:
            return cls(caps, max_packet, charset, ssl_request=True)
        user = text(r.cstr())
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.lenenc_bytes()
        elif caps & Capability.SECURE_CONNECTION:
            auth = r.fixed(r.u8())
        else:
            auth = r.cstr()
        database = text(r.cstr()) if caps & Capability.CONNECT_WITH_DB and r.left else None
        plugin = text(r.cstr()) if caps & Capability.PLUGIN_AUTH and r.left else None
        return cls(caps, max_packet, charset, user, auth, database or None, plugin, _attributes(r, caps))

    def encode(self) -> bytes:
        caps = self.capabilities
        out = bytearray(_U32.pack(caps) + _U32.pack(self.max_packet) + bytes((self.charset,)) + b"\x00" * 23)
        if self.ssl_request:
            return bytes(out)
        out += self.user.encode() + b"\x00"
        if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
            out += lenenc_bytes(self.auth)
        else:
            out += bytes((len(self.auth),)) + self.auth
        if caps & Capability.CONNECT_WITH_DB:
            out += (self.database or "").encode() + b"\x00"
        if caps & Capability.PLUGIN_AUTH:
            out += (self.plugin or "").encode() + b"\x00"
        if caps & Capability.CONNECT_ATTRS:
            attrs = b"".join(lenenc_bytes(k.encode()) + lenenc_bytes(v.encode()) for k, v in self.attributes.items())
            out += lenenc_bytes(attrs)
        return bytes(out)


def change_user_request(payload: bytes, capabilities: int) -> HandshakeResponse:
    """COM_CHANGE_USER, read as a login's HandshakeResponse with the capabilities the session agreed."""
    r = Reader(payload)
    if r.u8() != Command.CHANGE_USER:
        raise PacketError("not a COM_CHANGE_USER")
    user = text(r.cstr())
    auth = r.fixed(r.u8()) if capabilities & Capability.SECURE_CONNECTION else r.cstr()
    database = text(r.cstr()) if r.left else ""
    charset = r.u16() if r.left >= 2 else UTF8MB4_GENERAL_CI  # a collation id: all 16 bits count
    plugin = text(r.cstr()) if capabilities & Capability.PLUGIN_AUTH and r.left else None
    return HandshakeResponse(capabilities, DEFAULT_MAX_PACKET, charset, user, auth, database or None, plugin,
                             _attributes(r, capabilities))


def _attributes(r: Reader, capabilities: int) -> dict[str, str]:
    """The connection attributes that end a login or a COM_CHANGE_USER, if the client sends them."""
    attributes: dict[str, str] = {}
    if capabilities & Capability.CONNECT_ATTRS and r.left:
        attrs = Reader(r.lenenc_bytes())
        while attrs.left:
            key = text(attrs.lenenc_bytes())
            attributes[key] = text(attrs.lenenc_bytes())
    return attributes


def auth_switch(plugin: str, data: bytes) -> bytes:
    return b"\xfe" + plugin.encode() + b"\x00" + data


# --- responses --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Ok:
    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = Status.AUTOCOMMIT
    warnings: int = 0
    info: bytes = b""

    def encode(self, header: int = OK) -> bytes:
        return (bytes((header,)) + lenenc_int(self.affected_rows) + lenenc_int(self.last_insert_id)
                + _U16.pack(self.status) + _U16.pack(self.warnings) + self.info)

    @classmethod
    def decode(cls, payload: bytes) -> Ok:
        r = Reader(payload)
        header = r.u8()
        if header not in (OK, EOF):
            raise PacketError(f"not an OK packet (0x{header:02x})")
        affected, insert_id = r.lenenc(), r.lenenc()
        status = r.u16() if r.left >= 2 else 0
        warnings = r.u16() if r.left >= 2 else 0
        return cls(affected, insert_id, status, warnings, r.rest())


@dataclass(slots=True)
class Err:
    errno: int
    sqlstate: str
    message: str

    def encode(self) -> bytes:
        return (b"\xff" + _U16.pack(self.errno) + b"#" + self.sqlstate.encode()[:5].ljust(5, b"0")
                + self.message.encode("utf-8", "surrogateescape"))

    @classmethod
    def decode(cls, payload: bytes) -> Err:
        r = Reader(payload)
        if r.u8() != ERR:
            raise PacketError("not an ERR packet")
        errno = r.u16()
        sqlstate = "HY000"
        if r.left and r.data[r.pos] == 0x23:  # '#'
            r.u8()
            sqlstate = text(r.fixed(5))
        return cls(errno, sqlstate, text(r.rest()))


def eof(status: int, warnings: int = 0) -> bytes:
    return b"\xfe" + _U16.pack(warnings) + _U16.pack(status)


def eof_status(payload: bytes) -> int:
    """The status flags of an EOF packet (or of an OK packet ending a result, 0xFE header)."""
    if len(payload) >= 5 and len(payload) < 9:
        return _U16.unpack_from(payload, 3)[0]
    return Ok.decode(payload).status


def is_eof(payload: bytes, deprecate_eof: bool) -> bool:
    """Whether a packet in a result's row stream ends it (EOF, or the OK that replaces it). A row whose
    first value is 2^24 bytes or longer also starts with 0xFE, but such a row is far longer than either."""
    if not payload or payload[0] != EOF:
        return False
    return len(payload) < MAX_CHUNK if deprecate_eof else len(payload) < 9


# --- result sets ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Column:
    schema: str
    table: str
    org_table: str
    name: str
    org_name: str
    charset: int
    length: int
    type: int
    flags: int
    decimals: int

    @classmethod
    def decode(cls, payload: bytes) -> Column:
        r = Reader(payload)
        r.lenenc_bytes()  # catalog: always "def"
        schema, table, org_table = text(r.lenenc_bytes()), text(r.lenenc_bytes()), text(r.lenenc_bytes())
        name, org_name = text(r.lenenc_bytes()), text(r.lenenc_bytes())
        r.lenenc()  # the length of the fixed fields (0x0c)
        charset, length, type_, flags, decimals = r.u16(), r.u32(), r.u8(), r.u16(), r.u8()
        return cls(schema, table, org_table, name, org_name, charset, length, type_, flags, decimals)

    def encode(self) -> bytes:
        return (lenenc_bytes(b"def") + b"".join(lenenc_bytes(s.encode()) for s in (
            self.schema, self.table, self.org_table, self.name, self.org_name))
            + b"\x0c" + _U16.pack(self.charset) + _U32.pack(self.length) + bytes((self.type,))
            + _U16.pack(self.flags) + bytes((self.decimals, 0, 0)))


def text_row_values(payload: bytes, n: int) -> list[bytes | None]:
    """The values of a text-protocol row of ``n`` columns (None: NULL)."""
    r = Reader(payload)
    out: list[bytes | None] = []
    for _ in range(n):
        if r.left and r.data[r.pos] == NULL_VALUE:
            r.pos += 1
            out.append(None)
        else:
            out.append(r.lenenc_bytes())
    if r.left:
        raise PacketError("trailing bytes after the last column of a row")
    return out


def text_row(values: list[bytes | None]) -> bytes:
    return b"".join(b"\xfb" if v is None else lenenc_bytes(v) for v in values)


def column_count(payload: bytes) -> int:
    """The column count that starts a result set."""
    r = Reader(payload)
    n = r.lenenc()
    if r.left:
        raise PacketError("trailing bytes after a column count")
    return n
