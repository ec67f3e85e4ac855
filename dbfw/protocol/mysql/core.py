"""The MySQL session core: one client connection's relay state, sans I/O.

Fed the client's bytes (``client_data``) and the server's (``server_data``), it fills ``to_server`` and
``to_client`` and asks ``question`` (decide a statement, record one before it runs) that the shell
answers with ``answer``. The protocol is one command, then its whole response: the core reads the next
command only when the response to the one before is complete, so what a command runs is always decided
against the state the server left (the database, sql_mode, the prepared statements).

Every statement of a COM_QUERY and every COM_STMT_PREPARE is decided; a COM_STMT_EXECUTE runs a statement
decided at its prepare (an approved one once); every other command is relayed only when it is on the
list below, and refused otherwise. Results are counted against the verdict's limits (rows and bytes, per
statement execution) and masked column by column.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import replace
from enum import IntEnum, StrEnum

from ... import log, metrics
from ...audit.recorder import Recorder
from ...context import StatementContext
from ...masking.plan import ColumnMask
from ...masking.service import StatementMask
from ...policy.rules import Limits
from ...sql.classify import LEX_MYSQL_ANSI_QUOTES, LEX_MYSQL_LATIN1, LEX_MYSQL_NO_BACKSLASH_ESCAPES
from ...verdict import Verdict
from ..common import FLOOD_BYTES
from . import packets as p
from .rows import mask_binary_row, mask_text_row

ERRNO_REFUSED = 1644  # ER_SIGNAL_EXCEPTION: what a SIGNAL in a procedure raises; dbfw's SQLSTATE says which
ERRNO_UNKNOWN_STMT = 1243  # ER_UNKNOWN_STMT_HANDLER
ERRNO_UNKNOWN_COMMAND = 1047  # ER_UNKNOWN_COM_ERROR


class Phase(IntEnum):
    IDLE = 0  # waiting for the client's next command
    ASKING = 1  # a question is out
    WAITING = 2  # a command went to the server; its response is being read
    ENDED = 3


class Ask(IntEnum):
    QUERY = 0  # decide a COM_QUERY's text (or USE for COM_INIT_DB)
    PREPARE = 1  # decide a COM_STMT_PREPARE's text
    RECORD = 2  # write an execution's audit record before it runs (high risk)
    KILL = 3  # KILL QUERY n: stop the statement of this identity's session n (the CLI's Ctrl-C)
    CHANGE_USER = 4  # COM_CHANGE_USER: the shell logs the new user in and replaces this core


class EndReason(StrEnum):
    CLOSED = "closed"
    QUIT = "terminate"
    CLIENT_GONE = "client_gone"
    UPSTREAM_GONE = "upstream_gone"
    UPSTREAM_LOST = "upstream_lost"
    PROTOCOL_ERROR = "protocol_error"
    UPSTREAM_PROTOCOL_ERROR = "upstream_protocol_error"
    AUTH_FAILED = "auth_failed"
    AUTH_TIMEOUT = "auth_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    DRAINED = "drained"
    INTERNAL_ERROR = "internal_error"
    CANCELLED = "cancelled"
    CHANGE_USER = "change_user"  # the session went on as another identity (COM_CHANGE_USER)


class Expect(IntEnum):
    RESULT = 0  # result sets with text rows (COM_QUERY), possibly several
    BINARY = 1  # result sets with binary rows (COM_STMT_EXECUTE)
    PREPARE = 2  # COM_STMT_PREPARE: OK with counts, then parameter and column definitions
    ONE = 3  # a single packet: OK, ERR, EOF, or a string
    FIELDS = 4  # COM_FIELD_LIST: column definitions until EOF
    FETCH = 5  # COM_STMT_FETCH: binary rows of a statement's open cursor


class Read(IntEnum):
    FIRST = 0  # the first packet of a result: OK, ERR, or a column count
    COLUMNS = 1
    COLUMNS_EOF = 2
    ROWS = 3
    PARAMS = 4
    PARAMS_EOF = 5
    DONE = 6
    INFILE = 7  # LOCAL INFILE: the client sends the file the statement names, until an empty packet


# Commands relayed after their own checks; any other is refused.
_PASSED = frozenset((p.Command.PING, p.Command.STMT_CLOSE, p.Command.STMT_RESET, p.Command.STMT_SEND_LONG_DATA,
                     p.Command.SET_OPTION, p.Command.RESET_CONNECTION, p.Command.FIELD_LIST))
_NO_REPLY = frozenset((p.Command.STMT_CLOSE, p.Command.STMT_SEND_LONG_DATA))
_MAY_SET_SQL_MODE = frozenset(("admin", "procedural", "unknown", "privilege", "ddl"))
CANCEL_ROW_WEIGHT = 1 << 10  # a dropped row weighs its bytes and this more (see common.FLOOD_BYTES)
# After such a statement (SET sql_mode, SET NAMES latin1 approved, a procedure's body) the server may read text
# with ANSI_QUOTES or as latin1, which it does not report: from then on both are assumed.
_ASSUMED_AFTER_RISKY = LEX_MYSQL_ANSI_QUOTES | LEX_MYSQL_LATIN1


class Question:
    __slots__ = ("kind", "payload", "record", "sql", "target")

    def __init__(self, kind: Ask, sql: str = "", record: dict[str, object] | None = None, target: int = 0,
                 payload: bytes = b""):
        self.kind, self.sql, self.record, self.target, self.payload = kind, sql, record, target, payload


_KILL_QUERY = re.compile(r"\s*KILL\s+QUERY\s+(\d{1,10})\s*;?\s*", re.IGNORECASE | re.ASCII)


class Prepared:
    """A statement the server prepared for this session, by the id the server gave it."""

    __slots__ = ("cls", "columns", "cursor", "limits", "mask", "params", "record", "request_id", "sql", "stmt_id",
                 "used", "verdict")

    def __init__(self, sql: str, verdict: Verdict):
        self.sql, self.verdict = sql, verdict
        self.stmt_id = 0
        self.cls = verdict.cls or "read"
        self.limits = verdict.limits
        self.record = verdict.record
        self.request_id = verdict.request_id
        self.used = False  # an approved statement: its one execution has started
        self.mask = verdict.masks[0] if verdict.masks else None
        # An open cursor (COM_STMT_EXECUTE with a cursor flag): the result it fetches from, whose columns,
        # masks and counters every COM_STMT_FETCH continues.
        self.cursor: Response | None = None
        self.params = 0
        self.columns: list[p.Column] = []


class Response:
    """What the server owes for one command, read packet by packet."""

    __slots__ = ("binary", "cls", "columns", "cut", "dropped", "error", "expect", "files", "left", "limits", "masks",
                 "number",
                 "prepared", "read", "record", "rows", "seq", "size", "started", "statement", "statements", "total",
                 "types")

    def __init__(self, expect: Expect, cls: str, limits: Limits | None, record: dict[str, object] | None,
                 prepared: Prepared | None = None):
        self.expect, self.cls, self.limits, self.record, self.prepared = expect, cls, limits, record, prepared
        self.binary = expect == Expect.BINARY or expect == Expect.FETCH
        self.read = Read.FIRST if expect != Expect.FIELDS else Read.COLUMNS
        self.left = 0  # column or parameter definitions still to come
        self.columns: list[p.Column] = []
        self.masks: list[ColumnMask | None] | None = None  # the result being read now: per column, or None
        self.rows = 0
        self.size = 0
        self.total = 0  # rows of the results before this one
        self.number = 0  # which command of the session this is (for its time limit)
        self.statements: list[StatementMask | None] | None = None  # the verdict's masks, per statement
        self.statement = 0  # the statement whose result arrives now
        self.cut: str | None = None  # a limit passed: what the rest of the response is replaced by
        self.dropped = 0  # bytes of rows dropped past the limit (and CANCEL_ROW_WEIGHT a row)
        self.seq = 0  # the last sequence id sent to the client
        self.error: str | None = None
        self.started = time.perf_counter()
        self.types: list[int] = []
        # Per statement: the client file a LOAD DATA LOCAL INFILE names (the only one the server may ask for).
        self.files: list[str] | None = None

    def relay_file(self, client: p.PacketReader, to_server: list[bytes]) -> None:
        """LOCAL INFILE: the client's packets go to the server as they are, up to the empty one that ends
        the file; then the server answers for the statement."""
        for packet in client.packets():
            to_server.append(p.frame(packet.payload, packet.seq)[0])
            if not packet.payload:
                self.read = Read.FIRST
                return

    def open_cursor(self) -> None:
        """The execution opened a cursor: no rows now; COM_STMT_FETCH reads them."""
        self.read = Read.DONE
        if self.prepared is not None:
            self.prepared.cursor = self

    def after_params(self) -> None:
        """A prepare's parameter definitions are read: its column definitions follow, if any."""
        if self.left:
            self.read = Read.COLUMNS
            self.columns = []
        else:
            self.read = Read.DONE


MaskLookup = Callable[[str, list[p.Column]], "list[ColumnMask | None] | None"]


class MyCore:
    """One MySQL session's relay state. No I/O; every method returns quickly."""

    def __init__(self, ctx: StatementContext, capabilities: int, *, limits: Limits | None = None,
                 recorder: Recorder | None = None, masks: MaskLookup | None = None,
                 max_packet: int = p.DEFAULT_MAX_PACKET, status: int = 0):
        self.ctx = ctx
        self.capabilities = capabilities
        self.deprecate_eof = bool(capabilities & p.Capability.DEPRECATE_EOF)
        self.limits = limits if limits is not None else Limits()
        self.recorder = recorder
        self.mask_lookup = masks  # which columns of a result to mask (None: masking does not apply here)
        self.sanitize = masks is not None  # errors lose the values they quote
        self.client = p.PacketReader(max_packet)
        self.server = p.PacketReader(1 << 31)
        self.phase = Phase.IDLE
        self.ended: EndReason | None = None
        self.question: Question | None = None
        self.to_server: list[bytes] = []
        self.to_client: list[bytes] = []
        self.statements: dict[int, Prepared] = {}
        self.response: Response | None = None
        self._command: p.Packet | None = None  # the command being decided
        self._reply_seq = 1  # the sequence id dbfw's own answer to it takes
        self._preparing: Prepared | None = None
        self._query_question = Question(Ask.QUERY)
        self._prepare_question = Question(Ask.PREPARE)
        self.decide_now: Callable[[StatementContext, str, bool], Verdict | None] | None = None
        self.executions = 0
        self.status = status
        self.database_pending: str | None = None  # COM_INIT_DB: the database it asks for
        self._use_at: tuple[int, str] | None = None  # the statement of the command that is a USE, and its database
        self.generation = 0
        self._durations: dict[str, object] = {}
        self.commands = 0
        # A statement time limit for the shell to arm: (command number, seconds), or (n, None) to disarm.
        self.timer: tuple[int, float | None] | None = None
        self._timed_out = 0  # the command dbfw cancelled for running too long
        self.cancel_now = False  # for the shell: stop the running statement upstream (a result far past its limit)
        self.ctx = read_as_reported(self.ctx, status)

    # --- events from outside ---------------------------------------------------------------------------

    def rules_changed(self, generation: int, limits: Limits) -> None:
        self.generation, self.limits = generation, limits

    def client_data(self, data: bytes) -> None:
        if data:
            self.client.feed(data)
        r = self.response
        if r is not None and r.read == Read.INFILE:
            r.relay_file(self.client, self.to_server)
        self._commands()

    def answer(self, verdict: Verdict | None) -> None:
        question, command = self.question, self._command
        assert question is not None and command is not None
        self.question, self.phase = None, Phase.IDLE
        if question.kind == Ask.KILL:
            if verdict is not None and verdict.allowed:  # the statement was stopped: as the server says it
                self.to_client.append(p.frame(p.Ok(status=self.status).encode(), self._reply_seq)[0])
            else:
                self._ask(Ask.QUERY, question.sql)
        elif question.kind == Ask.QUERY:
            self._query_decided(command, question.sql, verdict)  # type: ignore[arg-type]
        elif question.kind == Ask.PREPARE:
            self._prepare_decided(command, question.sql, verdict)  # type: ignore[arg-type]
        else:
            self._execute(command, recorded=True)
        self._commands()

    # --- client -> server ------------------------------------------------------------------------------

    def _commands(self) -> None:
        while self.phase == Phase.IDLE:
            packet = next(self.client.packets(), None)
            if packet is None:
                return
            self._command = packet
            if packet.seq != 0:
                raise p.PacketError(f"a command with sequence id {packet.seq} (commands start at 0)")
            if not packet.payload:
                raise p.PacketError("an empty command packet")
            self._dispatch(packet)

    def _dispatch(self, packet: p.Packet) -> None:
        cmd = packet.payload[0]
        self._reply_seq = (packet.seq + packet.parts) & 0xFF  # a command of several packets: after the last
        if cmd == p.Command.QUERY:
            sql = p.text(packet.payload[1:])
            kill = _KILL_QUERY.fullmatch(sql)
            if kill is not None:  # the shell finds the session; if none of this identity's, it is a statement
                self.question, self.phase = Question(Ask.KILL, sql, target=int(kill.group(1))), Phase.ASKING
                return
            self._ask(Ask.QUERY, sql)
        elif cmd == p.Command.STMT_PREPARE:
            self._ask(Ask.PREPARE, p.text(packet.payload[1:]))
        elif cmd == p.Command.STMT_EXECUTE:
            self._execute(packet, recorded=False)
        elif cmd == p.Command.STMT_FETCH:
            self._fetch(packet)
        elif cmd == p.Command.INIT_DB:
            name = p.text(packet.payload[1:])
            self.database_pending = name
            self._ask(Ask.QUERY, "USE `" + name.replace("`", "``") + "`")
        elif cmd == p.Command.CHANGE_USER:
            self.question, self.phase = Question(Ask.CHANGE_USER, payload=packet.payload), Phase.ASKING
        elif cmd == p.Command.QUIT:
            self.to_server.append(p.frame(packet.payload, 0)[0])
            self.ended, self.phase = EndReason.QUIT, Phase.ENDED
        elif cmd in _PASSED:
            self._passed(packet, p.Command(cmd))
        else:
            name = p.Command(cmd).name if cmd in p.Command._value2member_map_ else f"0x{cmd:02x}"
            self._refuse(Verdict(False, "DBF02", f"dbfw: the command COM_{name} is not allowed through dbfw",
                                 hint="use SQL statements (COM_QUERY) or prepared statements"), ERRNO_UNKNOWN_COMMAND)

    def _ask(self, kind: Ask, sql: str) -> None:
        question = self._query_question if kind == Ask.QUERY else self._prepare_question
        question.sql = sql
        self.question, self.phase = question, Phase.ASKING
        decide = self.decide_now
        if decide is not None:
            verdict = decide(self.ctx, sql, kind == Ask.QUERY)
            if verdict is not None:
                self.question, self.phase = None, Phase.IDLE
                if kind == Ask.QUERY:
                    self._query_decided(self._command, sql, verdict)  # type: ignore[arg-type]
                else:
                    self._prepare_decided(self._command, sql, verdict)  # type: ignore[arg-type]

    def _send_command(self, packet: p.Packet, response: Response | None) -> None:
        self.to_server.append(p.frame(packet.payload, 0)[0])
        if response is not None:
            self.commands += 1
            response.number = self.commands
            self.response = response
            self.phase = Phase.WAITING
            seconds = response.limits.max_statement_seconds if response.limits is not None else None
            if seconds is not None:
                self.timer = (response.number, seconds)

    def timed_out(self, number: int) -> bool:
        """The time limit of command ``number`` passed: True when it still runs and must be cancelled."""
        r = self.response
        if r is None or r.number != number or self.ended is not None:
            return False
        self._timed_out = number
        log.warning("session.statement_timeout", session=self.ctx.session_id)
        return True

    def _query_decided(self, packet: p.Packet, sql: str, verdict: Verdict) -> None:
        if not verdict.allowed:
            self.database_pending = None
            self._refuse(verdict)
            return
        if verdict.unsettles:
            self.ctx = unsettled(self.ctx)
        self.executions += 1
        self._use_at = None
        statements = verdict.classification.statements if verdict.classification is not None else ()
        files: list[str] | None = None
        for i, stmt in enumerate(statements):
            if stmt.command == "USE":  # (only ever the last of a message: see SQLClassifier)
                self._use_at = (i, stmt.handle)
            elif stmt.command == "LOAD DATA" and stmt.handle:
                files = files or [""] * len(statements)
                files[i] = stmt.handle
        if packet.payload[0] == p.Command.INIT_DB and self.database_pending is not None:
            self._use_at = (0, self.database_pending)
        if verdict.cls in _MAY_SET_SQL_MODE:
            # sql_mode may change (SET sql_mode, a procedure's body) and the server does not report ANSI_QUOTES:
            # from here on it is assumed.
            self.ctx = replace(self.ctx, lex=self.ctx.lex | _ASSUMED_AFTER_RISKY)
        limits = verdict.limits if verdict.limits is not None else self.limits
        record = verdict.record
        response = Response(Expect.RESULT if packet.payload[0] == p.Command.QUERY else Expect.ONE,
                            verdict.cls or "read", limits, record)
        response.statements, response.files = verdict.masks, files
        self._send_command(packet, response)

    def _prepare_decided(self, packet: p.Packet, sql: str, verdict: Verdict) -> None:
        if not verdict.allowed:
            self._refuse(verdict)
            return
        if verdict.unsettles:
            self.ctx = unsettled(self.ctx)
        prepared = Prepared(sql, verdict)
        self._preparing = prepared
        self._send_command(packet, Response(Expect.PREPARE, prepared.cls, None, None, prepared))

    def _execute(self, packet: p.Packet, recorded: bool) -> None:
        payload = packet.payload
        if len(payload) < 10:
            raise p.PacketError("a COM_STMT_EXECUTE shorter than its fixed fields")
        stmt_id = int.from_bytes(payload[1:5], "little")
        prepared = self.statements.get(stmt_id)
        if prepared is None:
            self._refuse(Verdict(False, "HY000", f"dbfw: unknown prepared statement handler ({stmt_id}) given to "
                                 "EXECUTE"), ERRNO_UNKNOWN_STMT)
            return
        if prepared.request_id is not None and prepared.used:
            self._refuse(Verdict.refuse("DBF04", f"approval {prepared.request_id} was used by this prepared "
                                        "statement's first execution; an approval covers one execution",
                                        hint="prepare the statement again and ask for a new approval"))
            return
        if prepared.record is not None and not recorded and self.recorder is not None \
                and not self.recorder.deferred(prepared.record):
            self.question, self.phase = Question(Ask.RECORD, prepared.sql, prepared.record), Phase.ASKING
            return  # high risk: recorded durably before it runs, then this comes back with recorded=True
        prepared.used = True
        self.executions += 1
        if prepared.verdict.unsettles:  # SET @a = ?: each execution may change what a later statement runs
            self.ctx = unsettled(self.ctx)
        if prepared.cls in _MAY_SET_SQL_MODE:
            self.ctx = replace(self.ctx, lex=self.ctx.lex | _ASSUMED_AFTER_RISKY)
        limits = prepared.limits if prepared.limits is not None else self.limits
        prepared.cursor = None  # a new execution closes the cursor of the one before
        response = Response(Expect.BINARY, prepared.cls, limits, prepared.record, prepared)
        response.statements = [prepared.mask]
        self._send_command(packet, response)

    def _fetch(self, packet: p.Packet) -> None:
        """COM_STMT_FETCH: the next rows of a statement's open cursor, counted and masked as one result with
        what the cursor delivered before."""
        payload = packet.payload
        if len(payload) < 9:
            raise p.PacketError("a COM_STMT_FETCH shorter than its fields")
        prepared = self.statements.get(int.from_bytes(payload[1:5], "little"))
        cursor = prepared.cursor if prepared is not None else None
        if cursor is None:
            self._refuse(Verdict(False, "HY000", "dbfw: the statement has no open cursor"), ERRNO_UNKNOWN_STMT)
            return
        response = Response(Expect.FETCH, cursor.cls, cursor.limits, None, prepared)
        response.read, response.columns, response.masks, response.types = (
            Read.ROWS, cursor.columns, cursor.masks, cursor.types)
        response.rows, response.size = cursor.rows, cursor.size
        self._send_command(packet, response)

    def _passed(self, packet: p.Packet, cmd: p.Command) -> None:
        payload = packet.payload
        if cmd in (p.Command.STMT_CLOSE, p.Command.STMT_RESET, p.Command.STMT_SEND_LONG_DATA):
            if len(payload) < 5:
                raise p.PacketError(f"a COM_{cmd.name} shorter than its statement id")
            stmt_id = int.from_bytes(payload[1:5], "little")
            if stmt_id not in self.statements:
                if cmd in _NO_REPLY:
                    return  # the server would ignore it too
                self._refuse(Verdict(False, "HY000", f"dbfw: unknown prepared statement handler ({stmt_id}) given "
                                     f"to COM_{cmd.name}"), ERRNO_UNKNOWN_STMT)
                return
            if cmd == p.Command.STMT_CLOSE:
                del self.statements[stmt_id]
            elif cmd == p.Command.STMT_RESET:
                self.statements[stmt_id].cursor = None
        elif cmd == p.Command.RESET_CONNECTION:
            self.statements.clear()
        elif cmd == p.Command.FIELD_LIST:
            self._send_command(packet, Response(Expect.FIELDS, "read", self.limits, None))
            return
        if cmd in _NO_REPLY:
            self.to_server.append(p.frame(payload, 0)[0])
            return
        self._send_command(packet, Response(Expect.ONE, "session", None, None))

    def _refuse(self, verdict: Verdict, errno: int | None = None) -> None:
        """The command does not reach the server; the client gets dbfw's ERR and may go on."""
        self.to_client.append(p.frame(refusal(verdict, errno).encode(), self._reply_seq)[0])

    # --- server -> client ------------------------------------------------------------------------------

    def server_data(self, data: bytes) -> None:
        if data:
            self.server.feed(data)
        for packet in self.server.packets():
            response = self.response
            if response is None:
                raise p.PacketError("the server sent a packet nobody asked for")
            self._response_packet(response, packet)
            if response.read == Read.DONE:
                self._done(response)
        if self.phase == Phase.IDLE:
            self._commands()

    def _forward(self, response: Response, packet: p.Packet, payload: bytes | None = None) -> None:
        if response.cut is not None:
            return  # past a limit: the rest of the response is dropped
        data, response.seq = p.frame(packet.payload if payload is None else payload, packet.seq)
        self.to_client.append(data)

    def _response_packet(self, r: Response, packet: p.Packet) -> None:
        payload = packet.payload
        first = payload[0] if payload else -1
        state = r.read
        if first == p.ERR and state in (Read.FIRST, Read.ROWS, Read.COLUMNS, Read.PARAMS):
            err = p.Err.decode(payload)
            r.error = err.sqlstate
            r.read = Read.DONE
            if self._timed_out == r.number and err.errno in (1317, 1927, 3024, 1969):  # interrupted, killed
                seconds = r.limits.max_statement_seconds if r.limits is not None else None
                r.error = "57014"
                self._forward(r, packet, p.Err(ERRNO_REFUSED, "57014", "dbfw: the statement ran longer than "
                                               f"limits.max_statement_seconds ({seconds:g} s) and was cancelled. "
                                               "Hint: make it cheaper, or ask a dbfw admin for a policy with a "
                                               "longer limit").encode())
                return
            if self.sanitize and ("'" in err.message or '"' in err.message):
                # An error quoting values (Duplicate entry 'x' for key..., an XPATH error over a subquery) is not
                # rows: masking would miss them. Quotes inside the values make any partial scrub unsound, so the
                # whole text is withheld; the errno and SQLSTATE stay.
                self._forward(r, packet, p.Err(err.errno, err.sqlstate, f"dbfw: the server's message for error "
                                               f"{err.errno} quotes values, and masking applies to this session: "
                                               "it is withheld").encode())
                return
            self._forward(r, packet)
            return
        if r.expect == Expect.ONE:
            if first in (p.OK, p.EOF) and len(payload) >= 7:
                self._status(p.Ok.decode(payload).status)
                if first == p.OK:
                    self._used(0)  # COM_INIT_DB
            r.read = Read.DONE
            self._forward(r, packet)
            return
        if state == Read.FIRST:
            self._first(r, packet)
        elif state == Read.COLUMNS or state == Read.PARAMS:
            self._definition(r, packet)
        elif state == Read.COLUMNS_EOF or state == Read.PARAMS_EOF:
            if first != p.EOF:
                raise p.PacketError("expected EOF after the column definitions")
            status = p.eof_status(payload)
            self._status(status)
            if state == Read.PARAMS_EOF:
                r.after_params()
            elif r.expect == Expect.PREPARE:
                r.read = Read.DONE
            elif status & p.Status.CURSOR_EXISTS:
                r.open_cursor()
            else:
                r.read = Read.ROWS
            self._forward(r, packet)
        elif state == Read.ROWS:
            self._row(r, packet)

    def _first(self, r: Response, packet: p.Packet) -> None:
        payload = packet.payload
        first = payload[0]
        if r.expect == Expect.PREPARE:
            if first != p.OK or len(payload) < 12:
                raise p.PacketError("a COM_STMT_PREPARE answered by neither OK nor ERR")
            prepared = r.prepared
            assert prepared is not None
            prepared.stmt_id = int.from_bytes(payload[1:5], "little")
            ncols, nparams = int.from_bytes(payload[5:7], "little"), int.from_bytes(payload[7:9], "little")
            prepared.params = nparams
            r.left = ncols  # kept until the parameters are read
            self.statements[prepared.stmt_id] = prepared
            if nparams:
                r.read, r.rows = Read.PARAMS, nparams
            else:
                r.after_params()
            self._forward(r, packet)
            return
        if first == p.OK:
            status = p.Ok.decode(payload).status
            self._status(status)
            self._used(r.statement)
            r.statement += 1
            r.read = Read.FIRST if status & p.Status.MORE_RESULTS_EXISTS else Read.DONE
            self._forward(r, packet)
            return
        if first == p.LOCAL_INFILE:
            files, n = r.files, r.statement
            if files is None or n >= len(files) or not files[n] or payload[1:] != files[n].encode():
                raise p.PacketError("the database asked the client for a file the statement does not name; the "
                                    "session is closed")
            if r.cut is not None:  # past a limit: the client hears nothing more; the file is empty
                self.to_server.append(p.frame(b"", packet.seq + 1)[0])
                return
            r.read = Read.INFILE
            self._forward(r, packet)
            return
        r.left = p.column_count(payload)
        if r.left == 0:
            raise p.PacketError("a result with no columns")
        r.columns = []
        r.total += r.rows
        r.rows = r.size = 0  # limits count each statement's result
        r.read = Read.COLUMNS
        self._forward(r, packet)

    def _definition(self, r: Response, packet: p.Packet) -> None:
        if r.read == Read.PARAMS:
            r.rows -= 1
            if r.rows == 0:
                if self.deprecate_eof:
                    r.after_params()
                else:
                    r.read = Read.PARAMS_EOF
            self._forward(r, packet)
            return
        if r.expect == Expect.FIELDS and packet.payload[:1] == b"\xfe" and len(packet.payload) < 9:
            r.read = Read.DONE
            self._forward(r, packet)
            return
        column = p.Column.decode(packet.payload)
        r.columns.append(column)
        if r.expect != Expect.FIELDS:
            r.left -= 1
            if r.left == 0:
                self._columns_known(r)
        self._forward(r, packet)

    def _columns_known(self, r: Response) -> None:
        if r.expect == Expect.PREPARE:
            assert r.prepared is not None
            r.prepared.columns = list(r.columns)
            r.read = Read.DONE if self.deprecate_eof else Read.COLUMNS_EOF
            return
        r.read = Read.ROWS if self.deprecate_eof else Read.COLUMNS_EOF
        r.types = [c.type for c in r.columns]
        lookup = self.mask_lookup
        if lookup is None:
            return
        # Lineage first (the verdict's plan for this statement), then what the column definitions name.
        named = lookup(self.ctx.database, r.columns) or [None] * len(r.columns)
        statements = r.statements
        mask = statements[r.statement] if statements is not None and r.statement < len(statements) else None
        plan = mask.plan if mask is not None else None
        masks = [(plan.every or plan.for_column(i) if plan is not None else None) or named[i]
                 for i in range(len(r.columns))]
        r.masks = masks if any(m is not None for m in masks) else None

    def _row(self, r: Response, packet: p.Packet) -> None:
        payload = packet.payload
        if payload and payload[0] == p.EOF and p.is_eof(payload, self.deprecate_eof):
            status = p.eof_status(payload)
            self._status(status)
            r.statement += 1
            r.read = Read.FIRST if status & p.Status.MORE_RESULTS_EXISTS else Read.DONE
            if r.expect == Expect.BINARY and status & p.Status.CURSOR_EXISTS and not r.rows:
                r.open_cursor()  # (with CLIENT_DEPRECATE_EOF the columns end in this OK)
            elif r.expect == Expect.FETCH and r.prepared is not None and r.prepared.cursor is not None:
                cursor = r.prepared.cursor
                cursor.rows, cursor.size = r.rows, r.size  # limits count across the cursor's fetches
                if status & p.Status.LAST_ROW_SENT or not status & p.Status.CURSOR_EXISTS:
                    r.prepared.cursor = None
            else:
                r.masks = None
            self._forward(r, packet)
            return
        if r.cut is not None:
            r.dropped += len(payload) + CANCEL_ROW_WEIGHT
            if r.dropped >= FLOOD_BYTES and r.dropped - len(payload) - CANCEL_ROW_WEIGHT < \
                    FLOOD_BYTES:
                # Far past the limit and still coming (SELECT * FROM seq_1_to_10000000000): stop it upstream
                # rather than read and drop it all, on the thread that relays every session.
                self.cancel_now = True
            return
        limits = r.limits
        if limits is not None:
            rows, size = limits.max_result_rows, limits.max_result_bytes
            if (rows is not None and r.rows >= rows) or (size is not None and r.size + len(payload) > size):
                which = (f"limits.max_result_rows ({rows} rows)" if rows is not None and r.rows >= rows
                         else f"limits.max_result_bytes ({size} bytes)")
                r.cut = which
                log.warning("session.result_limit", session=self.ctx.session_id, limit=which)
                return
        r.rows += 1
        r.size += len(payload)
        if r.masks is not None:
            payload = (mask_binary_row(payload, r.columns, r.masks) if r.binary
                       else mask_text_row(payload, r.masks, r.types))
        self._forward(r, packet, payload)

    def _done(self, r: Response) -> None:
        self.response = None
        self.phase = Phase.IDLE
        self._timed_out = 0
        if r.limits is not None and r.limits.max_statement_seconds is not None:
            self.timer = (r.number, None)
        if r.cut is not None:
            message = (f"dbfw: the result passed {r.cut} and was cut off. The rows before the limit were sent. "
                       "Hint: add a WHERE or LIMIT, or ask for an approved export")
            self.to_client.append(p.frame(p.Err(ERRNO_REFUSED, "DBF06", message).encode(), r.seq)[0])
            r.error = "DBF06"
        if r.expect in (Expect.RESULT, Expect.BINARY):
            hist = self._durations.get(r.cls)
            if hist is None:
                hist = self._durations[r.cls] = metrics.statement_duration.labels(self.ctx.listener, r.cls)
            elapsed = time.perf_counter() - r.started
            hist.observe(elapsed)  # type: ignore[attr-defined]
            if self.recorder is not None:
                self.recorder.executed(self.ctx, [r.record] if r.record is not None else [], elapsed,
                                       r.total + r.rows, r.error)

    def _used(self, statement: int) -> None:
        """Statement number ``statement`` of the command succeeded: if it was USE, the session is now there."""
        use = self._use_at
        if use is not None and use[0] == statement:
            self.ctx = replace(self.ctx, database=use[1])
            self._use_at = None

    def _status(self, status: int) -> None:
        if status != self.status:
            self.status = status
            self.ctx = read_as_reported(self.ctx, status)



def read_as_reported(ctx: StatementContext, status: int) -> StatementContext:
    """The server reports NO_BACKSLASH_ESCAPES in every status word: dbfw reads text the same way."""
    lex = ctx.lex & ~LEX_MYSQL_NO_BACKSLASH_ESCAPES
    if status & p.Status.NO_BACKSLASH_ESCAPES:
        lex |= LEX_MYSQL_NO_BACKSLASH_ESCAPES
    return ctx if lex == ctx.lex else replace(ctx, lex=lex)


_path_tokens = itertools.count(1)


def unsettled(ctx: StatementContext) -> StatementContext:
    """After a statement that may change what a later one runs (a user variable, PREPARE, code), approvals
    made before no longer apply in the session: they are bound to the context's path token."""
    return replace(ctx, path=f"changed-{next(_path_tokens)}")


def refusal(verdict: Verdict, errno: int | None = None) -> p.Err:
    """dbfw's ERR for a verdict: errno 1644 with the DBF SQLSTATE (or the errno given), message and hint."""
    message = verdict.message or "dbfw: refused"
    if verdict.detail:
        message += f" ({verdict.detail})"
    if verdict.hint:
        message += f" Hint: {verdict.hint}"
    sqlstate = verdict.sqlstate or "DBF02"
    if errno is None:
        errno = ERRNO_REFUSED if sqlstate.startswith("DBF") or not sqlstate[:2].isdigit() else 1064
    return p.Err(errno, sqlstate, message)


def take(core: MyCore) -> tuple[list[bytes], list[bytes]]:
    up, down = core.to_server, core.to_client
    core.to_server, core.to_client = [], []
    return up, down
