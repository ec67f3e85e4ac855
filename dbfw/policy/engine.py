"""Deciding: which policies match a statement, and which action wins (deny > require_approval > allow)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..context import StatementContext
from ..sql.classify import Classification, Statement
from .rules import ACTION_RANK, Match, Policy, RuleSet


@dataclass(frozen=True, slots=True)
class Decision:
    action: str
    policy: str  # the deciding policy's name, "defaults" or "defaults.unknown"
    statement: Statement | None = None
    rule: Policy | None = None
    # Every policy that matched with the deciding action: when several ask for approval, all their
    # requirements hold (most approvals, shortest ttl, longest hold, reviewers allowed by each).
    rules: tuple[Policy, ...] = ()

    def to_json(self) -> dict[str, str]:
        return {"action": self.action, "policy": self.policy}


def _glob_any(patterns: list[str], value: str) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def _table_matches(patterns: list[str], tables: tuple[str, ...]) -> bool:
    for table in tables:
        bare = table.rsplit(".", 1)[-1]
        for p in patterns:
            if fnmatchcase(table, p) or ("." not in p and fnmatchcase(bare, p)):
                return True
    return False


def matches(m: Match, ctx: StatementContext, stmt: Statement, action: str = "allow") -> bool:
    if m.classes is not None and stmt.cls not in m.classes:
        return False
    if m.commands is not None and stmt.command.upper() not in m.commands:
        return False
    if m.identities is not None and not _glob_any(m.identities, ctx.identity):
        return False
    if m.roles is not None and not any(r in ctx.roles for r in m.roles):
        return False
    if m.databases is not None and not _glob_any(m.databases, ctx.database):
        return False
    if m.tables is not None and not _table_matches(m.tables, stmt.tables):
        # Tables dbfw could not name might be the ones a restrictive policy protects: fail closed.
        if stmt.tables_complete or action == "allow":
            return False
    return m.listeners is None or ctx.listener in m.listeners


def decide_statement(rules: RuleSet, ctx: StatementContext, stmt: Statement) -> Decision:
    best: Decision | None = None
    if stmt.cls == "unknown":
        # Fail closed: no policy can let through a statement dbfw does not understand.
        best = Decision(rules.defaults.unknown, "defaults.unknown", stmt)
    for policy in rules.policies:
        if not matches(policy.match, ctx, stmt, policy.action):
            continue
        if best is None or ACTION_RANK[policy.action] > ACTION_RANK[best.action]:
            best = Decision(policy.action, policy.name, stmt, policy, (policy,))
        elif policy.action == best.action and best.rule is not None:
            best = Decision(best.action, best.policy, stmt, best.rule, (*best.rules, policy))
    return best or Decision(rules.defaults.action, "defaults", stmt)


def decide(rules: RuleSet, ctx: StatementContext, classification: Classification) -> Decision:
    """A message is decided by its most restricted statement."""
    best: Decision | None = None
    for stmt in classification.statements:
        d = decide_statement(rules, ctx, stmt)
        if best is None or ACTION_RANK[d.action] > ACTION_RANK[best.action]:
            best = d
    return best or Decision("allow", "empty")
