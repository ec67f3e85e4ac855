"""The MySQL protocol without sockets: the packet codec, the authentication plugins, and the session core
driven by byte transcripts captured from a real MariaDB (``data/mariadb_transcripts.json``, made by
``scripts/capture_mariadb_transcripts.py``), plus property tests that no input crashes or hangs a decoder."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysql import _auth as pymysql_auth

from dbfw import mysql_auth as auth
from dbfw.context import StatementContext
from dbfw.masking.plan import ColumnMask
from dbfw.policy.rules import Limits
from dbfw.protocol.mysql import packets as p
from dbfw.protocol.mysql.core import Ask, MyCore, Phase, take
from dbfw.protocol.mysql.rows import mask_binary_row, mask_text_row
from dbfw.sql.classify import LEX_MYSQL_ANSI_QUOTES, LEX_MYSQL_NO_BACKSLASH_ESCAPES, SQLClassifier
from dbfw.verdict import Verdict

pytestmark = pytest.mark.timeout(60)

DATA = json.loads((Path(__file__).parent / "data" / "mariadb_transcripts.json").read_text())
TRANSCRIPTS = {(t["name"], t["deprecate_eof"]): t for t in DATA["transcripts"]}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_ids = itertools.count(1)


# --- framing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 100, p.MAX_CHUNK - 1, p.MAX_CHUNK, p.MAX_CHUNK + 1, 2 * p.MAX_CHUNK])
def test_payloads_of_any_size_are_split_and_reassembled(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    data, next_seq = p.frame(payload, 5)
    parts = size // p.MAX_CHUNK + 1  # an exact multiple ends with an empty packet
    assert next_seq == 5 + parts
    assert len(data) == size + 4 * parts
    reader = p.PacketReader(1 << 26)
    for i in range(0, len(data), 1 << 20):  # in reads of 1 MiB
        reader.feed(data[i:i + (1 << 20)])
    packets = list(reader.packets())
    assert [(q.seq, q.payload, q.parts) for q in packets] == [(5, payload, parts)]


def test_a_packet_over_the_limit_is_refused_before_it_is_buffered() -> None:
    reader = p.PacketReader(1000)
    reader.feed(b"\xe9\x03\x00\x00")  # 1001 bytes announced
    with pytest.raises(p.PacketError):
        list(reader.packets())


def test_split_packets_must_keep_their_sequence() -> None:
    data = p.frame(b"x" * p.MAX_CHUNK, 0)[0]
    broken = data[:p.MAX_CHUNK + 4] + b"\x00\x00\x00\x07"  # the trailer claims sequence 7, not 1
    reader = p.PacketReader(1 << 26)
    reader.feed(broken)
    with pytest.raises(p.PacketError):
        list(reader.packets())


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=20))
def test_any_bytes_give_packets_or_packet_error_and_never_hang(data: bytes, cuts: list[int]) -> None:
    reader = p.PacketReader(200)
    pos = 0
    try:
        for cut in [*cuts, len(data)]:
            reader.feed(data[pos:pos + cut])
            pos += cut
            for packet in reader.packets():
                assert len(packet.payload) <= 200
    except p.PacketError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_decoders_raise_only_packet_error(payload: bytes) -> None:
    for decode in (p.Handshake.decode, p.HandshakeResponse.decode, p.Ok.decode, p.Err.decode, p.Column.decode,
                   p.column_count, lambda b: p.text_row_values(b, 3), p.eof_status):
        try:
            decode(payload)
        except p.PacketError:
            pass


# --- connection phase and auth --------------------------------------------------------------------------


def test_handshake_and_response_round_trip() -> None:
    nonce = auth.nonce()
    hs = p.Handshake("10.11.19-MariaDB", 42, nonce, int(p.SUPPORTED), plugin="caching_sha2_password")
    back = p.Handshake.decode(hs.encode())
    assert (back.server_version, back.connection_id, back.nonce, back.capabilities, back.plugin) == (
        "10.11.19-MariaDB", 42, nonce, int(p.SUPPORTED), "caching_sha2_password")
    resp = p.HandshakeResponse(int(p.SUPPORTED | p.Capability.CONNECT_ATTRS | p.Capability.CONNECT_WITH_DB),
                               user="agent", auth=b"\x01" * 20, database="test", plugin="mysql_native_password",
                               attributes={"_client_name": "x"})
    back2 = p.HandshakeResponse.decode(resp.encode())
    assert (back2.user, back2.auth, back2.database, back2.plugin, back2.attributes) == (
        "agent", b"\x01" * 20, "test", "mysql_native_password", {"_client_name": "x"})


def test_the_real_servers_handshake_is_read() -> None:
    assert DATA["server"]  # captured from a live server
    t = TRANSCRIPTS[("select", True)]
    assert t["capabilities"] & p.Capability.DEPRECATE_EOF


@pytest.mark.parametrize("password", ["", "secret", "pässwörd-Ω"])
def test_scrambles_agree_with_a_client_library_and_check(password: str) -> None:
    salt = auth.nonce()
    assert b"\x00" not in salt and len(salt) == 20
    v = auth.Verifiers.from_password(password)
    native = auth.native_scramble(password, salt)
    sha2 = auth.sha2_scramble(password, salt)
    assert native == pymysql_auth.scramble_native_password(password.encode(), salt)
    assert sha2 == pymysql_auth.scramble_caching_sha2(password.encode(), salt)
    if password:
        assert auth.native_check(native, salt, v.native) and auth.sha2_check(sha2, salt, v.sha2)
        wrong = auth.Verifiers.from_password(password + "x")
        assert not auth.native_check(native, salt, wrong.native) and not auth.sha2_check(sha2, salt, wrong.sha2)
        assert not auth.native_check(native, auth.nonce(), v.native)


# --- rows ------------------------------------------------------------------------------------------------


def test_text_rows_are_masked_column_by_column() -> None:
    row = p.text_row([b"1", b"a@example.com", None])
    mask = ColumnMask("email", lambda b: b"***")
    assert p.text_row_values(mask_text_row(row, [None, mask, mask]), 3) == [b"1", b"***", None]
    assert mask_text_row(row, [None, None, None]) is row


def test_binary_rows_are_masked_and_non_text_values_become_null() -> None:
    cols = [p.Column("test", "t", "t", n, n, 63, 11, t, 0, 0)
            for n, t in (("id", p.FieldType.LONG), ("email", p.FieldType.VAR_STRING), ("n", p.FieldType.LONGLONG))]
    row = b"\x00\x00" + (1).to_bytes(4, "little") + p.lenenc_bytes(b"a@example.com") + (7).to_bytes(8, "little")
    mask = ColumnMask("r", lambda b: b"x@x")
    out = mask_binary_row(row, cols, [None, mask, mask])
    # id kept, email masked, n NULL (bit 2 + 2 = 4 of the bitmap)
    assert out == b"\x00\x10" + (1).to_bytes(4, "little") + p.lenenc_bytes(b"x@x")


# --- the core, fed real bytes -------------------------------------------------------------------------------


def core_for(deprecate_eof: bool, limits: Limits | None = None) -> MyCore:
    caps = TRANSCRIPTS[("select", deprecate_eof)]["capabilities"]
    ctx = StatementContext("agent", frozenset({"agent"}), "test", "my", "mysql", f"s{next(_ids)}")
    return MyCore(ctx, caps, limits=limits)


def run(core: MyCore, command: bytes, server: bytes, verdict: Verdict | None = None) -> tuple[bytes, bytes]:
    core.client_data(p.frame(command, 0)[0])
    if core.question is not None:
        assert core.question.kind in (Ask.QUERY, Ask.PREPARE)
        core.answer(verdict or Verdict(True, cls="read"))
    up, early = take(core)
    core.server_data(server)
    _, down = take(core)
    return b"".join(up), b"".join(early + down)


@pytest.mark.parametrize("deprecate_eof", [True, False], ids=["deprecate-eof", "eof"])
@pytest.mark.parametrize("name", ["select", "empty", "ok", "error", "multi", "multi_error", "prepared", "ping",
                                  "init_db"])
def test_every_response_is_relayed_whole_and_the_core_is_ready_after_it(name: str, deprecate_eof: bool) -> None:
    core = core_for(deprecate_eof)
    for step in TRANSCRIPTS[(name, deprecate_eof)]["steps"]:
        command, server = bytes.fromhex(step["client"]), bytes.fromhex(step["server"])
        up, down = run(core, command, server)
        assert up == p.frame(command, 0)[0]
        assert down == server  # nothing masked or limited here: the client gets the server's bytes as they were
        assert core.phase == Phase.IDLE and core.response is None
    if name == "prepared":
        (prepared,) = core.statements.values()  # by the id the server gave it
        assert prepared.params == 1 and [c.name for c in prepared.columns] == ["id", "email", "n", "d"]
    if name == "init_db":
        assert core.ctx.database == "test"


@pytest.mark.parametrize("deprecate_eof", [True, False], ids=["deprecate-eof", "eof"])
def test_a_refused_statement_sends_nothing_and_the_client_gets_1644(deprecate_eof: bool) -> None:
    core = core_for(deprecate_eof)
    step = TRANSCRIPTS[("select", deprecate_eof)]["steps"][0]
    up, down = run(core, bytes.fromhex(step["client"]), b"", Verdict.refuse("DBF02", "denied by policy"))
    assert up == b""
    reader = p.PacketReader()
    reader.feed(down)
    (packet,) = list(reader.packets())
    err = p.Err.decode(packet.payload)
    assert (packet.seq, err.errno, err.sqlstate) == (1, 1644, "DBF02") and err.message.startswith("dbfw:")
    assert core.phase == Phase.IDLE


@pytest.mark.parametrize("deprecate_eof", [True, False], ids=["deprecate-eof", "eof"])
def test_rows_past_the_limit_are_dropped_and_the_result_ends_in_dbf06(deprecate_eof: bool) -> None:
    core = core_for(deprecate_eof, Limits(max_result_rows=2))
    step = TRANSCRIPTS[("select", deprecate_eof)]["steps"][0]
    _, down = run(core, bytes.fromhex(step["client"]), bytes.fromhex(step["server"]))
    reader = p.PacketReader()
    reader.feed(down)
    packets = list(reader.packets())
    assert [q.seq for q in packets] == list(range(1, len(packets) + 1))  # no gap where rows were dropped
    last = p.Err.decode(packets[-1].payload)
    assert last.sqlstate == "DBF06" and "max_result_rows (2 rows)" in last.message
    rows = [q for q in packets[:-1] if q.payload[:1] not in (b"\x03", b"\xfe") and len(q.payload) < 40
            and q.seq > 5]
    assert len(rows) <= 2
    assert core.phase == Phase.IDLE


def test_commands_dbfw_does_not_relay_are_refused_without_reaching_the_server() -> None:
    core = core_for(True)
    for command in (p.Command.STATISTICS, p.Command.BINLOG_DUMP, p.Command.PROCESS_KILL, 0x1D, 0xFF):
        up, down = run(core, bytes((command,)), b"")
        assert up == b"" and p.Err.decode(down[4:]).errno == 1047


def _load_command(core: MyCore, sql: str) -> None:
    verdict = Verdict(True, cls="bulk_import", classification=SQLClassifier("mysql").classify(sql))
    core.client_data(p.frame(b"\x03" + sql.encode(), 0)[0])
    assert core.question is not None
    core.answer(verdict)
    take(core)


def test_the_server_may_ask_only_for_the_file_the_allowed_statement_names() -> None:
    core = core_for(True)
    _load_command(core, "LOAD DATA LOCAL INFILE '/tmp/it\\'s.csv' INTO TABLE t")
    core.server_data(p.frame(b"\xfb/tmp/it's.csv", 1)[0])
    up, down = take(core)
    assert up == [] and down == [p.frame(b"\xfb/tmp/it's.csv", 1)[0]]
    # The file, in two packets and the empty one that ends it, goes to the server as the client numbered it.
    core.client_data(p.frame(b"1,a\n", 2)[0] + p.frame(b"2,b\n", 3)[0])
    core.client_data(p.frame(b"", 4)[0] + p.frame(b"\x0e", 0)[0])  # a COM_PING right behind it waits
    up, down = take(core)
    assert up == [p.frame(b"1,a\n", 2)[0], p.frame(b"2,b\n", 3)[0], p.frame(b"", 4)[0]] and down == []
    ok = p.frame(p.Ok(affected_rows=2).encode(), 5)[0]
    core.server_data(ok)
    up, down = take(core)
    assert down == [ok] and up == [p.frame(b"\x0e", 0)[0]]  # the response is over: the ping goes on

    for sql, asked in [("LOAD DATA LOCAL INFILE '/tmp/a.csv' INTO TABLE t", b"/etc/passwd"),
                       ("LOAD DATA LOCAL INFILE '/tmp/a.csv' INTO TABLE t", b"/tmp/a.csv\x00"),
                       ("LOAD DATA INFILE '/tmp/a.csv' INTO TABLE t", b"/tmp/a.csv"),  # the server's own file
                       ("SELECT 1", b"/tmp/a.csv")]:
        core = core_for(True)
        _load_command(core, sql)
        with pytest.raises(p.PacketError, match="does not name"):
            core.server_data(p.frame(b"\xfb" + asked, 1)[0])
        assert take(core)[1] == []  # the client was never asked


def test_change_user_goes_to_the_shell_and_nothing_to_the_server() -> None:
    """COM_CHANGE_USER is a login: the core hands the whole packet to the shell and sends nothing."""
    core = core_for(True)
    payload = bytes((p.Command.CHANGE_USER,)) + b"bob\x00\x14" + b"s" * 20 + b"test\x00" + b"\x2d\x00" + \
        b"mysql_native_password\x00"
    core.client_data(p.frame(payload, 0)[0])
    assert core.question is not None and core.question.kind == Ask.CHANGE_USER and core.question.payload == payload
    assert take(core) == ([], [])
    request = p.change_user_request(payload, int(p.Capability.SECURE_CONNECTION | p.Capability.PLUGIN_AUTH))
    assert (request.user, request.auth, request.database, request.charset, request.plugin) == (
        "bob", b"s" * 20, "test", 45, "mysql_native_password")
    wide = payload.replace(b"\x2d\x00", b"\x21\x01")  # collation 289, not 33: every bit of the id counts
    assert p.change_user_request(wide, int(p.Capability.SECURE_CONNECTION)).charset == 289


def test_an_unknown_prepared_statement_is_not_executed() -> None:
    core = core_for(True)
    up, down = run(core, bytes.fromhex(TRANSCRIPTS[("prepared", True)]["steps"][1]["client"]), b"")
    assert up == b"" and p.Err.decode(down[4:]).errno == 1243


# --- lexing modes -----------------------------------------------------------------------------------------


def test_texts_the_sql_mode_could_make_read_differently_are_unknown() -> None:
    c = SQLClassifier("mysql")
    trick = "SELECT 'a\\'; DROP TABLE t; -- '"
    assert c.classify(trick, "test").cls == "read"  # backslash escapes (the default): one string
    assert c.classify(trick, "test", LEX_MYSQL_NO_BACKSLASH_ESCAPES).cls == "unknown"
    assert c.classify('SELECT "t" FROM x', "test", LEX_MYSQL_ANSI_QUOTES).cls == "unknown"
    assert c.classify("SELECT `t` FROM x WHERE a = 'b'", "test",
                      LEX_MYSQL_ANSI_QUOTES | LEX_MYSQL_NO_BACKSLASH_ESCAPES).cls == "read"


def test_null_safe_equality_with_a_parameter_restricts_nothing() -> None:
    """<=> ? bound to NULL (IS NOT DISTINCT FROM $1 on PostgreSQL) picks every row where the column is NULL."""
    from dbfw.sql.functions import FunctionCatalog

    catalog = FunctionCatalog(live=True, number_columns=frozenset({("test", "t", "n")}),
                              columns=frozenset({("test", "t", "n")}))
    mysql = SQLClassifier("mysql")
    assert mysql.classify("DELETE FROM t WHERE n <=> ?", "test", 0, catalog).cls == "destructive_write"
    assert mysql.classify("DELETE FROM t WHERE n <=> 5", "test", 0, catalog).cls == "write"
    assert SQLClassifier("postgres").classify("DELETE FROM t WHERE n IS NOT DISTINCT FROM $1").cls \
        == "destructive_write"
