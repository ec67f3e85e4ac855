"""Masking plans per statement, for the protocol sessions: computed once per statement shape."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import sqlglot
from sqlglot import exp

from .. import log
from ..context import StatementContext
from ..policy.rules import MaskRule
from ..sql import pglex
from ..sql.classify import (
    LEX_BACKSLASH_ESCAPES,
    Classification,
    Statement,
    expand_mysql_executable_comments,
    has_versioned_comment,
    mysql_words,
    parse_statement,
)
from ..sql.functions import Trigger
from ..sql.triggers import fired_events, has_executable_comment, row_statements, trigger_row_columns, write_targets
from .catalog import Catalog
from .plan import ColumnMask, MaskPlan, MaskPlanner, _expand_views, query_of, stored_calls

CatalogProvider = Callable[[StatementContext], Awaitable[Catalog]]
PLAN_CACHE = 5000
_ROW_COMMANDS = frozenset({"SELECT", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "REPLACE"})


@dataclass
class StatementMask:
    """What a session needs to mask one statement's result. ``types`` is filled from RowDescription."""

    plan: MaskPlan | None = None
    copy_csv: bool = False
    copy_format: CopyFormat | None = None  # COPY ... TO STDOUT: how its lines are written
    types: list[int] = field(default_factory=list)
    refuse: str | None = None  # mask impossible (binary COPY of a masked column): refuse the statement
    refuse_hint: str = "export this table in text or CSV format, where dbfw can mask it"
    rewritten: str | None = None  # the statement as the upstream should run it, masks included
    counted: tuple[str, ...] = ()  # masked by the upstream: the rules to count once per row it returns


def rewrite_for_upstream(sql: str, plan: MaskPlan) -> str | None:
    """The statement wrapped so that the upstream applies the masks itself: no per-row work in dbfw.
    The original text is kept verbatim inside; output names are given back exactly."""
    names = plan.sql_names
    if names is None or plan.every is not None or len(names) != len(plan.columns):
        return None
    inner = ", ".join(f"_dbfw_c{i}" for i in range(len(names)))
    outer = []
    for i, name in enumerate(names):
        col = plan.columns[i]
        quoted = '"' + name.replace('"', '""') + '"'
        ref = f"_dbfw_c{i}"
        outer.append(f"{col.sql.format(c=ref)} AS {quoted}" if col is not None and col.sql else f"{ref} AS {quoted}")
    body = sql.strip().rstrip(";")
    return f"SELECT {', '.join(outer)} FROM ({body}\n) AS _dbfw ({inner})"


def masking_key(configured: str | None) -> bytes:
    key = configured or os.environ.get("DBFW_MASKING_KEY")
    if key:
        return hashlib.sha256(key.encode()).digest()
    log.warning("masking.ephemeral_key", note="no masking key configured: hash masks change at every restart")
    return secrets.token_bytes(32)


class Masking:
    def __init__(self, rules: list[MaskRule], key: bytes, catalogs: CatalogProvider | None):
        self.planner = MaskPlanner(rules, key)
        self.catalogs = catalogs
        self._plans: dict[tuple[str, int, frozenset[str], str, str], MaskPlan] = {}
        # A message's masks, by the classification object (the classifier keeps one per message text);
        # lets a statement seen before be decided without awaiting anything.
        self._results: dict[tuple[object, ...], tuple[Classification, list[StatementMask | None]]] = {}
        self._applicable: dict[tuple[str, frozenset[str]], tuple[list[MaskRule], frozenset[str]]] = {}
        self._unmasked_shapes: dict[tuple[object, ...], bool] = {}
        self._names: dict[tuple[object, ...], frozenset[str]] = {}  # masked names per catalog and rules
        self.generation = 0
        self.counts: dict[str, int] = {}
        self.on_invalidate: Callable[[str | None], None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.planner.rules) and self.catalogs is not None

    def invalidate(self) -> None:
        self._plans.clear()
        self._results.clear()
        self._unmasked_shapes.clear()
        self.generation += 1
        if self.on_invalidate is not None:
            self.on_invalidate(None)

    def invalidate_soon(self, database: str) -> None:
        """DDL is about to run: plans and catalog are stale now and again right after it ran."""
        import asyncio

        self.invalidate()
        asyncio.get_running_loop().call_later(1.0, self.invalidate)

    def _rules_for(self, ctx: StatementContext) -> tuple[list[MaskRule], frozenset[str]]:
        """The mask rules that apply to this identity with these roles, and their names (what masks depend
        on: two sessions with the same rules get the same masks, whoever they are)."""
        key = (ctx.identity, ctx.roles)
        found = self._applicable.get(key)
        if found is None:
            rules = self.planner.applicable(ctx)
            found = self._applicable[key] = (rules, frozenset(r.name for r in rules))
        return found

    def masks_known(self, ctx: StatementContext, classification: Classification) -> list[StatementMask | None] | None:
        """The masks of a message whose masks were worked out before (same text, same applicable rules,
        same listener and database, same schema generation), or None."""
        rules, names = self._rules_for(ctx)
        if not rules or self.catalogs is None:
            return [None] * len(classification.statements)
        place = (self.generation, names, ctx.listener, ctx.database)
        found = self._results.get((id(classification), *place))
        if found is None or found[0] is not classification:
            # Masks come from plans made per shape: when no statement of this shape was masked, none
            # of another message of the same shape (other literals) is.
            if classification.shape and (classification.shape, *place) in self._unmasked_shapes:
                return [None] * len(classification.statements)
            return None
        # A session fills in a mask's column types: each gets its own copy.
        return [replace(mask) if mask is not None else None for mask in found[1]]

    async def masks_for(self, ctx: StatementContext, classification: Classification) -> list[StatementMask | None]:
        rules, names = self._rules_for(ctx)
        if not rules or self.catalogs is None:
            return [None] * len(classification.statements)
        generation = self.generation
        out: list[StatementMask | None] = []
        for i, stmt in enumerate(classification.statements):
            out.append(await self._mask(ctx, classification, i, stmt, rules))
        if generation == self.generation and not any(s.cls == "ddl" for s in classification.statements):
            place = (generation, names, ctx.listener, ctx.database)
            if len(self._results) >= PLAN_CACHE:
                self._results.pop(next(iter(self._results)))
            self._results[(id(classification), *place)] = (classification, out)
            if classification.shape and not any(out):
                if len(self._unmasked_shapes) >= PLAN_CACHE:
                    self._unmasked_shapes.pop(next(iter(self._unmasked_shapes)))
                self._unmasked_shapes[(classification.shape, *place)] = True
        return out

    async def _mask(self, ctx: StatementContext, classification: Classification, i: int, stmt: Statement,
                    rules: list[MaskRule]) -> StatementMask | None:
        if ctx.protocol == "mysql" and has_versioned_comment(stmt.sql):
            # The server runs the comment or not by its version; sqlglot would drop it. Both readings are
            # masked, and must come out the same (the classifier keeps such a text to one statement).
            readings = [replace(stmt, sql=expand_mysql_executable_comments(stmt.sql, v)) for v in (True, False)]
            masks = [await self._mask_reading(ctx, classification, f"{i}{'vn'[v]}", s, rules)
                     for v, s in enumerate(readings)]
            if masks[0] is not None and masks[0].rewritten is not None:
                masks[0] = replace(masks[0], rewritten=None)  # the text sent stays the one the client wrote
            if masks[0] != masks[1]:
                return StatementMask(refuse="its versioned executable comments change which columns it returns "
                                     "or what it writes; masking cannot follow both readings",
                                     refuse_hint="leave the /*!NNNNN ... */ comments out")
            return masks[0]
        return await self._mask_reading(ctx, classification, str(i), stmt, rules)

    async def _mask_reading(self, ctx: StatementContext, classification: Classification, i: str, stmt: Statement,
                            rules: list[MaskRule]) -> StatementMask | None:
        command = stmt.command.upper()
        if command == "FETCH" or command == "MOVE":
            return None  # the session masks a cursor's rows with the mask its DECLARE had
        if command == "DECLARE":
            plan = await self._plan(ctx, classification.shape + f"#decl{i}", _cursor_query(stmt), "SELECT", rules)
            return StatementMask(plan=plan)
        if ctx.protocol == "mysql" and _diagnostics(stmt):
            # MySQL's warnings and plans quote values the server read (Truncated incorrect DOUBLE value:
            # 'x@y', a const table's row in EXPLAIN): a value that quotes anything is withheld.
            return StatementMask(plan=MaskPlan(every=ColumnMask(rules[0].name, _unquoted)))
        if stmt.tables_written and stmt.cls != "ddl":
            fired = await (self._trigger_launders(ctx, stmt, rules) if ctx.protocol == "mysql" else
                           self._pg_trigger_launders(ctx, stmt, rules))
            if fired is not None:
                return StatementMask(refuse=fired, refuse_hint="masked values may be read only masked; a trigger "
                                     "that copies them runs only for identities they are not masked for")
        if command not in _ROW_COMMANDS and stmt.cls not in ("procedural", "unknown"):
            return None
        if stmt.cls in ("write", "destructive_write"):
            laundered = await self._laundered(ctx, stmt, rules)
            if laundered is not None:
                return StatementMask(refuse=laundered, refuse_hint="masked values may be read only masked; "
                                     "write them only into columns masked the same way")
        sql = stmt.sql
        copy: CopyFormat | None = None
        if command == "COPY":
            try:
                source = copy_source(stmt)
            except ValueError as e:  # options dbfw cannot read: its lines could not be masked
                return StatementMask(refuse=f"COPY {e}: its lines cannot be masked")
            if source is None:
                return None
            sql, copy = source
        plan = await self._plan(ctx, f"{classification.shape}#{i}", sql, command, rules)
        if plan is None or not plan.active:
            return None
        if copy is not None and copy.binary:
            return StatementMask(plan=plan, refuse="a binary COPY of a masked column cannot be masked")
        rewritten = rewrite_for_upstream(stmt.sql, plan) if command == "SELECT" and len(
            classification.statements) == 1 else None
        return StatementMask(plan=plan, copy_csv=copy is not None and copy.csv, copy_format=copy, rewritten=rewritten)

    async def _laundered(self, ctx: StatementContext, stmt: Statement, rules: list[MaskRule]) -> str | None:
        """A write that copies values masked for this identity into a column they are not masked in: they
        would come back in clear from there (UPDATE t SET name = email, INSERT ... SELECT ssn)."""
        try:
            parsed = parse_statement(stmt.sql, "mysql" if ctx.protocol == "mysql" else "postgres")
        except Exception:
            return None  # the classifier read it; what it cannot parse here is judged by its class
        assert self.catalogs is not None
        catalog = await self.catalogs(ctx)
        calls = stored_calls(parsed, catalog)
        if calls:  # what the stored functions it calls read (their bodies and what those call)
            rule = self.planner._sensitive_tables(exp.Select(expressions=calls), catalog, rules)
            if rule is not None:
                # Wherever the call stands (VALUES, SET, ON DUPLICATE KEY UPDATE, a WHERE feeding a
                # RETURNING...), what it read could be stored in clear.
                return (f"the statement calls a stored function that reads values masked by rule {rule.name!r}: "
                        "what it returns could be stored in clear")
        for node in parsed.find_all(exp.Update, exp.Insert):
            if isinstance(node, exp.Insert):
                source = node.expression if isinstance(node.expression, exp.Query) else None
                for sub in node.find_all(exp.Select):
                    if source is not None and _within(sub, source):
                        continue  # INSERT ... SELECT: traced column by column below
                    rule = self.planner._sensitive_tables(sub, catalog, rules)
                    if rule is not None:
                        return (f"the statement writes the result of a query over values masked by rule "
                                f"{rule.name!r} (VALUES, SET or ON DUPLICATE KEY UPDATE): they would be stored "
                                "in clear")
            for written in (_written_values(node, catalog), _duplicate_update(node)):
                if written is None:
                    continue
                refused = self._launders(written, catalog, rules)
                if refused is not None:
                    return refused
        return None

    async def _trigger_launders(self, ctx: StatementContext, stmt: Statement, rules: list[MaskRule]) -> str | None:
        """MySQL: a write that fires a trigger reading values masked for this identity (NEW.col or OLD.col of a
        masked column, or a masked table, through views too), directly or through the triggers its own writes
        fire: whatever the trigger does with them (copies them into another column or table, compares
        them), they leave the mask."""
        assert self.catalogs is not None
        catalog = await self.catalogs(ctx)
        first = mysql_words(stmt.sql, 1)
        events = fired_events(first[0] if first else "", stmt.command, list(stmt.tables_written), True,
                              upsert="DUPLICATE" in stmt.sql.upper())
        written = dict.fromkeys(write_targets(stmt.command, stmt.tables_written, stmt.tables))
        written.update(dict.fromkeys(_view_bases(list(written), catalog)))  # a view written through: its tables
        seen: set[tuple[str, str]] = set()
        for _ in range(4):  # triggers whose writes fire triggers
            following: dict[str, None] = {}
            for table in written if events else ():
                for trigger in catalog.functions.fired(table, events, exact=True):
                    if (trigger.schema, trigger.name) in seen:
                        continue
                    seen.add((trigger.schema, trigger.name))
                    rule = self._trigger_reads(trigger, catalog, rules)
                    if rule is not None:
                        return (f"the statement fires the trigger {trigger.schema}.{trigger.name}, which reads "
                                f"values masked by rule {rule.name!r}: it could store them in clear")
                    following.update(dict.fromkeys(_trigger_writes(trigger)))
            written, events = following, fired_events("", "", [], True)
            written.update(dict.fromkeys(_view_bases(list(written), catalog)))
        return None

    async def _pg_trigger_launders(self, ctx: StatementContext, stmt: Statement, rules: list[MaskRule]) -> str | None:
        """PostgreSQL: a write that fires a trigger or rule whose code names a column masked for this identity
        (or a view that shows one), or runs SQL text it builds (EXECUTE), is refused: what it does with the
        values is out of masking's sight. Read from the function's source and the rule's definition, by
        name: a name in a comment counts too."""
        assert self.catalogs is not None
        catalog = await self.catalogs(ctx)
        if not catalog.functions.triggers:
            return None
        events = fired_events(stmt.command, stmt.command, list(stmt.tables_written), False)
        written = write_targets(stmt.command, stmt.tables_written, stmt.tables)
        written += _view_bases(written, catalog)  # a view written through: its tables
        names: frozenset[str] | None = None
        for table in dict.fromkeys(written):
            for trigger in catalog.functions.fired(table, events or fired_events("", "", [], False)):
                if names is None:  # (only once a write fires something: per catalog and rules, kept)
                    key = (id(catalog), catalog.loaded_at, tuple(r.name for r in rules))
                    names = self._names.get(key)
                    if names is None:
                        if len(self._names) > 64:
                            self._names.clear()
                        names = self._names[key] = _masked_names(self.planner, catalog, rules)
                code = trigger.body or ""
                found = ("EXECUTE" if trigger.function is not None and re.search(r"\bEXECUTE\b", code, re.I)
                         else next((n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", code) if n.lower() in names),
                                   None))
                if found is not None:
                    return (f"the statement fires {trigger.name} on {trigger.schema}.{trigger.table}, whose code "
                            f"reads {found!r}, which is masked (or runs SQL it builds): it could store the values in "
                            "clear")
        return None

    def _trigger_reads(self, trigger: Trigger, catalog: Catalog, rules: list[MaskRule]) -> MaskRule | None:
        if trigger.body is None or has_executable_comment(trigger.body):
            return self.planner._any_sensitive(rules, catalog)  # a body dbfw may not read: it may read anything
        for schema, table, column in trigger_row_columns(trigger):
            rule = self.planner.rule_for(rules, schema, table, column)
            if rule is not None:
                return rule
        try:
            statements = row_statements(trigger.body, "mysql")
            if statements is None:
                raise ValueError("unreadable")
            parsed = sqlglot.parse(statements, read="mysql") if statements.strip() else []
        except Exception:
            return self.planner._any_sensitive(rules, catalog)
        for tree in parsed:
            if tree is not None:
                qualified = tree.copy()
                for t in qualified.find_all(exp.Table):
                    if not t.db:
                        t.set("db", exp.to_identifier(trigger.schema))
                try:
                    qualified = _expand_views(qualified, catalog)  # a view the body reads reaches its tables
                except Exception:
                    return self.planner._any_sensitive(rules, catalog)
                rule = self.planner._sensitive_tables(qualified, catalog, rules)
                if rule is not None:
                    return rule
        return None

    def _launders(self, written: tuple[exp.Table, list[str], exp.Query], catalog: Catalog,
                  rules: list[MaskRule]) -> str | None:
        """Why writing these values into these columns would store masked values where they show, or None."""
        table, columns, query = written
        plan = self.planner.plan(query, catalog, rules)
        values = query.selects if isinstance(query, exp.Select) else []
        for i, column in enumerate(columns):
            mask = plan.for_column(i)
            if mask is None or mask.detect:
                continue
            schema = table.db or catalog.default_schema
            target = self.planner.rule_for(rules, schema, table.name, column)
            if target is None:
                return (f"the statement writes values masked by rule {mask.rule!r} into {table.name}.{column}, "
                        "which is not masked")
            value = values[i] if i < len(values) else None
            while isinstance(value, exp.Alias | exp.Lower | exp.Upper):  # case changes move no character
                value = value.this
            if target.name != mask.rule or not isinstance(value, exp.Column):
                # A masked column rewritten from masked values (email = CONCAT('x@', card)) shows them
                # through its own mask: only a value copied as it is (or in another case), under the same
                # rule, may go there.
                return (f"the statement writes a value computed from values masked by rule {mask.rule!r} into "
                        f"{table.name}.{column}: its mask would show them")
        return None

    async def _plan(self, ctx: StatementContext, shape: str, sql: str, command: str,
                    rules: list[MaskRule]) -> MaskPlan | None:
        key = (shape, self.generation, frozenset(r.name for r in rules), ctx.listener, ctx.database)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        assert self.catalogs is not None
        catalog = await self.catalogs(ctx)
        query = query_of(sql, command, catalog.dialect)
        if query is None:
            if command in ("SELECT", "VALUES", "TABLE", "REPLACE") or command not in _ROW_COMMANDS:
                # A row-returning statement dbfw cannot read (EXECUTE, CALL, a parse failure): untraceable.
                plan = self.planner._untraceable_everything(rules, catalog)
            else:
                plan = MaskPlan()
        else:
            plan = self.planner.plan(query, catalog, rules)
        if len(self._plans) >= PLAN_CACHE:
            self._plans.pop(next(iter(self._plans)))
        self._plans[key] = plan
        return plan

    def oid_lookup(self, ctx: StatementContext, catalog: Catalog | None) -> Callable[[int, int], ColumnMask | None]:
        """For a session: which mask a (table OID, column number) of a RowDescription calls for."""
        rules = self.planner.applicable(ctx)
        cache: dict[tuple[int, int], ColumnMask | None] = {}

        def lookup(table_oid: int, attnum: int) -> ColumnMask | None:
            key = (table_oid, attnum)
            if key in cache:
                return cache[key]
            found = None
            name = catalog.by_oid.get(key) if catalog is not None else None
            if name is not None and rules:
                rule = self.planner.rule_for(rules, *name)
                if rule is not None:
                    found = ColumnMask(rule.name, None if rule.mask == "null" else self.planner.maskers[rule.name])
            cache[key] = found
            return found

        return lookup

    def applies(self, ctx: StatementContext) -> bool:
        """Whether any masking rule applies to this identity."""
        return bool(self._rules_for(ctx)[0]) and self.catalogs is not None

    def untraceable(self, ctx: StatementContext, catalog: Catalog | None) -> StatementMask | None:
        """For a session: the mask of a result dbfw could not trace at all (a cursor a function opened and the
        client fetches from): every column, when the database holds anything sensitive for this identity;
        else the content detectors, if any rule has them."""
        rules, _ = self._rules_for(ctx)
        if not rules:
            return None
        plan = self.planner._untraceable_everything(rules, catalog) if catalog is not None else MaskPlan(
            every=ColumnMask(rules[0].name, None), reason="no catalog")
        return StatementMask(plan=plan) if plan.active else None

    def count(self, rule: str, n: int = 1) -> None:
        self.counts[rule] = self.counts.get(rule, 0) + n


def _unquoted(value: bytes) -> bytes:
    """A diagnostic value that quotes anything is withheld whole (quotes inside a value defeat any scrub)."""
    return b"(withheld: it quotes values)" if b"'" in value or b'"' in value else value


def _within(node: exp.Expression, ancestor: exp.Expression) -> bool:
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent  # type: ignore[assignment]
    return False


def _diagnostics(stmt: Statement) -> bool:
    """SHOW WARNINGS / SHOW ERRORS, EXPLAIN and MariaDB's ANALYZE <statement>: results that quote data. Read
    from the statement's tokens: comments between the words (SHOW /**/ WARNINGS) are no words."""
    words = mysql_words(stmt.sql, 2)
    first = words[0] if words else ""
    second = words[1].strip("(") if len(words) > 1 else ""
    return (first == "SHOW" and second in ("WARNINGS", "ERRORS")) or stmt.command.upper() == "EXPLAIN" \
        or first in ("EXPLAIN", "DESCRIBE", "DESC", "ANALYZE")


def _cursor_query(stmt: Statement) -> str:
    """The query a DECLARE runs: what follows its first FOR keyword, as the server lexes the text (a FOR
    inside a comment or a quoted name is no keyword)."""
    try:
        lexed = pglex.lex(stmt.sql, not stmt.lex & LEX_BACKSLASH_ESCAPES)
    except pglex.LexError:
        return ""
    for tok in lexed.tokens:
        if tok.kind == pglex.IDENT and tok.value == "for":
            return stmt.sql[tok.end + 1:]
    return ""


@dataclass(frozen=True)
class CopyFormat:
    """How COPY ... TO STDOUT writes its lines (PostgreSQL's defaults unless the statement says otherwise)."""

    csv: bool = False
    binary: bool = False
    delimiter: str = "\t"
    quote: str = '"'
    escape: str = '"'
    null: str = "\\N"


_COPY_OPTIONS = frozenset({"format", "delimiter", "null", "header", "quote", "escape", "force_quote",
                           "encoding", "csv", "binary"})


def copy_source(stmt: Statement) -> tuple[str, CopyFormat] | None:
    """A COPY ... TO STDOUT's rows as a query, and how its lines are written, read from the server's own
    tokens (a parenthesis or a keyword inside a string or a comment is neither). None for COPY FROM or to a
    file. Raises ValueError for options dbfw cannot read."""
    sql = stmt.sql
    try:
        tokens = pglex.lex(sql, not stmt.lex & LEX_BACKSLASH_ESCAPES).tokens
    except pglex.LexError as e:
        raise ValueError(str(e)) from None
    if len(tokens) < 4:
        return None
    if tokens[1].value == "(":
        close = _closing(tokens, 1)
        query, i = sql[tokens[1].end + 1:tokens[close].start], close + 1
    else:
        i = 1
        while i < len(tokens) and tokens[i].value not in ("(", "to", "from"):
            i += 1
        table = sql[tokens[1].start:tokens[i - 1].end + 1]
        columns = "*"
        if i < len(tokens) and tokens[i].value == "(":
            close = _closing(tokens, i)
            columns, i = sql[tokens[i].end + 1:tokens[close].start], close + 1
        query = f"SELECT {columns} FROM {table}"
    if i + 1 >= len(tokens) or tokens[i].value != "to" or tokens[i + 1].value != "stdout":
        return None
    return query, _copy_format(tokens[i + 2:])


def _closing(tokens: tuple[pglex.PgToken, ...], at: int) -> int:
    depth = 0
    for j in range(at, len(tokens)):
        if tokens[j].kind == pglex.OP and tokens[j].value == "(":
            depth += 1
        elif tokens[j].kind == pglex.OP and tokens[j].value == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("has unbalanced parentheses")


def _copy_format(tokens: tuple[pglex.PgToken, ...]) -> CopyFormat:
    options: dict[str, str] = {}
    rest = list(tokens)
    if rest and rest[0].value == "with":
        rest = rest[1:]
    if rest and rest[0].value == "(":  # WITH (name value, ...)
        rest = rest[1:-1] if rest[-1].value == ")" else rest[1:]
        for group in _split_commas(rest):
            if group:
                options[group[0].value] = group[1].value if len(group) > 1 else "true"
    else:  # the old syntax: BINARY, DELIMITER [AS] 'x', NULL [AS] 'x', CSV, HEADER, QUOTE [AS] 'x', ...
        words = [t for t in rest if t.value != "as"]
        k = 0
        while k < len(words):
            word = words[k].value
            if word in ("binary", "csv", "header"):
                options["format" if word != "header" else "header"] = word if word != "header" else "true"
                k += 1
            elif word in ("delimiter", "null", "quote", "escape", "encoding") and k + 1 < len(words):
                options[word] = words[k + 1].value
                k += 2
            elif word == "force":
                options["force_quote"] = "true"
                k = len(words)  # FORCE QUOTE/NOT NULL take column lists to the end
            else:
                raise ValueError(f"has an option dbfw does not know ({word})")
    unknown = set(options) - _COPY_OPTIONS
    if unknown:
        raise ValueError(f"has an option dbfw does not know ({sorted(unknown)[0]})")
    if options.get("encoding", "utf8").lower().replace("-", "").replace("_", "") not in ("utf8", "unicode"):
        raise ValueError("writes another encoding")
    fmt = options.get("format", "text").lower()
    csv = fmt == "csv"
    quote = options.get("quote", '"')
    return CopyFormat(csv=csv, binary=fmt == "binary", delimiter=options.get("delimiter", "," if csv else "\t"),
                      quote=quote, escape=options.get("escape", quote), null=options.get("null", "" if csv else "\\N"))


def _split_commas(tokens: list[pglex.PgToken]) -> list[list[pglex.PgToken]]:
    groups: list[list[pglex.PgToken]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == pglex.OP and t.value == "(":
            depth += 1
        elif t.kind == pglex.OP and t.value == ")":
            depth -= 1
        if depth == 0 and t.kind == pglex.OP and t.value == ",":
            groups.append([])
        else:
            groups[-1].append(t)
    return groups



def _assignments(a: exp.Expression) -> list[tuple[str, exp.Expression]]:
    """An UPDATE's SET item as (column, value) pairs: ``c = v``, ``(c) = (SELECT v)``, ``(c, d) = (v, w)`` and
    ``(c, d) = (SELECT v, w ...)``. A form dbfw does not know becomes one value for no column (which no
    rule masks: a masked value in it refuses the statement)."""
    if not isinstance(a, exp.EQ):
        return [("?", a)]
    left, right = a.this, a.expression
    while isinstance(left, exp.Paren):
        left = left.this
    if isinstance(left, exp.Column):
        return [(left.name, right)]
    if isinstance(left, exp.Tuple) and all(isinstance(c, exp.Column) for c in left.expressions):
        names = [c.name for c in left.expressions]
        if isinstance(right, exp.Tuple) and len(right.expressions) == len(names):
            return list(zip(names, right.expressions, strict=True))
        query = right.this if isinstance(right, exp.Subquery) else None
        if isinstance(query, exp.Select) and len(query.expressions) == len(names):
            out = []
            for name, value in zip(names, query.expressions, strict=True):
                one = query.copy()
                one.set("expressions", [value.copy()])
                out.append((name, exp.Subquery(this=one)))
            return out
    return [("?", right)]


def _duplicate_update(node: exp.Expression) -> tuple[exp.Table, list[str], exp.Query] | None:
    """An INSERT's ON DUPLICATE KEY UPDATE (ON CONFLICT DO UPDATE) as the UPDATE of the row it is: what it
    writes, as a query over the table (its SET values may read the row's own columns)."""
    conflict = node.args.get("conflict") if isinstance(node, exp.Insert) else None
    target = node.this if isinstance(node, exp.Insert) else None
    table = target.this if isinstance(target, exp.Schema) else target
    if conflict is None or not isinstance(table, exp.Table):
        return None
    pairs = [pair for a in conflict.expressions or [] for pair in _assignments(a)]
    if not pairs:
        return None
    return table, [c for c, _ in pairs], exp.Select(expressions=[e.copy() for _, e in pairs]).from_(table.copy())


def _written_values(node: exp.Expression, catalog: Catalog) -> tuple[exp.Table, list[str], exp.Query] | None:
    """What an UPDATE or INSERT writes, as a query whose columns are the values written, with the table and
    the columns they go to; None when it writes no value read from the database."""
    if isinstance(node, exp.Update):
        table = node.this
        if not isinstance(table, exp.Table):
            return None
        pairs = [pair for a in node.expressions for pair in _assignments(a)]
        if not pairs:
            return None
        query = exp.Select(expressions=[e.copy() for _, e in pairs]).from_(table.copy())
        from_ = node.args.get("from_") or node.args.get("from")
        if from_ is not None:
            for source in from_.expressions or [from_.this]:
                query = query.join(source.copy())
        return table, [c for c, _ in pairs], query
    if isinstance(node, exp.Insert):
        target, source = node.this, node.expression
        table = target.this if isinstance(target, exp.Schema) else target
        if isinstance(source, exp.Values):
            # Each row as a query: a call in it (a stored function reading masked columns) is traced too.
            rows = [exp.Select(expressions=[e.copy() for e in row.expressions]) for row in source.expressions
                    if isinstance(row, exp.Tuple)]
            source = rows[0] if len(rows) == 1 else exp.union(*rows, distinct=False) if rows else None
        if not isinstance(table, exp.Table) or not isinstance(source, exp.Query):
            return None
        if isinstance(target, exp.Schema) and target.expressions:
            columns = [c.name for c in target.expressions]
        else:
            columns = list(catalog.schema.get(table.db or catalog.default_schema, {}).get(table.name, {}))
        return table, columns, source.copy()
    return None


def _trigger_writes(trigger: Trigger) -> list[str]:
    """The tables a MySQL trigger's body writes (``schema.table``, lower case), as far as it can be read."""
    try:
        statements = row_statements(trigger.body or "", "mysql")
        trees = sqlglot.parse(statements, read="mysql") if statements else []
    except Exception:
        return []
    out: list[str] = []
    for tree in trees:
        for node in tree.find_all(exp.Insert, exp.Update, exp.Delete) if tree is not None else ():
            target = node.this.this if isinstance(node.this, exp.Schema) else node.this
            for t in [target, *(node.args.get("tables") or [])]:
                if isinstance(t, exp.Table) and t.name:
                    out.append(f"{(t.db or trigger.schema).lower()}.{t.name.lower()}")
    return out


def _view_bases(names: list[str], catalog: Catalog) -> list[str]:
    """The tables the views among ``names`` read (``schema.table``), through views on views. MySQL: the view
    of that schema; PostgreSQL: a (plain) view of that name in any schema, as the search path may choose."""
    mysql = catalog.dialect == "mysql"
    out: list[str] = []
    frontier = names
    for _ in range(8):
        following: list[str] = []
        for name in frontier:
            schema, _, table = name.lower().rpartition(".")
            keys = [(schema, table)] if mysql else catalog.functions.views_named().get(table, [])
            for key in keys:
                definition = (catalog.views if mysql else catalog.functions.views).get(key)
                if definition is None:
                    continue
                try:
                    tree = sqlglot.parse_one(definition, read=catalog.dialect)
                except Exception:
                    continue
                following += [f"{(t.db or key[0]).lower()}.{t.name.lower()}" for t in tree.find_all(exp.Table)
                              if t.name]
        out += following
        frontier = following
    return out


def _masked_names(planner: MaskPlanner, catalog: Catalog, rules: list[MaskRule]) -> frozenset[str]:
    """The names that reach a value masked for these rules: the columns, and the views reading their tables."""
    names: set[str] = set()
    tables: set[str] = set()
    for schema, relations in catalog.schema.items():
        for table, columns in relations.items():
            for column in columns:
                if planner.rule_for(rules, schema, table, column) is not None:
                    names.add(column.lower())
                    tables.add(table.lower())
    for (_schema, view), definition in catalog.views.items():
        if any(re.search(rf"\b{re.escape(t)}\b", definition, re.I) for t in tables):
            names.add(view.lower())
    return frozenset(names)
