"""What a write fires: triggers and (PostgreSQL) rules on the tables it writes.

A write is as risky as the code it makes the server run. An INSERT allowed as ``write`` that fires a
trigger deleting another table's rows is a ``destructive_write``; one that fires a PL/pgSQL function is
``procedural`` (unless the rules' ``functions:`` class that function).

- MySQL triggers hold SQL: their body is classified like a statement, with ``NEW.col`` and ``OLD.col``
  read as values of the row (parameters) and ``SET NEW.col = expr`` as the expression it evaluates. A
  body dbfw cannot classify (control flow, local variables) is ``procedural``.
- PostgreSQL triggers call a function, classified as calling it would be.
- PostgreSQL rules (``CREATE RULE ... DO [ALSO|INSTEAD] action``) run their action, classified like a
  statement; one dbfw cannot read is ``procedural``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from .classes import riskiest
from .functions import WRITE_EVENTS, Trigger

# The events a statement fires on the tables it writes, by its first keyword and command, when it writes
# one table; anything else (REPLACE, LOAD DATA, MERGE, a CTE that writes) may fire every row event.
_ROW_EVENTS = WRITE_EVENTS - {"TRUNCATE"}
_NARROW = {"UPDATE": frozenset({"UPDATE"}), "DELETE": frozenset({"DELETE"}),
           "INSERT": frozenset({"INSERT"}),
           "COPY": frozenset({"INSERT"})}
# Statements that write a table's definition or lock it: they fire no trigger.
_NO_EVENTS = frozenset({"CREATE", "ALTER", "DROP", "RENAME", "COMMENT", "GRANT", "REVOKE", "LOCK", "VACUUM",
                        "ANALYZE", "REFRESH", "CLUSTER", "REINDEX", "OPTIMIZE", "REPAIR", "CHECK", "CHECKSUM"})


def write_targets(command: str, written: list[str] | tuple[str, ...], tables: list[str] | tuple[str, ...]) -> list[str]:
    """The tables a write may change: those it names as written and, for an UPDATE or DELETE (several tables,
    or one under an alias), every table it names."""
    return list(dict.fromkeys([*written, *(tables if command in ("UPDATE", "DELETE") else ())]))


def fired_events(keyword: str, command: str, written: list[str], mysql: bool, upsert: bool = True) -> frozenset[str]:
    """``upsert``: the statement may update rows it inserts (ON CONFLICT, ON DUPLICATE KEY UPDATE)."""
    if keyword == "TRUNCATE":
        return frozenset() if mysql else frozenset({"TRUNCATE"})  # (MySQL's TRUNCATE fires no trigger)
    if keyword in _NO_EVENTS:
        return frozenset()
    if len(written) == 1 and keyword == command and command in _NARROW:
        return _NARROW[command] | ({"UPDATE"} if upsert and command == "INSERT" else set())
    return _ROW_EVENTS


_DIALECTS: dict[str, Dialect] = {}


def _tokens(text: str, dialect: str) -> list[Token]:
    d = _DIALECTS.get(dialect)
    if d is None:
        d = _DIALECTS[dialect] = Dialect.get_or_raise(dialect)
    return d.tokenize(text)


def _row_reference(tokens: list[Token], i: int) -> bool:
    """NEW.col or OLD.col at ``i``."""
    return tokens[i].text.upper() in ("NEW", "OLD") and tokens[i].token_type != TokenType.STRING \
        and i + 2 < len(tokens) and tokens[i + 1].token_type == TokenType.DOT \
        and tokens[i + 2].token_type not in (TokenType.STRING, TokenType.STAR)


def _set_of_new(statement: list[Token]) -> bool:
    """SET NEW.a = expr, NEW.b := expr...: what it evaluates is read; nothing else is assigned."""
    if not statement or statement[0].text.upper() != "SET":
        return False
    return all(len(part) > 4 and part[0].text.upper() == "NEW" and _row_reference(part, 0)
               and part[3].token_type in (TokenType.EQ, TokenType.COLON_EQ) for part in split_top_level(statement[1:]))


def has_executable_comment(body: str) -> bool:
    """MySQL runs /*! ... */ and /*M! ... */ in a body as code."""
    return "/*!" in body or "/*M!" in body.upper()


class _StoresRow(Exception):
    pass


def trigger_row_columns(trigger: Trigger) -> list[tuple[str, str, str]]:
    """The columns of its own row a MySQL trigger's body reads (NEW.col, OLD.col): (schema, table, column)."""
    try:
        tokens = _tokens(trigger.body or "", "mysql")
    except (TokenError, ValueError):
        return []
    return [(trigger.schema, trigger.table, tokens[i + 2].text.lower()) for i in range(len(tokens))
            if _row_reference(tokens, i)]


def split_top_level(tokens: list[Token]) -> list[list[Token]]:
    """Tokens split at the commas outside parentheses; empty parts dropped."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif tok.token_type == TokenType.COMMA and depth == 0:
            parts.append([])
            continue
        parts[-1].append(tok)
    return [part for part in parts if part]


def _render(tokens: list[Token], body: str, parameter: str) -> str:
    """The text of ``tokens`` with each NEW.col and OLD.col as a parameter."""
    if not tokens:
        return "NULL"
    pieces: list[str] = []
    at, i = tokens[0].start, 0
    while i < len(tokens):
        if _row_reference(tokens, i):
            pieces.append(body[at:tokens[i].start] + parameter)
            at, i = tokens[i + 2].end + 1, i + 3
        else:
            i += 1
    pieces.append(body[at:tokens[-1].end + 1])
    return "".join(pieces)


def row_statements(body: str, dialect: str) -> str | None:
    """The statements of a trigger body or rule action as dbfw classifies them: NEW.col and OLD.col become
    parameters, ``SET NEW.col = expr`` becomes ``SELECT ? = expr``, a MySQL ``BEGIN ... END`` its
    statements. None when the text does not tokenize."""
    try:
        tokens = _tokens(body, dialect)
    except (TokenError, ValueError):
        return None
    if not tokens:
        return ""
    words = [t.text.upper() for t in tokens]
    if dialect == "mysql":
        start = 2 if len(tokens) > 2 and tokens[1].token_type == TokenType.COLON else 0  # label: BEGIN
        if words[start:start + 1] == ["BEGIN"]:
            end = len(tokens) - 1
            if words[end] == ";":
                end -= 1
            if end > start and words[end] != "END":
                end -= 1  # END label
            if words[end] != "END":
                return None
            tokens = tokens[start + 1:end]
    parameter = "?" if dialect == "mysql" else "$1"
    statements: list[list[Token]] = [[]]
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(tok)
    out: list[str] = []
    for statement in statements:
        if not statement:
            continue
        if _set_of_new(statement):  # SET NEW.a = x, NEW.b = y: evaluates x and y
            values = [_render(part[4:], body, parameter) for part in split_top_level(statement[1:])]
            out.append("SELECT " + ", ".join(values))
        elif statement[0].text.upper() == "SET":
            if any(_row_reference(statement, i) for i in range(len(statement))):
                # A row's values put anywhere but in the row (SET @v = NEW.col): into the session, past masking.
                raise _StoresRow
            out.append(body[statement[0].start:statement[-1].end + 1])
        else:
            out.append(_render(statement, body, parameter))
    return ";\n".join(out)


_RULE_ACTION = re.compile(r"\bDO\s+(?:(?:INSTEAD|ALSO)\s+)?", re.IGNORECASE)
_RULE_CONDITION = re.compile(r"\bWHERE\b(.*)$", re.IGNORECASE | re.DOTALL)


def rule_actions(definition: str) -> list[str]:
    """The readings of the action of ``pg_get_ruledef``'s ``CREATE RULE r AS ON event TO table [WHERE cond]
    DO [ALSO|INSTEAD] action;``: the text after each ``DO`` (a condition or an action may quote " DO ";
    every reading is classified and the riskiest decides)."""
    text = definition.strip().removesuffix(";").strip()
    out: list[str] = []
    for m in _RULE_ACTION.finditer(text):
        # The rule's condition runs for every row written, whatever the action (DO INSTEAD NOTHING too).
        condition = _RULE_CONDITION.search(text[:m.start()])
        if condition is not None:
            out.append("SELECT " + condition.group(1).strip())
        action = text[m.end():].strip()
        if action.upper() == "NOTHING":
            action = ""
        elif action.startswith("(") and action.endswith(")"):
            action = action[1:-1]
        out.append(action)
    return out


ClassifyText = Callable[[str, str, int], str]  # (text, schema, lex) -> class
ClassifyFunction = Callable[[str, str], tuple[str, str]]  # (schema, name) -> (class, why)


def trigger_class(trigger: Trigger, dialect: str, classify_text: ClassifyText,
                  classify_function: ClassifyFunction) -> tuple[str, str]:
    """The class of what one trigger or rule runs, and why."""
    what = f"the trigger {trigger.schema}.{trigger.name}" if trigger.function is not None or dialect == "mysql" \
        else f"the rule {trigger.name} on {trigger.schema}.{trigger.table}"
    if trigger.function is not None:
        cls, why = classify_function(*trigger.function)
        return cls, f"fires {what}: {why}" if why else f"fires {what}"
    if dialect == "mysql" and has_executable_comment(trigger.body or ""):
        return "procedural", f"fires {what}, whose body holds executable comments (/*! */) dbfw does not read"
    texts = [trigger.body or ""] if dialect == "mysql" else rule_actions(trigger.body or "")
    classes = ["read"]
    for text in texts or [None]:
        try:
            statements = row_statements(text, dialect) if text is not None else None
        except _StoresRow:
            return "bulk_export", f"fires {what}, which stores a row's values into the session"
        if statements is None:
            return "procedural", f"fires {what}, which dbfw cannot read"
        cls = classify_text(statements, trigger.schema, trigger.lex) if statements.strip() else "read"
        if cls == "unknown":
            return "procedural", f"fires {what}, which runs code dbfw cannot classify"
        classes.append(cls)
    cls = riskiest(classes)
    return cls, f"fires {what}, which runs SQL that is {cls}" if cls != "read" else ""
