"""Who runs a statement, where: shared by protocol sessions, the firewall and the policy engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StatementContext:
    """One per session; every statement of the session shares it."""

    identity: str
    roles: frozenset[str]
    database: str
    listener: str
    protocol: str  # "postgres" | "mysql"
    session_id: str
    client_addr: str = ""
    lex: int = 0  # how the server reads SQL text now (classify.LEX_* flags), from its own reports
    # What unqualified names resolve through: "" for the role's default search_path, else a token naming
    # the session's own (set at start-up, or changed since). Approvals are bound to it.
    path: str = ""
