"""The PostgreSQL session core, sans-I/O: one client connection's relay state, fed bytes, giving bytes.

The asyncio session (``session.py``) only moves bytes: it feeds what the client sends to
:meth:`PgCore.client_data` and what the server sends to :meth:`PgCore.server_data`, writes out
``to_server`` and ``to_client``, and answers the core's :class:`Question` (a statement to decide, an
audit record to write before a statement runs) with :meth:`PgCore.answer`. Timers and cancel requests
are the shell's too: the core says when a statement's time limit starts (``timer``) and whether a
fired timer still concerns a running statement (:meth:`PgCore.timed_out`).

The core owns the protocol state explicitly: prepared statements (:class:`Prepared`), portals and SQL
cursors (:class:`Portal`, one object whether the client bound it, declared it in SQL, or only executes
it by name), each with its decision, masking plan, row and byte counters and approval. Enforcement is
per execution: an approval covers one execution of one statement, limits count everything a portal
or cursor delivers across Execute(max_rows) and FETCH, and a statement prepared before a reload of
the rules is decided again when it is bound.

A refused statement is replaced, on its way to the server, by a statement that fails to parse there
(or a Bind/Execute naming a statement or portal that does not exist). The server then does exactly
what PostgreSQL does with any failing statement: reports the error in the right place of the
response stream, discards the rest of an extended-protocol batch until Sync, and aborts an open
transaction. dbfw swaps the server's error for its own ErrorResponse (DBF.. SQLSTATE) on the way
back, so the client sees dbfw's refusal with PostgreSQL's own semantics, and the session stays usable.
"""

from __future__ import annotations

import secrets
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from enum import IntEnum, StrEnum

from ... import log, metrics
from ...audit.recorder import Recorder
from ...context import StatementContext
from ...masking.service import StatementMask
from ...policy.rules import Limits
from ...sql.classify import LEX_ASCII_ONLY, LEX_BACKSLASH_ESCAPES, LEX_STANDARD, LEX_UNSETTLED
from ...sql.pglex import unsafe_encoding
from ...verdict import Verdict
from ..common import FLOOD_BYTES
from . import messages as m
from .results import (
    MAX_ERROR_BYTES,
    Kind,
    Portal,
    Prepared,
    Responses,
    mask_copy_line,
    sanitized_error,
    sanitized_notification,
    truncated_error,
)


class Tag(IntEnum):
    """Message type bytes the core acts on."""

    QUERY = ord("Q")
    PARSE = ord("P")
    BIND = ord("B")
    DESCRIBE = ord("D")  # frontend; backend DataRow shares the byte
    EXECUTE = ord("E")  # frontend; backend ErrorResponse shares the byte
    CLOSE = ord("C")  # frontend; backend CommandComplete shares the byte
    SYNC = ord("S")  # frontend; backend ParameterStatus shares the byte
    FLUSH = ord("H")
    TERMINATE = ord("X")
    FUNCTION_CALL = ord("F")
    COPY_DATA = ord("d")
    COPY_DONE = ord("c")
    COPY_FAIL = ord("f")
    # backend
    READY = ord("Z")
    ERROR = ord("E")
    PARAMETER_STATUS = ord("S")
    ROW_DESCRIPTION = ord("T")
    NO_DATA = ord("n")
    COMMAND_COMPLETE = ord("C")
    EMPTY_QUERY = ord("I")
    PORTAL_SUSPENDED = ord("s")
    COPY_OUT = ord("H")
    NOTICE = ord("N")
    NOTIFICATION = ord("A")


class Phase(IntEnum):
    RELAY = 0  # moving messages
    ASKING = 1  # waiting for the answer to a question; client messages are held in order
    ENDED = 2


class EndReason(StrEnum):
    """Why a session ended (the ``reason`` label of dbfw_connections_total and of recordings)."""

    CLOSED = "closed"
    TERMINATE = "terminate"
    CLIENT_GONE = "client_gone"
    DRAINED = "drained"
    CANCELLED = "cancelled"
    PROTOCOL_ERROR = "protocol_error"
    AUTH_TIMEOUT = "auth_timeout"
    AUTH_FAILED = "auth_failed"
    STARTUP_ONLY = "startup_only"
    INTERNAL_ERROR = "internal_error"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_GONE = "upstream_gone"
    UPSTREAM_LOST = "upstream_lost"
    UPSTREAM_PROTOCOL_ERROR = "upstream_protocol_error"
    TOO_MANY_CONNECTIONS = "too_many_connections"


class Ask(IntEnum):
    QUERY = 0  # decide a simple Query's text
    PARSE = 1  # decide a Parse's text (it runs at each Execute)
    CALL = 2  # decide a fast-path FunctionCall (``oid``)
    REDECIDE = 3  # decide a prepared statement again: the rules changed since its Parse
    RECORD = 4  # write ``record`` durably before the execution it describes runs


class Question:
    __slots__ = ("kind", "oid", "record", "sql")

    def __init__(self, kind: Ask, sql: str = "", oid: int = 0, record: dict[str, object] | None = None):
        self.kind, self.sql, self.oid, self.record = kind, sql, oid, record


class SyncPoint:
    """A Query, Sync or FunctionCall sent to the server: its ReadyForQuery ends it."""

    __slots__ = ("began", "cls", "error", "records", "rows")

    def __init__(self, began: float, cls: str, records: list[dict[str, object]]):
        self.began, self.cls, self.records = began, cls, records
        self.rows: int | None = None
        self.error: str | None = None


class _Substitution:
    __slots__ = ("batch", "token", "verdict")

    def __init__(self, token: str, batch: int, verdict: Verdict):
        self.token, self.batch, self.verdict = token, batch, verdict


# PostgreSQL encoding names -> Python codecs, for reading SQL text in the client's encoding.
ENCODINGS = {"UTF8": "utf-8", "UNICODE": "utf-8", "SQL_ASCII": "latin-1", "LATIN1": "latin-1",
             "LATIN2": "iso8859-2", "LATIN9": "iso8859-15", "WIN1250": "cp1250", "WIN1251": "cp1251",
             "WIN1252": "cp1252", "EUC_JP": "euc_jp", "SJIS": "shift_jis", "EUC_KR": "euc_kr",
             "GBK": "gbk", "BIG5": "big5", "KOI8R": "koi8_r", "UHC": "cp949", "GB18030": "gb18030"}
_LEXING_PARAMETERS = frozenset({"client_encoding", "standard_conforming_strings"})
_RELAYED = frozenset((Tag.FLUSH, Tag.COPY_DATA, Tag.COPY_DONE, Tag.COPY_FAIL))
_RESULT_END = frozenset((Tag.COMMAND_COMPLETE, Tag.EMPTY_QUERY, Tag.PORTAL_SUSPENDED))
# Backend messages the core looks at; every other one is forwarded by its header alone. DataRows never
# stop the scanner: it masks (row_fn) and counts them itself.
_ALWAYS = frozenset((Tag.READY, Tag.ERROR, Tag.PARAMETER_STATUS))
_COUNTING = _ALWAYS | _RESULT_END
_MASKING = _COUNTING | frozenset((Tag.ROW_DESCRIPTION, Tag.NO_DATA, Tag.COPY_OUT, Tag.NOTICE, Tag.NOTIFICATION))
_MASKING_COPY = _MASKING | frozenset((Tag.COPY_DATA,))
_U32 = struct.Struct("!I")
_path_tokens = 0
_HANDLED = frozenset(("FETCH", "MOVE", "DECLARE", "CLOSE", "DEALLOCATE", "DISCARD", "PREPARE"))


def lex_mode(parameters: dict[str, str]) -> int:
    """How the server reads SQL text, from what it reported."""
    lex = LEX_STANDARD
    if parameters.get("standard_conforming_strings", "on").lower() != "on":
        lex |= LEX_BACKSLASH_ESCAPES
    if unsafe_encoding(parameters.get("client_encoding", "UTF8")) is not None:
        lex |= LEX_ASCII_ONLY
    return lex


def execute_portal(raw: memoryview) -> str:
    """The portal an Execute message runs (its name, NUL, then a row limit)."""
    if len(raw) == 10 and raw[5] == 0:
        return ""  # the unnamed portal: almost every Execute
    payload = bytes(raw[5:])
    end = payload.find(0)
    if end < 0 or len(payload) != end + 5:
        raise m.ProtocolError("malformed Execute message")
    return payload[:end].decode("utf-8", "surrogateescape")


def _renamed(raw: memoryview, field: int, token: str) -> bytes:
    """A Bind or Execute with its name number ``field`` (a Bind's statement is 1, an Execute's portal 0)
    replaced by ``token``. A streamed Bind's first piece works too: the rest of the message follows it."""
    data = bytes(raw)
    (length,) = _U32.unpack_from(data, 1)
    start = 5
    for _ in range(field):
        start = data.index(0, start) + 1
    end = data.index(0, start)
    name = token.encode()
    return data[:1] + _U32.pack(length - (end - start) + len(name)) + data[5:start] + name + data[end:]


class Objects:
    """The prepared statements and portals (cursors included) that exist in the session, as the server
    knows them: made by Parse, Bind and DECLARE; used by Execute and FETCH; dropped by Close, CLOSE,
    DEALLOCATE and DISCARD."""

    __slots__ = ("portals", "statements", "unknown_mask")

    def __init__(self, unknown_mask: Callable[[], StatementMask | None]):
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.unknown_mask = unknown_mask  # for a portal or cursor dbfw did not see made

    def unknown_portal(self, name: str, limits: Limits, cls: str) -> Portal:
        portal = self.portals[name] = Portal(name, self.unknown_mask(), limits, cls)
        return portal

    def query_portals(self, verdict: Verdict, limits: Limits, rewritten: bool) -> list[Portal]:
        """One portal per statement of a simple Query; a SQL cursor's statements name the cursor's."""
        classification = verdict.classification
        masks = verdict.masks
        statements = classification.statements if classification is not None else ()
        out: list[Portal] = []
        for i in range(max(len(statements), len(masks) if masks is not None else 0, 1)):
            mask = masks[i] if masks is not None and i < len(masks) else None
            if rewritten and mask is not None:
                mask = StatementMask(counted=_counted_rules(mask))
            stmt = statements[i] if i < len(statements) else None
            command = stmt.command if stmt is not None else ""
            if command in _HANDLED:
                out.append(self.handle(command, stmt.handle, mask, limits, stmt.cls,  # type: ignore[union-attr]
                                       stmt.hold))  # type: ignore[union-attr]
            else:
                out.append(Portal("", mask, limits, stmt.cls if stmt is not None else verdict.cls))
        return out

    def handle(self, command: str, name: str, mask: StatementMask | None, limits: Limits, cls: str,
               hold: bool = False) -> Portal:
        """Cursors and prepared statements made, used and dropped in SQL: the same objects the protocol
        uses (a cursor is a portal: FETCH and a protocol Execute of it share its counters and its mask).
        What DECLARE, CLOSE, DEALLOCATE and DISCARD change happens when the server reports them done: a
        statement that fails changes nothing, on the server as here."""
        if command in ("FETCH", "MOVE"):
            cursor = self.portals.get(name)
            if cursor is None:  # a cursor dbfw did not see declared (a function opened it): untraceable
                cursor = self.unknown_portal(name, limits, cls)
            return cursor
        portal = Portal("", mask if command != "DECLARE" else None, limits, cls)
        if command == "DECLARE":
            cursor = Portal(name, mask, limits, cls)
            cursor.started, cursor.hold = True, hold
            portal.effect = (command, name, cursor)
        elif command in ("CLOSE", "DEALLOCATE", "DISCARD"):
            portal.effect = (command, name, None)
        elif command == "PREPARE" and name:
            # A statement prepared in SQL: a protocol Bind of its name is refused (it runs through EXECUTE,
            # decided each time), and a Parse of the same name fails as the server would fail it. Marked at
            # once: that is the safe side should the PREPARE fail.
            self.statements[name] = Prepared(name, "", "unknown", None, limits, None, None, -1)
        return portal

    def apply(self, effect: tuple[str, str, Portal | None]) -> None:
        """A DECLARE, CLOSE, DEALLOCATE or DISCARD the server reports done."""
        command, name, cursor = effect
        portals, statements = self.portals, self.statements
        if command == "DECLARE" and cursor is not None:
            portals[name] = cursor
        elif command == "CLOSE":
            if name:
                portals.pop(name, None)
            else:
                portals.clear()  # CLOSE ALL
        elif command == "DEALLOCATE":
            if name:
                statements.pop(name, None)
            else:
                statements.clear()
        elif command == "DISCARD" and name == "ALL":
            statements.clear()
            portals.clear()

    def transaction_ended(self) -> None:
        """The server closed every portal but the cursors declared WITH HOLD (the unnamed portal is left: the
        next Bind replaces it, and the server refuses an Execute of it before that)."""
        for name in [n for n, p in self.portals.items() if not p.hold and n]:
            del self.portals[name]

    def redecided(self, prepared: Prepared, verdict: Verdict, generation: int) -> Prepared:
        mask = verdict.masks[0] if verdict.masks else None
        fresh = Prepared(prepared.name, prepared.sql, verdict.cls or prepared.cls, mask, verdict.limits,
                         verdict.record, verdict.request_id, generation)
        self.statements[prepared.name] = fresh
        return fresh


class Limiter:
    """Counts what each portal delivers, for the scanner that drops rows past a portal's limits."""

    __slots__ = ("_counted", "responses", "scanner", "session")

    def __init__(self, scanner: m.RelayScanner, responses: Responses, session: str):
        self.scanner, self.responses, self.session = scanner, responses, session
        self._counted: Portal | None = None  # the portal the scanner's allowance belongs to

    def allowance(self) -> None:
        """What the portal whose rows arrive now may still deliver, for the scanner to count down (what the
        scanner counted for the portal before is kept on that portal first)."""
        queue = self.responses.queue
        portal = queue[0].current() if queue else None
        if portal is self._counted:
            return  # the scanner counts for it already
        self.save()
        scanner = self.scanner
        limits = portal.limits if portal is not None else None
        if limits is None:
            scanner.rows_left = scanner.bytes_left = None
            self._counted = None
            return
        rows, size = limits.max_result_rows, limits.max_result_bytes
        scanner.rows_left = None if rows is None else rows - portal.rows  # type: ignore[union-attr]
        scanner.bytes_left = None if size is None else size - portal.size  # type: ignore[union-attr]
        self._counted = portal

    @property
    def counted(self) -> Portal | None:
        """The portal the scanner counts rows for."""
        return self._counted

    def save(self) -> None:
        portal, scanner = self._counted, self.scanner
        if portal is None or portal.limits is None:
            return
        limits = portal.limits
        if scanner.rows_left is not None and limits.max_result_rows is not None:
            portal.rows = limits.max_result_rows - scanner.rows_left
        if scanner.bytes_left is not None and limits.max_result_bytes is not None:
            portal.size = limits.max_result_bytes - scanner.bytes_left

    def cut(self, portal: Portal | None, defaults: Limits) -> bytes:
        """The portal passed a limit: the rows before it were sent, its end becomes dbfw's DBF06."""
        self.scanner.limit_hit = False
        self.scanner.dropped = 0
        limits = portal.limits if portal is not None and portal.limits is not None else defaults
        rows, size = limits.max_result_rows, limits.max_result_bytes
        which = (f"limits.max_result_rows ({rows} rows)" if rows is not None and portal is not None
                 and portal.rows >= rows else f"limits.max_result_bytes ({size} bytes)")
        log.warning("session.result_limit", session=self.session, limit=which)
        return m.ErrorResponse.make(
            "ERROR", "DBF06", f"dbfw: the result passed {which} and was cut off",
            "The rows before the limit were sent; a cursor or portal counts everything it delivers.",
            "add a WHERE or LIMIT, or ask for an approved export").encode()


class PgCore:
    """One session's relay state. Not thread-safe; no I/O; every method returns quickly."""

    def __init__(self, ctx: StatementContext, parameters: dict[str, str], frames: m.FrameReader,
                 scanner: m.RelayScanner, *, responses: Responses | None = None, recorder: Recorder | None = None,
                 limits: Limits | None = None, generation: int = 0):
        self.ctx = ctx
        self.parameters = parameters  # the server's reported settings, as they change
        self.codec = ENCODINGS.get(parameters.get("client_encoding", "UTF8").upper(), "utf-8")
        self.frames = frames
        self.scanner = scanner
        self.responses = responses if responses is not None else Responses(None)
        self.masking = self.responses.masking is not None
        self.recorder = recorder
        self.limits = limits if limits is not None else Limits()  # for portals dbfw knows nothing of
        self.generation = generation  # reloads of rules and identities; see rules_changed()
        self.phase = Phase.RELAY
        self.ended: EndReason | None = None
        self.question: Question | None = None
        self._asked: m.Frame | None = None
        self._parse_question = Question(Ask.PARSE)
        self._query_question = Question(Ask.QUERY)
        # The firewall's decision without waiting, when it can make one (Firewall.check_now: a statement seen
        # before, allowed, its masks known); None, or no verdict, leaves the question to the shell.
        self.decide_now: Callable[[StatementContext, str, bool], Verdict | None] | None = None
        self._parse: m.Parse | None = None  # the Parse being asked about, read once
        self.to_server: list[bytes | memoryview] = []
        self.to_client: list[bytes | memoryview] = []
        self.objects = Objects(self.responses.unknown_mask)
        self.statements = self.objects.statements
        self.portals = self.objects.portals
        self.inflight = 0  # sync points sent whose ReadyForQuery has not come back
        self.sent = 0
        self.received = 0
        self.points: deque[SyncPoint] = deque()
        self._batch: SyncPoint | None = None  # the extended-protocol batch being sent (up to its Sync)
        self.substitutions: deque[_Substitution] = deque()
        self.executions = 0
        self.upstream_fatal = False
        self.arrived = 0.0  # when the bytes being handled arrived
        # A statement time limit: (Query or Execute number, seconds) to arm; (n, None) to disarm. The shell
        # takes it.
        self.timer: tuple[int, float | None] | None = None
        self._timed = 0  # the Query or Execute whose time limit the shell's timer counts
        self._timed_portal: Portal | None = None  # the portal or cursor it spends the time of
        self._timed_since = 0.0
        self._timed_seconds: float | None = None  # the time limit armed now, if any
        self._timed_out = 0  # the Query or Execute dbfw cancelled for running too long
        self._flooded = 0  # the Query or Execute dbfw cancelled for a result far past its limit
        self.cancel_now = False  # for the shell: stop the running statement upstream (a result far past its limit)
        self._asked_at = 0.0
        self.limiter = Limiter(scanner, self.responses, ctx.session_id)
        self._copy_mask: StatementMask | None = None
        self._durations: dict[str, object] = {}
        self._executed: dict[str, object] = {}
        self._overhead: object = None  # the overhead histogram of this listener, once used

    # --- events from outside ---------------------------------------------------------------------------

    def rules_changed(self, generation: int, limits: Limits) -> None:
        """Rules or identities were reloaded: statements prepared before are decided again when bound."""
        self.generation, self.limits = generation, limits

    def timed_out(self, seq: int) -> bool:
        """The time limit of Query or Execute number ``seq`` passed: True when it still runs and must be
        cancelled."""
        if not seq or seq != self.responses.running()[0] or self.ended is not None:
            return False
        self._timed_out = seq
        log.warning("session.statement_timeout", session=self.ctx.session_id)
        return True

    # --- client -> server ----------------------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        if data:
            self.frames.feed(data)
        if self.phase == Phase.RELAY:
            self._client_frames()
            self._arm()

    def answer(self, verdict: Verdict | None) -> None:
        """The answer to ``question``: a verdict, or None for RECORD (written)."""
        self._answered(verdict)
        if self.phase == Phase.RELAY:
            self._client_frames()
        self._arm()

    def _answered(self, verdict: Verdict | None) -> None:
        frame, question = self._asked, self.question
        assert frame is not None and question is not None
        self._asked = self.question = None
        self.phase = Phase.RELAY
        kind = question.kind
        if verdict is not None and verdict.unsettles:
            # The statement may change the search_path and how text is read: approvals made before no longer
            # apply (a new path token), and until the server has answered everything, nothing ambiguous is read.
            global _path_tokens
            _path_tokens += 1
            self.ctx = replace(self.ctx, path=f"changed-{_path_tokens}", lex=self.ctx.lex | LEX_UNSETTLED)
        if kind == Ask.QUERY:
            self._query_decided(frame, question.sql, verdict)  # type: ignore[arg-type]
        elif kind == Ask.PARSE:
            self._parse_decided(frame, question.sql, verdict)  # type: ignore[arg-type]
        elif kind == Ask.CALL:
            self._call_decided(frame, verdict)  # type: ignore[arg-type]
        elif kind == Ask.REDECIDE:
            self._bind(frame, verdict)
        else:
            self._execute(frame, recorded=True)

    def _ask(self, frame: m.Frame, question: Question) -> None:
        self._asked, self.question, self.phase = frame, question, Phase.ASKING
        self._asked_at = self.arrived
        decide = self.decide_now
        if decide is not None and (question.kind == Ask.QUERY or question.kind == Ask.PARSE):
            verdict = decide(self.ctx, question.sql, question.kind == Ask.QUERY)
            if verdict is not None:  # decided without waiting: the read goes on at once
                self._answered(verdict)

    def _client_frames(self) -> None:
        for frame in self.frames.frames():
            tag = frame.tag
            if frame.streamed or tag in _RELAYED:
                if tag == Tag.BIND and frame.header_len:
                    self._bind(frame, None)  # a large Bind's first piece names its portal and statement
                else:
                    self.to_server.append(frame.raw)
            elif tag == Tag.BIND:
                self._bind(frame, None)
            elif tag == Tag.EXECUTE:
                self._execute(frame, recorded=False)
            elif tag == Tag.SYNC:
                self._sync(frame)
            elif tag == Tag.QUERY:
                question = self._query_question  # one object, as for Parse
                question.sql = _sql_text(self.codec, m.query_text(frame.payload))
                self._ask(frame, question)
            elif tag == Tag.PARSE:
                parse = m.Parse.decode(frame.payload)
                if parse.name and parse.name in self.statements:
                    # The server would refuse it, and dbfw's record of the name must stay the statement the
                    # server keeps.
                    token = self._substitute(Verdict(False, "42P05", f'prepared statement "{parse.name}" already '
                                                     "exists"), self.sent + 1)
                    self.to_server.append(m.Parse(parse.name, token, parse.param_types).encode())
                    continue
                question = self._parse_question  # one object: a Parse is asked about often
                question.sql = _sql_text(self.codec, parse.query)
                self._parse = parse
                self._ask(frame, question)
            elif tag == Tag.DESCRIBE or tag == Tag.CLOSE:
                self._describe_or_close(frame)
            elif tag == Tag.FUNCTION_CALL:
                self._ask(frame, Question(Ask.CALL, oid=m.FunctionCall.decode(frame.payload).oid))
            elif tag == Tag.TERMINATE:
                self.to_server.append(frame.raw)
                self.ended, self.phase = EndReason.TERMINATE, Phase.ENDED
            else:
                raise m.ProtocolError(f"unexpected message type {frame.kind!r}")
            if self.phase != Phase.RELAY:
                return

    def _substitute(self, verdict: Verdict, batch: int) -> str:
        token = f"dbfw_refused_{secrets.token_hex(6)}"
        self.substitutions.append(_Substitution(token, batch, verdict))
        return token

    def _point(self, began: float, cls: str, records: list[dict[str, object]]) -> None:
        """A sync point goes to the server."""
        self.inflight += 1
        self.sent += 1
        self.points.append(SyncPoint(began, cls, records))

    def _arm(self) -> None:
        """The Query or Execute the server works on now has its time limit running: from when it became the
        one running (sent with nothing before it, or the one before it ended). A cursor or portal run a piece
        at a time (FETCH, Execute with a row count) spends one allowance over all its pieces."""
        if not self.responses.timed and self._timed_seconds is None and self._timed_portal is None:
            return  # no time limit in what was sent, none armed, no cursor's time being counted
        seq, seconds, portal = self.responses.running()
        if seq == self._timed:
            return
        if seconds is None and self._timed_portal is None:  # no time limit here or before: nothing to count
            if self._timed_seconds is not None:
                self.timer = (seq, None)
            self._timed, self._timed_seconds = seq, None
            return
        now = time.perf_counter()
        if self._timed_portal is not None:
            self._timed_portal.elapsed += now - self._timed_since
        self._timed, self._timed_since = seq, now
        self._timed_portal = portal if seconds is not None else None
        if seconds is not None and portal is not None:
            seconds = max(seconds - portal.elapsed, 0.001)
        self._timed_seconds = seconds
        self.timer = (seq, seconds)

    def _query_decided(self, frame: m.Frame, sql: str, verdict: Verdict) -> None:
        self.executions += 1
        rewritten = _rewritten(verdict, self.codec)
        records = [verdict.record] if verdict.record is not None else []
        limits = verdict.limits if verdict.limits is not None else self.limits
        self._point(self._asked_at, verdict.cls or "read", records)
        if not verdict.allowed:
            self.responses.query([])
            self.to_server.append(m.Query(self._substitute(verdict, self.sent)).encode())
            return
        self.responses.query(self.objects.query_portals(verdict, limits, rewritten is not None),
                             limits.max_statement_seconds)
        self.to_server.append(m.Query(rewritten).encode() if rewritten else frame.raw)

    def _parse_decided(self, frame: m.Frame, sql: str, verdict: Verdict) -> None:
        parse = self._parse if self._parse is not None else m.Parse.decode(frame.payload)
        self._parse = None
        if self._batch is None:
            self._batch = SyncPoint(self._asked_at, verdict.cls or "read", [])
        self._batch.cls = verdict.cls or self._batch.cls
        rewritten = _rewritten(verdict, self.codec)
        if not verdict.allowed:
            token = self._substitute(verdict, self.sent + 1)
            self.to_server.append(m.Parse(parse.name, token, parse.param_types).encode())
            self.statements.pop(parse.name, None)
            return
        mask = verdict.masks[0] if verdict.masks else None
        if rewritten and mask is not None:
            mask = StatementMask(counted=_counted_rules(mask))
        prepared = self.statements[parse.name] = Prepared(parse.name, sql, verdict.cls or "read", mask, verdict.limits,
                                                          verdict.record, verdict.request_id, self.generation)
        prepared.handle = _handle_of(verdict)
        if verdict.request_id is not None:
            self.frames.streamable = frozenset(b"d")  # Binds are read whole from now on
        if rewritten:
            self.to_server.append(m.Parse(parse.name, rewritten, parse.param_types).encode())
        else:
            self.to_server.append(frame.raw)

    def _bind(self, frame: m.Frame, verdict: Verdict | None) -> None:
        """A Bind makes a portal of a prepared statement. A statement prepared before the rules changed is
        decided again first (``verdict`` is that decision)."""
        if frame.streamed:
            portal_name, statement, formats = _bind_names(frame.raw)
        else:
            portal_name, statement, formats = m.bind_targets(frame.payload)
        if portal_name and portal_name in self.portals:
            # The server refuses it, and dbfw's record of the name must stay the portal the server keeps.
            self._refuse_bind(frame, Verdict(False, "42P03", f'cursor "{portal_name}" already exists'))
            return
        prepared = self.statements.get(statement)
        if prepared is not None and verdict is None and prepared.generation not in (self.generation, -1):
            if frame.streamed:
                self._refuse_bind(frame, Verdict(False, "DBF04", "dbfw: the rules changed since this statement "
                                                 "was prepared", None, "prepare it again"))
                return
            self._ask(frame, Question(Ask.REDECIDE, prepared.sql))
            return
        if verdict is not None and prepared is not None:
            if not verdict.allowed:  # refused now; decided again at its next Bind
                self._refuse_bind(frame, verdict)
                return
            prepared = self.objects.redecided(prepared, verdict, self.generation)
        if prepared is None or prepared.generation == -1:
            self._refuse_bind(frame, Verdict(
                False, "DBF02", f'dbfw: prepared statement "{statement}" was not prepared by a Parse dbfw '
                "decided", None, "prepare it with the protocol's Parse, or run it with EXECUTE"))
            return
        self.portals[portal_name] = Portal(portal_name, prepared.mask, prepared.limits, prepared.cls, formats,
                                           prepared)
        self.to_server.append(frame.raw)

    def _refuse_bind(self, frame: m.Frame, verdict: Verdict) -> None:
        token = self._substitute(verdict, self.sent + 1)
        self.to_server.append(_renamed(frame.raw, 1, token))

    def _execute(self, frame: m.Frame, recorded: bool) -> None:
        """An Execute runs a portal: one execution of its statement (or the next rows of one)."""
        name = execute_portal(frame.raw)
        portal = self.portals.get(name)
        if portal is None:  # a portal dbfw did not see made (a cursor a function opened): untraceable
            portal = self.objects.unknown_portal(name, self.limits, "read")
        prepared = portal.prepared
        if not portal.started and prepared is not None:
            if prepared.request_id is not None and prepared.used:
                verdict = Verdict(False, "DBF04", f"dbfw: the approval of request {prepared.request_id} covered one "
                                  "execution of this prepared statement, and it has run", None,
                                  "run the statement again to request a new approval")
                token = self._substitute(verdict, self.sent + 1)
                self.to_server.append(_renamed(frame.raw, 0, token))
                return
            record = prepared.record
            if record is not None and not recorded and self.recorder is not None \
                    and not self.recorder.deferred(record):
                self._ask(frame, Question(Ask.RECORD, record=record))  # high-risk: durable before it runs
                return
            prepared.used = True
            self.executions += 1
            counter = self._executed.get(prepared.cls)
            if counter is None:
                counter = self._executed[prepared.cls] = metrics.statements_total.labels(
                    self.ctx.listener, self.ctx.identity, prepared.cls, "allow")
            counter.inc()  # type: ignore[attr-defined]
            # dbfw's own time for this execution: from when its bytes arrived (Parse decided, Bind, this
            # Execute) to now, as a Query's is its decision.
            overhead = self._overhead
            if overhead is None:
                overhead = self._overhead = metrics.overhead.labels(self.ctx.listener)
            overhead.observe(time.perf_counter() - self.arrived)  # type: ignore[attr-defined]
            if self._batch is None:
                self._batch = SyncPoint(self.arrived, prepared.cls, [])
            if record is not None and not recorded:
                self._batch.records.append(record)  # recorded with its result
        portal.started = True
        if prepared is not None and prepared.handle is not None:
            command, handle, hold = prepared.handle
            portal = self.objects.handle(command, handle, portal.mask, portal.limits or self.limits, portal.cls, hold)
        self.responses.execute(portal, (portal.limits or self.limits).max_statement_seconds)
        self.to_server.append(frame.raw)

    def _sync(self, frame: m.Frame) -> None:
        batch = self._batch
        self._batch = None
        if batch is None:
            self._point(self.arrived, "read", [])
        else:
            self._point(batch.began, batch.cls, batch.records)
        self.responses.sync()
        self.to_server.append(frame.raw)

    def _describe_or_close(self, frame: m.Frame) -> None:
        raw = frame.raw
        if len(raw) == 7 and raw[6] == 0:  # the unnamed statement or portal: almost every Describe
            statement, name = raw[5] == 83, ""
        else:
            msg = m.Describe.decode(frame.payload)
            statement, name = msg.kind == "S", msg.name
        if frame.tag == Tag.DESCRIBE:
            if self.masking:
                self.responses.describe(self.statements.get(name) if statement else self.portals.get(name))
        elif statement:
            self.statements.pop(name, None)
        else:
            self.portals.pop(name, None)
        self.to_server.append(raw)

    def _call_decided(self, frame: m.Frame, verdict: Verdict) -> None:
        self.executions += 1
        self._point(self._asked_at, "procedural", [])
        self.responses.query([Portal("", None, self.limits, "procedural")],
                             (verdict.limits or self.limits).max_statement_seconds)
        if verdict.allowed:
            self.to_server.append(frame.raw)
        else:
            self.to_server.append(m.Query(self._substitute(verdict, self.sent)).encode())

    # --- server -> client ----------------------------------------------------------------------------

    def server_data(self, data: bytes) -> None:
        scanner, responses = self.scanner, self.responses
        out = self.to_client
        masking = self.masking
        wanted = (_MASKING_COPY if responses.copying else _MASKING) if masking else _COUNTING
        self.limiter.allowance()
        pieces = scanner.feed(data, wanted, responses.row_masker() if masking else None)
        while True:
            for piece in pieces:
                if type(piece) is not tuple:  # bytes to forward, or rows already masked
                    out.append(piece)  # type: ignore[arg-type]
                    continue
                tag, raw = piece
                replaced = self._backend(tag, raw)
                if replaced is not None:
                    if replaced:
                        out.append(replaced)
                    continue
                out.append(raw)
            if not scanner.more:
                break
            if masking:
                wanted = _MASKING_COPY if responses.copying else _MASKING
            self.limiter.allowance()
            pieces = scanner.feed(b"", wanted, responses.row_masker() if masking else None)
        if scanner.dropped >= FLOOD_BYTES and not self._flooded and scanner.limit_hit:
            # Far past the limit and still coming (SELECT * FROM generate_series(1, 1e10)): stop it upstream
            # rather than read and drop it all, on the thread that relays every session. Its cancel error
            # becomes the DBF06 the cut would have been.
            self._flooded = responses.running()[0] or -1
            # Only with nothing sent after it: a cancel landing after the flood ended on its own would hit
            # the next statement (a pipelined Execute, a Query sent ahead). Then the rows are dropped to the end.
            behind = sum(1 for e in responses.queue if e.kind in (Kind.EXECUTE, Kind.QUERY))
            self.cancel_now = self._flooded > 0 and behind == 1 and self.inflight == 1 and not self.frames.buffered
        self._arm()

    def _backend(self, tag: int, raw: memoryview) -> bytes | None:
        """One message the core looks at. Returns its replacement (b"": dropped), or None to relay it."""
        responses = self.responses
        if tag in _RESULT_END:
            if tag == Tag.COMMAND_COMPLETE and self.points:
                counted = m.command_rows(raw[5:])
                if counted is not None:
                    point = self.points[0]
                    point.rows = (point.rows or 0) + counted
            self.limiter.save()
            portal = responses.statement_done(raw[5:] if tag == Tag.COMMAND_COMPLETE else None)
            if portal is not None and portal.effect is not None and tag == Tag.COMMAND_COMPLETE:
                self.objects.apply(portal.effect)
            if self.scanner.limit_hit:
                return self.limiter.cut(portal, self.limits)
            return None
        if tag == Tag.ERROR:
            self.limiter.save()
            running, seconds, portal = responses.running()
            responses.error()
            if self._flooded and self._flooded == running and self.scanner.limit_hit:
                self._flooded = 0
                if m.ErrorResponse.decode(raw[5:]).sqlstate == "57014":
                    return self.limiter.cut(self.limiter.counted or portal, self.limits)
            self.scanner.limit_hit = False
            self.scanner.dropped = 0
            replaced = self._error(raw, running, seconds)
            if replaced is None and (responses.sanitize or len(raw) > MAX_ERROR_BYTES):
                # Values quoted in an error are not rows: masking and limits would not see them.
                return sanitized_error(raw[5:], tag) if responses.sanitize else truncated_error(raw[5:])
            return replaced
        if tag == Tag.READY:
            if raw[5] == 73 and len(self.portals) > ("" in self.portals):  # idle: the transaction is over
                self.objects.transaction_ended()
            self._ready()
            return None
        if tag == Tag.PARAMETER_STATUS:
            ps = m.ParameterStatus.decode(raw[5:])
            if ps.name in _LEXING_PARAMETERS:
                self._reported(ps.name, ps.value)
            return None
        if tag == Tag.ROW_DESCRIPTION:
            responses.row_description(raw[5:])
        elif tag == Tag.NO_DATA:
            responses.no_data()
        elif tag == Tag.COPY_OUT:
            self._copy_mask = responses.copy_out()
        elif tag == Tag.NOTICE and responses.sanitize:
            return sanitized_error(raw[5:], tag)
        elif tag == Tag.NOTIFICATION and responses.sanitize:
            return sanitized_notification(raw[5:])
        elif tag == Tag.COPY_DATA and responses.copying and self._copy_mask is not None:
            assert responses.masking is not None
            return m.CopyData(mask_copy_line(bytes(raw[5:]), self._copy_mask, responses.masking)).encode()
        return None

    def _error(self, raw: memoryview, running: int, seconds: float | None) -> bytes | None:
        """Swap the server's error for a refused statement's stand-in back to dbfw's own refusal, and a
        cancel dbfw sent for a statement that ran too long to dbfw's own words."""
        err = m.ErrorResponse.decode(raw[5:])
        if err.severity == "FATAL":
            self.upstream_fatal = True
        if self.points:
            self.points[0].error = err.sqlstate
        if self._timed_out and self._timed_out == running and err.sqlstate == "57014":
            self._timed_out = 0
            limit = f" ({seconds:g} s)" if seconds is not None else ""
            return m.ErrorResponse.make(
                "ERROR", "57014", f"dbfw: the statement ran longer than limits.max_statement_seconds{limit} and was "
                "cancelled", None, "make it cheaper, or ask a dbfw admin for a policy with a longer limit").encode()
        for i, sub in enumerate(self.substitutions):
            if sub.token in err.message:
                del self.substitutions[i]
                v = sub.verdict
                return m.ErrorResponse.make("ERROR", v.sqlstate, v.message, v.detail, v.hint, v.position).encode()
        return None

    def _ready(self) -> None:
        self.responses.ready()
        self.scanner.limit_hit = False
        self.scanner.dropped = 0
        self._flooded = 0
        self.inflight -= 1
        self.received += 1
        if self.received == self.sent and self.ctx.lex & LEX_UNSETTLED and self.phase == Phase.RELAY:
            # Every statement sent has been answered: any change of how the server reads text is reported.
            self.ctx = replace(self.ctx, lex=self.ctx.lex & ~LEX_UNSETTLED)
        if self.points:
            self._finished(self.points.popleft())
        subs = self.substitutions
        while subs and subs[0].batch <= self.received:
            subs.popleft()
        if self._timed_out and self._timed_out != self.responses.running()[0]:
            self._timed_out = 0

    def _finished(self, point: SyncPoint) -> None:
        hist = self._durations.get(point.cls)
        if hist is None:
            hist = self._durations[point.cls] = metrics.statement_duration.labels(self.ctx.listener, point.cls)
        elapsed = time.perf_counter() - point.began
        hist.observe(elapsed)  # type: ignore[attr-defined]
        if self.recorder is not None:
            self.recorder.executed(self.ctx, point.records, elapsed, point.rows, point.error)

    def _reported(self, name: str, value: str) -> None:
        """The server reports every change of a setting that decides how it reads SQL text, however the
        change was made (SET, set_config, a function's SET clause, RESET): dbfw reads the next statement
        the same way."""
        self.parameters[name] = value
        if name == "client_encoding":
            self.codec = ENCODINGS.get(value.upper(), "utf-8")
        lex = lex_mode(self.parameters) | (self.ctx.lex & LEX_UNSETTLED)
        if lex != self.ctx.lex:
            self.ctx = replace(self.ctx, lex=lex)
            log.event("session.lexing", session=self.ctx.session_id, standard_conforming_strings=self.parameters.get(
                "standard_conforming_strings"), client_encoding=self.parameters.get("client_encoding"))


def _sql_text(codec: str, text: str) -> str:
    if codec == "utf-8":
        return text
    return text.encode("utf-8", "surrogateescape").decode(codec, "replace")


def _rewritten(verdict: Verdict, codec: str) -> str | None:
    """The statement as the upstream should run it, with its masks inside, when that is possible:
    one plain SELECT whose masked columns are text columns with a mask SQL can express."""
    masks = verdict.masks
    if not verdict.allowed or not masks or len(masks) != 1 or masks[0] is None or codec != "utf-8":
        return None
    return masks[0].rewritten


def _handle_of(verdict: Verdict) -> tuple[str, str, bool] | None:
    classification = verdict.classification
    if classification is None or len(classification.statements) != 1:
        return None
    stmt = classification.statements[0]
    return (stmt.command, stmt.handle, stmt.hold) if stmt.command in _HANDLED else None


def _counted_rules(mask: StatementMask) -> tuple[str, ...]:
    """A statement the upstream masks itself: which rules to count once per row it returns."""
    plan = mask.plan
    return tuple(c.rule for c in plan.columns if c is not None) if plan is not None else ()


def _bind_names(raw: memoryview) -> tuple[str, str, list[int]]:
    """The portal and statement a streamed Bind's first piece names (they come first)."""
    data = bytes(raw[5:5 + 2 * 65536])
    end = data.find(0)
    stmt_end = data.find(0, end + 1) if end >= 0 else -1
    if stmt_end < 0:
        raise m.ProtocolError("a Bind's portal and statement names are too long")
    return (data[:end].decode("utf-8", "surrogateescape"), data[end + 1:stmt_end].decode("utf-8", "surrogateescape"),
            [])


def take(core: PgCore) -> tuple[list[bytes | memoryview], list[bytes | memoryview]]:
    """What the core has to write to the server and to the client now (its lists start again empty)."""
    up, down = core.to_server, core.to_client
    core.to_server, core.to_client = [], []
    return up, down
