"""What the firewall answers a protocol session: allowed, or refused with the contract's SQLSTATE."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .sql.classes import StatementClass

if TYPE_CHECKING:
    from .context import StatementContext
    from .masking.service import Masking, StatementMask
    from .policy.engine import Decision
    from .policy.rules import Limits, RuleSet
    from .sql.classify import Classification, Statement


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    sqlstate: str = ""
    message: str = ""
    detail: str | None = None
    hint: str | None = None
    classification: Classification | None = None
    decision: Decision | None = None
    masks: list[StatementMask | None] | None = None  # allowed: how to mask each statement's result
    cls: str = ""  # the statement's class, for metrics
    request_id: str | None = None  # the approval request this verdict is about
    position: int | None = None  # the server's own syntax error: where in the text (1-based)
    limits: Limits | None = None  # allowed: what its portal or cursor may deliver, and for how long
    # Allowed: the statement's audit record, written by the session with its result (None: nothing to write,
    # or written already because it had to be durable before the statement ran).
    record: dict[str, object] | None = None
    # Allowed: the statement may change the session's search_path or how the server reads text (SET, RESET,
    # set_config, code): names resolve elsewhere from now on, and nothing ambiguous is read until the server
    # has reported its settings.
    unsettles: bool = False

    def recorded(self, record: dict[str, object]) -> Verdict:
        """This verdict carrying ``record``. Made for every statement recorded with its result: the
        constructor with every field named in order costs a third of ``dataclasses.replace``."""
        return Verdict(self.allowed, self.sqlstate, self.message, self.detail, self.hint, self.classification,
                       self.decision, self.masks, self.cls, self.request_id, self.position, self.limits, record,
                       self.unsettles)

    @classmethod
    def refuse(cls, sqlstate: str, message: str, detail: str | None = None, hint: str | None = None) -> Verdict:
        if not message.startswith("dbfw:"):
            message = f"dbfw: {message}"
        return cls(False, sqlstate, message, detail, hint)


ALLOW = Verdict(True)
ALLOWED: dict[str, Verdict] = {c: Verdict(True, cls=c) for c in StatementClass}


def describe_statement(stmt: Statement | None) -> str | None:
    if stmt is None:
        return None
    text = f"{stmt.command} is classified {stmt.cls}"
    if stmt.tables:
        text += f" (tables: {', '.join(stmt.tables[:5])}{', ...' if len(stmt.tables) > 5 else ''})"
    if stmt.reason:
        text += f": {stmt.reason}"
    return text + "."


class Decider(Protocol):
    """The firewall as protocol sessions see it: the one decision point. A session asks, with its context,
    and gets a Verdict carrying everything it needs for that statement; it reads nothing else of the
    firewall but the rules' default limits, their generation (bumped by a reload) and the masking service
    it follows results with."""

    rules: RuleSet
    masking: Masking | None
    generation: int

    async def prepare(self, ctx: StatementContext) -> None: ...

    def check_now(self, ctx: StatementContext, sql: str, record: bool = True) -> Verdict | None: ...

    async def check(self, ctx: StatementContext, sql: str, record: bool = True) -> Verdict: ...

    async def check_function_call(self, ctx: StatementContext, function_oid: int) -> Verdict: ...
