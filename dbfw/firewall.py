"""The one decision point: every statement from every protocol session goes through Firewall.check().

Protocol sessions never decide policy; the firewall never touches bytes. A session hands over the
statement text and who is asking, and gets back a :class:`Verdict` that it turns into its own
protocol's error when the statement is refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatementContext:
    """Who runs a statement, where. One per session; statements share it."""

    identity: str
    roles: frozenset[str]
    database: str
    listener: str
    protocol: str  # "postgres" | "mysql"
    session_id: str
    client_addr: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    sqlstate: str = ""
    message: str = ""
    detail: str | None = None
    hint: str | None = None

    @classmethod
    def refuse(cls, sqlstate: str, message: str, detail: str | None = None, hint: str | None = None) -> Verdict:
        if not message.startswith("dbfw:"):
            message = f"dbfw: {message}"
        return cls(False, sqlstate, message, detail, hint)


ALLOW = Verdict(True)


class Firewall:
    """Decides on statements. This base allows everything; classification and policy refine it."""

    async def check(self, ctx: StatementContext, sql: str) -> Verdict:
        return ALLOW

    async def check_function_call(self, ctx: StatementContext, function_oid: int) -> Verdict:
        """The fast-path function call message names a function by OID, with no SQL text to parse."""
        return ALLOW
