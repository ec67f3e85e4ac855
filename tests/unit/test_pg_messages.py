"""The sans-I/O PostgreSQL v3 codec: exact byte layouts, round trips, framing, malformed input.

Byte layouts follow the "Message Formats" chapter of the PostgreSQL protocol documentation. The
``PG_*`` transcripts below were captured once from a real PostgreSQL 15 server (and the frontend
bytes were hand-built with ``struct`` and accepted by it), so they pin the codec to what a real
server sends and accepts, not only to itself.
"""

from __future__ import annotations

import struct

import pytest

from dbfw.protocol.postgres import messages as m
from dbfw.protocol.postgres.messages import FieldDescription as FD


def _u32(n: int) -> bytes:
    return struct.pack("!I", n)


def _i32(n: int) -> bytes:
    return struct.pack("!i", n)


def _u16(n: int) -> bytes:
    return struct.pack("!H", n)


def _i16(n: int) -> bytes:
    return struct.pack("!h", n)


def _msg(tag: bytes, body: bytes) -> bytes:
    return tag + _u32(len(body) + 4) + body


def _frames(data: bytes, *, chunk: int | None = None, **kw: object) -> list[m.Frame]:
    """Feed ``data`` to a fresh FrameReader (whole, or ``chunk`` bytes at a time) and collect every frame."""
    reader = m.FrameReader(**kw)  # type: ignore[arg-type]
    out: list[m.Frame] = []
    step = chunk or max(len(data), 1)
    for i in range(0, len(data), step):
        reader.feed(data[i:i + step])
        out.extend(reader.frames())
    assert reader.buffered == 0, "bytes left over after a complete stream"
    return out


def _sig(f: m.Frame) -> tuple[int, bytes, int, bool, bool]:
    return f.tag, bytes(f.raw), f.header_len, f.final, f.streamed


# --- samples of every message class -------------------------------------------------------------------

FRONTEND_SAMPLES: list[m.Message] = [
    m.Query("select 1"),
    m.Query(""),
    m.Query("select 'héllo' -- \udcff not utf-8"),
    m.Parse("", "select $1, $2", [23, 25]),
    m.Parse("stmt_1", "select 1"),
    m.Parse("s", "select $1", [0xFFFFFFFF]),
    m.Bind("", "", [], [], []),
    m.Bind("portal", "stmt", [0, 1], [b"42", None], [1]),
    m.Bind("p", "s", [1], [b"", None, b"\x00\x01\xff"], [0, 1, 0]),
    m.Describe("S", "stmt"),
    m.Describe("P", ""),
    m.Close("S", "stmt"),
    m.Close("P", "portal"),
    m.Execute("", 0),
    m.Execute("portal", 100),
    m.Execute("p", -1),
    m.Sync(),
    m.Flush(),
    m.Terminate(),
    m.CopyData(b""),
    m.CopyData(b"1\tfoo\n\x00\xff"),
    m.CopyDone(),
    m.CopyFail("client gave up"),
    m.FunctionCall(1234, [1], [b"\x00\x00\x00\x01", None], 1),
    m.FunctionCall(0xFFFFFFFF),
    m.PasswordMessage(b"secret\x00"),
    m.PasswordMessage(b""),
]

BACKEND_SAMPLES: list[m.Message] = [
    m.Authentication(m.AUTH_OK),
    m.Authentication(m.AUTH_CLEARTEXT),
    m.Authentication(m.AUTH_MD5, b"\x01\x02\x03\x04"),
    m.Authentication(m.AUTH_KERBEROS_V5),
    m.Authentication(m.AUTH_GSS),
    m.Authentication(m.AUTH_SSPI),
    m.Authentication(m.AUTH_GSS_CONTINUE, b"gss-token"),
    m.Authentication.sasl(["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"]),
    m.Authentication(m.AUTH_SASL_CONTINUE, b"r=abc,s=c2FsdA==,i=4096"),
    m.Authentication(m.AUTH_SASL_FINAL, b"v=c2lnbmF0dXJl"),
    m.BackendKeyData(12345, b"\x01\x02\x03\x04"),
    m.BackendKeyData(-1, bytes(range(256))),  # protocol 3.2 allows keys up to 256 bytes
    m.BindComplete(),
    m.CloseComplete(),
    m.ParseComplete(),
    m.NoData(),
    m.PortalSuspended(),
    m.EmptyQueryResponse(),
    m.CommandComplete("SELECT 1"),
    m.CommandComplete("INSERT 0 5"),
    m.CopyInResponse(0, [0, 0]),
    m.CopyInResponse(1, []),
    m.CopyOutResponse(0, [0]),
    m.CopyBothResponse(1, [1, 1]),
    m.CopyData(b"row\n"),
    m.CopyDone(),
    m.DataRow([]),
    m.DataRow([b"1", None, b"", b"\x00\xff"]),
    m.ErrorResponse.make("ERROR", "42601", "syntax error", "some detail", "some hint"),
    m.ErrorResponse({}),
    m.NoticeResponse.make("NOTICE", "00000", "just so you know"),
    m.FunctionCallResponse(None),
    m.FunctionCallResponse(b""),
    m.FunctionCallResponse(b"\x00\x00\x00\x2a"),
    m.NegotiateProtocolVersion(m.PROTOCOL_3_0, ["_pq_.foo", "_pq_.bar"]),
    m.NegotiateProtocolVersion(0, []),
    m.NotificationResponse(42, "chan", "payload"),
    m.ParameterDescription([]),
    m.ParameterDescription([23, 25, 0xFFFFFFFF]),
    m.ParameterStatus("client_encoding", "UTF8"),
    m.ParameterStatus("application_name", ""),
    m.ReadyForQuery("I"),
    m.ReadyForQuery("T"),
    m.ReadyForQuery("E"),
    m.RowDescription([]),
    m.RowDescription([FD("a", 16384, 1, 23, 4, -1, 0), FD("b", 0, 0, 1043, -1, 9, 1), FD("")]),
]

STARTUP_SAMPLES: list[m.Message] = [
    m.StartupMessage({"user": "postgres", "database": "test"}),
    m.StartupMessage({"user": "ünïcode", "options": "-c search_path=x", "_pq_.opt": "1"}),
    m.StartupMessage({}, m.PROTOCOL_3_0 | 2),
    m.SSLRequest(),
    m.GSSENCRequest(),
    m.CancelRequest(1234, b"\x01\x02\x03\x04"),
    m.CancelRequest(-5, bytes(range(256))),
]


def test_samples_cover_every_message_class() -> None:
    """Adding a message class without a round-trip sample fails here."""
    assert {type(s) for s in FRONTEND_SAMPLES} == set(m.FRONTEND.values())
    assert {type(s) for s in BACKEND_SAMPLES} == set(m.BACKEND.values())
    assert {type(s) for s in STARTUP_SAMPLES} == {m.StartupMessage, m.SSLRequest, m.GSSENCRequest, m.CancelRequest}


@pytest.mark.parametrize("msg", FRONTEND_SAMPLES, ids=repr)
def test_frontend_round_trip(msg: m.Message) -> None:
    data = msg.encode()
    (frame,) = _frames(data)
    assert bytes(frame.raw) == data
    assert frame.tag == data[0] == msg.TAG[0]
    assert struct.unpack_from("!I", data, 1)[0] == len(data) - 1
    decoded = m.decode_frame(frame, backend=False)
    assert type(decoded) is type(msg)
    assert decoded == msg
    assert decoded.encode() == data


@pytest.mark.parametrize("msg", BACKEND_SAMPLES, ids=repr)
def test_backend_round_trip(msg: m.Message) -> None:
    data = msg.encode()
    (frame,) = _frames(data, streamable=frozenset(b"Dd"))
    assert bytes(frame.raw) == data
    assert struct.unpack_from("!I", data, 1)[0] == len(data) - 1
    decoded = m.decode_frame(frame, backend=True)
    assert type(decoded) is type(msg)
    assert decoded == msg
    assert decoded.encode() == data


@pytest.mark.parametrize("msg", STARTUP_SAMPLES, ids=repr)
def test_startup_round_trip(msg: m.Message) -> None:
    data = msg.encode()
    assert struct.unpack_from("!i", data)[0] == len(data)
    (frame,) = _frames(data, startup=True)
    assert frame.tag == 0 and frame.header_len == 4 and frame.kind == ""
    assert bytes(frame.raw) == data
    for decoded in (m.decode_frame(frame, backend=False), m.decode_startup(frame.payload)):
        assert type(decoded) is type(msg)
        assert decoded == msg
        assert decoded.encode() == data


def test_sasl_initial_response_round_trip() -> None:
    # 'p' is shared by several messages, so SASLInitialResponse is decoded explicitly, not via the table.
    for msg in (m.SASLInitialResponse("SCRAM-SHA-256", b"n,,n=,r=abc"), m.SASLInitialResponse("X", None),
                m.SASLInitialResponse("SCRAM-SHA-256", b"")):
        data = msg.encode()
        (frame,) = _frames(data)
        assert m.SASLInitialResponse.decode(frame.payload) == msg
    assert m.SASLInitialResponse("SCRAM-SHA-256", b"abc").encode() == _msg(b"p", b"SCRAM-SHA-256\0" + _i32(3) + b"abc")
    assert m.SASLInitialResponse("M", None).encode() == _msg(b"p", b"M\0\xff\xff\xff\xff")


def test_password_message_password() -> None:
    assert m.PasswordMessage(b"s3cret\0").password() == "s3cret"
    assert m.PasswordMessage(b"\xff\0").password() == "\udcff"  # not UTF-8: kept byte-exact
    for bad in (b"", b"no terminator", b"two\0strings\0"):
        with pytest.raises(m.ProtocolError):
            m.PasswordMessage(bad).password()


# --- exact byte layouts (protocol documentation, "Message Formats") ------------------------------------


def test_layout_query() -> None:
    assert m.Query("select 1").encode() == b"Q\x00\x00\x00\x0dselect 1\x00"


def test_layout_ready_for_query() -> None:
    assert m.ReadyForQuery("I").encode() == b"Z\x00\x00\x00\x05I"
    assert m.ReadyForQuery("E").encode() == b"Z\x00\x00\x00\x05E"


def test_layout_no_body_messages() -> None:
    assert m.Sync().encode() == b"S\x00\x00\x00\x04"
    assert m.Terminate().encode() == b"X\x00\x00\x00\x04"
    assert m.Flush().encode() == b"H\x00\x00\x00\x04"
    assert m.CopyDone().encode() == b"c\x00\x00\x00\x04"
    assert m.ParseComplete().encode() == b"1\x00\x00\x00\x04"
    assert m.BindComplete().encode() == b"2\x00\x00\x00\x04"
    assert m.CloseComplete().encode() == b"3\x00\x00\x00\x04"
    assert m.NoData().encode() == b"n\x00\x00\x00\x04"
    assert m.EmptyQueryResponse().encode() == b"I\x00\x00\x00\x04"
    assert m.PortalSuspended().encode() == b"s\x00\x00\x00\x04"


def test_layout_error_response() -> None:
    # Byte1('E') Int32 len, then (Byte1 code, String value)*, then a terminating zero byte.
    msg = m.ErrorResponse({"S": "ERROR", "C": "42P01", "M": "x"})
    assert msg.encode() == b"E\x00\x00\x00\x16SERROR\x00C42P01\x00Mx\x00\x00"
    made = m.ErrorResponse.make("FATAL", "28P01", "bad password", hint="h")
    assert made.encode() == _msg(b"E", b"SFATAL\0VFATAL\0C28P01\0Mbad password\0Hh\0\0")
    assert (made.severity, made.sqlstate, made.message) == ("FATAL", "28P01", "bad password")
    assert m.NoticeResponse({"M": "n"}).encode() == b"N\x00\x00\x00\x08Mn\x00\x00"


def test_layout_data_row_null_vs_empty() -> None:
    # Int16 column count; per column Int32 length (-1 for NULL, no bytes follow) then the bytes.
    msg = m.DataRow([None, b"", b"ab"])
    body = b"\x00\x03" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x02ab"
    assert msg.encode() == b"D" + _u32(4 + len(body)) + body
    assert m.DataRow.decode(body).values == [None, b"", b"ab"]


def test_layout_bind_with_null_params() -> None:
    msg = m.Bind("p1", "s1", [1], [None, b"\x00\x00\x00\x07"], [0, 1])
    body = (b"p1\0s1\0" + b"\x00\x01\x00\x01" + b"\x00\x02" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x04\x00\x00\x00\x07"
            + b"\x00\x02\x00\x00\x00\x01")
    assert msg.encode() == _msg(b"B", body)


def test_layout_row_description() -> None:
    # Int16 count; per field: String name, Int32 table OID, Int16 attnum, Int32 type OID, Int16 typlen,
    # Int32 typmod, Int16 format code.
    msg = m.RowDescription([FD("id", 16385, 1, 23, 4, -1, 0)])
    body = (b"\x00\x01id\x00" + b"\x00\x00\x40\x01" + b"\x00\x01" + b"\x00\x00\x00\x17" + b"\x00\x04"
            + b"\xff\xff\xff\xff" + b"\x00\x00")
    assert msg.encode() == _msg(b"T", body)


def test_layout_backend_key_data() -> None:
    assert m.BackendKeyData(1234, b"\x00\x00\x16\x2e").encode() == b"K\x00\x00\x00\x0c\x00\x00\x04\xd2\x00\x00\x16\x2e"


def test_layout_authentication() -> None:
    assert m.Authentication(m.AUTH_OK).encode() == b"R\x00\x00\x00\x08\x00\x00\x00\x00"
    assert m.Authentication(m.AUTH_CLEARTEXT).encode() == b"R\x00\x00\x00\x08\x00\x00\x00\x03"
    assert m.Authentication(m.AUTH_MD5, b"abcd").encode() == b"R\x00\x00\x00\x0c\x00\x00\x00\x05abcd"
    sasl = m.Authentication.sasl(["SCRAM-SHA-256"])
    # Int32(10), then each mechanism as a String, then a zero byte closing the list.
    assert sasl.encode() == b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"
    two = m.Authentication.sasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])
    assert two.data == b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"
    assert m.Authentication.decode(two.body()).mechanisms() == ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
    assert m.Authentication(m.AUTH_SASL_CONTINUE, b"r=x").encode() == b"R\x00\x00\x00\x0b\x00\x00\x00\x0br=x"


def test_layout_negotiate_protocol_version() -> None:
    # Int32 protocol version, Int32 number of unrecognised options, then each option name as a String.
    msg = m.NegotiateProtocolVersion(m.PROTOCOL_3_0, ["_pq_.foo"])
    assert msg.encode() == b"v\x00\x00\x00\x15" + b"\x00\x03\x00\x00" + b"\x00\x00\x00\x01" + b"_pq_.foo\x00"


def test_layout_parameter_description_and_status() -> None:
    assert m.ParameterDescription([23, 25]).encode() == b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19"
    assert m.ParameterStatus("a", "b").encode() == b"S\x00\x00\x00\x08a\x00b\x00"


def test_layout_copy_responses() -> None:
    assert m.CopyInResponse(0, [0, 0]).encode() == b"G\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00"
    assert m.CopyOutResponse(1, [1]).encode() == b"H\x00\x00\x00\x09\x01\x00\x01\x00\x01"
    assert m.CopyBothResponse(0, []).encode()[0:1] == b"W"


def test_layout_function_call() -> None:
    msg = m.FunctionCall(1598, [0], [b"x", None], 1)
    body = (b"\x00\x00\x06\x3e" + b"\x00\x01\x00\x00" + b"\x00\x02" + b"\x00\x00\x00\x01x" + b"\xff\xff\xff\xff"
            + b"\x00\x01")
    assert msg.encode() == _msg(b"F", body)
    assert m.FunctionCallResponse(None).encode() == b"V\x00\x00\x00\x08\xff\xff\xff\xff"


def test_layout_notification_and_describe() -> None:
    assert m.NotificationResponse(7, "c", "p").encode() == b"A\x00\x00\x00\x0c\x00\x00\x00\x07c\x00p\x00"
    assert m.Describe("S", "s1").encode() == b"D\x00\x00\x00\x08Ss1\x00"
    assert m.Close("P", "").encode() == b"C\x00\x00\x00\x06P\x00"
    assert m.Execute("", 0).encode() == b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"


def test_layout_startup_phase() -> None:
    # Untyped: Int32 length (itself included), Int32 code.
    assert m.SSLRequest().encode() == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"  # 80877103
    assert m.GSSENCRequest().encode() == b"\x00\x00\x00\x08\x04\xd2\x16\x30"  # 80877104
    assert (m.CancelRequest(7, b"\x01\x02\x03\x04").encode()
            == b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x07\x01\x02\x03\x04")  # 80877102
    startup = m.StartupMessage({"user": "u"}).encode()
    assert startup == b"\x00\x00\x00\x10\x00\x03\x00\x00user\x00u\x00\x00"


# --- real PostgreSQL 15 transcripts ---------------------------------------------------------------------

# Sent by dbfw-independent code (struct) and accepted by PostgreSQL: startup, then an extended-query batch.
PG_FRONTEND_STARTUP = (b"\x00\x00\x00\x3a\x00\x03\x00\x00user\x00postgres\x00database\x00test\x00"
                       b"client_encoding\x00UTF8\x00\x00")
PG_FRONTEND_EXTENDED = (
    b"P\x00\x00\x00+s1\x00select $1::int4, $2::text\x00\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19"
    b"B\x00\x00\x00\x1c\x00s1\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x0242\xff\xff\xff\xff\x00\x01\x00\x01"
    b"D\x00\x00\x00\x08Ss1\x00"
    b"D\x00\x00\x00\x06P\x00"
    b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"
    b"C\x00\x00\x00\x08Ss1\x00"
    b"S\x00\x00\x00\x04"
)

PG_STARTUP = (
    b"R\x00\x00\x00\x08\x00\x00\x00\x00S\x00\x00\x00\x16application_name\x00\x00S\x00\x00\x00\x19client_encoding"
    b"\x00UTF8\x00S\x00\x00\x00\x17DateStyle\x00ISO, MDY\x00S\x00\x00\x00&default_transaction_read_only\x00off"
    b"\x00S\x00\x00\x00\x17in_hot_standby\x00off\x00S\x00\x00\x00\x19integer_datetimes\x00on\x00S\x00\x00\x00"
    b"\x1bIntervalStyle\x00postgres\x00S\x00\x00\x00\x14is_superuser\x00on\x00S\x00\x00\x00\x19server_encoding"
    b"\x00UTF8\x00S\x00\x00\x002server_version\x0015.20 (Debian 15.20-0+deb12u1)\x00S\x00\x00\x00#"
    b"session_authorization\x00postgres\x00S\x00\x00\x00#standard_conforming_strings\x00on\x00S\x00\x00\x00\x15"
    b"TimeZone\x00Etc/UTC\x00K\x00\x00\x00\x0c\x00\x00'\xd9\x06\x94\xdf\xecZ\x00\x00\x00\x05I"
)
# select 1 as a, null::text as b, 'x'::varchar(5) as c
PG_SIMPLE_QUERY = (
    b"T\x00\x00\x00B\x00\x03a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00b\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x00c\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x00\x04\x13\xff\xff\x00\x00\x00\t\x00\x00D\x00\x00\x00\x14\x00\x03\x00\x00\x00\x011\xff\xff\xff\xff\x00"
    b"\x00\x00\x01xC\x00\x00\x00\rSELECT 1\x00Z\x00\x00\x00\x05I"
)
# selec 1
PG_ERROR = (
    b'E\x00\x00\x00]SERROR\x00VERROR\x00C42601\x00Msyntax error at or near "selec"\x00P1\x00Fscan.l\x00L1188\x00'
    b"Rscanner_yyerror\x00\x00Z\x00\x00\x00\x05I"
)
# the reply to PG_FRONTEND_EXTENDED
PG_EXTENDED = (
    b"1\x00\x00\x00\x042\x00\x00\x00\x04t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19T\x00\x00\x004"
    b"\x00\x02int4\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00text\x00\x00\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x00T\x00\x00\x004\x00\x02int4\x00\x00\x00\x00"
    b"\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x01text\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x19\xff\xff\xff\xff\xff\xff\x00\x01D\x00\x00\x00\x12\x00\x02\x00\x00\x00\x04\x00\x00\x00*\xff\xff\xff\xffC"
    b"\x00\x00\x00\rSELECT 1\x003\x00\x00\x00\x04Z\x00\x00\x00\x05I"
)

_INT4, _TEXT = FD("int4", 0, 0, 23, 4, -1, 0), FD("text", 0, 0, 25, -1, -1, 0)

PG_BACKEND_CASES: list[tuple[str, bytes, list[m.Message]]] = [
    ("startup", PG_STARTUP, [
        m.Authentication(m.AUTH_OK),
        m.ParameterStatus("application_name", ""),
        m.ParameterStatus("client_encoding", "UTF8"),
        m.ParameterStatus("DateStyle", "ISO, MDY"),
        m.ParameterStatus("default_transaction_read_only", "off"),
        m.ParameterStatus("in_hot_standby", "off"),
        m.ParameterStatus("integer_datetimes", "on"),
        m.ParameterStatus("IntervalStyle", "postgres"),
        m.ParameterStatus("is_superuser", "on"),
        m.ParameterStatus("server_encoding", "UTF8"),
        m.ParameterStatus("server_version", "15.20 (Debian 15.20-0+deb12u1)"),
        m.ParameterStatus("session_authorization", "postgres"),
        m.ParameterStatus("standard_conforming_strings", "on"),
        m.ParameterStatus("TimeZone", "Etc/UTC"),
        m.BackendKeyData(10201, b"\x06\x94\xdf\xec"),
        m.ReadyForQuery("I"),
    ]),
    ("simple_query", PG_SIMPLE_QUERY, [
        m.RowDescription([FD("a", 0, 0, 23, 4, -1, 0), FD("b", 0, 0, 25, -1, -1, 0), FD("c", 0, 0, 1043, -1, 9, 0)]),
        m.DataRow([b"1", None, b"x"]),
        m.CommandComplete("SELECT 1"),
        m.ReadyForQuery("I"),
    ]),
    ("error", PG_ERROR, [
        m.ErrorResponse({"S": "ERROR", "V": "ERROR", "C": "42601", "M": 'syntax error at or near "selec"', "P": "1",
                         "F": "scan.l", "L": "1188", "R": "scanner_yyerror"}),
        m.ReadyForQuery("I"),
    ]),
    ("extended", PG_EXTENDED, [
        m.ParseComplete(),
        m.BindComplete(),
        m.ParameterDescription([23, 25]),
        m.RowDescription([_INT4, _TEXT]),
        m.RowDescription([FD("int4", 0, 0, 23, 4, -1, 1), FD("text", 0, 0, 25, -1, -1, 1)]),
        m.DataRow([b"\x00\x00\x00\x2a", None]),
        m.CommandComplete("SELECT 1"),
        m.CloseComplete(),
        m.ReadyForQuery("I"),
    ]),
]


@pytest.mark.parametrize(("name", "data", "expected"), PG_BACKEND_CASES, ids=[c[0] for c in PG_BACKEND_CASES])
def test_real_postgres_backend_transcripts(name: str, data: bytes, expected: list[m.Message]) -> None:
    for chunk in (None, 1, 7):
        frames = _frames(data, chunk=chunk, streamable=frozenset(b"Dd"))
        assert b"".join(bytes(f.raw) for f in frames) == data
        decoded = [m.decode_frame(f, backend=True) for f in frames]
        assert decoded == expected
        assert b"".join(msg.encode() for msg in decoded) == data
    err = next((d for d in expected if isinstance(d, m.ErrorResponse)), None)
    if err is not None:
        assert (err.severity, err.sqlstate) == ("ERROR", "42601")


def test_real_postgres_frontend_bytes() -> None:
    """dbfw's encoders produce exactly the bytes PostgreSQL accepted (Bind with a NULL parameter included)."""
    assert m.StartupMessage({"user": "postgres", "database": "test", "client_encoding": "UTF8"}).encode() \
        == PG_FRONTEND_STARTUP
    expected = [
        m.Parse("s1", "select $1::int4, $2::text", [23, 25]),
        m.Bind("", "s1", [0], [b"42", None], [1]),
        m.Describe("S", "s1"),
        m.Describe("P", ""),
        m.Execute("", 0),
        m.Close("S", "s1"),
        m.Sync(),
    ]
    assert b"".join(x.encode() for x in expected) == PG_FRONTEND_EXTENDED
    frames = _frames(PG_FRONTEND_EXTENDED, chunk=3, streamable=frozenset(b"Bd"))
    assert [m.decode_frame(f, backend=False) for f in frames] == expected
    (startup,) = _frames(PG_FRONTEND_STARTUP, chunk=1, startup=True)
    assert m.decode_frame(startup, backend=False) == m.StartupMessage(
        {"user": "postgres", "database": "test", "client_encoding": "UTF8"})


# --- counts are unsigned 16-bit, as PostgreSQL reads them ------------------------------------------------


def test_parse_and_bind_with_more_than_32767_parameters() -> None:
    # PostgreSQL reads Int16 counts with pq_getmsgint (unsigned) and libpq allows 65535 parameters.
    n = 40_000
    parse = m.Parse("", "select", [23] * n)
    bind = m.Bind("", "", [1], [b"\x00\x00\x00\x01"] * (n - 1) + [None], [])
    for msg in (parse, bind):
        data = msg.encode()
        (frame,) = _frames(data)
        assert m.decode_frame(frame, backend=False) == msg
    assert parse.encode()[13:15] == _u16(n) == b"\x9c\x40"  # after 'P', length, "\0", "select\0"
    row = m.DataRow([None] * 65535)
    assert m.DataRow.decode(row.body()) == row


def test_count_of_0xffff_without_the_elements_is_an_error() -> None:
    for cls, body in ((m.Parse, b"\0q\0\xff\xff"), (m.Bind, b"\0\0\xff\xff"), (m.DataRow, b"\xff\xff"),
                      (m.RowDescription, b"\xff\xff\0"), (m.CopyInResponse, b"\0\xff\xff\0\0"),
                      (m.ParameterDescription, b"\xff\xff\0\0\0\0")):
        with pytest.raises(m.ProtocolError):
            cls.decode(body)


# --- FrameReader ---------------------------------------------------------------------------------------

_MIXED = [m.Query("select 1"), m.Parse("s", "select $1", [23]), m.Bind("", "s", [], [None], []),
          m.Describe("P", ""), m.Execute("", 0), m.Sync(), m.CopyData(b"x" * 300), m.Terminate()]


def test_frame_reader_byte_at_a_time_equals_all_at_once() -> None:
    data = b"".join(x.encode() for x in _MIXED)
    whole = _frames(data)
    for chunk in (1, 2, 3, 5, 64):
        assert [_sig(f) for f in _frames(data, chunk=chunk)] == [_sig(f) for f in whole]
    assert [m.decode_frame(f, backend=False) for f in whole] == _MIXED


def test_frame_reader_several_messages_in_one_feed_and_raw_is_forwardable() -> None:
    encoded = [x.encode() for x in _MIXED]
    reader = m.FrameReader()
    reader.feed(b"".join(encoded))
    frames = list(reader.frames())
    assert [bytes(f.raw) for f in frames] == encoded  # relayed as is, no re-encoding needed
    assert all(f.final and not f.streamed and f.header_len == 5 for f in frames)
    assert [f.kind for f in frames] == ["Q", "P", "B", "D", "E", "S", "d", "X"]
    assert bytes(frames[0].payload) == b"select 1\0"
    assert reader.buffered == 0


def test_frame_reader_partial_message_is_held_until_complete() -> None:
    data = m.Query("select 42").encode()
    reader = m.FrameReader()
    reader.feed(data[:4])
    assert list(reader.frames()) == []
    reader.feed(data[4:-1])
    assert list(reader.frames()) == []
    assert reader.buffered == len(data) - 1
    reader.feed(data[-1:] + data[:3])
    (frame,) = list(reader.frames())
    assert bytes(frame.raw) == data
    assert reader.buffered == 3


def test_frame_reader_consumer_may_stop_early() -> None:
    # The session takes one frame at a time during start-up and abandons the generator.
    data = m.Query("a").encode() + m.Query("b").encode()
    reader = m.FrameReader()
    reader.feed(data)
    first = next(iter(reader.frames()))
    reader.feed(m.Sync().encode())
    rest = list(reader.frames())
    assert [bytes(f.raw) for f in [first, *rest]] == [m.Query("a").encode(), m.Query("b").encode(), m.Sync().encode()]


def test_frame_reader_max_size_for_held_messages() -> None:
    small = m.Query("x" * 94).encode()  # 100 bytes on the wire
    assert len(small) == 100
    (frame,) = _frames(small, max_size=100)
    assert bytes(frame.raw) == small
    too_big = m.Query("x" * 95).encode()
    with pytest.raises(m.ProtocolError, match="over the limit"):
        _frames(too_big, max_size=100)
    # Refused from the header alone: dbfw never buffers an oversized held message.
    reader = m.FrameReader(max_size=1024)
    reader.feed(b"Q" + _u32(10_000_000))
    with pytest.raises(m.ProtocolError):
        list(reader.frames())
    # A streamable tag is not held, so the same limit does not apply to it.
    big_row = m.DataRow([b"y" * 5000]).encode()
    pieces = _frames(big_row, chunk=1000, max_size=1024, streamable=frozenset(b"D"))
    assert b"".join(bytes(p.raw) for p in pieces) == big_row


@pytest.mark.parametrize("length", [0, 1, 3])
def test_frame_reader_rejects_lengths_below_4(length: int) -> None:
    reader = m.FrameReader(streamable=frozenset(b"D"))
    reader.feed(b"D" + _u32(length) + b"xxxx")
    with pytest.raises(m.ProtocolError):
        list(reader.frames())


@pytest.mark.parametrize("length", [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, m.ABSOLUTE_MAX_MESSAGE + 1])
def test_frame_reader_rejects_huge_lengths_even_when_streamable(length: int) -> None:
    for tag in (b"Q", b"D", b"d"):
        reader = m.FrameReader(streamable=frozenset(b"Dd"))
        reader.feed(tag + _u32(length) + b"abc")
        with pytest.raises(m.ProtocolError):
            list(reader.frames())


def test_frame_reader_streams_up_to_the_absolute_limit() -> None:
    reader = m.FrameReader(streamable=frozenset(b"D"))
    reader.feed(b"D" + _u32(m.ABSOLUTE_MAX_MESSAGE) + b"abc")
    (piece,) = list(reader.frames())
    assert piece.streamed and not piece.final and bytes(piece.raw) == b"D" + _u32(m.ABSOLUTE_MAX_MESSAGE) + b"abc"
    reader.feed(b"more")
    (piece,) = list(reader.frames())
    assert piece.streamed and not piece.final and piece.header_len == 0 and bytes(piece.payload) == b"more"


@pytest.mark.parametrize("feed_size", [1000, 8192, 65536, 300_000])
def test_frame_reader_streams_large_messages_in_bounded_memory(feed_size: int) -> None:
    value = bytes(range(256)) * (4 * 1024 + 7)  # just over 1 MiB
    row = m.DataRow([value, None]).encode()
    after = m.ReadyForQuery("I").encode()
    data = row + after
    reader = m.FrameReader(streamable=frozenset(b"Dd"))
    pieces: list[m.Frame] = []
    peak = 0
    for i in range(0, len(data), feed_size):
        reader.feed(data[i:i + feed_size])
        peak = max(peak, reader.buffered)
        for f in reader.frames():
            pieces.append(f)
            peak = max(peak, reader.buffered)
        peak = max(peak, reader.buffered)
    assert peak <= m.STREAM_CHUNK + feed_size
    assert reader.buffered == 0
    *row_pieces, last = pieces
    assert len(row_pieces) >= 2, "a 1 MiB row must not be held whole"
    assert bytes(last.raw) == after and not last.streamed and last.final
    assert b"".join(bytes(p.raw) for p in row_pieces) == row
    assert all(p.streamed and p.tag == ord("D") for p in row_pieces)
    assert [p.final for p in row_pieces] == [False] * (len(row_pieces) - 1) + [True]
    assert row_pieces[0].header_len == 5 and all(p.header_len == 0 for p in row_pieces[1:])
    assert sum(len(p.raw) for p in row_pieces) == len(row)
    with pytest.raises(m.ProtocolError):
        m.decode_frame(row_pieces[0], backend=True)
    with pytest.raises(m.ProtocolError):
        m.decode_frame(row_pieces[-1], backend=True)
    assert m.decode_frame(last, backend=True) == m.ReadyForQuery("I")


def test_frame_reader_small_streamable_messages_are_held_whole() -> None:
    data = m.CopyData(b"z" * (m.STREAM_CHUNK // 2)).encode() + m.CopyDone().encode()
    frames = _frames(data, chunk=4096, streamable=frozenset(b"d"))
    assert [_sig(f) for f in frames] == [_sig(f) for f in _frames(data)]
    assert not any(f.streamed for f in frames)


def test_frame_reader_message_over_max_size_streams_from_the_header() -> None:
    row = m.DataRow([b"q" * 3000]).encode()
    reader = m.FrameReader(max_size=1000, streamable=frozenset(b"D"))
    reader.feed(row[:5])
    (first,) = list(reader.frames())
    assert first.streamed and not first.final and bytes(first.raw) == row[:5]
    reader.feed(row[5:])
    (rest,) = list(reader.frames())
    assert rest.final and bytes(rest.raw) == row[5:]


def test_frame_reader_startup_mode() -> None:
    ssl = m.SSLRequest().encode()
    startup = m.StartupMessage({"user": "u", "database": "d"}).encode()
    query = m.Query("select 1").encode()
    reader = m.FrameReader(startup=True)
    reader.feed(ssl + startup + query)
    frames = reader.frames()
    f1 = next(frames)
    assert (f1.tag, f1.header_len, bytes(f1.payload)) == (0, 4, _i32(m.SSL_REQUEST_CODE))
    assert isinstance(m.decode_frame(f1, backend=False), m.SSLRequest)
    f2 = next(frames)
    assert m.decode_frame(f2, backend=False) == m.StartupMessage({"user": "u", "database": "d"})
    reader.set_typed()
    assert reader.startup is False
    f3 = next(frames)  # the same generator continues in typed mode
    assert (f3.tag, bytes(f3.raw)) == (ord("Q"), query)
    assert m.decode_frame(f3, backend=False) == m.Query("select 1")
    assert list(frames) == []


def test_frame_reader_startup_then_typed_in_separate_calls() -> None:
    startup = m.StartupMessage({"user": "u"}).encode()
    reader = m.FrameReader(startup=True)
    reader.feed(startup + m.Sync().encode())
    first = next(reader.frames())
    assert bytes(first.raw) == startup
    reader.set_typed()
    (sync,) = list(reader.frames())
    assert bytes(sync.raw) == m.Sync().encode()


@pytest.mark.parametrize("length", [-1, 0, 4, 7, 10_001, 0x7FFFFFFF, -0x80000000])
def test_frame_reader_startup_rejects_bad_lengths(length: int) -> None:
    reader = m.FrameReader(startup=True)
    reader.feed(_i32(length) + b"\x00\x03\x00\x00")
    with pytest.raises(m.ProtocolError, match="startup packet length"):
        list(reader.frames())


def test_frame_reader_startup_length_limits() -> None:
    reader = m.FrameReader(startup=True)
    reader.feed(_i32(10_000) + b"\x00\x03\x00\x00")
    assert list(reader.frames()) == []  # allowed: waits for the rest
    body = b"\x00\x03\x00\x00" + b"user\0" + b"u" * (10_000 - 4 - 4 - 5 - 2) + b"\0\0"
    data = _i32(len(body) + 4) + body
    assert len(data) == 10_000
    (frame,) = _frames(data, startup=True)
    assert isinstance(m.decode_frame(frame, backend=False), m.StartupMessage)
    (frame,) = _frames(m.SSLRequest().encode(), startup=True)  # the minimum, 8
    reader = m.FrameReader(max_size=100, startup=True)
    reader.feed(_i32(101))
    with pytest.raises(m.ProtocolError):
        list(reader.frames())


def test_frame_reader_typed_frame_with_tag_zero_is_not_a_startup_message() -> None:
    # A typed frame whose tag byte is 0 must not be decoded as an untyped startup packet.
    data = b"\x00" + _u32(8) + _i32(m.SSL_REQUEST_CODE)
    (frame,) = _frames(data)
    for backend in (False, True):
        with pytest.raises(m.ProtocolError):
            m.decode_frame(frame, backend=backend)


def test_frame_reader_accepts_bytearray_and_memoryview() -> None:
    data = m.Query("q").encode() + m.Sync().encode()
    reader = m.FrameReader()
    reader.feed(bytearray(data[:3]))
    reader.feed(memoryview(data)[3:])
    assert [bytes(f.raw) for f in reader.frames()] == [m.Query("q").encode(), m.Sync().encode()]


# --- malformed payloads ----------------------------------------------------------------------------------

FRONTEND_BAD: list[tuple[str, bytes]] = [
    ("Q", b""),
    ("Q", b"select 1"),  # no NUL
    ("Q", b"select 1\0x"),  # trailing bytes
    ("P", b"s\0select 1"),
    ("P", b"s\0q\0"),  # no count
    ("P", b"s\0q\0\x00\x02\x00\x00\x00\x17"),  # one type OID short
    ("P", b"s\0q\0\x00\x00x"),
    ("P", b"s\0q\0\xff\xff"),  # "negative" count: 65535 OIDs, none there
    ("B", b""),
    ("B", b"\0"),
    ("B", b"\0\0\x00\x01"),  # format count 1, no format
    ("B", b"\0\0\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00"),  # value length -2
    ("B", b"\0\0\x00\x00\x00\x01\x80\x00\x00\x00\x00\x00"),  # value length -2**31
    ("B", b"\0\0\x00\x00\x00\x01\x00\x00\x00\x05ab\x00\x00"),  # value longer than the message
    ("B", b"\0\0\x00\x00\x00\x00"),  # no result-format count
    ("B", b"\0\0\x00\x00\x00\x00\x00\x00\x00"),
    ("B", b"\0\0\xff\xff\x00\x00\x00\x00"),
    ("D", b""),
    ("D", b"X\0"),  # bad Describe target
    ("D", b"s\0"),
    ("D", b"\0\0"),
    ("D", b"S"),
    ("D", b"Sname"),
    ("D", b"Sa\0b"),
    ("C", b"Q\0"),
    ("C", b""),
    ("E", b"\0"),
    ("E", b"\0\0\0\0"),
    ("E", b"\0\0\0\0\0\0"),
    ("E", b"p"),
    ("S", b"\0"),
    ("H", b"x"),
    ("X", b"\0\0\0\0"),
    ("c", b"x"),
    ("f", b"no nul"),
    ("f", b"a\0b\0"),
    ("F", b""),
    ("F", b"\0\0\0\x01"),
    ("F", b"\0\0\0\x01\x00\x00\x00\x00"),  # no result format
    ("F", b"\0\0\0\x01\x00\x00\x00\x01\xff\xff\xff\xfd\x00\x00"),
    ("F", b"\0\0\0\x01\x00\x00\x00\x00\x00\x00\x00"),  # trailing byte
]

BACKEND_BAD: list[tuple[str, bytes]] = [
    ("R", b""),
    ("R", b"\0\0\0"),
    ("R", b"\0\0\0\x00x"),  # AuthenticationOk with trailing bytes
    ("R", b"\0\0\0\x03x"),
    ("R", b"\0\0\0\x07\0"),
    ("R", b"\0\0\0\x05abc"),  # MD5 salt too short
    ("R", b"\0\0\0\x05abcde"),
    ("K", b"\0\0\0\x01"),
    ("K", b"\0\0\0\x01abc"),
    ("K", b"\0\0\0\x01" + b"k" * 257),
    ("K", b"\0\0"),
    ("1", b"x"),
    ("2", b"\0"),
    ("3", b"\0"),
    ("n", b"\0"),
    ("s", b"\0"),
    ("I", b"\0"),
    ("C", b""),
    ("C", b"SELECT 1"),
    ("C", b"SELECT 1\0\0"),
    ("G", b""),
    ("G", b"\0"),
    ("G", b"\0\x00\x02\x00\x00"),
    ("H", b"\0\xff\xff"),
    ("W", b"\0\x00\x00\x00"),
    ("D", b""),
    ("D", b"\x00"),
    ("D", b"\x00\x01"),
    ("D", b"\x00\x01\xff\xff\xff\xfe"),  # length -2
    ("D", b"\x00\x01\x00\x00\x00\x03ab"),
    ("D", b"\x00\x01\x00\x00\x00\x01abc"),  # trailing
    ("D", b"\xff\xff\xff\xff\xff\xff"),
    ("D", b"\x80\x00" + b"\xff" * 16),
    ("E", b""),
    ("E", b"SERROR"),  # field without NUL
    ("E", b"SERROR\0"),  # no terminating zero byte
    ("E", b"SERROR\0\0x"),
    ("N", b"M"),
    ("V", b""),
    ("V", b"\xff\xff\xff\xfe"),
    ("V", b"\x00\x00\x00\x02a"),
    ("V", b"\xff\xff\xff\xff\0"),
    ("v", b""),
    ("v", b"\0\3\0\0"),
    ("v", b"\0\3\0\0\xff\xff\xff\xff"),  # negative option count
    ("v", b"\0\3\0\0\x7f\xff\xff\xff"),  # absurd option count
    ("v", b"\0\3\0\0\0\0\0\x02a\0"),  # one option short
    ("v", b"\0\3\0\0\0\0\0\x01a"),
    ("v", b"\0\3\0\0\0\0\0\x00x"),
    ("A", b"\0\0\0\x01chan\0"),
    ("A", b"\0\0\0\x01chan\0pay"),
    ("A", b"\0\0"),
    ("t", b""),
    ("t", b"\x00\x02\x00\x00\x00\x17"),
    ("t", b"\x00\x01\x00\x00\x00\x17\x00"),
    ("t", b"\xff\xff"),
    ("S", b"name\0"),
    ("S", b"name\0value"),
    ("S", b"a\0b\0c"),
    ("Z", b""),
    ("Z", b"X"),  # bad transaction status
    ("Z", b"i"),
    ("Z", b"\0"),
    ("Z", b"II"),
    ("T", b""),
    ("T", b"\x00\x01"),
    ("T", b"\x00\x01a\0"),
    ("T", b"\x00\x01a\0" + b"\0" * 17),  # field one byte short
    ("T", b"\x00\x01a" + b"\1" * 18),  # name without NUL
    ("T", b"\x00\x00\0"),
    ("T", b"\x00\x02a\0" + b"\0" * 18),
    ("c", b"x"),
]


@pytest.mark.parametrize(("tag", "payload"), FRONTEND_BAD, ids=lambda x: repr(x))
def test_malformed_frontend_payloads(tag: str, payload: bytes) -> None:
    with pytest.raises(m.ProtocolError):
        m.decode_frontend(ord(tag), payload)
    # The same bytes through FrameReader + decode_frame.
    (frame,) = _frames(_msg(tag.encode(), payload))
    with pytest.raises(m.ProtocolError):
        m.decode_frame(frame, backend=False)


@pytest.mark.parametrize(("tag", "payload"), BACKEND_BAD, ids=lambda x: repr(x))
def test_malformed_backend_payloads(tag: str, payload: bytes) -> None:
    with pytest.raises(m.ProtocolError):
        m.decode_backend(ord(tag), payload)
    (frame,) = _frames(_msg(tag.encode(), payload))
    with pytest.raises(m.ProtocolError):
        m.decode_frame(frame, backend=True)


_ALL_SAMPLES = [(False, x) for x in FRONTEND_SAMPLES] + [(True, x) for x in BACKEND_SAMPLES]


@pytest.mark.parametrize(("backend", "msg"), _ALL_SAMPLES, ids=repr)
def test_every_truncation_of_a_valid_message_is_refused_or_valid(backend: bool, msg: m.Message) -> None:
    """Cutting a valid payload short never raises anything but ProtocolError."""
    body = msg.body()
    decode = m.decode_backend if backend else m.decode_frontend
    for cut in range(len(body)):
        try:
            decode(msg.TAG[0], body[:cut])
        except m.ProtocolError:
            pass
    # A message whose last field is not "the rest" must be refused when cut by one byte.
    if body and not isinstance(msg, m.CopyData | m.PasswordMessage | m.Authentication | m.BackendKeyData):
        with pytest.raises(m.ProtocolError):
            decode(msg.TAG[0], body[:-1])


def test_unknown_tags_are_refused() -> None:
    frontend_unknown = set(range(256)) - set(m.FRONTEND)
    backend_unknown = set(range(256)) - set(m.BACKEND)
    assert ord("Z") in frontend_unknown and ord("Q") in backend_unknown and 0 in frontend_unknown
    for tag in frontend_unknown:
        with pytest.raises(m.ProtocolError, match="invalid frontend message type"):
            m.decode_frontend(tag, b"")
    for tag in backend_unknown:
        with pytest.raises(m.ProtocolError, match="invalid backend message type"):
            m.decode_backend(tag, b"")
    (frame,) = _frames(_msg(b"!", b""))
    for backend in (False, True):
        with pytest.raises(m.ProtocolError):
            m.decode_frame(frame, backend=backend)


STARTUP_BAD: list[bytes] = [
    b"",
    b"\x00\x03",
    _i32(m.SSL_REQUEST_CODE) + b"\0",  # trailing bytes
    _i32(m.GSSENC_REQUEST_CODE) + b"\0\0\0\0",
    _i32(m.CANCEL_REQUEST_CODE),
    _i32(m.CANCEL_REQUEST_CODE) + _i32(1),  # no key
    _i32(m.CANCEL_REQUEST_CODE) + _i32(1) + b"abc",  # key too short
    _i32(m.CANCEL_REQUEST_CODE) + _i32(1) + b"k" * 257,  # key too long
    _i32(2 << 16),  # protocol 2.0
    _i32(4 << 16) + b"\0",
    _i32(-1) + b"\0",
    _i32(m.PROTOCOL_3_0),  # no terminator
    _i32(m.PROTOCOL_3_0) + b"user\0",  # key without value
    _i32(m.PROTOCOL_3_0) + b"user\0u\0",  # no final terminator
    _i32(m.PROTOCOL_3_0) + b"user\0u",
    _i32(m.PROTOCOL_3_0) + b"user\0u\0\0x",  # trailing bytes
    _i32(m.PROTOCOL_3_0) + b"\0\0",
]


@pytest.mark.parametrize("payload", STARTUP_BAD, ids=repr)
def test_malformed_startup_payloads(payload: bytes) -> None:
    with pytest.raises(m.ProtocolError):
        m.decode_startup(payload)
    if len(payload) >= 4:
        (frame,) = _frames(_i32(len(payload) + 4) + payload, startup=True)
        with pytest.raises(m.ProtocolError):
            m.decode_frame(frame, backend=False)


def test_startup_keeps_unknown_minor_version_and_non_utf8_bytes() -> None:
    payload = _i32(m.PROTOCOL_3_0 | 5) + b"user\0\xff\xfe\0\0"
    msg = m.decode_startup(payload)
    assert isinstance(msg, m.StartupMessage)
    assert msg.protocol & 0xFFFF == 5 and msg.params == {"user": "\udcff\udcfe"}
    assert msg.encode()[4:] == payload


def test_sasl_mechanism_list_must_be_terminated() -> None:
    with pytest.raises(m.ProtocolError):
        m.Authentication(m.AUTH_SASL, b"SCRAM-SHA-256\0").mechanisms()
    with pytest.raises(m.ProtocolError):
        m.Authentication(m.AUTH_SASL, b"").mechanisms()
    assert m.Authentication(m.AUTH_SASL, b"\0").mechanisms() == []


def test_encoding_refuses_nul_in_strings() -> None:
    with pytest.raises(ValueError):
        m.Query("a\0b").encode()
    with pytest.raises(ValueError):
        m.StartupMessage({"user": "a\0"}).encode()
