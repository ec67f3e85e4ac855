"""The sans-I/O session core (``PgCore``) driven by byte transcripts of a real PostgreSQL 15 server.

No socket is opened: ``data/pg15_transcripts.json`` (made by ``scripts/capture_pg_transcripts.py``) holds,
per scenario, the client's bytes of each round trip and the server's bytes that answered them. A test feeds
the client's bytes to the core, answers the core's questions with a real :class:`Firewall`, feeds the
server's bytes, and looks at what the core would write to each side.

The pipelined scenario's middle statement was captured as ``dbfw_refused_000000000000``, the shape of the
text dbfw sends in place of a refused statement; before the server's bytes are fed, that placeholder is
replaced by the token the core chose (same length, so every message length stays valid).

Table OIDs in RowDescription change at every capture: nothing here asserts them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbfw.context import StatementContext
from dbfw.firewall import Firewall
from dbfw.masking.catalog import Catalog
from dbfw.masking.service import Masking
from dbfw.policy.rules import Defaults, Limits, MaskRule, Match, Policy, RuleSet
from dbfw.protocol.postgres import messages as m
from dbfw.protocol.postgres.core import Ask, PgCore, Phase, take
from dbfw.protocol.postgres.results import Responses
from dbfw.sql.classify import LEX_BACKSLASH_ESCAPES, LEX_UNSETTLED

pytestmark = pytest.mark.timeout(60)

DATA = Path(__file__).parent / "data" / "pg15_transcripts.json"
TRANSCRIPTS: dict[str, list[dict[str, str]]] = {t["name"]: t["steps"] for t in json.loads(DATA.read_text())}
PLACEHOLDER = b"dbfw_refused_000000000000"
TOKEN = re.compile(rb"dbfw_refused_[0-9a-f]{12}")
_HDR = struct.Struct("!cI")

NO_MARKER = Policy(name="no-marker", match=Match(tables=["forbidden*"]), action="deny")
_sessions = itertools.count(1)


# --- driving the core ------------------------------------------------------------------------------------


def firewall(limits: Limits | None = None) -> Firewall:
    """Everything allowed, but tables named forbidden*; what dbfw cannot parse is refused (it fails closed)."""
    return Firewall(RuleSet(Defaults(action="allow", unknown="deny"), policies=[NO_MARKER],
                            limits=limits if limits is not None else Limits()))


class Driver:
    """The shell's part, without sockets: feeds bytes, answers questions with the firewall, collects output."""

    def __init__(self, limits: Limits | None = None, fw: Firewall | None = None, masking: Masking | None = None):
        self.limits = limits if limits is not None else Limits()
        self.fw = fw if fw is not None else firewall(self.limits)
        ctx = StatementContext(identity="agent", roles=frozenset({"agent"}), database="test", listener="pg",
                               protocol="postgres", session_id=f"s{next(_sessions)}")
        self.core = PgCore(ctx, {"client_encoding": "UTF8", "standard_conforming_strings": "on"}, m.FrameReader(),
                           m.RelayScanner(), responses=Responses(masking), limits=self.limits)
        self.tokens_seen: set[str] = set()
        self.questions: list[tuple[Ask, str]] = []

    def _pump(self) -> tuple[bytes, bytes]:
        core, fw = self.core, self.fw
        for _ in range(1000):  # a question per message at most: never loops forever
            q = core.question
            if q is None:
                break
            self.questions.append((q.kind, q.sql))
            if q.kind in (Ask.QUERY, Ask.PARSE, Ask.REDECIDE):
                record = q.kind == Ask.QUERY
                verdict = fw.check_now(core.ctx, q.sql, record=record)
                if verdict is None:
                    verdict = asyncio.run(fw.check(core.ctx, q.sql, record=record))
            elif q.kind == Ask.CALL:
                verdict = asyncio.run(fw.check_function_call(core.ctx, q.oid))
            else:
                verdict = None
            core.answer(verdict)
        else:
            raise AssertionError("the core kept asking")
        up, down = take(core)
        return b"".join(up), b"".join(down)

    def client(self, data: bytes, cuts: Sequence[int] = ()) -> tuple[bytes, bytes]:
        ups, downs = [], []
        for piece in _split(data, cuts):
            self.core.client_data(piece)
            up, down = self._pump()
            ups.append(up)
            downs.append(down)
        return b"".join(ups), b"".join(downs)

    def new_tokens(self) -> list[str]:
        """Tokens of refused statements the core made since the last call, oldest first."""
        fresh = [s.token for s in self.core.substitutions if s.token not in self.tokens_seen]
        self.tokens_seen.update(fresh)
        return fresh

    def server(self, data: bytes, cuts: Sequence[int] = ()) -> bytes:
        downs = []
        for piece in _split(data, cuts):
            self.core.server_data(piece)
            up, down = self._pump()
            assert up == b"", "the core sent the server something in answer to the server"
            downs.append(down)
        return b"".join(downs)


def _split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)] or [b""]


def steps(name: str) -> list[tuple[bytes, bytes]]:
    return [(bytes.fromhex(s["client"]), bytes.fromhex(s["server"])) for s in TRANSCRIPTS[name]]


def with_token(server: bytes, tokens: list[str]) -> bytes:
    """The server's bytes as they would have been for the statement dbfw substituted (the first refusal of
    the round trip is the one the server reports: it discards the rest of the batch)."""
    if PLACEHOLDER not in server:
        return server
    assert tokens, "the transcript names a refused statement but the core refused nothing"
    token = tokens[0].encode()
    assert len(token) == len(PLACEHOLDER)
    return server.replace(PLACEHOLDER, token)


class Step:
    __slots__ = ("client", "server", "to_client", "to_server")

    def __init__(self, client: bytes, server: bytes, to_server: bytes, to_client: bytes):
        self.client, self.server, self.to_server, self.to_client = client, server, to_server, to_client


def replay(driver: Driver, name: str, *, client: dict[int, bytes] | None = None,
           client_cuts: Sequence[Sequence[int]] | None = None,
           server_cuts: Sequence[Sequence[int]] | None = None) -> list[Step]:
    """Replay a transcript step by step. ``client`` replaces a step's client bytes (the server's answer stays
    the captured one); the cuts split each step's bytes into pieces fed one by one."""
    out = []
    for i, (sent, answered) in enumerate(steps(name)):
        sent = (client or {}).get(i, sent)
        to_server, early = driver.client(sent, client_cuts[i] if client_cuts else ())
        server = with_token(answered, driver.new_tokens())
        to_client = early + driver.server(server, server_cuts[i] if server_cuts else ())
        out.append(Step(sent, server, to_server, to_client))
    return out


def frames(data: bytes) -> list[tuple[bytes, bytes]]:
    """Whole typed messages: (type byte, payload). Fails on a partial message."""
    out, pos = [], 0
    while pos < len(data):
        assert pos + 5 <= len(data), f"partial header at {pos}"
        tag, length = _HDR.unpack_from(data, pos)
        assert length >= 4 and pos + 1 + length <= len(data), f"partial message {tag!r} at {pos}"
        out.append((tag, data[pos + 5:pos + 1 + length]))
        pos += 1 + length
    return out


def tags(data: bytes) -> str:
    return "".join(t.decode() for t, _ in frames(data))


def errors(data: bytes) -> list[m.ErrorResponse]:
    return [m.ErrorResponse.decode(p) for t, p in frames(data) if t == b"E"]  # type: ignore[misc]


def rows(data: bytes) -> list[list[bytes | None]]:
    return [m.DataRow.decode(p).values for t, p in frames(data) if t == b"D"]  # type: ignore[attr-defined]


def assert_idle(core: PgCore) -> None:
    assert core.inflight == 0
    assert core.phase == Phase.RELAY
    assert core.question is None
    assert core.received == core.sent
    assert core.ended is None


def normalized(data: bytes) -> bytes:
    return TOKEN.sub(PLACEHOLDER, data)


PLAIN = sorted(n for n in TRANSCRIPTS if n != "pipelined_refused_middle")


# --- the transcripts themselves ----------------------------------------------------------------------------


def test_transcripts_cover_the_scenarios() -> None:
    assert set(TRANSCRIPTS) == {"simple_query", "multi_statement", "multi_statement_rows", "pipelined_refused_middle",
                                "copy_out", "copy_in", "cursor", "portal_suspended", "error_in_transaction",
                                "cancelled", "parameter_status"}
    for name in TRANSCRIPTS:
        for client, server in steps(name):
            frames(client)
            frames(server)
    assert tags(steps("pipelined_refused_middle")[0][1]) == "12TDDCZEZ12TDCZ"
    assert PLACEHOLDER in steps("pipelined_refused_middle")[0][1]
    assert [e.sqlstate for e in errors(steps("cancelled")[0][1])] == ["57014"]


# --- everything allowed: the core is transparent ------------------------------------------------------------


@pytest.mark.parametrize("name", PLAIN)
def test_allowed_transcript_is_relayed_byte_for_byte(name: str) -> None:
    d = Driver()
    out = replay(d, name)
    assert b"".join(s.to_server for s in out) == b"".join(s.client for s in out)
    assert b"".join(s.to_client for s in out) == b"".join(s.server for s in out)
    for s in out:  # and round trip by round trip, not only in total
        assert s.to_server == s.client
        assert s.to_client == s.server
    assert_idle(d.core)
    assert d.core.sent == sum(tags(s.client).count("Q") + tags(s.client).count("S") for s in out)
    assert not d.core.substitutions


def test_unparseable_statement_in_a_pipeline_is_refused_as_unknown() -> None:
    """The pipelined transcript's middle text is not SQL: with everything allowed dbfw still refuses it
    (defaults.unknown: deny), so it is the one place the relay is not byte-for-byte."""
    d = Driver()
    (s,) = replay(d, "pipelined_refused_middle")
    sent, got = frames(s.client), frames(s.to_server)
    assert [t for t, _ in got] == [t for t, _ in sent]
    differ = [i for i, (a, b) in enumerate(zip(sent, got, strict=True)) if a != b]
    assert differ == [5, 6]  # the middle Parse, and its Bind (which names a statement dbfw refused)
    assert m.Parse.decode(got[5][1]).query == m.Parse.decode(sent[5][1]).query.replace(  # type: ignore[attr-defined]
        PLACEHOLDER.decode(), TOKEN.search(got[5][1]).group().decode())  # type: ignore[union-attr]
    assert TOKEN.fullmatch(m.Bind.decode(got[6][1]).statement.encode())  # type: ignore[attr-defined]

    assert tags(s.to_client) == tags(s.server) == "12TDDCZEZ12TDCZ"
    back, server = frames(s.to_client), frames(s.server)
    assert [i for i, (a, b) in enumerate(zip(back, server, strict=True)) if a != b] == [7]
    (err,) = errors(s.to_client)
    assert err.sqlstate == "DBF05" and err.message.startswith("dbfw:")
    assert TOKEN.search(s.to_client) is None
    assert_idle(d.core)
    assert not d.core.substitutions


def test_messages_wait_behind_a_question_in_order() -> None:
    """While a statement is being decided nothing after it goes upstream: each batch of the pipeline is
    released whole, in order, when its Parse is answered."""
    d = Driver()
    core = d.core
    client = _pipeline_with_middle("SELECT 3")
    batches = [b"".join(_HDR.pack(t, len(p) + 4) + p for t, p in frames(client)[i:i + 5]) for i in (0, 5, 10)]
    core.client_data(client)
    released = []
    for sql in ("SELECT id, email FROM core_t ORDER BY id LIMIT 2", "SELECT 3", "SELECT count(*) FROM core_t"):
        q = core.question
        assert q is not None and q.kind == Ask.PARSE and q.sql == sql
        assert core.phase == Phase.ASKING
        up, down = take(core)
        released.append(b"".join(up))
        assert down == []
        core.answer(d.fw.check_now(core.ctx, q.sql, record=False))
    up, _ = take(core)
    released.append(b"".join(up))
    assert released == [b"", batches[0], batches[1], batches[2]]
    assert core.question is None and core.phase == Phase.RELAY
    assert core.sent == 3 and core.inflight == 3


# --- refusals --------------------------------------------------------------------------------------------


def _pipeline_with_middle(sql: str) -> bytes:
    client = steps("pipelined_refused_middle")[0][0]
    out = []
    for tag, payload in frames(client):
        if tag == b"P" and m.Parse.decode(payload).query == PLACEHOLDER.decode():  # type: ignore[attr-defined]
            out.append(m.Parse("", sql).encode())
        else:
            out.append(_HDR.pack(tag, len(payload) + 4) + payload)
    return b"".join(out)


def test_refused_middle_statement_of_a_pipeline() -> None:
    d = Driver()
    client = _pipeline_with_middle("SELECT email FROM forbidden_t")
    (s,) = replay(d, "pipelined_refused_middle", client={0: client})
    assert b"forbidden_t" not in s.to_server
    parses = [m.Parse.decode(p) for t, p in frames(s.to_server) if t == b"P"]
    assert [p.query for p in parses][0::2] == ["SELECT id, email FROM core_t ORDER BY id LIMIT 2",  # type: ignore
                                               "SELECT count(*) FROM core_t"]
    token = parses[1].query  # type: ignore[attr-defined]
    assert TOKEN.fullmatch(token.encode())
    assert token.encode() in s.server  # the server named dbfw's stand-in...

    assert tags(s.to_client) == "12TDDCZEZ12TDCZ"
    (err,) = errors(s.to_client)  # ...and the client sees dbfw's refusal in its place
    assert err.sqlstate == "DBF02"
    assert err.message.startswith("dbfw:") and "no-marker" in err.message
    assert TOKEN.search(s.to_client) is None
    back, server = frames(s.to_client), frames(s.server)
    assert back[:7] == server[:7] and back[8:] == server[8:]  # the other two results are unchanged
    assert rows(s.to_client) == [[b"1", b"ann@example.com"], [b"2", b"bob@example.com"], [b"5"]]
    assert_idle(d.core)
    assert not d.core.substitutions
    assert (Ask.PARSE, "SELECT email FROM forbidden_t") in d.questions


def test_refused_simple_query_is_substituted_and_answered_by_dbfw() -> None:
    """A refused simple Query goes upstream as a stand-in the server cannot parse; its syntax error (here the
    pipelined transcript's error message, the same the server gives for a Query) comes back as dbfw's."""
    d = Driver()
    up, down = d.client(m.Query("SELECT * FROM forbidden_t").encode())
    assert down == b""
    ((tag, payload),) = frames(up)
    token = m.Query.decode(payload).query  # type: ignore[attr-defined]
    assert tag == b"Q" and TOKEN.fullmatch(token.encode())
    server = frames(steps("pipelined_refused_middle")[0][1])
    error = next(p for t, p in server if t == b"E")
    answer = with_token(_HDR.pack(b"E", len(error) + 4) + error + m.ReadyForQuery("I").encode(), [token])
    back = d.server(answer)
    assert tags(back) == "EZ"
    (err,) = errors(back)
    assert err.sqlstate == "DBF02" and err.message.startswith("dbfw:")
    assert_idle(d.core)


# --- limits --------------------------------------------------------------------------------------------------


def _dbf06(data: bytes) -> list[m.ErrorResponse]:
    found = errors(data)
    assert all(e.sqlstate == "DBF06" and e.message.startswith("dbfw:") for e in found), found
    return found


def test_row_limit_counts_across_fetches_and_protocol_execute_of_a_cursor() -> None:
    d = Driver(Limits(max_result_rows=3))
    out = replay(d, "cursor")
    begin, declare, fetch1, fetch2, execute, close, commit = out
    for s in (begin, declare, close, commit):
        assert s.to_client == s.server
    assert fetch1.to_client == fetch1.server  # 2 rows: within the limit
    assert rows(fetch1.to_client) == [[b"1", b"ann@example.com"], [b"2", b"bob@example.com"]]

    assert tags(fetch2.server) == "TDDCZ"
    assert tags(fetch2.to_client) == "TDEZ"  # the third row, then DBF06 in place of "FETCH 2"
    assert rows(fetch2.to_client) == [[b"3", b"cy@example.com"]]
    (err,) = _dbf06(fetch2.to_client)
    assert "max_result_rows (3 rows)" in err.message

    assert tags(execute.server) == "DsZ"
    assert tags(execute.to_client) == "EZ"  # Execute("c", 1): the cursor is past its limit already
    assert len(_dbf06(execute.to_client)) == 1

    assert sum(len(rows(s.to_client)) for s in out) == 3
    assert d.core.portals.get("c") is None  # CLOSE c dropped it
    assert_idle(d.core)


def test_row_limit_across_executes_of_a_suspended_portal() -> None:
    d = Driver(Limits(max_result_rows=3))
    begin, first, second, third, commit = replay(d, "portal_suspended")
    assert begin.to_client == begin.server and commit.to_client == commit.server
    assert tags(first.server) == "12DDDDsZ"
    assert tags(first.to_client) == "12DDDEZ"  # the PortalSuspended after the cut is DBF06
    assert rows(first.to_client) == [[b"1"], [b"2"], [b"3"]]
    assert "max_result_rows (3 rows)" in _dbf06(first.to_client)[0].message
    # Later Executes of the same portal deliver nothing more, and say why.
    assert tags(second.server) == "DDDDsZ" and tags(second.to_client) == "EZ"
    assert tags(third.server) == "DDCZ" and tags(third.to_client) == "EZ"
    assert len(_dbf06(second.to_client)) == len(_dbf06(third.to_client)) == 1
    assert sum(len(rows(s.to_client)) for s in (first, second, third)) == 3
    assert_idle(d.core)


def test_row_limit_not_reached_changes_nothing() -> None:
    d = Driver(Limits(max_result_rows=5))
    (s,) = replay(d, "simple_query")
    assert s.to_client == s.server
    assert_idle(d.core)


# A simple Query gets one portal per statement, each with its own limits and mask: the second statement of
# "SELECT 1; SELECT id, email FROM core_t ORDER BY id" is cut at the limit like the first.
def test_row_limit_applies_to_every_statement_of_a_simple_query() -> None:
    d = Driver(Limits(max_result_rows=3))
    (s,) = replay(d, "multi_statement_rows")
    assert tags(s.server) == "TDCTDDDDDCZ"
    assert len(rows(s.to_client)) == 4
    assert tags(s.to_client) == "TDCTDDDEZ"


def test_row_limit_applies_to_the_first_statement_of_a_simple_query() -> None:
    d = Driver(Limits(max_result_rows=1))
    (s,) = replay(d, "multi_statement")
    assert s.to_client == s.server  # one row each: neither passes
    d = Driver(Limits(max_result_rows=4))
    (s,) = replay(d, "simple_query")
    assert tags(s.to_client) == "TDDDDEZ"
    assert len(_dbf06(s.to_client)) == 1
    assert_idle(d.core)


def test_masks_apply_to_every_statement_of_a_simple_query() -> None:
    """With masking: the second statement's email column is masked too."""
    catalog = Catalog(schema={"public": {"core_t": {"id": "INT", "email": "TEXT"}}})

    async def catalogs(ctx: StatementContext) -> Catalog:
        return catalog

    masking = Masking([MaskRule(name="email", columns=["public.core_t.email"], mask="redact")], b"k", catalogs)
    fw = Firewall(RuleSet(Defaults(action="allow", unknown="deny")), masking=masking)
    d = Driver(fw=fw, masking=masking)
    assert d.core.masking
    (s,) = replay(d, "multi_statement_rows")
    assert b"ann@example.com" in s.server
    assert tags(s.to_client) == tags(s.server)
    assert b"@example.com" not in s.to_client


def test_byte_limit_smaller_than_one_row_drops_it() -> None:
    d = Driver(Limits(max_result_bytes=10))
    (s,) = replay(d, "simple_query")
    assert tags(s.server) == "TDDDDDCZ"
    assert tags(s.to_client) == "TEZ"
    (err,) = _dbf06(s.to_client)
    assert "max_result_bytes (10 bytes)" in err.message
    assert_idle(d.core)


def test_byte_limit_counts_whole_rows() -> None:
    server = steps("simple_query")[0][1]
    first_row = next(p for t, p in frames(server) if t == b"D")
    size = len(first_row) + 5  # exactly one DataRow, header included
    d = Driver(Limits(max_result_bytes=size))
    (s,) = replay(d, "simple_query")
    assert tags(s.to_client) == "TDEZ"
    assert rows(s.to_client) == [[b"1", b"ann@example.com"]]
    assert len(_dbf06(s.to_client)) == 1
    assert_idle(d.core)


# A DataRow dropped for passing max_result_bytes uses up the allowance: a later, shorter row of the same
# result is not delivered (a result cut at the limit is a prefix of the result). Rows 1 and 2 of simple_query
# are 31 bytes, row 3 is 30.
def test_byte_limit_delivers_only_a_prefix_of_the_result() -> None:
    server = steps("simple_query")[0][1]
    sizes = [len(p) + 5 for t, p in frames(server) if t == b"D"]
    assert sizes[0] > sizes[2]  # ann@example.com, then cy@example.com: one byte shorter
    d = Driver(Limits(max_result_bytes=sizes[2]))
    (s,) = replay(d, "simple_query")
    assert len(_dbf06(s.to_client)) == 1
    assert rows(s.to_client) == []
    assert tags(s.to_client) == "TEZ"


def test_byte_limit_across_fetches_of_a_cursor() -> None:
    """The cursor's byte count carries over from one FETCH to the next."""
    server = steps("cursor")[2][1]
    size = sum(len(p) + 5 for t, p in frames(server) if t == b"D")  # exactly the first FETCH's two rows
    d = Driver(Limits(max_result_bytes=size))
    out = replay(d, "cursor")
    assert out[2].to_client == out[2].server
    assert tags(out[3].to_client) == "TEZ"
    assert "max_result_bytes" in _dbf06(out[3].to_client)[0].message
    assert sum(len(rows(s.to_client)) for s in out) == 2
    assert_idle(d.core)


def test_copy_out_is_not_cut_by_a_row_limit() -> None:
    """COPY TO STDOUT sends CopyData, not DataRows: max_result_rows counts the rows of results only (the
    current design: an export is its own class, bulk_export, which the rules put under approval)."""
    d = Driver(Limits(max_result_rows=1))
    (s,) = replay(d, "copy_out")
    assert s.to_client == s.server
    assert_idle(d.core)


# --- errors, transactions, COPY -------------------------------------------------------------------------------


def test_error_in_transaction_passes_through_and_the_session_goes_on() -> None:
    d = Driver()
    out = replay(d, "error_in_transaction")
    assert [[e.sqlstate for e in errors(s.to_client)] for s in out] == [[], ["22012"], ["25P02"], []]
    assert [bytes(p) for s in out for t, p in frames(s.to_client) if t == b"Z"] == [b"T", b"E", b"E", b"I"]
    assert not d.core.points
    assert_idle(d.core)


def test_copy_in_data_is_relayed_and_the_query_ends_at_its_ready_for_query() -> None:
    d = Driver()
    start, data = steps("copy_in")
    up, _ = d.client(start[0])
    assert up == start[0]
    assert d.core.inflight == 1 and d.core.sent == 1
    assert tags(d.server(start[1])) == "G"
    assert d.core.inflight == 1 and d.core.received == 0  # COPY is still running
    up, _ = d.client(data[0])
    assert up == data[0] and tags(up) == "ddc"
    assert tags(d.server(data[1])) == "CZ"
    assert_idle(d.core)


# --- settings the server reports ------------------------------------------------------------------------------


def test_parameter_status_changes_how_statements_are_read() -> None:
    d = Driver()
    core = d.core
    assert not core.ctx.lex & LEX_BACKSLASH_ESCAPES
    seen = []
    # Looked at after each step's server bytes: the change comes from the server's ParameterStatus, not from
    # the text of the SET (nothing has changed when only the client's bytes have gone through).
    for client, server in steps("parameter_status"):
        before = (core.ctx.lex, core.codec)
        d.client(client)
        # A SET may change how text is read: until the server has answered, nothing ambiguous is read.
        assert core.ctx.lex & LEX_UNSETTLED
        assert (core.ctx.lex & ~LEX_UNSETTLED, core.codec) == before
        assert d.server(server) == server
        assert not core.ctx.lex & LEX_UNSETTLED
        seen.append((bool(core.ctx.lex & LEX_BACKSLASH_ESCAPES), core.codec, dict(core.parameters)))
    assert [(lex, codec) for lex, codec, _ in seen] == [(True, "utf-8"), (False, "utf-8"), (False, "latin-1"),
                                                         (False, "utf-8")]
    assert [p["standard_conforming_strings"] for _, _, p in seen] == ["off", "on", "on", "on"]
    assert [p["client_encoding"] for _, _, p in seen] == ["UTF8", "UTF8", "LATIN1", "UTF8"]
    assert_idle(core)


def test_latin1_statement_text_is_read_in_the_client_encoding() -> None:
    d = Driver()
    set_latin1 = steps("parameter_status")[2]
    d.client(set_latin1[0])
    d.server(set_latin1[1])
    assert d.core.codec == "latin-1"
    d.client(b"Q" + struct.pack("!I", 4 + len("SELECT 'caf\xe9'") + 1) + "SELECT 'caf\xe9'".encode("latin-1") + b"\0")
    assert d.questions[-1] == (Ask.QUERY, "SELECT 'caf\xe9'")


# --- statement time limit -------------------------------------------------------------------------------------


def test_cancel_for_a_time_limit_is_reported_in_dbfw_words() -> None:
    d = Driver(Limits(max_statement_seconds=5))
    ((client, server),) = steps("cancelled")
    up, _ = d.client(client)
    assert up == client
    assert d.core.timer == (1, 5.0)  # the shell arms the time limit of sync point 1
    n = d.core.received + 1
    assert d.core.timed_out(n) is True
    back = d.server(server)
    assert tags(back) == tags(server) == "TEZ"
    (err,) = errors(back)
    assert err.sqlstate == "57014"
    assert err.message.startswith("dbfw: the statement ran longer")
    assert "(5 s)" in err.message
    assert d.core.timed_out(n) is False  # over: nothing more to cancel
    assert_idle(d.core)


def test_a_cancel_dbfw_did_not_send_passes_the_servers_error() -> None:
    d = Driver(Limits(max_statement_seconds=5))
    (s,) = replay(d, "cancelled")
    assert s.to_client == s.server
    (err,) = errors(s.to_client)
    assert err.sqlstate == "57014" and not err.message.startswith("dbfw:")
    assert_idle(d.core)


def test_timed_out_refuses_points_not_running() -> None:
    d = Driver(Limits(max_statement_seconds=5))
    assert d.core.timed_out(1) is False  # nothing sent
    d.client(steps("cancelled")[0][0])
    assert d.core.timed_out(0) is False
    assert d.core.timed_out(2) is False  # not sent
    assert d.core.timed_out(1) is True


# --- properties -----------------------------------------------------------------------------------------------

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHARED_FW = firewall()
_reference: dict[str, tuple[bytes, bytes]] = {}


def _whole(name: str) -> tuple[bytes, bytes]:
    if name not in _reference:
        out = replay(Driver(fw=SHARED_FW), name)
        _reference[name] = (normalized(b"".join(s.to_server for s in out)), b"".join(s.to_client for s in out))
    return _reference[name]


def _cuts(size: int) -> st.SearchStrategy[list[int]]:
    return st.one_of(
        st.lists(st.integers(1, max(size - 1, 1)), max_size=12),
        st.just(list(range(1, size))),  # one byte at a time
        st.integers(1, 7).map(lambda k: list(range(k, size, k))),  # many small chunks
    )


@PROPS
@given(name=st.sampled_from(sorted(TRANSCRIPTS)), data=st.data())
def test_server_bytes_split_anywhere_give_the_same_client_bytes(name: str, data: st.DataObject) -> None:
    server_cuts = [data.draw(_cuts(len(server)), label=f"server cuts {i}") for i, (_, server) in
                   enumerate(steps(name))]
    d = Driver(fw=SHARED_FW)
    out = replay(d, name, server_cuts=server_cuts)
    to_server, to_client = _whole(name)
    assert b"".join(s.to_client for s in out) == to_client
    assert normalized(b"".join(s.to_server for s in out)) == to_server
    assert_idle(d.core)


@PROPS
@given(name=st.sampled_from(sorted(TRANSCRIPTS)), data=st.data())
def test_client_bytes_split_anywhere_give_the_same_server_bytes(name: str, data: st.DataObject) -> None:
    client_cuts = [data.draw(_cuts(len(client)), label=f"client cuts {i}") for i, (client, _) in
                   enumerate(steps(name))]
    d = Driver(fw=SHARED_FW)
    out = replay(d, name, client_cuts=client_cuts)
    to_server, to_client = _whole(name)
    assert normalized(b"".join(s.to_server for s in out)) == to_server
    assert b"".join(s.to_client for s in out) == to_client
    assert_idle(d.core)


def results(data: bytes) -> list[tuple[int, int]]:
    """(DataRows, their bytes) of each result; a result ends at CommandComplete, PortalSuspended,
    EmptyQueryResponse or an error."""
    out, n, size = [], 0, 0
    for t, p in frames(data):
        if t == b"D":
            n, size = n + 1, size + len(p) + 5
        elif t in (b"C", b"s", b"I", b"E"):
            out.append((n, size))
            n = size = 0
    return out


@PROPS
@given(name=st.sampled_from(sorted(TRANSCRIPTS)), by_rows=st.booleans(), rows_limit=st.integers(1, 6),
       bytes_limit=st.integers(1, 200), data=st.data())
def test_result_limits_hold_however_the_server_bytes_arrive(name: str, by_rows: bool, rows_limit: int,
                                                           bytes_limit: int, data: st.DataObject) -> None:
    limits = Limits(max_result_rows=rows_limit) if by_rows else Limits(max_result_bytes=bytes_limit)
    server_cuts = [data.draw(_cuts(len(server))) for _, server in steps(name)]
    d = Driver(limits)
    out = replay(d, name, server_cuts=server_cuts)
    whole = replay(Driver(limits), name)
    assert [s.to_client for s in out] == [s.to_client for s in whole]
    index = 0 if by_rows else 1
    limit = rows_limit if by_rows else bytes_limit
    for s in out:  # no result delivers more than the limit
        found = results(s.to_client)
        if name.startswith("multi_statement"):
            found = found[:1]  # the later statements have no limit: see test_row_limit_applies_to_every_statement...
        assert all(r[index] <= limit for r in found)
    if name in ("cursor", "portal_suspended"):  # one cursor or portal across the round trips
        assert sum(r[index] for s in out for r in results(s.to_client)) <= limit
    assert_idle(d.core)


# Random client input: whole frames of every frontend type with random payloads, valid messages, junk.
_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=30)
_QUERIES = ["SELECT 1", "BEGIN", "SELECT 1; SELECT 2", "SELECT * FROM forbidden_t", "FETCH 2 FROM c",
            "DECLARE c CURSOR FOR SELECT 1", "CLOSE c", "PREPARE s AS SELECT 1"]
_valid = st.one_of(
    st.builds(lambda s: m.Query(s).encode(), st.one_of(_text, st.sampled_from(_QUERIES))),
    st.builds(lambda n, s: m.Parse(n, s).encode(), st.sampled_from(["", "s", "t"]),
              st.sampled_from(["SELECT 1", "SELECT * FROM forbidden_t", "x y z", "FETCH 1 FROM c"])),
    st.builds(lambda p, s, v: m.Bind(p, s, [], v).encode(), st.sampled_from(["", "c", "p"]),
              st.sampled_from(["", "s", "t"]), st.lists(st.one_of(st.none(), st.binary(max_size=4)), max_size=2)),
    st.builds(lambda k, n: m.Describe(k, n).encode(), st.sampled_from("SP"), st.sampled_from(["", "s", "c"])),
    st.builds(lambda k, n: m.Close(k, n).encode(), st.sampled_from("SP"), st.sampled_from(["", "s", "c"])),
    st.builds(lambda p, n: m.Execute(p, n).encode(), st.sampled_from(["", "c", "p"]), st.integers(-2, 3)),
    st.builds(lambda o: m.FunctionCall(o, [], [], 0).encode(), st.integers(0, 2**32 - 1)),
    st.sampled_from([m.Sync().encode(), m.Flush().encode(), m.CopyDone().encode(), m.CopyData(b"x\n").encode(),
                     m.CopyFail("no").encode(), m.Terminate().encode()]),
)
_raw_frame = st.builds(lambda t, p: bytes([t]) + struct.pack("!I", len(p) + 4) + p,
                       st.one_of(st.sampled_from(b"QPBDECSHXFdcf"), st.integers(0, 255)), st.binary(max_size=40))
_client_input = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(_valid, _raw_frame), max_size=12).map(b"".join),
    st.tuples(st.lists(st.one_of(_valid, _raw_frame), max_size=8).map(b"".join), st.binary(max_size=12)).map(b"".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_client_input, cuts=st.lists(st.integers(1, 300), max_size=4))
def test_random_client_bytes_give_protocol_errors_or_a_consistent_core(data: bytes, cuts: list[int]) -> None:
    d = Driver(fw=SHARED_FW)
    core = d.core
    ups = []
    try:
        for piece in _split(data, cuts):
            up, down = d.client(piece)
            ups.append(up)
            assert down == b""  # the core answers the client only from what the server sends
    except m.ProtocolError:
        return
    assert core.phase in (Phase.RELAY, Phase.ENDED)  # every question was answered
    assert core.question is None
    assert core.received == 0 and core.inflight == core.sent >= 0
    upstream = frames(b"".join(ups))  # only whole messages go upstream
    # Every sync point the core counts is one Query, Sync or FunctionCall sent, and nothing else is one.
    assert sum(t in (b"Q", b"S", b"F") for t, _ in upstream) == core.sent
    if core.phase == Phase.ENDED:
        assert upstream[-1][0] == b"X"


def test_an_execute_has_its_time_limit_before_any_sync() -> None:
    d = Driver(Limits(max_statement_seconds=5))
    d.client(m.Parse("", "SELECT pg_sleep(10)", []).encode() + m.Bind("", "", [], [], []).encode()
             + m.Execute("", 0).encode() + m.Flush().encode())
    seq, seconds = d.core.timer  # type: ignore[misc]
    assert seconds == 5.0 and d.core.timed_out(seq) is True


def test_each_execute_of_a_portal_is_timed_with_what_is_left_of_its_allowance() -> None:
    d = Driver(Limits(max_statement_seconds=5))
    d.client(m.Parse("", "SELECT 1", []).encode() + m.Bind("p", "", [], [], []).encode()
             + m.Execute("p", 1).encode() + m.Sync().encode())
    first, _ = d.core.timer  # type: ignore[misc]
    d.server(m.ParseComplete().encode() + m.BindComplete().encode() + m.DataRow([b"1"]).encode()
             + m.PortalSuspended().encode() + m.ReadyForQuery("T").encode())
    assert d.core.timer == (0, None)  # nothing runs: disarmed
    d.client(m.Execute("p", 0).encode() + m.Sync().encode())
    second, seconds = d.core.timer  # type: ignore[misc]
    assert second != first and 4.0 < seconds < 5.0 and d.core.timed_out(second) is True
