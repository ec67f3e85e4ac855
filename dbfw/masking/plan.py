"""Which result columns to mask, and how: sqlglot lineage against the upstream's catalog.

For each output column of a statement, lineage finds the table columns it comes from — through
aliases, expressions, CTEs, subqueries, UNION branches, LATERAL, CASE, window functions and (expanded)
views. A column that comes from a sensitive column is masked: with the rule's own mask when it is the
column itself, with a full redaction when it is computed from it (a partial mask of base64(card)
would leak). Where lineage cannot be established — a whole-row reference, a row-to-JSON conversion,
a function whose body dbfw cannot see, a function in FROM, a star over something without known columns
— the column is masked whole when any sensitive column is in reach, and otherwise checked by content
detectors (the rules' own, or all of them). What is in reach includes the tables LANGUAGE sql functions
read, traced through their bodies like views; a function in another language could read anything, so
every sensitive column of the database is in its reach. Plans are cached per statement shape.
"""

from __future__ import annotations

import time
from collections.abc import Container
from dataclasses import dataclass
from fnmatch import fnmatchcase

import sqlglot
from sqlglot import exp
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope

from ..context import StatementContext
from ..policy.rules import MaskRule
from .catalog import Catalog
from .maskers import Masker, make_masker

MAX_VIEW_DEPTH = 8
MAX_FUNCTION_DEPTH = 4
# Content detectors for values dbfw cannot trace, when no rule names its own.
DEFAULT_DETECTORS = ("email", "credit_card", "ssn", "iban", "phone")
# Aggregates whose result reveals nothing of the values they read.
_HARMLESS_AGGREGATES = (exp.Count,)
_JSON_OR_ROW = ("row_to_json", "to_json", "to_jsonb", "json_agg", "jsonb_agg", "json_object_agg",
                "jsonb_object_agg", "array_agg", "string_agg", "row", "hstore", "json_build_object",
                "jsonb_build_object", "format", "concat_ws", "xmlforest", "xmlelement", "table_to_xml",
                "query_to_xml", "to_tsvector")


@dataclass(frozen=True)
class ColumnMask:
    rule: str
    masker: Masker | None  # None: NULL whatever the type
    detect: tuple[str, ...] = ()  # detector-only: mask with ``masker`` when a detector matches the value
    # The same mask as an SQL expression over "{c}", when the upstream can apply it (see MaskPlan.sql_names).
    sql: str | None = None

    def apply(self, value: bytes, is_text: bool) -> bytes | None:
        if self.detect:
            from .maskers import detect

            if not detect(value, self.detect):
                return value
        if self.masker is None or not is_text:
            return None
        return self.masker(value)


@dataclass(frozen=True)
class MaskPlan:
    """Per output column, its mask or None. ``every`` masks every column (lineage failed near secrets)."""

    columns: tuple[ColumnMask | None, ...] = ()
    every: ColumnMask | None = None
    reason: str = ""
    # The output column names exactly as PostgreSQL names them, when they are known for every column
    # (plain columns, explicit aliases, expanded stars): then the masks may run in the upstream itself.
    sql_names: tuple[str, ...] | None = None

    def for_column(self, i: int) -> ColumnMask | None:
        if self.every is not None:
            return self.every
        return self.columns[i] if i < len(self.columns) else None

    @property
    def active(self) -> bool:
        return self.every is not None or any(c is not None for c in self.columns)


def _redact(_: bytes) -> bytes:
    return b"****"


# Budgets of one statement's lineage (see MaskPlanner.plan).
MAX_TRACED_SELECTS = 24
MAX_TRACED_TABLES = 32
MAX_TRACED_NODES = 4000  # nodes of the whole query: expressions, predicates
TRACE_SECONDS = 0.2
MAX_TRACE_STEPS = 200_000  # lineage nodes made and walked, for the whole query


class _OverBudget(Exception):
    pass


class _TraceBudget:
    """Lineage's cost, bounded inside a column too: sqlglot builds a node per path through the query, and
    derived tables that each combine two columns of the one below double the paths at every level. Every
    node lineage makes, and every node walked, is a step; past the deadline or MAX_TRACE_STEPS, lineage is
    stopped and the query is untraceable."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.steps = 0
        self.over = False

    def step(self) -> bool:
        """One more step; whether the budget is spent."""
        self.steps += 1
        if self.steps > MAX_TRACE_STEPS or time.perf_counter() > self.deadline:
            self.over = True
        return self.over

    def on_node(self, _node: object) -> None:
        if self.step():
            raise _OverBudget

    def spent(self) -> bool:
        return self.over or time.perf_counter() > self.deadline


class MaskPlanner:
    def __init__(self, rules: list[MaskRule], key: bytes):
        self.rules = rules
        self.maskers: dict[str, Masker] = {r.name: make_masker(r, key) for r in rules}

    def applicable(self, ctx: StatementContext) -> list[MaskRule]:
        out = []
        for r in self.rules:
            exempt = any((e.startswith("role:") and e[5:] in ctx.roles) or e == ctx.identity for e in r.unmasked_for)
            if not exempt:
                out.append(r)
        return out

    @staticmethod
    def rule_for(rules: list[MaskRule], schema: str, table: str, column: str) -> MaskRule | None:
        full = f"{schema}.{table}.{column}"
        for r in rules:
            for pattern in r.columns:
                if fnmatchcase(full, pattern) or fnmatchcase(f"{table}.{column}", pattern):
                    return r
        return None

    def plan(self, query: exp.Expression, catalog: Catalog, rules: list[MaskRule]) -> MaskPlan:
        """Lineage of every output column of ``query`` (a SELECT or set operation)."""
        if not rules:
            return MaskPlan()
        detectors = _detectors(rules)
        try:
            query = _expand_views(query.copy(), catalog)
        except Exception:  # a view definition sqlglot cannot read: treat as untraceable
            return self._untraceable(query, catalog, rules, detectors, "a view could not be expanded")
        sensitive_in_reach = self._sensitive_tables(query, catalog, rules)
        if sum(1 for _ in query.walk()) > MAX_TRACED_NODES:  # email+email+... or 5,000 ANDs: lineage's cost grows
            return self._untraceable(query, catalog, rules, detectors, "too large to trace (expressions)")
        selects = sum(1 for _ in query.find_all(exp.Select))
        refs = list(query.find_all(exp.Table))
        tables = len(refs)
        if next(query.find_all(exp.Star), None) is not None:  # what * expands to, every table's columns
            width = sum(len(catalog.schema.get((t.db or catalog.default_schema or "").lower(), {})
                            .get(t.name.lower(), ())) for t in refs)
            tables = max(tables, width // 16)
        if selects > MAX_TRACED_SELECTS or tables > MAX_TRACED_TABLES:
            # Tracing costs grow with the cube of nesting and the square of a join's width, on the thread
            # that relays every session: past these, the query is masked as untraceable instead.
            return self._untraceable(query, catalog, rules, detectors, f"too large to trace ({selects} queries, "
                                     f"{len(refs)} tables, {tables * 16 if tables > len(refs) else 'few'} columns)")
        try:
            qualified = qualify(query, schema=catalog.schema, dialect=catalog.dialect, validate_qualify_columns=True,
                                identify=False, db=catalog.default_schema if catalog.dialect == "mysql" else None)
        except Exception:
            return self._untraceable(query, catalog, rules, detectors, "the columns could not be traced")
        outer = qualified
        while isinstance(outer, exp.SetOperation):
            outer = outer.this
        if not isinstance(outer, exp.Select):
            return self._untraceable(query, catalog, rules, detectors, "not a plain query")
        if any(_unexpanded_star(p) for p in outer.selects):
            # Result columns cannot be matched to projections (a function's or a composite's columns).
            return self._untraceable(query, catalog, rules, detectors, "a star over columns dbfw cannot know")
        names = _known_names(query, qualified)
        _unique_names(qualified)
        try:
            scope = build_scope(qualified)
        except Exception:
            return self._untraceable(query, catalog, rules, detectors, "the query's scopes could not be built")
        columns: list[ColumnMask | None] = []
        budget = _TraceBudget(time.perf_counter() + TRACE_SECONDS)
        for projection in outer.selects:
            if budget.spent():  # SELECT * over a wide join: many columns, each through many tables
                return self._untraceable(query, catalog, rules, detectors, "too costly to trace in time")
            columns.append(self._column(projection, qualified, scope, catalog, rules, detectors, sensitive_in_reach,
                                        budget))
        if budget.spent():
            return self._untraceable(query, catalog, rules, detectors, "too costly to trace in time")
        if names is not None and not all(c is None or c.sql is not None for c in columns):
            names = None
        return MaskPlan(tuple(columns), sql_names=names)

    def _column(self, projection: exp.Expression, qualified: exp.Expression, scope: object, catalog: Catalog,
                rules: list[MaskRule], detectors: tuple[str, ...], sensitive_in_reach: MaskRule | None,
                budget: _TraceBudget | None = None) -> ColumnMask | None:
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(inner, _HARMLESS_AGGREGATES):
            return None
        untraceable = _untraceable_expression(inner, catalog)
        try:
            node = lineage(projection.alias_or_name, qualified, catalog.schema, dialect=catalog.dialect, scope=scope,
                           copy=False, on_node=budget.on_node if budget is not None else None)
        except Exception:  # (_OverBudget included: the plan is then untraceable whole)
            untraceable = True
            node = None
        sources: list[tuple[str, str, str]] = []
        if node is not None:
            tables = {t.alias_or_name: t for t in qualified.find_all(exp.Table)}
            for n in node.walk():
                if budget is not None and budget.step():
                    untraceable = True
                    break
                if n.downstream:
                    continue
                parts = [p.strip('"') for p in n.name.split(".")]
                column = parts[-1]
                src = n.source
                if not (isinstance(src, exp.Table) and src.name) and len(parts) >= 2:
                    src = tables.get(parts[-2])  # a column of a LATERAL or other placeholder scope
                if isinstance(src, exp.Table) and src.name and not isinstance(src.this, exp.Func):
                    if column == "*":
                        untraceable = True
                    else:
                        sources.append((src.db or catalog.default_schema, src.name, column))
                elif isinstance(src, exp.Table | exp.Unnest) or src is None:
                    untraceable = True  # a function in FROM, unnest, or a source lineage could not name
                elif any(True for _ in n.expression.find_all(exp.Column, exp.TableColumn, exp.Star)):
                    untraceable = True  # a leaf that reads something lineage could not name
        hits = [r for s in sources if (r := self.rule_for(rules, *s)) is not None]
        if hits:
            rule = hits[0]
            direct = _is_direct(inner) and len(sources) == 1 and node is not None and _direct_chain(node)
            masker = self.maskers[rule.name] if direct else (None if rule.mask == "null" else
                                                              (self.maskers[rule.name] if rule.mask == "hash"
                                                               else _redact))
            sql = None
            if direct and isinstance(inner, exp.Column) and catalog.column_types.get(sources[0]) in (25, 1043):
                sql = sql_mask(rule, catalog.server_version)
            return ColumnMask(rule.name, masker, sql=sql)
        if untraceable:
            if sensitive_in_reach is not None:
                return ColumnMask(sensitive_in_reach.name, None if sensitive_in_reach.mask == "null" else _redact)
            if detectors:
                return ColumnMask("detected", _redact, detectors)
        return None

    def _sensitive_tables(self, query: exp.Expression, catalog: Catalog, rules: list[MaskRule]) -> MaskRule | None:
        """The first rule covering any column of any table the query reads (after view expansion), or that a
        function it calls may read."""
        tables, opaque = _reach(query, catalog)
        if opaque:
            return self._any_sensitive(rules, catalog)
        for t in tables:
            schema = t.db or catalog.default_schema
            cols = catalog.schema.get(schema, {}).get(t.name)
            if cols is None:
                # unknown table (a function in FROM, a temp table): search every schema for the name
                for sch, tables in catalog.schema.items():
                    if t.name in tables:
                        for c in tables[t.name]:
                            if (r := self.rule_for(rules, sch, t.name, c)) is not None:
                                return r
                continue
            for c in cols:
                if (r := self.rule_for(rules, schema, t.name, c)) is not None:
                    return r
        return None

    def _any_sensitive(self, rules: list[MaskRule], catalog: Catalog) -> MaskRule | None:
        for sch, tables in catalog.schema.items():
            for table, cols in tables.items():
                for c in cols:
                    if (r := self.rule_for(rules, sch, table, c)) is not None:
                        return r
        return None

    def _untraceable_everything(self, rules: list[MaskRule], catalog: Catalog) -> MaskPlan:
        """A row-returning statement dbfw cannot read at all (EXECUTE of a prepared statement, CALL)."""
        detectors = _detectors(rules)
        r = self._any_sensitive(rules, catalog)
        if r is not None:
            return MaskPlan(every=ColumnMask(r.name, None if r.mask == "null" else _redact),
                            reason="the statement's result cannot be traced")
        if detectors:
            return MaskPlan(every=ColumnMask("detected", _redact, detectors), reason="untraceable")
        return MaskPlan()

    def _untraceable(self, query: exp.Expression, catalog: Catalog, rules: list[MaskRule],
                     detectors: tuple[str, ...], reason: str) -> MaskPlan:
        rule = self._sensitive_tables(query, catalog, rules)
        if rule is not None:
            return MaskPlan(every=ColumnMask(rule.name, None if rule.mask == "null" else _redact), reason=reason)
        if detectors:
            return MaskPlan(every=ColumnMask("detected", _redact, detectors), reason=reason)
        return MaskPlan(reason=reason)


def sql_mask(rule: MaskRule, server_version: int = 140000) -> str | None:
    """The rule's mask as SQL over a text column "{c}", giving exactly what the Python masker gives. Built
    from plain string functions: a regular expression would cost the server ~1 us a row, these ~0.3."""
    if rule.mask == "email":
        # the domain is what follows the last '@'; the part before it must not be empty
        domain = ("split_part({c}, '@', -1)" if server_version >= 140000
                  else "reverse(split_part(reverse({c}), '@', 1))")
        return (f"CASE WHEN {{c}} IS NULL THEN NULL WHEN strpos({{c}}, '@') > 0 AND length({{c}}) - "
                f"length({domain}) > 1 THEN left({{c}}, 1) || '***@' || {domain} ELSE '****' END")
    if rule.mask == "partial":
        kf, kl = int(rule.options.get("keep_first", 0)), int(rule.options.get("keep_last", 4))
        return (f"CASE WHEN {{c}} IS NULL THEN NULL WHEN length({{c}}) <= {kf + kl} THEN repeat('*', length({{c}})) "
                f"ELSE left({{c}}, {kf}) || repeat('*', length({{c}}) - {kf + kl}) || right({{c}}, {kl}) END")
    if rule.mask == "redact":
        return "CASE WHEN {c} IS NULL THEN NULL ELSE '****' END"
    if rule.mask == "null":
        return "NULL::text"
    return None  # hash needs the key, which only dbfw holds


def _known_names(query: exp.Expression, qualified: exp.Expression) -> tuple[str, ...] | None:
    """Output names as PostgreSQL gives them, if every projection is a column, an aliased expression or a
    star (then qualify's expansion names them); None otherwise (PostgreSQL's names for bare expressions
    are its own). Only for a plain SELECT without locking or INTO."""
    if not isinstance(query, exp.Select) or not isinstance(qualified, exp.Select):
        return None
    if query.args.get("locks") or query.args.get("into") or query.args.get("distinct"):
        return None
    if next(query.find_all(exp.Insert, exp.Update, exp.Delete, exp.Merge), None) is not None:
        return None  # a data-modifying WITH must stay at the top level: such a statement is not wrapped
    for projection in query.selects:
        if isinstance(projection, exp.Alias | exp.Star):
            continue
        if isinstance(projection, exp.Column):
            continue
        return None
    return tuple(p.alias_or_name for p in qualified.selects)


def _is_direct(e: exp.Expression) -> bool:
    while isinstance(e, exp.Cast | exp.Paren) and not (isinstance(e, exp.Cast) and e.to.this in (
            exp.DataType.Type.VARBINARY, exp.DataType.Type.BINARY)):
        e = e.this
    return isinstance(e, exp.Column)


def _direct_chain(node: object) -> bool:
    """Whether a column's lineage is the table column itself at every step (through subqueries and CTEs),
    not a value computed from it somewhere on the way: only then may it keep its rule's own mask (a partial
    mask of 'a@' || email would show the email)."""
    for n in node.walk():  # type: ignore[attr-defined]
        if not n.downstream:
            continue
        e = n.expression
        if isinstance(e, exp.Alias):
            e = e.this
        if not _is_direct(e):
            return False
    return True


def _detectors(rules: list[MaskRule]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(d for r in rules for d in r.detect)) or DEFAULT_DETECTORS


def _unexpanded_star(projection: exp.Expression) -> bool:
    """A star the qualifier could not expand into columns: ``*`` over a function, ``(f()).*``, ``(x).*``."""
    for node in projection.walk():
        if isinstance(node, exp.Subquery):
            continue
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            return True
        if isinstance(node, exp.Column) and isinstance(node.this, exp.Star):
            return True
    return False


def _called(query: exp.Expression, stored: Container[str] = frozenset()) -> list[str]:
    """The names of the functions a query calls, in expressions and in FROM; ``stored`` (MySQL): names of
    stored functions, which a call sqlglot reads as one of its own functions (MONTHS_BETWEEN, DATE_TRUNC)
    may be."""
    names = []
    for node in query.walk():
        if isinstance(node, exp.Anonymous):
            names.append(node.name.lower())
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous):
            names.append(node.this.name.lower())
        elif isinstance(node, exp.Func) and stored and node.sql_name().lower() in stored:
            names.append(node.sql_name().lower())
    return names


def stored_calls(query: exp.Expression, catalog: Catalog) -> list[exp.Expression]:
    """MySQL: the calls of stored functions in a query, however sqlglot reads them."""
    user = catalog.functions.user
    if catalog.dialect != "mysql" or not user:
        return []
    local = catalog.functions.stored_in(catalog.default_schema)
    return [node.copy() for node in query.walk() if (isinstance(node, exp.Anonymous) and node.name.lower() in user)
            or (isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous)
                and node.sql_name().lower() in local)]


def _reach(query: exp.Expression, catalog: Catalog) -> tuple[list[exp.Table], bool]:
    """The tables a query reads, with those the LANGUAGE sql functions it calls read (their bodies, as
    views are), and whether it calls a function whose body dbfw cannot read (another language)."""
    tables = [t for t in query.find_all(exp.Table) if not isinstance(t.this, exp.Func)]
    seen: set[str] = set()
    stored = catalog.functions.stored_in(catalog.default_schema) if catalog.dialect == "mysql" else frozenset()
    frontier = _called(query, stored)
    for _ in range(MAX_FUNCTION_DEPTH):
        following: list[str] = []
        for name in frontier:
            if name in seen:
                continue
            seen.add(name)
            for proc in catalog.functions.user.get(name, ()):
                if proc.kind != "f" or proc.language != "sql" or not proc.body:
                    return tables, True
                try:
                    bodies = sqlglot.parse(proc.body, read=catalog.dialect)
                except Exception:
                    return tables, True
                for body in bodies:
                    if body is None:
                        continue
                    if catalog.dialect == "mysql":  # a body's names are read in its function's database
                        for t in body.find_all(exp.Table):
                            if not t.db and not isinstance(t.this, exp.Func):
                                t.set("db", exp.to_identifier(proc.schema))
                    try:  # a view the body reads reaches its own tables
                        body = _expand_views(body, catalog)
                    except Exception:
                        return tables, True
                    tables += [t for t in body.find_all(exp.Table) if not isinstance(t.this, exp.Func)]
                    # (a call in the body is read where the function lives: its database's stored names)
                    following += _called(body, catalog.functions.stored_in(proc.schema)
                                         if catalog.dialect == "mysql" else stored)
        if not following:
            return tables, False
        frontier = following
    return tables, True


def _untraceable_expression(e: exp.Expression, catalog: Catalog) -> bool:
    """Whole-row references, row/JSON conversions and functions whose body dbfw cannot see."""
    for node in e.walk():
        if isinstance(node, exp.Star) and node.parent is not None and not isinstance(node.parent, exp.Count):
            return True
        if (isinstance(node, exp.Column) and isinstance(node.this, exp.Star)) or isinstance(node, exp.TableColumn):
            return True  # a whole row: t.* inside an expression, or the bare table name
        if isinstance(node, exp.Anonymous):
            name = node.name.lower()
            if name in _JSON_OR_ROW or name not in catalog.builtins or isinstance(node.parent, exp.Dot):
                return True  # (db.upper(x) is a stored function: a qualified call is never a built-in)
        elif isinstance(node, exp.Func) and catalog.dialect == "mysql" and \
                node.sql_name().lower() in catalog.functions.stored_in(catalog.default_schema):
            return True  # a stored function sqlglot reads as one of its own (MONTHS_BETWEEN)
        elif isinstance(node, exp.Func) and node.sql_name().lower() in _JSON_OR_ROW:
            return True
        if isinstance(node, exp.Column) and not node.table and node.name and _is_table_alias(node):
            return True
    return False


def _is_table_alias(col: exp.Column) -> bool:
    """`c` alone where `c` names a table in scope: PostgreSQL reads it as the whole row."""
    select = col.find_ancestor(exp.Select)
    if select is None:
        return False
    names = {t.alias_or_name for t in select.find_all(exp.Table)}
    return col.name in names


def _unique_names(query: exp.Expression) -> None:
    """Give every output column a distinct name so lineage can address each (SELECT a.id, b.id)."""
    selects = [query] if isinstance(query, exp.Select) else [s for s in query.find_all(exp.Select)
                                                            if s.parent_select is None or s is query]
    branches: list[exp.Select] = []

    def collect(q: exp.Expression) -> None:
        if isinstance(q, exp.SetOperation):
            collect(q.this)
            collect(q.expression)
        elif isinstance(q, exp.Select):
            branches.append(q)
        elif isinstance(q, exp.Subquery):
            collect(q.this)

    collect(query)
    if not branches:
        branches = selects  # type: ignore[assignment]
    for branch in branches:
        new = []
        for i, projection in enumerate(branch.selects):
            inner = projection.this if isinstance(projection, exp.Alias) else projection
            new.append(exp.alias_(inner, f"_dbfw_{i}", quoted=False))
        branch.set("expressions", new)


def _expand_views(query: exp.Expression, catalog: Catalog) -> exp.Expression:
    """Views replaced by their definitions, and a table renaming its columns (``t AS x(a, b)``) by a subquery
    that does the same, so that lineage follows the new names to the table's own columns."""
    for _ in range(MAX_VIEW_DEPTH):
        replaced = False
        for table in list(query.find_all(exp.Table)):
            if isinstance(table.this, exp.Func):
                continue
            definition = catalog.views.get((table.db or catalog.default_schema, table.name))
            alias = table.args.get("alias")
            renames = alias is not None and bool(alias.args.get("columns"))
            if definition is None and not renames:
                continue
            if definition is not None:
                sub = sqlglot.parse_one(definition.rstrip().rstrip(";"), read=catalog.dialect)
            else:
                sub = exp.select("*").from_(exp.Table(this=table.this.copy(), db=table.args.get("db")))
            if alias is None or not alias.this:
                alias = exp.TableAlias(this=exp.to_identifier(table.name), columns=alias.args.get("columns")
                                       if alias is not None else None)
            table.replace(exp.Subquery(this=sub, alias=alias.copy()))
            replaced = True
        if not replaced:
            return query
    raise ValueError("views nest too deeply")


def query_of(statement_sql: str, command: str, dialect: str = "postgres") -> exp.Expression | None:
    """The row-returning query inside a statement: SELECT itself; RETURNING of DML; COPY's source."""
    from ..sql.classify import parse_statement

    try:
        parsed = parse_statement(statement_sql, dialect)
    except Exception:
        return None
    if isinstance(parsed, exp.Query):
        return parsed
    if isinstance(parsed, exp.Insert | exp.Update | exp.Delete):
        returning = parsed.args.get("returning")
        if returning is None:
            return None
        target = parsed.this.this if isinstance(parsed.this, exp.Schema) else parsed.this
        select = exp.select(*[e.copy() for e in returning.expressions]).from_(target.copy())
        return select
    return None


