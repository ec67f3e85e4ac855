"""The one decision point: every statement from every protocol session goes through Firewall.check().

Protocol sessions never decide policy; the firewall never touches bytes. A session hands over the
statement text and who is asking, and gets back a :class:`Verdict` that it turns into its own
protocol's error when the statement is refused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from . import log, metrics
from .approvals.service import ApprovalService
from .audit.recorder import Recorder
from .context import StatementContext
from .masking.service import Masking
from .policy.engine import Decision, decide, decide_statement
from .policy.rules import RuleSet
from .sql.classify import Classification, SQLClassifier, Statement
from .sql.functions import SNAPSHOT_ONLY, UNREAD, FunctionCatalog, FunctionRules
from .sql.offload import OVER_BUDGET, BudgetExceeded, ClassifyPool
from .verdict import ALLOW, ALLOWED, Verdict, describe_statement

__all__ = ["ALLOW", "Firewall", "StatementContext", "Verdict"]

# PostgreSQL's fast-path FunctionCall names a function by OID. libpq uses it for large objects;
# these built-in OIDs are the same in every PostgreSQL release. Any other OID is not understood. Changes to
# large objects, and reading their contents (no table, no masking), are admin, as in SQL.
FAST_PATH_FUNCTIONS: dict[int, tuple[str, str]] = {
    952: ("lo_open", "read"), 953: ("lo_close", "read"), 954: ("loread", "admin"), 956: ("lo_lseek", "read"),
    958: ("lo_tell", "read"), 3170: ("lo_lseek64", "read"), 3171: ("lo_tell64", "read"), 3458: ("lo_get", "admin"),
    3459: ("lo_get", "admin"), 955: ("lowrite", "admin"), 957: ("lo_creat", "admin"), 715: ("lo_create", "admin"),
    964: ("lo_unlink", "admin"), 1004: ("lo_truncate", "admin"), 3172: ("lo_truncate64", "admin"),
    3457: ("lo_from_bytea", "admin"), 3460: ("lo_put", "admin"), 764: ("lo_import", "admin"),
    767: ("lo_import", "admin"), 765: ("lo_export", "admin"),
}


_PATH_CLASSES = frozenset({"session", "procedural", "admin", "privilege", "unknown"})  # classes to look into
_MAY_CHANGE_PATH = frozenset({"procedural", "admin", "privilege", "unknown"})
# Statements that make, use or drop cursors and prepared statements, change the database or name a client
# file: their session follows them, so their verdict carries the classification (see _names_handles).
_HANDLE_COMMANDS = frozenset({"DECLARE", "FETCH", "MOVE", "CLOSE", "PREPARE", "DEALLOCATE", "DISCARD", "USE",
                              "LOAD DATA"})
# How long a database's functions are trusted before they are read again (functions created by others).
FUNCTIONS_TTL = 60.0
# Classes of statements that may create, replace or drop functions, or change what a name resolves to.
_CHANGES_FUNCTIONS = frozenset({"ddl", "procedural", "admin", "privilege", "unknown"})


class Firewall:
    """Classifies with sqlglot, decides with the rules. Without rules it fails closed: everything waits
    for approval."""

    def __init__(self, rules: RuleSet | None = None, approvals: ApprovalService | None = None,
                 masking: Masking | None = None):
        self.rules = rules if rules is not None else RuleSet.fail_closed()
        self.approvals = approvals
        self.masking = masking
        self.classifiers = {"postgres": SQLClassifier("postgres"), "mysql": SQLClassifier("mysql")}
        self.classifiers["postgres"].function_rules = FunctionRules(dict(self.rules.functions))

        self._counters: dict[tuple[str, str, str, str], object] = {}
        self.recorder: Recorder | None = None
        self._overhead: dict[str, object] = {}
        # Which policy allowed a shape, for whom and where, with the verdict it gets (cleared when the rules
        # change).
        self._allowed_shapes: dict[tuple[object, ...], tuple[str, Verdict]] = {}
        # The verdict of an allowed statement, per class and deciding policies (their limits).
        self._allowed: dict[tuple[str, tuple[str, ...]], Verdict] = {}
        # Counts reloads of rules or identities: a statement prepared before one is decided again.
        self.generation = 0
        # What each database's functions are (PostgreSQL), read from the upstream by ``catalogs`` when the
        # server sets it: (listener, database) -> (functions, when to read them again).
        self._function_catalogs: dict[tuple[str, str], tuple[FunctionCatalog, float]] = {}

    def reload(self, rules: RuleSet, masking: Masking | None = None) -> None:
        self.rules = rules
        self.masking = masking
        self._allowed_shapes.clear()
        self._allowed.clear()
        self.generation += 1
        functions = FunctionRules(dict(rules.functions))
        if functions.globs != self.classifiers["postgres"].function_rules.globs:
            self.classifiers["postgres"].function_rules = functions

    def _functions_for(self, ctx: StatementContext) -> FunctionCatalog:
        entry = self._function_catalogs.get((ctx.listener, ctx.database))
        return entry[0] if entry is not None else SNAPSHOT_ONLY

    def classify(self, ctx: StatementContext, sql: str) -> Classification:
        return self.classifiers[ctx.protocol].classify(sql, ctx.database, ctx.lex, self._functions_for(ctx))

    def _classified_off_loop(self, ctx: StatementContext, sql: str) -> bool:
        """A large text not seen before: classified in the worker process, never on the event loop."""
        return self.classify_pool is not None and len(sql) > self.offload_size and self.classifiers[
            ctx.protocol].cached(sql, ctx.database, ctx.lex, self._functions_for(ctx)) is None

    async def _classify_async(self, ctx: StatementContext, sql: str) -> Classification:
        if not self._classified_off_loop(ctx, sql):
            return self.classify(ctx, sql)
        assert self.classify_pool is not None
        classifier, functions, lex = self.classifiers[ctx.protocol], self._functions_for(ctx), ctx.lex
        try:
            result = await self.classify_pool.classify(classifier, sql, ctx.database, lex, functions)
        except BudgetExceeded as e:
            log.warning("classify.budget_exceeded", session=ctx.session_id, size=len(sql), error=str(e))
            result = classifier.unknown(sql, str(e), lex)
        classifier.remember(sql, ctx.database, lex, functions, result)
        return result

    def functions_fresh(self, ctx: StatementContext) -> bool:
        """Whether the database's functions are known and not due to be read again."""
        if self.catalogs is None:
            return True
        entry = self._function_catalogs.get((ctx.listener, ctx.database))
        return entry is not None and entry[1] > time.monotonic()

    async def prepare(self, ctx: StatementContext) -> None:
        """Read the database's functions (user functions, extensions) before classifying its statements.
        Without them only the built-ins are known: a call of anything else is procedural."""
        if self.functions_fresh(ctx):
            return
        assert self.catalogs is not None
        try:
            catalog = await self.catalogs(ctx)
        except Exception as e:  # the side connection failed: the built-ins still decide, user calls fail closed
            log.warning("functions.unavailable", session=ctx.session_id, error=type(e).__name__)
            self._function_catalogs[(ctx.listener, ctx.database)] = (UNREAD, time.monotonic() + 10.0)
            return
        functions = getattr(catalog, "functions", None) or SNAPSHOT_ONLY
        self._function_catalogs[(ctx.listener, ctx.database)] = (functions, time.monotonic() + FUNCTIONS_TTL)

    def functions_changed(self, ctx: StatementContext) -> None:
        """A statement that may create, change or drop functions ran: read them again before the next one."""
        entry = self._function_catalogs.get((ctx.listener, ctx.database))
        if entry is not None:
            self._function_catalogs[(ctx.listener, ctx.database)] = (entry[0], 0.0)
        if self.invalidate_catalogs is not None:
            self.invalidate_catalogs(ctx.database)

    _decides_now = True
    # Reads a database's functions over a side connection, when the server sets it.
    catalogs: Callable[[StatementContext], Awaitable[Any]] | None = None
    invalidate_catalogs: Callable[[str], None] | None = None
    # Large texts not seen before are classified by a worker process with a time budget (see sql.offload).
    classify_pool: ClassifyPool | None = None
    offload_size = 16 * 1024
    # PostgreSQL as the second parser: the server's own syntax error for a text dbfw cannot classify, or None.
    syntax_check: Callable[[StatementContext, str], Awaitable[Any]] | None = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if any(name in cls.__dict__ for name in ("check", "_check")) and "check_now" not in cls.__dict__:
            cls._decides_now = False  # it decides its own way: every statement goes through its check()

    def check_now(self, ctx: StatementContext, sql: str, record: bool = True) -> Verdict | None:
        """The same decision as :meth:`check`, made without waiting for anything, when that is possible: the
        rules allow the statement, its masks are known from before and its recording can wait for its
        result. None when it is not; then :meth:`check` decides. Most statements an application sends
        are ones it sent before, so most take this path and the session needs no task switch."""
        if not self._decides_now or not self.functions_fresh(ctx) or self._classified_off_loop(ctx, sql):
            return None
        started = time.perf_counter()
        classification = self.classify(ctx, sql)
        if any(s.cls in ("ddl", "unknown") for s in classification.statements):
            return None  # check() also makes masking plans stale when the schema changes, refuses unseen text
        shape = classification.shape
        # The rules look at each statement's class, command and tables, and at who asks, where. The shape
        # fixes commands and tables; a class can turn on a literal (WHERE 1 = 1), so the classes are in
        # the key too.
        key = (shape, tuple(s.cls for s in classification.statements), ctx.identity, ctx.roles, ctx.database,
               ctx.listener)
        found = self._allowed_shapes.get(key) if shape else None
        if found is None:
            decision = decide(self.rules, ctx, classification)
            if decision.action != "allow":
                return None
            found = (decision.policy, self.allowed_verdict(classification.cls, decision))
            if shape:
                if len(self._allowed_shapes) >= 10_000:
                    self._allowed_shapes.clear()
                self._allowed_shapes[key] = found
        policy, verdict = found
        masking = self.masking
        if masking is not None and masking.enabled:
            masks = masking.masks_known(ctx, classification)
            if masks is None or any(mask is not None and mask.refuse for mask in masks):
                return None
            if any(masks):
                verdict = replace(verdict, masks=masks)
        recorder = self.recorder
        if recorder is not None:
            detail = recorder.describe(sql, classification, "allow", policy, None, None)
            if record and not recorder.deferred(detail):
                return None
            verdict = verdict.recorded(detail)  # the session records it with its result
        if _names_handles(classification):
            verdict = replace(verdict, classification=classification)
        self._account(ctx, verdict, started, record)
        if (classification.dialect == "mysql" or classification.cls in _PATH_CLASSES) \
                and _may_change_path(classification):
            verdict = replace(verdict, unsettles=True)
        return verdict

    async def check(self, ctx: StatementContext, sql: str, record: bool = True) -> Verdict:
        """Decide on one message's statement text. A statement that must be recorded before it runs (high
        risk, refused) is recorded here; otherwise — and for a Parse (``record=False``: the statement runs at
        each Execute) — its recording travels on the verdict, for the session to write with the result."""
        started = time.perf_counter()
        if not self.functions_fresh(ctx):
            await self.prepare(ctx)
        classification = await self._classify_async(ctx, sql)
        verdict = await self._server_syntax_error(ctx, sql, classification)
        decision: Decision | None = None
        if verdict is None:
            verdict, decision = await self._check(ctx, sql, classification)
        if verdict.allowed and any(s.cls in _CHANGES_FUNCTIONS for s in classification.statements):
            self.functions_changed(ctx)
        if verdict.allowed and (classification.dialect == "mysql" or any(
                s.cls in _PATH_CLASSES for s in classification.statements)) and _may_change_path(classification):
            verdict = replace(verdict, unsettles=True)
        if not verdict.cls:
            verdict = replace(verdict, cls=classification.cls)
        if verdict.allowed and verdict.classification is None and _names_handles(classification):
            verdict = replace(verdict, classification=classification)
        recorder = self.recorder
        if recorder is not None:
            action = "allow" if verdict.allowed else (verdict.decision.action if verdict.decision else "deny")
            detail = recorder.describe(sql, classification, action, decision.policy if decision is not None else "",
                                       verdict.request_id, None if verdict.allowed else verdict.sqlstate)
            if record and not recorder.deferred(detail):
                await recorder.statement(ctx, detail)  # before it runs (or as refused)
            elif not record and not verdict.allowed:
                await recorder.statement(ctx, detail)
            else:
                verdict = replace(verdict, record=detail)  # the session records it with its result
        self._account(ctx, verdict, started, record)
        return verdict

    async def _server_syntax_error(self, ctx: StatementContext, sql: str,
                                   classification: Classification) -> Verdict | None:
        """A text dbfw cannot classify may be one the server cannot parse either: then the client gets the
        server's own syntax error (SQLSTATE, message, position), as it would without dbfw, and nothing
        runs. A text the server parses stays unknown for the rules."""
        if classification.cls != "unknown" or self.syntax_check is None or ctx.protocol != "postgres":
            return None
        if classification.statements[0].reason.startswith(OVER_BUDGET):
            return None  # as costly for the server to parse: the rules decide
        try:
            error = await self.syntax_check(ctx, sql)
        except Exception as e:  # no answer: the rules decide on an unknown statement, as before
            log.warning("syntax_check.unavailable", session=ctx.session_id, error=type(e).__name__)
            return None
        if error is None:
            return None
        return Verdict(False, error.sqlstate, error.message, classification=classification, cls="unknown",
                       position=error.position)

    def _account(self, ctx: StatementContext, verdict: Verdict, started: float, executes: bool = True) -> None:
        """Metrics of one decision. An allowed Parse (``executes`` False) is counted by the session at each
        execution of the statement, not here."""
        if executes or not verdict.allowed:
            self.count(ctx, verdict.cls, "allow" if verdict.allowed else (
                verdict.decision.action if verdict.decision else "deny"))
        if verdict.cls == "unknown":
            metrics.parse_failures.labels(ctx.listener).inc()
        if not executes and verdict.allowed:
            return  # a prepared statement's overhead is observed at each execution, by the session
        hist = self._overhead.get(ctx.listener)
        if hist is None:
            hist = self._overhead[ctx.listener] = metrics.overhead.labels(ctx.listener)
        hist.observe(time.perf_counter() - started)

    def count(self, ctx: StatementContext, cls: str, action: str, n: int = 1) -> None:
        """dbfw_statements_total: one per execution (allowed) or per refusal."""
        key = (ctx.listener, ctx.identity, cls, action)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = metrics.statements_total.labels(*key)
        child.inc(n)  # type: ignore[attr-defined]

    def allowed_verdict(self, cls: str, decision: Decision) -> Verdict:
        """An allowed statement's verdict: its class, and the limits of the policies that allowed it (a policy's
        ``limits:`` overrides the defaults' values; several such policies: the tighter value of each)."""
        policies = tuple(p.name for p in decision.rules if p.limits is not None)
        key = (cls, policies)
        found = self._allowed.get(key)
        if found is None:
            defaults = self.rules.limits
            limits = defaults
            if policies:
                own = [defaults.overridden(p.limits) for p in decision.rules if p.limits is not None]
                limits = own[0]
                for other in own[1:]:
                    limits = limits.tightened(other)
            found = self._allowed[key] = replace(ALLOWED[cls], limits=limits)
        return found

    async def _check(self, ctx: StatementContext, sql: str,
                     classification: Classification) -> tuple[Verdict, Decision]:
        decision = decide(self.rules, ctx, classification)
        unseen = next((s for s in classification.statements if s.unseen), None)
        if unseen is not None:
            # No rule or approval could say what it runs: an approval of EXECUTE IMMEDIATE @q would cover
            # whatever @q holds when it runs.
            return Verdict(False, "DBF05", "dbfw: the statement runs SQL text dbfw cannot see, so it does not run",
                           describe_statement(unseen), "send the SQL text itself (EXECUTE IMMEDIATE '...', "
                           "PREPARE s FROM '...'), or the statement directly", classification, decision), decision
        return await self._decided(ctx, sql, classification, decision), decision

    async def _decided(self, ctx: StatementContext, sql: str, classification: Classification,
                       decision: Decision) -> Verdict:
        if decision.action != "allow":
            if decision.action != "require_approval" or self.approvals is None:
                return self.refusal(decision, classification)
            try:
                verdict = await self.approvals.on_required(ctx, sql, classification, decision)
            except Exception as e:  # the store is unreachable: the statement does not run
                log.warning("approval.store_error", session=ctx.session_id, error=type(e).__name__)
                return Verdict(False, "DBF01", f'dbfw: approval required by policy "{decision.policy}", and dbfw '
                               "cannot record the request right now", describe_statement(decision.statement),
                               "try again in a moment; if it persists, tell the dbfw operator", classification,
                               decision)
            if not verdict.allowed:
                return verdict
            if verdict.request_id is not None:  # one execution, under this approval
                return replace(await self._masked(ctx, classification, decision), request_id=verdict.request_id)
        return await self._masked(ctx, classification, decision)

    async def _masked(self, ctx: StatementContext, classification: Classification, decision: Decision) -> Verdict:
        masking = self.masking
        allowed = self.allowed_verdict(classification.cls, decision)
        if masking is None or not masking.enabled:
            return allowed
        if any(s.cls == "ddl" for s in classification.statements):
            masking.invalidate_soon(ctx.database)  # the schema changes: masking plans must be made again
        try:
            masks = await masking.masks_for(ctx, classification)
        except Exception as e:  # no catalog, no lineage: the result cannot be masked, so it is not sent
            log.warning("masking.unavailable", session=ctx.session_id, error=type(e).__name__)
            return Verdict(False, "DBF02", "dbfw: the result cannot be masked right now, so the statement does not "
                           "run", None, "try again in a moment; if it persists, tell the dbfw operator",
                           classification, decision)
        for mask in masks:
            if mask is not None and mask.refuse:
                return Verdict(False, "DBF02", f"dbfw: {mask.refuse}", None, mask.refuse_hint, classification,
                               decision)
        if not any(masks):
            return allowed
        return replace(allowed, masks=masks)

    async def check_function_call(self, ctx: StatementContext, function_oid: int) -> Verdict:
        name, cls = FAST_PATH_FUNCTIONS.get(function_oid, (f"function {function_oid}", "unknown"))
        stmt = Statement(f"-- fast-path call of {name}", cls, "FUNCTION CALL", functions=(name,),
                         reason="" if cls != "unknown" else "a fast-path call of a function dbfw does not know")
        decision = decide_statement(self.rules, ctx, stmt)
        if decision.action == "allow":
            verdict = self.allowed_verdict(cls, decision)
            self.count(ctx, cls, "allow")
            return verdict
        verdict = self.refusal(decision, None)
        self.count(ctx, cls, decision.action)
        return verdict

    def refusal(self, decision: Decision, classification: Classification | None) -> Verdict:
        detail = describe_statement(decision.statement)
        if decision.action == "deny":
            if decision.policy == "defaults.unknown":
                return Verdict(False, "DBF05", "dbfw: the statement could not be understood, and the policy "
                               "fails closed", detail, "rewrite it in plain SQL that dbfw can parse, or ask a "
                               "dbfw admin for help", classification, decision)
            return Verdict(False, "DBF02", f'dbfw: denied by policy "{decision.policy}"', detail,
                           "this statement is not allowed here; if it must run, ask a dbfw admin to change the "
                           "rules", classification, decision)
        return Verdict(False, "DBF01", f'dbfw: approval required by policy "{decision.policy}"', detail,
                       "a reviewer must approve it through the dbfw admin API; then run the same statement "
                       "again", classification, decision)


def _names_handles(classification: Classification) -> bool:
    """Whether the session needs the statements themselves: several in one message (one portal, limits and
    mask each), or one that makes, uses or drops a cursor or prepared statement."""
    if len(classification.statements) > 1:
        return True
    for s in classification.statements:
        if s.command in _HANDLE_COMMANDS:
            return True
    return False


_USER_VARIABLE = re.compile(r"(?<!@)@(?!@)")  # @v (in a string too: erring towards a change), not @@setting


def _may_change_path(classification: Classification) -> bool:
    """A statement that may change the session's search_path (SET, RESET, DISCARD, set_config, code): from
    then on the session's names may resolve elsewhere. Exact tracking is not needed: approvals made before no
    longer apply, and those made after apply only until the next change. The same statements may change how
    the server reads text (client_encoding, standard_conforming_strings): until the session settles, nothing
    ambiguous is read."""
    for s in classification.statements:
        if s.dialect == "mysql":
            # What an approved statement runs may also hang on user variables (EXECUTE s USING @a), the
            # statements PREPARE named, and what code left behind. (A harmless system setting, SET NAMES or
            # SET autocommit as drivers send at connect, does not: approvals stay usable across sessions.)
            if s.cls in _MAY_CHANGE_PATH or _USER_VARIABLE.search(s.sql) or s.command in ("USE", "DEALLOCATE"):
                return True
            continue
        text = s.sql.lower()
        if s.command in ("SET", "RESET", "DISCARD") or s.cls in _MAY_CHANGE_PATH or "set_config" in text \
                or "search_path" in text:
            return True
    return False
