"""Property tests for the PostgreSQL codec: any input yields frames or ProtocolError, never anything else.

Every example is bounded: a frame consumes at least one byte, so the number of frames per example is
checked against the input size (a reader that stopped consuming would fail instead of hanging), and
the module-level timeout catches anything else.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbfw.protocol.postgres import messages as m

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND_TRIP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ------------------------------------------------------------------------------------------

i16 = st.integers(-(2**15), 2**15 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)
blob = st.binary(max_size=24)
# Any text the wire can carry: real text, and non-UTF-8 bytes (kept via surrogateescape).
text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12),
    st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"\1").decode("utf-8", "surrogateescape")),
)
values = st.lists(st.one_of(st.none(), blob), max_size=5)
small_i16s = st.lists(i16, max_size=4)

_SIMPLE_AUTH = (m.AUTH_OK, m.AUTH_KERBEROS_V5, m.AUTH_CLEARTEXT, m.AUTH_GSS, m.AUTH_SSPI)

field_desc = st.builds(m.FieldDescription, text, u32, i16, u32, i16, i32, i16)
error_fields = st.dictionaries(st.characters(min_codepoint=1, max_codepoint=255), text, max_size=5)

frontend_msgs: st.SearchStrategy[m.Message] = st.one_of(
    st.builds(m.Query, text),
    st.builds(m.Parse, text, text, st.lists(u32, max_size=4)),
    st.builds(m.Bind, text, text, small_i16s, values, small_i16s),
    st.builds(m.Describe, st.sampled_from("SP"), text),
    st.builds(m.Close, st.sampled_from("SP"), text),
    st.builds(m.Execute, text, i32),
    st.sampled_from([m.Sync(), m.Flush(), m.Terminate(), m.CopyDone()]),
    st.builds(m.CopyData, blob),
    st.builds(m.CopyFail, text),
    st.builds(m.FunctionCall, u32, small_i16s, values, i16),
    st.builds(m.PasswordMessage, blob),
)

backend_msgs: st.SearchStrategy[m.Message] = st.one_of(
    st.sampled_from(_SIMPLE_AUTH).map(m.Authentication),
    st.binary(min_size=4, max_size=4).map(lambda salt: m.Authentication(m.AUTH_MD5, salt)),
    st.builds(m.Authentication, i32.filter(lambda c: c not in (*_SIMPLE_AUTH, m.AUTH_MD5)), blob),
    st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8), max_size=3)
    .map(m.Authentication.sasl),
    st.builds(m.BackendKeyData, i32, st.binary(min_size=4, max_size=256)),
    st.sampled_from([m.BindComplete(), m.CloseComplete(), m.ParseComplete(), m.NoData(), m.PortalSuspended(),
                     m.EmptyQueryResponse(), m.CopyDone()]),
    st.builds(m.CommandComplete, text),
    st.builds(m.CopyInResponse, st.integers(0, 255), small_i16s),
    st.builds(m.CopyOutResponse, st.integers(0, 255), small_i16s),
    st.builds(m.CopyBothResponse, st.integers(0, 255), small_i16s),
    st.builds(m.CopyData, blob),
    st.builds(m.DataRow, values),
    st.builds(m.ErrorResponse, error_fields),
    st.builds(m.NoticeResponse, error_fields),
    st.builds(m.FunctionCallResponse, st.one_of(st.none(), blob)),
    st.builds(m.NegotiateProtocolVersion, i32, st.lists(text, max_size=3)),
    st.builds(m.NotificationResponse, i32, text, text),
    st.builds(m.ParameterDescription, st.lists(u32, max_size=4)),
    st.builds(m.ParameterStatus, text, text),
    st.builds(m.ReadyForQuery, st.sampled_from("ITE")),
    st.builds(m.RowDescription, st.lists(field_desc, max_size=3)),
)

startup_msgs: st.SearchStrategy[m.Message] = st.one_of(
    st.builds(m.StartupMessage, st.dictionaries(text.filter(bool), text, max_size=4),
              st.integers(0, 0xFFFF).map(lambda minor: m.PROTOCOL_3_0 | minor)),
    st.just(m.SSLRequest()),
    st.just(m.GSSENCRequest()),
    st.builds(m.CancelRequest, i32, st.binary(min_size=4, max_size=256)),
)

# Length words worth trying: the edges of every check, and absurd ones.
_LENGTHS = [0, 1, 3, 4, 5, 7, 8, 9, 255, 10_000, 10_001, m.STREAM_CHUNK, m.ABSOLUTE_MAX_MESSAGE,
            m.ABSOLUTE_MAX_MESSAGE + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
length_word = st.one_of(st.sampled_from(_LENGTHS), st.integers(0, 2**32 - 1), st.integers(0, 64))
any_tag = st.one_of(st.sampled_from(sorted(set(m.FRONTEND) | set(m.BACKEND) | {0})), st.integers(0, 255))
header = st.builds(lambda t, n: bytes([t]) + struct.pack("!I", n), any_tag, length_word)
startup_header = length_word.map(lambda n: struct.pack("!I", n))
valid_bytes = st.one_of(frontend_msgs, backend_msgs, startup_msgs).map(lambda x: x.encode())
# Streams: random bytes mixed with valid messages and headers with odd lengths.
stream = st.lists(st.one_of(st.binary(max_size=48), valid_bytes, header, startup_header), max_size=6).map(b"".join)
cuts = st.lists(st.integers(0, 400), max_size=8)
streamable = st.sampled_from([frozenset(), frozenset(b"Dd"), frozenset(b"Bd"), frozenset(range(256))])
max_size = st.sampled_from([m.DEFAULT_MAX_MESSAGE, 64, 9, 5, 10_000])


def _split(data: bytes, points: list[int]) -> Iterator[bytes]:
    edges = sorted({p for p in points if 0 < p < len(data)})
    start = 0
    for e in [*edges, len(data)]:
        yield data[start:e]
        start = e


def _read_all(reader: m.FrameReader, data: bytes, points: list[int], *, backend: bool,
              typed_after_first: bool = False) -> list[m.Frame]:
    """Feed ``data`` in pieces, decode every whole frame. Returns the frames; lets ProtocolError out."""
    frames: list[m.Frame] = []
    for piece in _split(data, points):
        reader.feed(piece)
        for frame in reader.frames():
            frames.append(frame)
            assert len(frames) <= len(data), "the reader emitted more frames than there are bytes"
            assert len(frame.raw) >= 1
            if typed_after_first and reader.startup:
                reader.set_typed()
            if frame.streamed:
                with pytest.raises(m.ProtocolError):
                    m.decode_frame(frame, backend=backend)
                continue
            try:
                msg = m.decode_frame(frame, backend=backend)
            except m.ProtocolError:
                continue
            assert isinstance(msg, m.Message)
    return frames


def _check_conservation(reader: m.FrameReader, frames: list[m.Frame], data: bytes) -> None:
    """No byte is lost, duplicated or reordered: frames + what is still buffered == what was fed."""
    out = b"".join(bytes(f.raw) for f in frames)
    assert data.startswith(out)
    assert len(out) + reader.buffered == len(data)


# --- framing and decoding never raise anything but ProtocolError -------------------------------------------


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), stream), points=cuts, backend=st.booleans(), stream_tags=streamable,
       limit=max_size, small_chunk=st.booleans())
def test_typed_stream_fuzz(data: bytes, points: list[int], backend: bool, stream_tags: frozenset[int], limit: int,
                           small_chunk: bool) -> None:
    reader = m.FrameReader(limit, streamable=stream_tags)
    with mock.patch.object(m, "STREAM_CHUNK", 16 if small_chunk else m.STREAM_CHUNK):
        try:
            frames = _read_all(reader, data, points, backend=backend)
        except m.ProtocolError:
            return
    _check_conservation(reader, frames, data)
    # Bounded memory: a reader only holds what it has not been able to emit yet.
    assert reader.buffered <= len(data)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), stream), points=cuts, backend=st.booleans(),
       switch=st.booleans(), limit=max_size)
def test_startup_stream_fuzz(data: bytes, points: list[int], backend: bool, switch: bool, limit: int) -> None:
    reader = m.FrameReader(limit, startup=True, streamable=frozenset(b"Bd"))
    try:
        frames = _read_all(reader, data, points, backend=backend, typed_after_first=switch)
    except m.ProtocolError:
        return
    _check_conservation(reader, frames, data)
    for f in frames:
        if f.header_len == 4:
            assert 8 <= len(f.raw) <= min(limit, 10_000)


@FUZZ
@given(tag=any_tag, length=length_word, tail=st.binary(max_size=64), startup=st.booleans(), backend=st.booleans(),
       stream_tags=streamable)
def test_random_length_words(tag: int, length: int, tail: bytes, startup: bool, backend: bool,
                             stream_tags: frozenset[int]) -> None:
    data = (struct.pack("!I", length) if startup else bytes([tag]) + struct.pack("!I", length)) + tail
    reader = m.FrameReader(startup=startup, streamable=stream_tags)
    try:
        frames = _read_all(reader, data, [1, 3, 5], backend=backend)
    except m.ProtocolError:
        return
    _check_conservation(reader, frames, data)
    # However large the announced length, dbfw holds no more than it was given.
    assert reader.buffered <= len(data)


@FUZZ
@given(st.data())
def test_mutated_valid_payloads(data: st.DataObject) -> None:
    """Truncated, bit-flipped or extended payloads of valid messages: decoded exactly, or ProtocolError."""
    kind = data.draw(st.sampled_from(["frontend", "backend", "startup", "sasl"]))
    if kind == "startup":
        msg = data.draw(startup_msgs)
        payload = msg.encode()[4:]
    elif kind == "sasl":
        msg = m.SASLInitialResponse(data.draw(text), data.draw(st.one_of(st.none(), blob)))
        payload = msg.body()
    else:
        msg = data.draw(frontend_msgs if kind == "frontend" else backend_msgs)
        payload = msg.body()
    op = data.draw(st.sampled_from(["truncate", "flip", "insert", "append", "none"]))
    if op == "truncate":
        payload = payload[: data.draw(st.integers(0, len(payload)))]
    elif op == "flip" and payload:
        i = data.draw(st.integers(0, len(payload) - 1))
        payload = payload[:i] + bytes([data.draw(st.integers(0, 255))]) + payload[i + 1:]
    elif op == "insert":
        i = data.draw(st.integers(0, len(payload)))
        payload = payload[:i] + data.draw(st.binary(min_size=1, max_size=8)) + payload[i:]
    elif op == "append":
        payload += data.draw(st.binary(min_size=1, max_size=8))

    decoders = {
        "frontend": lambda p: m.decode_frontend(msg.TAG[0], p),
        "backend": lambda p: m.decode_backend(msg.TAG[0], p),
        "startup": m.decode_startup,
        "sasl": m.SASLInitialResponse.decode,
    }
    try:
        decoded = decoders[kind](payload)
    except m.ProtocolError:
        return
    if kind == "startup":
        reencoded = decoded.encode()[4:]
    else:
        reencoded = decoded.body()
    if isinstance(decoded, m.ErrorResponse | m.StartupMessage):
        # Repeated field codes / parameter names collapse into one dict entry; the rest is exact.
        again = decoders[kind](reencoded)
        assert again == decoded
    else:
        assert reencoded == payload, "the codec accepted bytes it cannot reproduce exactly"
    if op == "none":
        assert decoded == msg


@FUZZ
@given(tag=st.integers(0, 255), payload=st.binary(max_size=64))
def test_random_payload_for_every_tag(tag: int, payload: bytes) -> None:
    for decode in (m.decode_frontend, m.decode_backend):
        try:
            decode(tag, payload)
        except m.ProtocolError:
            pass
    try:
        m.decode_startup(payload)
    except m.ProtocolError:
        pass
    for extra in (m.SASLInitialResponse.decode, lambda p: m.PasswordMessage(p).password(),
                  lambda p: m.Authentication(m.AUTH_SASL, p).mechanisms()):
        try:
            extra(payload)
        except m.ProtocolError:
            pass


# --- anything the strategies build round-trips exactly --------------------------------------------------------


def _roundtrip(msgs: list[m.Message], points: list[int], *, backend: bool, startup: bool = False) -> None:
    data = b"".join(x.encode() for x in msgs)
    reader = m.FrameReader(startup=startup)
    frames = _read_all(reader, data, points, backend=backend)
    _check_conservation(reader, frames, data)
    assert reader.buffered == 0
    assert len(frames) == len(msgs)
    for frame, msg in zip(frames, msgs, strict=True):
        assert bytes(frame.raw) == msg.encode()
        decoded = m.decode_frame(frame, backend=backend)
        assert type(decoded) is type(msg)
        assert decoded == msg
        assert decoded.encode() == msg.encode()


@ROUND_TRIP
@given(msgs=st.lists(frontend_msgs, min_size=1, max_size=5), points=cuts)
def test_frontend_messages_round_trip(msgs: list[m.Message], points: list[int]) -> None:
    _roundtrip(msgs, points, backend=False)


@ROUND_TRIP
@given(msgs=st.lists(backend_msgs, min_size=1, max_size=5), points=cuts)
def test_backend_messages_round_trip(msgs: list[m.Message], points: list[int]) -> None:
    _roundtrip(msgs, points, backend=True)


@ROUND_TRIP
@given(msg=startup_msgs, points=cuts)
def test_startup_messages_round_trip(msg: m.Message, points: list[int]) -> None:
    _roundtrip([msg], points, backend=False, startup=True)


@ROUND_TRIP
@given(msgs=st.lists(st.one_of(backend_msgs, st.builds(m.DataRow, st.lists(st.one_of(st.none(), st.binary(
    min_size=10, max_size=200)), max_size=4))), min_size=1, max_size=5), points=cuts, limit=st.sampled_from([40, 1000]))
def test_streamed_messages_reassemble_exactly(msgs: list[m.Message], points: list[int], limit: int) -> None:
    """With a tiny STREAM_CHUNK, streamable messages come in pieces that concatenate to the original bytes."""
    data = b"".join(x.encode() for x in msgs)
    held = [len(x.encode()) for x in msgs if x.TAG not in b"Dd"]  # these must fit max_size
    reader = m.FrameReader(max([limit, *held]), streamable=frozenset(b"Dd"))
    with mock.patch.object(m, "STREAM_CHUNK", 32):
        frames = _read_all(reader, data, points, backend=True)
    _check_conservation(reader, frames, data)
    assert reader.buffered == 0
    # Regroup pieces into messages.
    messages: list[bytes] = []
    current = b""
    for f in frames:
        current += bytes(f.raw)
        if f.final:
            messages.append(current)
            current = b""
        else:
            assert f.streamed and f.tag in b"Dd"
    assert current == b""
    assert messages == [x.encode() for x in msgs]
    for f in frames:
        if f.streamed and f.header_len == 0:
            assert f.tag in b"Dd" and len(f.raw) >= 1


@given(st.text(max_size=80), st.text(max_size=80), st.lists(st.integers(0, 1), max_size=5),
       st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=6), st.lists(st.integers(0, 1), max_size=5))
def test_bind_targets_reads_what_bind_decode_reads(portal: str, statement: str, pf: list[int],
                                                   params: list[bytes | None], rf: list[int]) -> None:
    portal, statement = portal.replace("\0", ""), statement.replace("\0", "")
    payload = m.Bind(portal, statement, pf, params, rf).encode()[5:]
    assert m.bind_targets(payload) == (portal, statement, rf)
    assert m.bind_targets(memoryview(payload)) == (portal, statement, rf)


@given(st.binary(max_size=400))
def test_bind_targets_on_garbage_is_a_protocol_error_or_agrees_with_decode(data: bytes) -> None:
    try:
        expected = m.Bind.decode(data)
    except m.ProtocolError:
        with pytest.raises(m.ProtocolError):
            m.bind_targets(data)
        return
    assert m.bind_targets(data) == (expected.portal, expected.statement, expected.result_formats)


@FUZZ
@given(st.binary(max_size=40) | st.builds(lambda t: t.encode() + b"\x00", st.text(max_size=20)))
def test_query_text_reads_a_payload_as_query_decode_does(payload: bytes) -> None:
    """The fast path of the simple protocol agrees with the codec: same text, or the same refusal."""
    try:
        expected: str | None = m.Query.decode(payload).query  # type: ignore[attr-defined]
    except m.ProtocolError:
        expected = None
    try:
        got: str | None = m.query_text(payload)
    except m.ProtocolError:
        got = None
    assert got == expected
