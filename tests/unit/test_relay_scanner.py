"""RelayScanner: message boundaries in the server's byte stream, without sockets."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from dbfw.protocol.postgres.messages import RelayScanner


def msg(tag: bytes, body: bytes = b"") -> bytes:
    return tag + struct.pack("!I", len(body) + 4) + body


ROW = msg(b"D", struct.pack("!HI", 1, 1) + b"7")
DESC = msg(b"T", struct.pack("!H", 1) + b"a\x00" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0))
DONE = msg(b"C", b"SELECT 1\x00")
READY = msg(b"Z", b"I")
WANTED = frozenset(b"TCZ")


def drain(scanner: RelayScanner, data: bytes, wanted: frozenset[int] = WANTED) -> list[list[object]]:
    """Every feed's pieces (bytes for forwarded spans, (tag, bytes) for handed-out messages)."""
    calls = []
    pieces = scanner.feed(data, wanted)
    while True:
        calls.append([(p[0], bytes(p[1])) if isinstance(p, tuple) else bytes(p) for p in pieces])
        if not scanner.more:
            return calls
        pieces = scanner.feed(b"", wanted)


def test_messages_with_no_rows_after_them_are_handed_out_in_one_call() -> None:
    calls = drain(RelayScanner(), DONE + READY)
    assert calls == [[(ord("C"), DONE), (ord("Z"), READY)]]


def test_rows_after_a_handed_out_message_wait_for_the_caller() -> None:
    scanner = RelayScanner()
    calls = drain(scanner, DESC + ROW + ROW + DONE + READY + DESC + ROW + DONE + READY)
    assert calls == [[(ord("T"), DESC)],
                     [ROW + ROW, (ord("C"), DONE), (ord("Z"), READY), (ord("T"), DESC)],
                     [ROW, (ord("C"), DONE), (ord("Z"), READY)]]


def test_copy_data_after_a_handed_out_message_waits_too() -> None:
    copy_out = msg(b"H", b"\x00\x00\x00")
    line = msg(b"d", b"1\n")
    calls = drain(RelayScanner(), copy_out + line + msg(b"c") + DONE + READY, frozenset(b"HCZ"))
    assert calls[0] == [(ord("H"), copy_out)]
    assert calls[1][0] == line + msg(b"c")


def test_rows_past_the_allowance_are_dropped_and_said_so() -> None:
    scanner = RelayScanner()
    scanner.rows_left = 1
    calls = drain(scanner, ROW + ROW + ROW + DONE)
    assert calls == [[ROW, (ord("C"), DONE)]]
    assert scanner.limit_hit


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([ROW, DESC, DONE, READY, msg(b"N", b"SNOTICE\x00\x00")]), max_size=12),
       st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_any_chunking_forwards_every_byte_in_order(messages: list[bytes], cuts: list[int]) -> None:
    """However the stream is cut into reads, what goes out (spans and handed-out messages) is the input."""
    stream = b"".join(messages)
    scanner = RelayScanner()
    out = bytearray()
    pos = 0
    chunks = []
    for c in cuts:
        chunks.append(stream[pos:pos + c])
        pos += c
    chunks.append(stream[pos:])
    for chunk in chunks:
        for call in drain(scanner, chunk):
            for piece in call:
                out += piece[1] if isinstance(piece, tuple) else piece  # type: ignore[operator]
    assert bytes(out) == stream
