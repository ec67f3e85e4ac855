"""Which portal a backend message belongs to, and masking of the rows that need it.

The client's messages and the server's responses are in the same order. :class:`Responses` keeps, in
that order, one entry per Query, Describe, Execute and Sync the client sent, each naming the
:class:`Portal` (or prepared statement) concerned, and the backend side walks through them as
responses arrive. Only rows of a result with masked columns are rebuilt; every other message is
relayed untouched.
"""

from __future__ import annotations

import csv
import io
import re
import struct
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from ...masking.maskers import TEXT_TYPE_OIDS
from ...masking.plan import ColumnMask, MaskPlan
from ...masking.service import CopyFormat, Masking, StatementMask
from ...policy.rules import Limits
from . import messages as m

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")


class Prepared:
    """A prepared statement, as the client named it at Parse: what was decided for it."""

    __slots__ = ("cls", "generation", "handle", "limits", "mask", "name", "record", "request_id", "sql", "used")

    def __init__(self, name: str, sql: str, cls: str, mask: StatementMask | None, limits: Limits | None,
                 record: dict[str, object] | None, request_id: str | None, generation: int):
        self.name, self.sql, self.cls, self.mask, self.limits = name, sql, cls, mask, limits
        self.record, self.request_id, self.generation = record, request_id, generation
        self.used = False  # an approved statement: its one execution has started
        # A DECLARE, FETCH, CLOSE... (command, the cursor or statement it names, WITH HOLD): applied at each
        # execution.
        self.handle: tuple[str, str, bool] | None = None


class Portal:
    """A portal or SQL cursor, or one statement of a simple Query (the server's unnamed portal): what its
    result is masked with, and everything it has delivered so far, across Execute(max_rows) and FETCH."""

    __slots__ = ("cls", "effect", "elapsed", "formats", "hold", "limits", "mask", "name", "prepared", "rows", "size",
                 "started")

    def __init__(self, name: str, mask: StatementMask | None, limits: Limits | None, cls: str = "read",
                 formats: list[int] | None = None, prepared: Prepared | None = None):
        self.name, self.mask, self.limits, self.cls, self.prepared = name, mask, limits, cls, prepared
        self.formats: list[int] = formats if formats is not None else []
        self.rows = 0
        self.size = 0  # bytes of DataRows
        self.elapsed = 0.0  # seconds the server spent running it, over every Execute and FETCH
        self.started = False  # executed at least once (a later Execute continues the same run)
        self.hold = False  # a cursor declared WITH HOLD: it outlives its transaction
        # What the statement run through this portal does to the session's cursors and prepared statements,
        # applied when the server reports it done: (command, name, the cursor DECLARE makes).
        self.effect: tuple[str, str, Portal | None] | None = None


class Kind(IntEnum):
    QUERY = 0
    DESCRIBE = 1
    EXECUTE = 2
    SYNC = 3


class _Entry:
    """One response the server owes, in the order the client asked: a simple Query (one portal per
    statement), a Describe, an Execute, or a Sync."""

    __slots__ = ("index", "kind", "portal", "portals", "seconds", "seq", "target")

    def __init__(self, kind: Kind, portal: Portal | None = None, portals: list[Portal] | None = None,
                 target: Prepared | Portal | None = None, seconds: float | None = None, seq: int = 0):
        self.kind, self.portal, self.target = kind, portal, target
        self.portals: list[Portal] = portals if portals is not None else []
        self.index = 0  # a Query: the statement whose response is arriving
        self.seconds, self.seq = seconds, seq  # a Query or Execute: its time limit, and its number

    def current(self) -> Portal | None:
        if self.kind == Kind.QUERY:
            return self.portals[self.index] if self.index < len(self.portals) else None
        return self.portal


OidLookup = Callable[[int, int], ColumnMask | None]


class Responses:
    """Which portal each backend message belongs to. The client's messages and the server's responses are
    in the same order: one entry per Query, Describe, Execute and Sync the client sent, walked through as
    responses arrive. Masking (when ``masking`` is set) rebuilds only rows of results with masked columns."""

    def __init__(self, masking: Masking | None, oid_lookup: OidLookup | None = None,
                 untraceable: StatementMask | None = None, sanitize: bool = False):
        self.masking = masking
        # Masking applies to this session: the server's errors, notices and notifications lose the values
        # they quote (see sanitized_error).
        self.sanitize = sanitize
        self.untraceable = untraceable  # the mask of rows whose origin dbfw cannot know
        # Second line of defence: RowDescription names the table column a result column is (when it is
        # one); a sensitive one is masked even if lineage missed it.
        self.oid_lookup = oid_lookup
        self._plain_descriptions: set[bytes] = set()  # RowDescriptions (bytes) seen to hold no sensitive column
        self.queue: deque[_Entry] = deque()
        self.copying = False  # COPY TO STDOUT lines of a masked result are arriving
        self.timed = False  # a Query or Execute with a time limit was sent since the queue was last empty
        self._seq = 0
        self._row_fn: Callable[[memoryview], bytes] | None = None
        self._row_fn_for: StatementMask | None = None
        self._row_fn_types: list[int] | None = None

    def unknown_mask(self) -> StatementMask | None:
        """A mask of its own for a portal or cursor dbfw did not see made."""
        u = self.untraceable
        return None if u is None else StatementMask(plan=u.plan)

    # --- what the client sent -------------------------------------------------------------------------

    def query(self, portals: list[Portal], seconds: float | None = None) -> None:
        self._seq += 1
        if seconds is not None:
            self.timed = True
        self.queue.append(_Entry(Kind.QUERY, portals=portals, seconds=seconds, seq=self._seq))

    def describe(self, target: Prepared | Portal | None) -> None:
        if self.masking is not None:
            self.queue.append(_Entry(Kind.DESCRIBE, target=target))

    def execute(self, portal: Portal, seconds: float | None = None) -> None:
        self._seq += 1
        if seconds is not None:
            self.timed = True
        self.queue.append(_Entry(Kind.EXECUTE, portal=portal, seconds=seconds, seq=self._seq))

    def running(self) -> tuple[int, float | None, Portal | None]:
        """The Query or Execute the server works on now: its number, its time limit and the portal or cursor
        whose time it spends (an Execute's portal, a FETCH's cursor); (0, None, None) if none."""
        for entry in self.queue:
            if entry.kind == Kind.EXECUTE:
                return entry.seq, entry.seconds, entry.portal
            if entry.kind == Kind.QUERY:
                one = entry.portals[0] if len(entry.portals) == 1 and entry.portals[0].name else None
                return entry.seq, entry.seconds, one
        return 0, None, None

    def sync(self) -> None:
        self.queue.append(_Entry(Kind.SYNC))

    # --- what the server answers ------------------------------------------------------------------------

    def current(self) -> Portal | None:
        """The portal whose rows arrive now, if any."""
        queue = self.queue
        return queue[0].current() if queue else None

    def row_description(self, payload: memoryview) -> None:
        if self.masking is None or not self.queue:
            return
        head = self.queue[0]
        target = head.target if head.kind == Kind.DESCRIBE else head.current()
        if head.kind == Kind.DESCRIBE:
            self.queue.popleft()
        if target is None:
            return
        if target.mask is None:
            # Nothing masked by lineage: only a column RowDescription names as sensitive could be. The
            # same description (same bytes) comes back for every execution of a statement: looked at once.
            key = bytes(payload)
            if key in self._plain_descriptions:
                return
            fields = m.RowDescription.decode(payload).fields
            if not self._sensitive(fields):
                if len(self._plain_descriptions) >= 256:
                    self._plain_descriptions.clear()
                self._plain_descriptions.add(key)
        else:
            fields = m.RowDescription.decode(payload).fields
        target.mask = self._upgrade(target.mask, fields)
        if isinstance(target, Portal) and head.kind == Kind.QUERY:
            target.formats = [f.format for f in fields]

    def _sensitive(self, fields: list[m.FieldDescription]) -> bool:
        lookup = self.oid_lookup
        return lookup is not None and any(f.table_oid and lookup(f.table_oid, f.column) is not None for f in fields)

    def _upgrade(self, mask: StatementMask | None, fields: list[m.FieldDescription]) -> StatementMask | None:
        """The mask with the column types of this result, and with every column RowDescription says is a
        sensitive table column masked. A plan shared with other sessions is never changed in place."""
        types = [f.type_oid for f in fields]
        extra: dict[int, ColumnMask] = {}
        if self.oid_lookup is not None:
            for i, f in enumerate(fields):
                if f.table_oid and (cm := self.oid_lookup(f.table_oid, f.column)) is not None:
                    if mask is None or mask.plan is None or mask.plan.for_column(i) is None:
                        extra[i] = cm
        if not extra:
            if mask is not None:
                mask.types = types
            return mask
        plan = mask.plan if mask is not None and mask.plan is not None else MaskPlan()
        columns = tuple(extra.get(i) or plan.for_column(i) for i in range(len(fields)))
        return StatementMask(plan=MaskPlan(columns), types=types, copy_csv=mask.copy_csv if mask else False)

    def no_data(self) -> None:
        if self.queue and self.queue[0].kind == Kind.DESCRIBE:
            self.queue.popleft()

    def row_masker(self) -> Callable[[memoryview], bytes] | None:
        """The function that masks a DataRow of the result arriving now, or None if it has no masked column;
        made once per result."""
        portal = self.current()
        mask = portal.mask if portal is not None else None
        if mask is None or mask.plan is None or not mask.plan.active or self.masking is None:
            return None
        # Compared by identity, holding the objects: a recycled id can never pick up a stale function.
        if self._row_fn_for is not mask or self._row_fn_types is not mask.types:
            self._row_fn = compile_row_masker(mask, self.masking)
            self._row_fn_for, self._row_fn_types = mask, mask.types
        return self._row_fn

    def copy_out(self) -> StatementMask | None:
        """COPY TO STDOUT starts: the mask of its lines, if any."""
        portal = self.current()
        mask = portal.mask if portal is not None else None
        active = mask is not None and mask.plan is not None and mask.plan.active and self.masking is not None
        self.copying = active
        return mask if active else None

    def statement_done(self, command_tag: memoryview | None = None) -> Portal | None:
        """CommandComplete (with its tag), EmptyQueryResponse or PortalSuspended: the portal it ends."""
        self.copying = False
        if not self.queue:
            return None
        head = self.queue[0]
        portal = head.current()
        if head.kind == Kind.QUERY:
            head.index += 1
        elif head.kind == Kind.EXECUTE:
            self.queue.popleft()
        else:
            return None
        mask = portal.mask if portal is not None else None
        if mask is not None and mask.counted and command_tag is not None and self.masking is not None:
            # Masked by the upstream: one masked value per row and masked column, as the tag counts rows.
            rows = m.command_rows(command_tag) or 0
            for rule in mask.counted:
                self.masking.count(rule, rows)
        return portal

    def error(self) -> Portal | None:
        """An ErrorResponse: the portal it ends, if one was running."""
        self.copying = False
        if not self.queue:
            return None
        head = self.queue[0]
        portal = head.current()
        if head.kind == Kind.QUERY:
            head.index = len(head.portals)  # a simple Query stops at its first error
            return portal
        # Extended protocol: everything up to the Sync is skipped by the server.
        while self.queue and self.queue[0].kind != Kind.SYNC:
            self.queue.popleft()
        return portal

    def ready(self) -> None:
        self.copying = False
        queue = self.queue
        while queue:
            entry = queue.popleft()
            if entry.kind == Kind.SYNC or entry.kind == Kind.QUERY:
                break
        if not queue:
            self.timed = False


def mask_data_row(raw: memoryview, mask: StatementMask, formats: list[int], masking: Masking) -> bytes:
    """Rebuild one DataRow with its masked columns masked; the bytes between them are copied as they are."""
    plan: MaskPlan = mask.plan  # type: ignore[assignment]
    data = bytes(raw)
    base = 0
    unpack = _I32.unpack_from
    (count,) = _I16.unpack_from(data, base + 5)
    pos = base + 7
    pieces: list[bytes] = []
    seg = base + 5
    types = mask.types
    every = plan.every
    columns = plan.columns
    for i in range(count):
        col = every if every is not None else (columns[i] if i < len(columns) else None)
        (n,) = unpack(data, pos)
        if col is None or n < 0:
            pos += 4 + (n if n > 0 else 0)
            continue
        value = data[pos + 4:pos + 4 + n]
        masked = col.apply(value, (types[i] if i < len(types) else 0) in TEXT_TYPE_OIDS)
        if masked is value:
            pos += 4 + n
            continue
        masking.count(col.rule)
        pieces.append(data[seg:pos])
        pieces.append(_I32.pack(-1) if masked is None else _I32.pack(len(masked)) + masked)
        pos += 4 + n
        seg = pos
    pieces.append(data[seg:pos])
    body = b"".join(pieces)
    return b"D" + _I32.pack(len(body) + 4) + body


RowsMasker = Callable[[bytes, int, int, "int | None"], tuple[bytes, int, int]]


def _row_masker(mask_rows: RowsMasker) -> Callable[[memoryview], bytes]:
    """One DataRow at a time, for callers that have a single row; ``.rows`` masks a run of them."""

    def mask_row(raw: memoryview) -> bytes:
        data = bytes(raw)
        return mask_rows(data, 0, len(data), None)[0]

    mask_row.rows = mask_rows  # type: ignore[attr-defined]
    return mask_row


def compile_row_masker(mask: StatementMask, masking: Masking) -> Callable[[memoryview], bytes]:
    """A DataRow masking function specialised for one result: which columns, masked how, text or not."""
    plan: MaskPlan = mask.plan  # type: ignore[assignment]
    types = mask.types
    if not types or plan.every is not None:
        return lambda raw: mask_data_row(raw, mask, [], masking)
    masked = [(i, col, types[i] in TEXT_TYPE_OIDS) for i in range(len(types))
              if (col := plan.for_column(i)) is not None]
    if not masked:
        return bytes
    last = masked[-1][0]
    # Per column up to the last masked one: (function of the value's bytes -> bytes or None, rule), or None.
    fns: list[tuple[Callable[[bytes], bytes | None], str] | None] = [None] * (last + 1)
    for i, col, is_text in masked:
        if col.detect or col.masker is None or not is_text:
            fns[i] = ((lambda v, c=col, t=is_text: c.apply(v, t)), col.rule)
        else:
            fns[i] = (col.masker, col.rule)
    if len(masked) == 1 and masked[0][1].masker is not None and not masked[0][1].detect and masked[0][2]:
        return _single_column_masker(masked[0][0], masked[0][1], masking)
    return _columns_masker(tuple(fns), masking)


def _columns_masker(walk: tuple[tuple[Callable[[bytes], bytes | None], str] | None, ...],
                    masking: Masking) -> Callable[[memoryview], bytes]:
    """Masks runs of DataRows: ``walk`` has, per column up to the last masked one, its mask function and rule."""
    unpack = _I32.unpack_from
    pack = _I32.pack
    tally: dict[str, int] = {}

    def mask_rows(data: bytes, start: int, stop: int, budget: int | None) -> tuple[bytes, int, int]:
        """The run of whole DataRows starting at data[start] (the first is whole and counted already;
        at most ``budget`` more), masked, as one piece; where the run ends; how many rows it had."""
        pieces: list[bytes] = []
        append = pieces.append
        row = start
        masked_count = 0
        taken = 0
        while True:
            if row + 5 > stop or data[row] != 68:
                break
            (row_len,) = unpack(data, row + 1)
            row_end = row + 1 + row_len
            if row_end > stop or row_len < 6 or (taken and budget is not None and taken > budget):
                break
            taken += 1
            pos = row + 7
            body: list[bytes] | None = None
            seg = row + 5
            for entry in walk:
                (n,) = unpack(data, pos)
                if entry is None or n < 0:
                    pos += 4 + (n if n > 0 else 0)
                    continue
                value = data[pos + 4:pos + 4 + n]
                new = entry[0](value)
                if new != value:
                    masked_count += 1
                    tally[entry[1]] = tally.get(entry[1], 0) + 1
                    if body is None:
                        body = []
                    body.append(data[seg:pos])
                    body.append(b"\xff\xff\xff\xff" if new is None else pack(len(new)) + new)
                    seg = pos + 4 + n
                pos += 4 + n
            if body is None:
                append(data[row:row_end])
            else:
                body.append(data[seg:row_end])
                joined = b"".join(body)
                append(b"D" + pack(len(joined) + 4) + joined)
            row = row_end
        if masked_count:
            for rule, k in tally.items():
                masking.count(rule, k)
            tally.clear()
        return b"".join(pieces), row, taken

    return _row_masker(mask_rows)


def _single_column_masker(index: int, col: ColumnMask, masking: Masking) -> Callable[[memoryview], bytes]:
    """The common case, one masked text column, written out for speed: a row is rebuilt with one join."""
    unpack = _I32.unpack_from
    pack = _I32.pack
    masker = col.masker
    assert masker is not None
    rule = col.rule
    before = range(index)

    def mask_rows(data: bytes, start: int, stop: int, budget: int | None) -> tuple[bytes, int, int]:
        pieces: list[bytes] = []
        append = pieces.append
        row = start
        taken = masked_count = 0
        while row + 5 <= stop and data[row] == 68:
            (row_len,) = unpack(data, row + 1)
            row_end = row + 1 + row_len
            if row_end > stop or row_len < 6 or (taken and budget is not None and taken > budget):
                break
            taken += 1
            pos = row + 7
            for _ in before:
                (n,) = unpack(data, pos)
                pos += 4 + (n if n > 0 else 0)
            (n,) = unpack(data, pos)
            if n < 0:
                append(data[row:row_end])
            else:
                new = masker(data[pos + 4:pos + 4 + n])
                masked_count += 1
                # Straight into the run's piece list: no bytes are built per row.
                append(b"D")
                if new is None:
                    append(pack(row_len - n))
                    append(data[row + 5:pos])
                    append(b"\xff\xff\xff\xff")
                else:
                    append(pack(row_len - n + len(new)))
                    append(data[row + 5:pos])
                    append(pack(len(new)))
                    append(new)
                append(data[pos + 4 + n:row_end])
            row = row_end
        if masked_count:
            masking.count(rule, masked_count)
        return b"".join(pieces), row, taken

    return _row_masker(mask_rows)


def mask_copy_line(data: bytes, mask: StatementMask, masking: Masking) -> bytes:
    """One row of COPY ... TO STDOUT, text or CSV format, with the statement's delimiter, quote and NULL."""
    plan: MaskPlan = mask.plan  # type: ignore[assignment]
    types = mask.types
    fmt = mask.copy_format or (CopyFormat(csv=True, delimiter=",", null="") if mask.copy_csv else CopyFormat())
    if fmt.csv:
        dialect = {"delimiter": fmt.delimiter, "quotechar": fmt.quote, "doublequote": fmt.escape == fmt.quote,
                   "escapechar": None if fmt.escape == fmt.quote else fmt.escape}
        text = data.decode("utf-8", "surrogateescape")
        rows = list(csv.reader(io.StringIO(text), **dialect))  # type: ignore[arg-type]
        if not rows:
            return data
        fields = rows[0]
        for i, value in enumerate(fields):
            col = plan.for_column(i)
            if col is not None and value != fmt.null:
                masked = col.apply(value.encode("utf-8", "surrogateescape"), _copy_text(types, i))
                masking.count(col.rule)
                fields[i] = "" if masked is None else masked.decode("utf-8", "surrogateescape")
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n", **dialect).writerow(fields)  # type: ignore[arg-type]
        return buf.getvalue().encode("utf-8", "surrogateescape")
    delimiter, null = fmt.delimiter.encode(), fmt.null.encode()
    line = data[:-1] if data.endswith(b"\n") else data
    fields_b = _split_text(line, delimiter)
    for i, value in enumerate(fields_b):
        col = plan.for_column(i)
        if col is not None and value != null:
            masked = col.apply(_unescape(value), _copy_text(types, i))
            masking.count(col.rule)
            fields_b[i] = null if masked is None else _escape(masked, delimiter)
    return delimiter.join(fields_b) + b"\n"


def _split_text(line: bytes, delimiter: bytes) -> list[bytes]:
    """A text-format COPY line's fields, as written (a backslash escapes the byte after it)."""
    fields: list[bytes] = []
    start = i = 0
    n = len(line)
    while i < n:
        byte = line[i:i + 1]
        if byte == b"\\":
            i += 2
            continue
        if byte == delimiter:
            fields.append(line[start:i])
            start = i + 1
        i += 1
    fields.append(line[start:])
    return fields


def _copy_text(types: list[int], i: int) -> bool:
    return not types or (types[i] in TEXT_TYPE_OIDS if i < len(types) else False)


_ESCAPES = {ord("b"): b"\b", ord("f"): b"\f", ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("v"): b"\v"}


def _unescape(value: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == 92 and i + 1 < n:
            nxt = value[i + 1]
            out += _ESCAPES.get(nxt, bytes((nxt,)))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def _escape(value: bytes, delimiter: bytes = b"\t") -> bytes:
    out = value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    if delimiter not in (b"\t", b"\n", b"\r", b"\\"):
        out = out.replace(delimiter, b"\\" + delimiter)
    return out


# --- values in the server's own messages ----------------------------------------------------------------

# PostgreSQL quotes the values it names in messages ("invalid input syntax for type integer: \"...\"") and
# puts rows and keys in parentheses in details ("Failing row contains (...)", "Key (email)=(...)").
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_PARENTHESISED = re.compile(r"\((?:[^()]|\([^()]*\))*\)")
_WITHHELD = "dbfw: withheld: a message raised by SQL code may carry masked values"
# SQLSTATE classes whose messages name the values they are about: data exceptions, integrity violations,
# routine and trigger exceptions, internal errors.
_DATA_CLASSES = frozenset({"22", "23", "2F", "38", "39", "XX", "01"})
MAX_MESSAGE_FIELD = 1024
MAX_ERROR_BYTES = 8192  # a larger error from the server is cut to MAX_MESSAGE_FIELD per field


def _unquoted(text: str) -> str:
    return _QUOTED.sub('"****"', text)[:MAX_MESSAGE_FIELD]


def sanitized_error(payload: memoryview, tag: int) -> bytes:
    """An ErrorResponse or NoticeResponse with every value it may quote replaced, for a session whose results
    are masked: the server's error text would otherwise carry what masking and limits hold back (a cast of a
    whole table to int names every value in its error). Text raised by SQL code (RAISE) is withheld whole;
    SQLSTATE, severity, position and object names stay."""
    err = m.ErrorResponse.decode(payload)
    fields = dict(err.fields)
    code = fields.get(m.FIELD_CODE, "")
    if "RAISE" in fields.get(m.FIELD_WHERE, "") or code.startswith("P0"):
        fields[m.FIELD_MESSAGE] = _WITHHELD
        fields.pop(m.FIELD_DETAIL, None)
        fields.pop(m.FIELD_HINT, None)
    elif code[:2] in _DATA_CLASSES:
        # Errors about a value name it, quoted or not (an XML parser's detail, a number out of range): the
        # condition is told by its SQLSTATE, the text is withheld.
        fields[m.FIELD_MESSAGE] = f"dbfw: withheld: the server's message for this error (SQLSTATE {code}) may " \
            "carry values masked for you"
        fields.pop(m.FIELD_DETAIL, None)
        fields.pop(m.FIELD_HINT, None)
        fields.pop(m.FIELD_WHERE, None)
    else:
        fields[m.FIELD_MESSAGE] = _unquoted(fields.get(m.FIELD_MESSAGE, ""))
        if m.FIELD_DETAIL in fields:
            fields[m.FIELD_DETAIL] = _PARENTHESISED.sub("(****)", _unquoted(fields[m.FIELD_DETAIL]))
        if m.FIELD_HINT in fields:
            fields[m.FIELD_HINT] = _unquoted(fields[m.FIELD_HINT])
    if m.FIELD_WHERE in fields:
        fields[m.FIELD_WHERE] = _PARENTHESISED.sub("(****)", _unquoted(fields[m.FIELD_WHERE].split(
            "JSON data, line")[0]))
    fields.pop(m.FIELD_INTERNAL_QUERY, None)
    message = m.ErrorResponse(fields) if tag == ord("E") else m.NoticeResponse(fields)
    return message.encode()


def sanitized_notification(payload: memoryview) -> bytes:
    """A NOTIFY payload may be computed from any value: in a masked session it is withheld."""
    note = m.NotificationResponse.decode(payload)
    return m.NotificationResponse(note.pid, note.channel, "****" if note.payload else "").encode()


def truncated_error(payload: memoryview) -> bytes:
    """An error too large to be an error: its text fields cut, so that it cannot carry a result past the
    limits (a whole table cast to int is named in full in its error)."""
    err = m.ErrorResponse.decode(payload)
    return m.ErrorResponse({k: v[:MAX_MESSAGE_FIELD] for k, v in err.fields.items()}).encode()
