"""Statement classification: sqlglot's tokens and tree -> the contract's classes. Fails closed.

How a statement is read:

1. The text is tokenized with sqlglot's dialect tokenizer (MySQL's executable comments ``/*! */``
   are expanded first: the server runs them). A tokenizer error makes the message ``unknown``.
2. Tokens are split into statements at top-level semicolons. Each statement's first keyword says
   what kind of statement it is — as it does in the servers' own grammars. Keywords whose statements
   are harmless whatever follows (LISTEN, DISCARD, SAVEPOINT...) are classified by the keyword; the
   rest must parse into a root type this module understands (SELECT, INSERT, UPDATE, DELETE,
   MERGE, COPY, CREATE...), otherwise the statement is ``unknown``.
3. The whole token stream is searched for risky function calls (server files and processes,
   dblink, role changes via set_config...), wherever they appear.
4. The parsed tree adds what only it knows: data-modifying CTEs, SELECT INTO, row locks, WHERE
   clauses that do not restrict, and the tables touched.

A message is as risky as its riskiest statement.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import re
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from . import catalog, pglex
from .classes import CLASSES, RANK, riskiest
from .dialects import (
    MYSQL_BUILTINS,
    MYSQL_FUNCTIONS,
    MYSQL_HARMLESS_SETTINGS,
    POSTGRES_FUNCTIONS,
    setting_class,
    setting_value_class,
)
from .fingerprint import digest as _fingerprint
from .fingerprint import postgres_fingerprint
from .functions import NO_RULES, SNAPSHOT_ONLY, SQL_TEXT_FUNCTIONS, FunctionCatalog, FunctionRules, proc_class
from .triggers import fired_events, split_top_level, trigger_class, write_targets

# sqlglot warns about statements it falls back on, quoting them; SQL text must never reach dbfw's logs.
logging.getLogger("sqlglot").setLevel(logging.ERROR)



@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    cls: str
    command: str
    tables: tuple[str, ...] = ()
    tables_written: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    reason: str = ""
    tables_complete: bool = True  # False: the statement touches tables dbfw could not name
    # The cursor or prepared statement a DECLARE, FETCH, MOVE, CLOSE, PREPARE or DEALLOCATE names, as the
    # server names it ("" for CLOSE ALL / DEALLOCATE ALL; "ALL" for DISCARD ALL); MySQL: the database of a
    # USE, the client file of a LOAD DATA LOCAL INFILE.
    handle: str = ""
    hold: bool = False  # DECLARE ... WITH HOLD: the cursor outlives its transaction
    # MySQL: it runs SQL text dbfw cannot see (EXECUTE IMMEDIATE @q, PREPARE s FROM @q): never run, whatever
    # the rules say, as no approval could say what it covers.
    unseen: bool = False
    dialect: str = "postgres"
    lex: int = 0  # how the server reads the text (LEX_* flags): part of what an approval is bound to

    @property
    def fingerprint(self) -> str:
        """The statement's identity up to whitespace, comments and keyword case, literals kept: what an
        approval is bound to. Computed on demand: most statements never need it."""
        return statement_fingerprint(self.sql, self.dialect, self.lex)

    def to_json(self) -> dict[str, Any]:
        return {"sql": self.sql, "class": self.cls, "command": self.command, "tables": list(self.tables),
                "tables_written": list(self.tables_written), "functions": list(self.functions),
                "fingerprint": self.fingerprint, **({"reason": self.reason} if self.reason else {}),
                **({} if self.tables_complete else {"tables_complete": False})}


@dataclass(frozen=True, slots=True)
class Classification:
    dialect: str
    statements: tuple[Statement, ...]
    cls: str
    shape: str = ""  # the whole message, literals replaced: the classification cache key
    cached: bool = False

    @property
    def fingerprint(self) -> str:
        """The whole message's identity (see Statement.fingerprint)."""
        if len(self.statements) == 1:
            return self.statements[0].fingerprint
        return _fingerprint(["message", [s.fingerprint for s in self.statements]])

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for s in self.statements for t in s.tables))

    def to_json(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "statements": [s.to_json() for s in self.statements], "class": self.cls,
                "fingerprint": self.fingerprint}


# --- tokens ---------------------------------------------------------------------------------------------

_LITERALS = frozenset({TokenType.STRING, TokenType.NUMBER, TokenType.BIT_STRING, TokenType.HEX_STRING,
                       TokenType.BYTE_STRING, TokenType.NATIONAL_STRING, TokenType.RAW_STRING,
                       TokenType.HEREDOC_STRING, TokenType.UNICODE_STRING})
_STRINGS = _LITERALS - {TokenType.NUMBER}


def _word(tok: Token) -> str:
    return tok.text.upper() if tok.token_type not in _STRINGS else ""


def _words(tokens: Sequence[Token], n: int = 4) -> list[str]:
    return [_word(t) for t in tokens[:n]] + [""] * max(0, n - len(tokens))


# Lexing modes: what, beside the text, decides how the server reads it (the session reports them).
LEX_STANDARD = 0
LEX_BACKSLASH_ESCAPES = 1  # standard_conforming_strings is off: '...' reads backslash escapes
LEX_ASCII_ONLY = 2         # the client encoding can hide ASCII bytes inside characters: only ASCII is safe
LEX_UNSETTLED = 4          # a statement that may change the two above is still running: only text that reads
                           # the same in every mode (ASCII, no backslash-dependent string) is read
# MySQL: the session's sql_mode, which sqlglot's MySQL reading does not follow. With NO_BACKSLASH_ESCAPES a
# backslash ends no quote; with ANSI_QUOTES "..." is a name, not a string. A text whose reading would
# depend on them is not read at all (unknown).
LEX_MYSQL_NO_BACKSLASH_ESCAPES = 8
LEX_MYSQL_ANSI_QUOTES = 16
# MySQL: the session reads text as latin1 (chosen at login, or the server's default), where the byte 0xA0 is
# a space to the server but part of a name to dbfw (which reads UTF-8): a text holding it is not read.
LEX_MYSQL_LATIN1 = 32

def _unsettled_reading(sql: str) -> str | None:
    """Why a text might read differently once the session's encoding or string mode settles, or None."""
    if not sql.isascii():
        return "the session's client encoding is changing; dbfw reads only ASCII text until it settles"
    try:
        same = pglex.lex(sql, True).tokens == pglex.lex(sql, False).tokens
    except pglex.LexError:
        same = False
    return None if same else ("the session's standard_conforming_strings may be changing; dbfw reads only text "
                              "that means the same either way until it settles")


_MARK = {tt: f"\x00{i}\x00" for i, tt in enumerate(sorted(_LITERALS, key=lambda t: t.name))}


def _shape_and_bounds(text: str, tokens: Sequence[Token]) -> tuple[str, list[tuple[int, int]]]:
    """The message with every literal replaced by a marker of its kind, and where each statement's tokens
    start and end. Two texts with the same shape have the same tokens but for literal values, so they
    classify the same (statements whose class depends on a literal are never cached by shape). Markers
    contain NUL, which cannot occur outside a literal, so no SQL text can imitate one."""
    parts: list[str] = []
    bounds: list[tuple[int, int]] = []
    pos = start = 0
    semicolon = TokenType.SEMICOLON
    mark = _MARK.get
    for i, tok in enumerate(tokens):
        tt = tok.token_type
        if tt is semicolon:
            if i > start:
                bounds.append((start, i))
            start = i + 1
            continue
        m = mark(tt)
        if m is not None:
            parts.append(text[pos:tok.start])
            parts.append(m)
            pos = tok.end + 1
    if len(tokens) > start:
        bounds.append((start, len(tokens)))
    parts.append(text[pos:])
    return "".join(parts), bounds


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _identity_keys(tokens: Sequence[Token], fold_case: bool) -> list[list[str]]:
    """sqlglot's tokens as an approval sees them: whitespace and comments gone (they are not tokens),
    literals kept with their kind; with ``fold_case`` keywords folded with ASCII rules, else (MySQL) every
    word as written."""
    out: list[list[str]] = []
    identifier, var = TokenType.IDENTIFIER, TokenType.VAR
    for tok in tokens:
        tt = tok.token_type
        if tt in _LITERALS:
            out.append([tt.name, tok.text])
        elif tt is identifier:
            out.append(["QIDENT", tok.text])
        elif tt is var and not fold_case:
            out.append(["NAME", tok.text])
        elif not fold_case:
            # MySQL: a table name may lex as a keyword (temp, date, comment, view) and the server keeps table
            # names' case: an approval of DROP TABLE Temp must not cover DROP TABLE temp. Words stay exact.
            out.append(["WORD", tok.text])
        else:
            out.append(["WORD", tok.text.translate(_ASCII_UPPER)])
    return out


_TOKENIZERS: dict[str, Any] = {}


_VERSION_MARKERS = re.compile(r"/\*[mM]?!\d*")


def statement_fingerprint(sql: str, dialect: str, lex: int = LEX_STANDARD) -> str:
    """What an approval is bound to. PostgreSQL: the server's own tokens (pglex), unquoted names and
    keywords folded as the server folds them, quoted names exact, literals by kind and value, and the
    lexing mode. A text dbfw cannot lex is bound to its exact characters."""
    if dialect == "postgres":
        return postgres_fingerprint(sql, lex, not lex & LEX_BACKSLASH_ESCAPES)
    tokenizer = _TOKENIZERS.get(dialect)
    if tokenizer is None:
        tokenizer = _TOKENIZERS[dialect] = _Classifier(dialect).tokenizer
    try:
        text = expand_mysql_executable_comments(sql) if dialect == "mysql" else sql
        tokens = tokenizer.tokenize(text)
        if dialect == "mysql" and has_versioned_comment(sql):
            # Bound to both readings: what a server that runs the comment and one that skips it would run;
            # and to the comments' markers, which decide which reading a server runs (/*!50000 runs on
            # MariaDB 10.11, /*M!999999 does not).
            stripped = tokenizer.tokenize(expand_mysql_executable_comments(sql, False))
            return _fingerprint([dialect, lex, "versioned", _VERSION_MARKERS.findall(sql), _identity_keys(
                [t for t in tokens if t.token_type != TokenType.SEMICOLON], False), _identity_keys(
                [t for t in stripped if t.token_type != TokenType.SEMICOLON], False)])
    except (TokenError, ValueError, IndexError):
        return _fingerprint(["text", lex, sql])
    return _fingerprint([dialect, lex, _identity_keys([t for t in tokens if t.token_type != TokenType.SEMICOLON],
                                                       dialect != "mysql")])


def expand_mysql_executable_comments(sql: str, versioned: bool = True) -> str:
    """Turn ``/*! code */``, ``/*!50100 code */`` and ``/*M! code */`` into ``code``: MySQL and MariaDB run it.
    With ``versioned`` False, a comment with a version number is dropped instead: whether a server runs it
    depends on its version (MariaDB skips MySQL's 5.7+ numbers), so the classifier reads the text both ways.

    Quotes and ordinary comments are skipped exactly as the server lexes them (``--`` followed by a space or
    any control character, ``#``); an unterminated one raises TokenError, and so does a comment or quote
    inside an executable comment (the server lexes on inside it, and could end it elsewhere).
    """
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = _quote_end(sql, i)
            out.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise TokenError("unterminated comment")
            body = sql[i + 2:end]
            if body.startswith("!") or body.startswith("M!"):
                body = body[1:] if body.startswith("!") else body[2:]
                k = 0
                while k < len(body) and k < 6 and body[k].isdigit():
                    k += 1
                if k < 5:  # a version has five or six digits; fewer are code (/*!1 */ is the number 1)
                    k = 0
                code = body[k:]
                if any(mark in code for mark in ("--", "#", "/*")):
                    raise TokenError("a comment inside an executable comment")
                _check_quotes(code)  # a quote open at the */ dbfw saw would hide the server's end elsewhere
                out.append(" " + code + " " if versioned or not k else " ")
            else:
                out.append(" ")
            i = end + 2
        elif c == "#" or (sql.startswith("--", i) and (i + 2 >= n or ord(sql[i + 2]) <= 0x20)):
            end = sql.find("\n", i)
            out.append(" ")
            i = n if end < 0 else end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _check_quotes(code: str) -> None:
    """Every quote in ``code`` closes within it (TokenError otherwise)."""
    i = 0
    while i < len(code):
        if code[i] in "'\"`":
            i = _quote_end(code, i)
        i += 1


def _quote_end(sql: str, i: int) -> int:
    """Where the quoted text starting at ``i`` ends (its closing quote)."""
    c, j, n = sql[i], i + 1, len(sql)
    while j < n:
        if sql[j] == "\\" and c != "`":
            j += 2
            continue
        if sql[j] == c:
            if j + 1 < n and sql[j + 1] == c:
                j += 2
                continue
            return j
        j += 1
    raise TokenError("unterminated quoted text")


def _runs_without_versioned(sql: str) -> bool:
    """Whether anything is left to run once the versioned executable comments are skipped."""
    try:
        return bool(expand_mysql_executable_comments(sql, False).strip(" \t\r\n;"))
    except TokenError:
        return True  # the reading fails closed on its own


def mysql_words(sql: str, n: int) -> list[str]:
    """The first ``n`` words of a MySQL text as the server reads them (comments are no words), upper case;
    [] when it cannot be tokenized."""
    tokenizer = _TOKENIZERS.get("mysql")
    if tokenizer is None:
        tokenizer = _TOKENIZERS["mysql"] = _Classifier("mysql").tokenizer
    try:
        tokens = tokenizer.tokenize(sql)
    except (TokenError, ValueError, IndexError):
        return []
    return [t.text.upper() for t in tokens[:n]]


def has_versioned_comment(sql: str) -> bool:
    """Whether a MySQL text holds an executable comment whose running depends on the server's version."""
    start = sql.find("/*")
    while start >= 0:
        rest = sql[start + 2:start + 4]
        if (rest[:1] == "!" and rest[1:2].isdigit()) or (rest == "M!" and sql[start + 4:start + 5].isdigit()):
            return True
        start = sql.find("/*", start + 2)
    return False


# --- classification of one statement ----------------------------------------------------------------------


class _Unknown(Exception):
    """The statement is not one this module understands."""


@dataclass
class _Result:
    cls: str
    command: str
    reason: str = ""
    tables: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    literal_sensitive: bool = False
    tables_complete: bool = True
    anonymous: set[str] = field(default_factory=set)  # calls sqlglot's parser does not know by name
    handle: str = ""  # see Statement.handle
    hold: bool = False
    unseen: bool = False  # see Statement.unseen

    def raise_to(self, cls: str, reason: str) -> None:
        if RANK[cls] > RANK[self.cls]:
            self.cls, self.reason = cls, reason


_TABLE_KEYWORDS = frozenset({"CREATE", "ALTER", "DROP", "TRUNCATE", "GRANT", "REVOKE", "LOCK", "COMMENT", "VACUUM",
                             "ANALYZE", "REFRESH", "CLUSTER", "REINDEX", "RENAME"})
_TREE_KEYWORDS = frozenset({"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE",
                            "REPLACE", "("})
_STATEMENT_START = frozenset({"SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE",
                              "EXECUTE", "DECLARE", "CREATE", "REPLACE"})

Handler = Callable[["_Classifier", list[Token], _Result], None]


_ADVISORY_LOCKS = frozenset({
    "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared"})


def _all_supplied(tokens: list[Token], open_paren: int) -> bool:
    """Whether every argument of the call whose '(' is at ``open_paren`` is a value the client gives: a literal,
    a $n parameter, or a call of such values (hashtext('job')). No column, no subquery."""
    return _supplied_call_end(tokens, open_paren) > 0


def _supplied_call_end(tokens: list[Token], open_paren: int, depth: int = 0) -> int:
    """Where the call's arguments end (the index after its ')') when all are supplied values, else -1."""
    n = len(tokens)
    at = open_paren + 1
    if at < n and tokens[at].token_type == TokenType.R_PAREN:
        return at + 1
    while at < n and depth < 4:
        tt = tokens[at].token_type
        if tt == TokenType.DASH and at + 1 < n and tokens[at + 1].token_type == TokenType.NUMBER:
            at += 2
        elif tt == TokenType.NUMBER or tt in _STRINGS:
            at += 1
        elif tt == TokenType.PARAMETER and at + 1 < n and tokens[at + 1].token_type == TokenType.NUMBER:
            at += 2
        elif tt == TokenType.VAR and at + 1 < n and tokens[at + 1].token_type == TokenType.L_PAREN:
            at = _supplied_call_end(tokens, at + 1, depth + 1)
            if at < 0:
                return -1
        else:
            return -1
        if at >= n:
            return -1
        if tokens[at].token_type == TokenType.R_PAREN:
            return at + 1
        if tokens[at].token_type != TokenType.COMMA:
            return -1
        at += 1
    return -1


def _supplied(tokens: list[Token], at: int, end: TokenType | None = None) -> bool:
    """Whether the function argument at ``at`` is one string literal or one $n parameter (a value the client
    gives, not one read from the database), followed by a comma or ``end`` (either, when None)."""
    n = len(tokens)
    if at >= n:
        return False
    follows = at + 1
    if tokens[at].token_type == TokenType.PARAMETER and follows < n and tokens[follows].token_type == TokenType.NUMBER:
        follows += 1
    elif tokens[at].token_type not in _STRINGS:
        return False
    if follows >= n:
        return False
    tt = tokens[follows].token_type
    return tt == end if end is not None else tt in (TokenType.COMMA, TokenType.R_PAREN)


class _Classifier:
    def __init__(self, dialect: str):
        self.dialect = dialect
        self.d = Dialect.get_or_raise(dialect)
        # sqlglot's tokenizer swallows the rest of some statements (RESET, EXPLAIN, SHOW, EXECUTE...) into
        # one string token; dbfw must see every token of every statement, so it tokenizes without that.
        tokenizer_class = type("DbfwTokenizer", (self.d.tokenizer_class,), {"COMMANDS": set()})
        self.tokenizer = tokenizer_class(dialect=self.d)
        self.mysql = dialect == "mysql"
        self.functions = MYSQL_FUNCTIONS if self.mysql else POSTGRES_FUNCTIONS
        self.default_schema = None if self.mysql else "public"
        self._sql = ""
        self.server_limits: dict[str, int] = {}  # the database's own limits (base units), when known
        self.number_columns: frozenset[tuple[str, str, str]] = frozenset()  # MySQL (see FunctionCatalog)
        self.all_columns: frozenset[tuple[str, str, str]] = frozenset()
        self.database: str | None = None  # the database of the statement being classified
        # MySQL: the class of calling a function that is not a built-in, and why (see SQLClassifier).
        self.stored: Callable[[str], tuple[str, str]] = _unseen_function
        self.latin1 = False  # MySQL: the session may read text as latin1 already (LEX_MYSQL_LATIN1)
        self.stored_names: Container[str] = frozenset()  # MySQL: the catalog's stored function names
        self.views: Container[tuple[str, str]] = frozenset()  # MySQL: the catalog's views, (schema, name)
        self.views_named: dict[str, list[tuple[str, str]]] = {}  # PostgreSQL: the catalog's views by name
        self.view_class: Callable[[str, str], tuple[str, str]] = lambda schema, name: ("read", "")
        # The class of the triggers and rules a write of a table fires for some events, and why (see triggers).
        self.fires: Callable[[str, frozenset[str]], tuple[str, str] | None] = lambda table, events: None
        # MySQL: the class of SQL text a statement runs (EXECUTE IMMEDIATE 'text'), read as a message of its own.
        self.sql_text: Callable[[str], tuple[str, str]] = lambda text: ("unknown", "not read")

    # Entry point for one statement's tokens.
    def classify(self, tokens: list[Token], sql: str | None, database: str | None) -> _Result:
        if sql is None:  # a statement nested in another (EXPLAIN ANALYZE, DECLARE, PREPARE): same text, database
            sql, database = self._sql, database or self.database
        self._sql, self.database = sql, database
        w = _words(tokens)
        kw = w[0]
        try:
            if kw in _TREE_KEYWORDS:
                res = self._from_tree(tokens, sql, kw, database)
            else:
                handler = self._handler(kw)
                if handler is None:
                    raise _Unknown(f"{kw or 'this statement'} is not a statement dbfw understands")
                res = _Result("read", kw)
                handler(self, tokens, res)
                if kw in _TABLE_KEYWORDS and not res.tables:
                    self._tables_of_command(tokens, sql, res, database)
        except _Unknown as e:
            res = _Result("unknown", kw or "UNKNOWN", str(e))
        except (ParseError, TokenError) as e:
            res = _Result("unknown", kw or "UNKNOWN", f"cannot parse: {str(e).splitlines()[0][:200]}")
        except Exception as e:  # a parser failure of any kind (deep nesting, a sqlglot bug) fails closed
            res = _Result("unknown", kw or "UNKNOWN", f"cannot parse ({type(e).__name__})")
        if res.written and res.cls != "unknown":
            events = fired_events(kw, res.command, res.written, self.mysql,
                                  upsert=any(_word(t) in ("DUPLICATE", "CONFLICT") for t in tokens))
            # An UPDATE or DELETE of several tables (or of a table under an alias) writes any of them.
            for table in write_targets(res.command, res.written, res.tables) if events else ():
                fired = self.fires(table, events)
                if fired is not None:
                    res.raise_to(*fired)
        if kw in _HANDLE_KEYWORDS and not self.mysql and res.cls != "unknown":
            res.handle = _handle(kw, tokens)
            res.hold = kw == "DECLARE" and _holds(tokens)
        self._scan_functions(tokens, res)
        return res

    def _handler(self, kw: str) -> Handler | None:
        if self.mysql:
            return _MYSQL_KEYWORDS.get(kw) or _COMMON_KEYWORDS.get(kw)
        return _PG_KEYWORDS.get(kw) or _COMMON_KEYWORDS.get(kw)

    def _tables_of_command(self, tokens: list[Token], sql: str, res: _Result, database: str | None) -> None:
        """Best effort for statements classified by keyword (DROP TABLE t, TRUNCATE a, b...). When sqlglot
        cannot name the tables, the statement says so, and policies that restrict by table still apply."""
        try:
            root = self._parse(tokens, sql)
        except (ParseError, TokenError, _Unknown, ValueError, IndexError):
            res.tables_complete = False
            return
        if isinstance(root, exp.Command):
            res.tables_complete = False
            return
        self._tables(root, res, database)
        if isinstance(root, exp.Drop | exp.TruncateTable | exp.Alter | exp.Create):
            res.written = list(res.tables)
        if not res.tables:
            res.tables_complete = False

    # --- functions anywhere -----------------------------------------------------------------------

    def _scan_functions(self, tokens: list[Token], res: _Result) -> None:
        for i, tok in enumerate(tokens[:-1]):
            if tokens[i + 1].token_type != TokenType.L_PAREN or tok.token_type in _LITERALS:
                continue
            name = tok.text.lower()
            if name == "set_config" and not self.mysql:
                res.literal_sensitive = True
                # set_config('name', 'value', ...): the name and the value must each be one string literal.
                arg, after_name, value, after_value = (tokens[i + k] if i + k < len(tokens) else None
                                                       for k in (2, 3, 4, 5))
                if arg is None or arg.token_type != TokenType.STRING or after_name is None \
                        or after_name.token_type != TokenType.COMMA:
                    res.raise_to("admin", "set_config with a setting name dbfw cannot read")
                else:
                    readable = value is not None and value.token_type in _STRINGS and after_value is not None \
                        and after_value.token_type in (TokenType.COMMA, TokenType.R_PAREN)
                    if not readable and not _supplied(tokens, i + 4):
                        # A computed value: the server reports some settings back to the client
                        # (application_name), a channel for values that would otherwise be masked or limited.
                        res.raise_to("bulk_export", "set_config with a computed value")
                    res.raise_to(setting_value_class(arg.text, value.text if readable else None,  # type: ignore[union-attr]
                                                     self.server_limits), f"set_config('{arg.text}')")
                continue
            if name in _ADVISORY_LOCKS and not self.mysql and not _all_supplied(tokens, i + 1):
                # The keys of the locks a session holds are readable in pg_locks: keys computed from data
                # carry it past masking and limits.
                res.raise_to("bulk_export", f"{name} with a key computed from data")
                continue
            if name == "pg_notify" and not self.mysql and not (
                    i + 3 < len(tokens) and _supplied(tokens, i + 2) and tokens[i + 3].token_type == TokenType.COMMA
                    and _supplied(tokens, i + 4, end=TokenType.R_PAREN)):
                # The payload reaches every listener, unmasked and uncounted: a computed one is data leaving.
                res.raise_to("bulk_export", "pg_notify with a computed channel or payload")
                continue
            if self.mysql:  # PostgreSQL's calls are resolved against its catalog (SQLClassifier._resolve_calls)
                cls = self.functions.get(name)
                if cls is not None:
                    res.raise_to(cls, f"calls {name}()")

    # --- statements read from the tree ---------------------------------------------------------------

    def _parse(self, tokens: list[Token], sql: str) -> exp.Expression:
        if _bare_joins(tokens) > MAX_BARE_JOINS:
            raise _Unknown(f"more than {MAX_BARE_JOINS} JOINs without ON or USING (sqlglot's reading of them takes "
                           "time exponential in their number): give each JOIN its ON")
        parsed = self.d.parser().parse(_parser_friendly(tokens), sql)
        if len(parsed) != 1 or parsed[0] is None:
            raise _Unknown("not a single statement")
        return parsed[0]

    def _from_tree(self, tokens: list[Token], sql: str, kw: str, database: str | None) -> _Result:
        self.database = database
        if self.mysql and kw == "SELECT" and _has_into_outfile(tokens):
            return _Result("bulk_export", "SELECT", "SELECT ... INTO OUTFILE/DUMPFILE writes a server file")
        into_variables = self.mysql and _into_variables(tokens)
        positioned = kw in ("UPDATE", "DELETE") and _positioned(tokens)
        if positioned:
            # UPDATE/DELETE ... WHERE CURRENT OF cursor changes exactly the cursor's row. sqlglot does not
            # read the clause: the statement is read without it, then judged whole (target, RETURNING...).
            tokens = _without_current_of(tokens)
        if self.mysql:
            tokens = _mysql_parser_friendly(tokens)
        replace = kw == "REPLACE"
        if replace:  # MySQL's REPLACE is INSERT that deletes conflicting rows first
            first = tokens[0]
            tokens = [Token(TokenType.INSERT, "INSERT", first.line, first.col, first.start, first.end), *tokens[1:]]
            kw = "INSERT"
        root = self._parse(tokens, sql)
        if replace and isinstance(root, exp.Insert) and not _bounded_rows(root.expression):
            return self._replace_from_query(root, database)
        if not self.mysql and next(root.find_all(exp.Placeholder), None) is not None:
            raise _Unknown("? is an operator in PostgreSQL, not a parameter")
        res = _Result("read", kw)
        if isinstance(root, exp.Query | exp.Values) and kw in ("SELECT", "WITH", "VALUES", "TABLE", "("):
            res.command = "SELECT" if kw in ("WITH", "(", "TABLE") else kw
            if any(True for _ in root.find_all(exp.Lock)):
                res.raise_to("write", "locks rows (FOR UPDATE/SHARE)")
        elif isinstance(root, exp.Insert) and kw in ("INSERT", "WITH"):
            res.cls, res.command = "write", "INSERT"
        elif isinstance(root, exp.Update | exp.Delete) and kw in ("UPDATE", "DELETE", "WITH"):
            res.command = "UPDATE" if isinstance(root, exp.Update) else "DELETE"
            res.cls = "write"
        elif isinstance(root, exp.Merge) and kw in ("MERGE", "WITH"):
            res.cls, res.command = "write", "MERGE"
        else:
            raise _Unknown(f"{kw} parsed as {type(root).__name__}, which dbfw does not understand")
        # Every data-changing statement anywhere in the tree counts: CTEs, subqueries, INSERT ... SELECT.
        for node in root.find_all(exp.Insert, exp.Update, exp.Delete, exp.Merge):
            if node.find_ancestor(exp.Merge) is not None:
                continue  # a MERGE's actions: the MERGE is judged as a whole
            if (positioned and node is root) or self._restricted(node, res):
                res.raise_to("write", f"{type(node).__name__.upper()} changes data")
            else:
                res.raise_to("destructive_write", f"{type(node).__name__.upper()} changes rows its predicate "
                             "does not provably limit")
        if not self.mysql and any(True for _ in root.find_all(exp.Into)):
            res.raise_to("ddl", "SELECT INTO creates a table")
        self._tables(root, res, database)
        res.functions = sorted({(f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower()
                                for f in root.find_all(exp.Func)})
        res.anonymous.update(pglex.downcase(f.name) for f in root.find_all(exp.Anonymous))
        if into_variables:
            res.raise_to("bulk_export", "values stored into the session (INTO @v, @v := ..., LAST_INSERT_ID(expr)): "
                         "out of reach of result limits and masking")
        if self.mysql:
            self._mysql_routines(tokens, root, database, res)
        elif self.views_named:
            self._pg_views(root, res)
        return res

    def _pg_views(self, root: exp.Expression, res: _Result) -> None:
        """Reading a view runs what its definition calls (a volatile function that writes): as risky as
        that. Unqualified, a view of that name in any schema counts (the search path decides which)."""
        for table in root.find_all(exp.Table):
            if not table.name or isinstance(table.this, exp.Func) or (not table.db and _cte_in_scope(table)):
                continue
            name, schema = _pg_folded(table.this), _pg_folded(table.args.get("db")) or None
            for key in self.views_named.get(name, ()):
                if schema in (None, key[0]):
                    res.raise_to(*self.view_class(*key))

    def _mysql_routines(self, tokens: list[Token], root: exp.Expression, database: str | None, res: _Result) -> None:
        """What the stored functions a statement calls, and the views it reads, run."""
        for name in _mysql_unknown_calls(tokens, root, self.stored_names):
            res.raise_to(*self.stored(name))
        for table in root.find_all(exp.Table):
            key = ((table.db or database or "").lower(), table.name.lower())
            if key in self.views:  # reading a view runs what its definition calls
                res.raise_to(*self.view_class(*key))

    def _replace_from_query(self, root: exp.Insert, database: str | None) -> _Result:
        # Each row it is given replaces the row with its key: from a query, as many rows as the query has.
        res = _Result("destructive_write", "REPLACE", "REPLACE ... SELECT overwrites every row its query returns "
                      "a key of")
        self._tables(root, res, database)
        return res

    def _restricted(self, node: exp.Expression, res: _Result) -> bool:
        """Whether the statement provably changes only rows its predicate names (see _Restriction)."""
        if next(node.find_all(exp.Limit), None) is not None:
            # A LIMIT's value decides whether a source is bounded (_limited): never cached by shape, or
            # LIMIT 1 seen first would prove LIMIT 100000000 bounded too.
            res.literal_sensitive = True
        if isinstance(node, exp.Insert):
            conflict = node.args.get("conflict")
            if conflict is None or "UPDATE" not in str(conflict.args.get("action") or "").upper():
                return True  # it only adds rows
            # ON CONFLICT DO UPDATE changes as many existing rows as it is given: bounded by VALUES/parameters.
            return _bounded_rows(node.expression)
        if isinstance(node, exp.Merge):
            if not any(isinstance(w, exp.When) and (w.args.get("then") is not None)
                       and not isinstance(w.args.get("then"), exp.Insert) for w in node.find_all(exp.When)):
                return True  # WHEN NOT MATCHED THEN INSERT only
            # Each source row may match many target rows: the ON condition must bound the target, by a constant
            # or by equating it with a source of a fixed number of rows.
            return _Restriction(node.this, [node.args.get("using")], res).restricts(node.args.get("on"))
        where = node.args.get("where")
        if where is None:
            return False  # (a LIMIT is no bound: DELETE ... LIMIT 1000, repeated, empties any table)
        if self.mysql:
            return _mysql_restricted(node, where.this, res, _Numbers(self.number_columns, self.database,
                                                                     self.all_columns))
        others = [*(node.args.get("using") or [])]
        from_ = node.args.get("from_") or node.args.get("from")
        if from_ is not None:
            others.append(from_)
        others += node.args.get("joins") or []
        return _Restriction(node.this, others or None, res).restricts(where.this)

    @staticmethod
    def _system_relation(table: exp.Table, written: bool, res: _Result) -> None:
        """Writing any system catalog (pg_settings' update rule included), or reading one that holds
        credentials or server files, is admin."""
        schema = _pg_folded(table.args.get("db"))
        name = _pg_folded(table.this)
        system = catalog.system_relation(schema, name)
        if system is None:
            return
        if written:
            res.raise_to("admin", f"writes the system catalog {system}.{name}")
            return
        sensitive = catalog.CREDENTIAL_RELATIONS if system == "pg_catalog" else catalog.CREDENTIAL_INFORMATION_SCHEMA
        if name in sensitive:
            res.raise_to("admin", f"reads {system}.{name}, which holds credentials, server files or data samples")

    def _qualify(self, table: exp.Table, database: str | None) -> str:
        schema = table.db or (database if self.mysql else self.default_schema)
        parts = [p for p in (table.catalog, schema, table.name) if p]
        return ".".join(parts)

    def _tables(self, root: exp.Expression, res: _Result, database: str | None) -> None:
        seen: dict[str, None] = {}
        for t in root.find_all(exp.Table):
            if not t.name or (not t.db and _cte_in_scope(t)) or isinstance(t.this, exp.Func):
                continue
            if isinstance(t.parent, exp.Into) and self.mysql:
                continue
            seen[self._qualify(t, database)] = None
            if self.mysql:
                _mysql_system_relation(t, database, res)
            else:
                self._system_relation(t, False, res)
        res.tables = list(seen)
        written: dict[str, None] = dict.fromkeys(res.written)
        for node in root.find_all(exp.Insert, exp.Update, exp.Delete, exp.Merge):
            targets = [node.this, *(node.args.get("tables") or [])]
            for target in targets:
                table = target.this if isinstance(target, exp.Schema) else target
                if isinstance(table, exp.Table) and table.name:
                    written[self._qualify(table, database)] = None
                    if self.mysql:
                        _mysql_system_relation(table, database, res)
                    else:
                        self._system_relation(table, True, res)
        into = root.args.get("into") if isinstance(root, exp.Select) else None
        if into is not None:
            for t in into.find_all(exp.Table):
                if not self.mysql:
                    written[self._qualify(t, database)] = None
        res.written = list(written)


# MySQL's own schemas: accounts and their password hashes, plugins, stored code (mysql), other sessions'
# statements and the server's internals (performance_schema, sys). Reading or writing them is admin, as
# PostgreSQL's catalogs of credentials are.
_MYSQL_SYSTEM_SCHEMAS = frozenset({"mysql", "performance_schema", "sys"})
_MYSQL_SENSITIVE_INFORMATION = frozenset({"processlist", "innodb_trx", "innodb_locks", "innodb_lock_waits",
                                          "user_statistics", "client_statistics", "thread_pool_queues",
                                          "innodb_buffer_page", "innodb_buffer_page_lru", "user_variables"})


# Words followed by "(" that are syntax, not calls.
_MYSQL_NOT_CALLS = frozenset({
    "in", "values", "value", "exists", "as", "over", "using", "on", "into", "table", "join", "where", "select",
    "from", "with", "recursive", "union", "intersect", "except", "index", "key", "keys", "partition", "against",
    "and", "or", "not", "any", "all", "some", "window", "lateral", "then", "else", "when", "case", "by", "having",
    "limit", "offset", "set", "is", "like", "between", "xor", "distinct", "for", "straight_join", "primary",
    "unique", "foreign", "references", "check", "constraint", "returning", "rlike", "regexp", "escape", "do",
    "call", "cross", "inner", "outer", "left", "right", "natural", "ignore", "force", "use", "grouping", "rows",
    "range", "groups", "array", "of", "json_table", "columns", "path", "nested", "ordinality"})


def _into_variables(tokens: list[Token]) -> bool:
    """SELECT ... INTO @a, @a := ... or LAST_INSERT_ID(expr) anywhere: values kept in the session, out of the
    result (LAST_INSERT_ID() and @@identity read the last one back)."""
    return any(t.token_type == TokenType.COLON_EQ for t in tokens) or any(
        _word(a) == "INTO" and b.token_type == TokenType.PARAMETER for a, b in itertools.pairwise(tokens)) or any(
        _word(a) == "LAST_INSERT_ID" and b.token_type == TokenType.L_PAREN and c.token_type != TokenType.R_PAREN
        for a, b, c in zip(tokens, tokens[1:], tokens[2:], strict=False))


# sqlglot's parser tries every nesting of JOINs still waiting for an ON: its time doubles with each one (16
# take 0.3 s, 31 would take days), on the thread that relays every session.
MAX_BARE_JOINS = 10


def _bare_joins(tokens: Sequence[Token]) -> int:
    """The most JOINs (not CROSS or NATURAL, which take no ON) waiting for their ON or USING (...) at once,
    counted per parenthesis level: an ON or USING elsewhere (JSON_TABLE's NULL ON EMPTY, CONVERT(x USING
    utf8), another level's) closes none of them."""
    pending: dict[int, int] = {}
    depth = most = 0
    previous = ""
    for i, tok in enumerate(tokens):
        tt = tok.token_type
        if tt == TokenType.L_PAREN:
            depth += 1
        elif tt == TokenType.R_PAREN:
            pending.pop(depth, None)
            depth -= 1
        elif tt in (TokenType.JOIN, TokenType.STRAIGHT_JOIN) and previous not in ("CROSS", "NATURAL"):
            pending[depth] = pending.get(depth, 0) + 1
            most = max(most, sum(pending.values()))
        elif pending.get(depth) and (tt == TokenType.ON or (
                tt == TokenType.USING and i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.L_PAREN)):
            pending[depth] -= 1
        previous = tok.text.upper() if tt not in _STRINGS else ""
    return most


def _unseen_function(name: str) -> tuple[str, str]:
    return "procedural", f"calls {name}(), not a built-in function: a stored function runs a body dbfw does not see"


def _mysql_unknown_calls(tokens: list[Token], root: exp.Expression | None,
                         stored: Container[str] = frozenset()) -> list[str]:
    """Names called in a MySQL statement that may not be MariaDB built-ins: stored functions (``stored``: the
    catalog's function names, lower case; such a name may shadow a built-in of another sql_mode, to_date,
    trunc), a quoted or unusual name, a name sqlglot knows from another dialect, or a schema-qualified call,
    which is never a built-in."""
    names = set() if root is None else \
        {t.name for t in root.find_all(exp.Table)} | {a.name for a in root.find_all(exp.TableAlias)}
    # A table's name before "(" is no call (INSERT INTO t (a), REFERENCES t (id)), unless the parser read one.
    calls = set() if root is None else {a.name.lower() for a in root.find_all(exp.Anonymous)} | {
        f.sql_name().lower() for f in root.find_all(exp.Func)}
    names = {n.lower() for n in names if n} - calls
    found: list[str] = []
    for i, tok in enumerate(tokens[:-1]):
        if tokens[i + 1].token_type != TokenType.L_PAREN or tok.token_type in _LITERALS:
            continue
        name = tok.text.lower().strip("`")
        if name in names:  # (a name the parser read as a call, under an alias of that name too, is none)
            continue
        if i > 1 and tokens[i - 1].token_type == TokenType.DOT:  # schema.f(: never a built-in
            found.append(f"{tokens[i - 2].text}.{tok.text}")
        elif name in stored:
            found.append(tok.text)
        elif not re.fullmatch(r"[a-z_$][a-z0-9_$]*", name):
            if tok.token_type in (TokenType.VAR, TokenType.IDENTIFIER):  # `x-y`(, fé(: a name, never a built-in
                found.append(tok.text)
        elif name not in _MYSQL_NOT_CALLS and name not in MYSQL_BUILTINS:
            found.append(tok.text)
    return sorted(set(found))


def _mysql_system_relation(table: exp.Table, database: str | None, res: _Result) -> None:
    schema = (table.db or database or "").lower()
    name = table.name.lower()
    if schema in _MYSQL_SYSTEM_SCHEMAS:
        res.raise_to("admin", f"{schema}.{name} is the server's own (accounts, plugins, other sessions)")
    elif schema == "information_schema" and name in _MYSQL_SENSITIVE_INFORMATION:
        res.raise_to("admin", f"information_schema.{name} shows other sessions' statements or data")


_CAST_MARKERS = frozenset({TokenType.DCOLON, TokenType.ALIAS})


def _parser_friendly(tokens: list[Token]) -> list[Token]:
    """Work around sqlglot's parser where it cannot read valid SQL whose meaning dbfw does not need.

    Array casts to types sqlglot does not know (``$1::oid[]``, ``x::regclass[]``, asyncpg's own
    introspection query) do not parse; the cast's type never changes a classification, so such a type
    is read as TEXT. Likewise the sign of a number in a type modifier. Only tokens of the cast's type are
    touched, so nothing the classifier checks is lost.
    """
    out = tokens
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if tok.token_type not in _CAST_MARKERS:
            continue
        j = i + 1
        while j + 1 < n and tokens[j].token_type == TokenType.VAR and tokens[j + 1].token_type == TokenType.DOT:
            j += 2
        if j + 2 < n and tokens[j].token_type not in _LITERALS and tokens[j + 1].token_type == TokenType.L_BRACKET \
                and tokens[j + 2].token_type == TokenType.R_BRACKET:
            if out is tokens:
                out = list(tokens)
            for k in range(i + 1, j + 1):
                t = tokens[k]
                out[k] = Token(TokenType.TEXT if k == j else TokenType.SPACE, "TEXT" if k == j else " ", t.line,
                               t.col, t.start, t.end)
        # A type modifier of numbers only (numeric(2,-3): a negative scale sqlglot does not read): the sign
        # of a number in it changes no classification.
        if j + 3 < n and tokens[j + 1].token_type == TokenType.L_PAREN:
            k = j + 2
            while k < n and tokens[k].token_type in (TokenType.NUMBER, TokenType.COMMA, TokenType.DASH):
                k += 1
            if k < n and tokens[k].token_type == TokenType.R_PAREN:
                for m in range(j + 2, k):
                    if tokens[m].token_type == TokenType.DASH:
                        if out is tokens:
                            out = list(tokens)
                        t = tokens[m]
                        out[m] = Token(TokenType.SPACE, " ", t.line, t.col, t.start, t.end)
    if out is not tokens:
        out = [t for t in out if t.token_type != TokenType.SPACE]
    return out


def _cte_in_scope(table: exp.Table) -> bool:
    """Whether an unqualified table name refers to a CTE: one defined by a WITH of an enclosing query, the
    reference not inside that CTE's own definition (unless the WITH is RECURSIVE). A CTE of the same name
    elsewhere in the statement does not hide a table."""
    name = table.name
    path: set[int] = set()  # the nodes between the table and the query whose WITH is looked at
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            ctes = with_.expressions
            # Inside the definition of CTE k, a non-recursive WITH shows only the CTEs before k.
            inside = next((k for k, cte in enumerate(ctes) if id(cte) in path), len(ctes))
            visible = ctes if with_.args.get("recursive") else ctes[:inside]
            if any(cte.alias_or_name == name for cte in visible):
                return True
        path.add(id(node))
        node = node.parent
    return False


def _pg_folded(identifier: exp.Expression | None) -> str:
    """A name as PostgreSQL reads it: unquoted names fold to lower case (ASCII rules), quoted stay exact."""
    if not isinstance(identifier, exp.Identifier):
        return ""
    name = identifier.this
    return name if identifier.quoted else pglex.downcase(name)

_CONSTANT_BLOCKERS = (exp.Column, exp.Query, exp.Star, exp.AggFunc, exp.Window)


def _constant(node: exp.Expression | None) -> bool:
    """The same value for every row: literals, parameters, casts and arithmetic of them only. A function call
    is not: random() and its kind are evaluated again for every row."""
    if node is None:
        return False
    for part in node.walk():
        if isinstance(part, _CONSTANT_BLOCKERS) or (isinstance(part, exp.Func) and not isinstance(part, exp.Cast)):
            return False
    return True


def _bounded_rows(source: exp.Expression | None) -> bool:
    """A row source of a fixed number of rows written in the statement: VALUES, or a SELECT of constants
    without FROM (parameters included)."""
    while isinstance(source, exp.Subquery | exp.Paren):
        source = source.this
    if isinstance(source, exp.Values):
        return all(_constant(row) for row in source.expressions)
    if isinstance(source, exp.Select):
        return _limited(source) and all(_constant(e) for e in source.expressions)
    return False


_BOUNDED_ROWS = 1000  # LIMIT n bounds a join only for small n: LIMIT 100000000 bounds nothing


def _limited(query: exp.Expression) -> bool:
    """A query that returns at most a constant number of rows."""
    while isinstance(query, exp.Subquery | exp.Paren):
        query = query.this
    if isinstance(query, exp.Values):
        return True
    if isinstance(query, exp.Select) and query.args.get("from_") is None and query.args.get("from") is None:
        # One row, unless a function in it returns a set (generate_series): constants and casts only.
        return all(not isinstance(node, exp.Func) or isinstance(node, exp.Cast) for node in query.walk())
    limit = query.args.get("limit") if isinstance(query, exp.Select) else None
    if limit is None or not isinstance(limit.expression, exp.Literal) or limit.expression.is_string:
        return False
    try:
        return int(limit.expression.this) <= _BOUNDED_ROWS
    except ValueError:
        return False


class _Numbers:
    """The catalog's columns (MySQL) for a statement in ``database``: which exist, and which a number compares
    with exactly."""

    __slots__ = ("all", "columns", "database")

    def __init__(self, columns: frozenset[tuple[str, str, str]], database: str | None,
                 all_columns: frozenset[tuple[str, str, str]] = frozenset()):
        self.columns, self.database, self.all = columns, (database or "").lower(), all_columns

    def exact(self, table: exp.Table, column: str) -> bool:
        schema = (table.db or self.database).lower()
        return (schema, table.name.lower(), column.lower()) in self.columns

    def exists(self, table: exp.Table, column: str) -> bool:
        schema = (table.db or self.database).lower()
        return (schema, table.name.lower(), column.lower()) in self.all


def _mysql_restricted(node: exp.Expression, where: exp.Expression, res: _Result, numbers: _Numbers) -> bool:
    """MySQL's DELETE/UPDATE, one table or several: every table it writes must be restricted on its own
    columns (DELETE t1, t2 FROM ... / UPDATE a, b SET b.x = ...: each target, not just the first table)."""
    source = node.this
    sources = [source, *(source.args.get("joins") or [])] if isinstance(source, exp.Table) else [source]
    several = len(sources) > 1 or bool(node.args.get("from") or node.args.get("from_"))
    # Names as written: with lower_case_table_names=0 the server tells `v` from `V` (dbfw never folds them).
    if isinstance(node, exp.Delete):
        targets = {t.alias_or_name for t in node.args.get("tables") or [source] if isinstance(t, exp.Table)}
    else:
        targets = set()
        for assignment in node.expressions:
            column = assignment.this if isinstance(assignment, exp.EQ) else None
            if not isinstance(column, exp.Column) or (several and not column.table):
                return False  # (an unqualified column of several tables: which one it writes, dbfw cannot tell)
            targets.add(column.table or source.alias_or_name)
    if not targets:
        return False
    if not several:
        return _Restriction(source, None, res, numbers=numbers).restricts(where)
    for name in targets:
        proof = _Restriction(source, sources, res, names={name}, numbers=numbers)
        proof.unqualified_ok = False
        if not proof.restricts(where):
            return False
    return True


class _Restriction:
    """Proves that a predicate limits the rows of one target table: a conjunct picks values of a column of the
    target (= a constant, IN (...), = ANY(ARRAY[...])); an OR restricts only if every branch does. A range is
    no proof: ``id > 0``, ``id BETWEEN -2147483648 AND 2147483647``, ``name LIKE 'n%'`` reach every row, and
    so does ``id > 0 OR id <= 0``, two ranges that each look bounded; nor is ``= ANY($1)`` (any number of
    values). A column counts
    as the target's when qualified by its name or alias, or when unqualified and no other table is in scope.
    One pass over the predicate, no rewriting."""

    def __init__(self, target: exp.Expression, others: object, res: _Result, names: set[str] | None = None,
                 numbers: _Numbers | None = None):
        # MySQL (``numbers`` given) compares a string column with a number as numbers: name = 0 matches every
        # name that does not start with a digit. A string literal picks values on any column; a number or a
        # parameter only on a column the catalog says a number compares with exactly.
        self.numbers = numbers
        self.mysql = numbers is not None
        # PostgreSQL folds unquoted names to lower case; MySQL's aliases are compared as written (the server
        # may tell `v` from `V`).
        self.fold: Callable[[str], str] = (lambda name: name) if self.mysql else str.lower
        self.tables: dict[str, exp.Table] = {}  # alias -> table, for the columns' types (MySQL)
        for t in [target, *(others if isinstance(others, list) else [])]:
            for found in [t] if isinstance(t, exp.Table) else (t.find_all(exp.Table) if t is not None else []):
                self.tables.setdefault(self.fold(found.alias_or_name), found)
        table = target.this if isinstance(target, exp.Schema) else target
        if names is None:
            # With an alias, the table's own name no longer refers to it (it may name another source).
            names = {self.fold(table.alias_or_name)} if isinstance(table, exp.Table) and table.alias_or_name \
                else set()
        self.names = names
        self.unqualified_ok = not others
        self.res = res
        self.target = target
        # Other row sources by alias, and those of a fixed number of rows (a CTE or subquery with a constant
        # LIMIT, VALUES): they cannot refer to the target, so a join on them bounds it.
        self.others: set[str] = set()
        self.bounded: set[str] = set()
        if others:
            ctes = {c.alias_or_name.lower(): c.this for c in target.root().find_all(exp.CTE)}
            for other in others if isinstance(others, list) else [others]:
                if other is None:
                    continue
                for source in [other] if isinstance(other, exp.Table | exp.Subquery | exp.Values) else \
                        other.find_all(exp.Table, exp.Subquery, exp.Values):
                    alias = self.fold(source.alias_or_name)
                    self.others.add(alias)
                    if isinstance(source, exp.Values):
                        body: exp.Expression | None = source
                    else:
                        body = source.this if isinstance(source, exp.Subquery) else ctes.get(source.name.lower())
                    if isinstance(source, exp.Table) and source.db:
                        body = None
                    if body is not None and _limited(body):
                        self.bounded.add(alias)

    def restricts(self, cond: exp.Expression | None) -> bool:
        if cond is None:
            return False
        if isinstance(cond, exp.Paren):
            return self.restricts(cond.this)
        if isinstance(cond, exp.And):
            conjuncts = list(cond.flatten())
            if any(self.restricts(c) for c in conjuncts):
                return True
            return any(self._joined_to_restricted(c, conjuncts) for c in conjuncts)
        if isinstance(cond, exp.EQ) and self._joined_to_restricted(cond, [cond]):
            return True
        if isinstance(cond, exp.Or):
            return self.restricts(cond.left) and self.restricts(cond.right)
        if isinstance(cond, exp.NullSafeEQ) and not any(
                isinstance(side, exp.Literal) for side in (cond.left, cond.right)):
            return False  # <=> NULL (or a parameter bound to NULL) picks every row where the column is NULL
        if isinstance(cond, exp.EQ | exp.NullSafeEQ):
            left, right = cond.left, cond.right
            if self._target_column(left) and self._constant_or_any(right, left):
                return True
            return self._target_column(right) and self._constant_or_any(left, right)
        if isinstance(cond, exp.In):
            return self._target_column(cond.this) and not cond.args.get("query") and bool(cond.expressions) \
                and all(self._value(e, cond.this) for e in cond.expressions)
        return False

    def _number_column(self, column: exp.Expression) -> bool:
        """MySQL: a column the catalog says numbers compare with exactly (see _Numbers)."""
        if self.numbers is None or not isinstance(column, exp.Column):
            return False
        table = self.tables.get(self.fold(column.table)) if column.table else self.target
        table = table.this if isinstance(table, exp.Schema) else table
        return isinstance(table, exp.Table) and self.numbers.exact(table, column.name)

    def _value(self, node: exp.Expression, column: exp.Expression) -> bool:
        """A value that picks the same rows whatever the row: see _constant. MySQL: a string literal, or a
        number or parameter compared with a column the catalog says numbers compare with exactly."""
        numbers = self.numbers
        if numbers is None:
            return _constant(node)
        if isinstance(node, exp.Literal) and node.is_string:
            return True
        plain = node.this if isinstance(node, exp.Neg) else node
        if not (isinstance(plain, exp.Placeholder) or (isinstance(plain, exp.Literal) and not plain.is_string)):
            return False
        return self._number_column(column)

    def _joined_to_restricted(self, cond: exp.Expression, conjuncts: list[exp.Expression]) -> bool:
        """target.col = other.col, where the other source has a fixed number of rows or is itself restricted
        by a constant in the same conjunction: the target's rows are bounded by the other's."""
        if not isinstance(cond, exp.EQ):
            return False
        for mine, theirs in ((cond.left, cond.right), (cond.right, cond.left)):
            if not (self._target_column(mine) and isinstance(theirs, exp.Column) and theirs.table):
                continue
            if self.numbers is not None and not self._number_column(mine):
                continue  # MySQL: a string column joined to a number matches every row not starting with a digit
            alias = self.fold(theirs.table)
            if alias not in self.others or alias in self.names:
                continue
            if alias in self.bounded:
                return True
            other = _Restriction(self.target, None, self.res, names={alias}, numbers=self.numbers)
            other.unqualified_ok = False
            other.tables = self.tables
            if any(c is not cond and other.restricts(c) for c in conjuncts):
                return True
        return False

    def _target_column(self, node: exp.Expression) -> bool:
        if not isinstance(node, exp.Column):
            return False
        qualifier = node.table
        if not (self.fold(qualifier) in self.names if qualifier else self.unqualified_ok):
            return False
        if self.numbers is not None:  # MySQL: a column the catalog knows (UTC_DATE is a function there)
            table = self.tables.get(self.fold(qualifier)) if qualifier else self.target
            table = table.this if isinstance(table, exp.Schema) else table
            return isinstance(table, exp.Table) and self.numbers.exists(table, node.name)
        return True

    def _constant_or_any(self, node: exp.Expression, column: exp.Expression) -> bool:
        if self.mysql:
            return self._value(node, column)
        if isinstance(node, exp.Any):
            # = ANY(ARRAY[1, 2, 3]) names its values; = ANY($1) or ANY(a function) may name every row's.
            array = node.this.this if isinstance(node.this, exp.Paren) else node.this
            return isinstance(array, exp.Array) and all(_constant(e) for e in array.expressions)
        return _constant(node)


def _without_current_of(tokens: list[Token]) -> list[Token]:
    """The statement's tokens less its WHERE CURRENT OF cursor clause."""
    for i in range(len(tokens) - 3):
        if _word(tokens[i]) == "WHERE" and _word(tokens[i + 1]) == "CURRENT" and _word(tokens[i + 2]) == "OF":
            return tokens[:i] + tokens[i + 4:]
    return tokens


def _positioned(tokens: list[Token]) -> bool:
    return any(_word(a) == "WHERE" and _word(b) == "CURRENT" and _word(c) == "OF"
               for a, b, c in zip(tokens, tokens[1:], tokens[2:], strict=False))


_MYSQL_MODIFIERS = frozenset({"LOW_PRIORITY", "QUICK", "DELAYED", "HIGH_PRIORITY"})


def _mysql_parser_friendly(tokens: list[Token]) -> list[Token]:
    """MySQL syntax sqlglot's parser does not read, whose meaning the classification does not need:
    statement modifiers (DELETE LOW_PRIORITY QUICK IGNORE) and SELECT ... INTO @a, @b (variables only)."""
    out: list[Token] = []
    i, n = 0, len(tokens)
    first = _word(tokens[0]) if tokens else ""
    while i < n:
        tok = tokens[i]
        w = _word(tok)
        if i > 0 and len(out) <= 4 and w in _MYSQL_MODIFIERS:
            i += 1
            continue
        if i > 0 and first in ("DELETE", "UPDATE") and w == "IGNORE" and len(out) <= 3:
            i += 1
            continue
        if w == "INTO" and i + 1 < n and tokens[i + 1].token_type == TokenType.PARAMETER and first == "SELECT":
            # skip INTO @a [, @b ...]
            j = i + 1
            while j + 1 < n and tokens[j].token_type == TokenType.PARAMETER:
                j += 2
                if j < n and tokens[j].token_type == TokenType.COMMA:
                    j += 1
                else:
                    break
            i = j
            continue
        out.append(tok)
        i += 1
    return out


_COMPOUND_OBJECTS = frozenset({"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"})
_BLOCK_WORDS = frozenset({"END", "IF", "LOOP", "WHILE", "REPEAT", "CASE", "ELSE", "ELSEIF", "THEN", "DO", "BEGIN",
                          "UNTIL"})


def _block_depth(tokens: Sequence[Token]) -> int:
    """BEGIN and CASE open a block; END closes one (END IF/LOOP/WHILE/REPEAT close blocks not counted)."""
    depth = 0
    words = [_word(t) for t in tokens]
    for k, w in enumerate(words):
        if tokens[k].token_type == TokenType.IDENTIFIER:  # `begin`, `end`: names
            continue
        if w in ("BEGIN", "CASE") and not (k > 0 and words[k - 1] == "END"):
            depth += 1
        elif w == "END":
            nxt = words[k + 1] if k + 1 < len(words) else ""
            if nxt not in ("IF", "LOOP", "WHILE", "REPEAT"):
                depth -= 1
    return depth


def _block_depth_sure(tokens: Sequence[Token], header: bool) -> int:
    """_block_depth counting only words that cannot be names: BEGIN and CASE starting a piece or after a
    label, the body's BEGIN in the header piece, END starting a piece (``begin`` and ``end`` are legal
    column names and aliases inside a body: SELECT end FROM t, SELECT 1 AS begin)."""
    depth = 0
    words = [_word(t) if t.token_type != TokenType.IDENTIFIER else "" for t in tokens]
    counted_header = not header
    for k, w in enumerate(words):
        starts = k == 0 or (k > 1 and tokens[k - 1].token_type == TokenType.COLON)
        if w == "BEGIN" and not counted_header:
            counted_header, depth = True, depth + 1
        elif w in ("BEGIN", "CASE") and starts:
            depth += 1
        elif w == "END" and k == 0 and (words[1] if len(words) > 1 else "") not in ("IF", "LOOP", "WHILE", "REPEAT"):
            depth -= 1
    return depth


def _mysql_compound_bounds(tokens: list[Token], bounds: list[tuple[int, int]]) -> list[tuple[int, int, bool]]:
    """MySQL runs CREATE PROCEDURE/FUNCTION/TRIGGER/EVENT ... BEGIN ... END as one statement, semicolons and
    all: join the pieces a plain split made, up to the END that closes the body. The body's end is found
    twice, counting every block word and counting only those that cannot be names; where the two disagree,
    or the body never closes, the server could end it earlier and run what follows as statements of their
    own: such a compound statement (taken to the end of the message) is marked ambiguous."""
    out: list[tuple[int, int, bool]] = []
    i = 0
    while i < len(bounds):
        a, b = bounds[i]
        words = [_word(t) for t in tokens[a:b]]
        if words and words[0] == "CREATE" and "BEGIN" in words and _COMPOUND_OBJECTS & set(words[:12]):
            ends = []
            for counter in (lambda part, head: _block_depth(part), _block_depth_sure):
                depth, j = counter(tokens[a:b], True), i
                while depth > 0 and j + 1 < len(bounds):
                    j += 1
                    depth += counter(tokens[bounds[j][0]:bounds[j][1]], False)
                ends.append((j, depth))
            if ends[0] != ends[1] or ends[0][1] > 0:
                out.append((a, bounds[-1][1], True))
                return out
            j = ends[0][0]
            out.append((a, bounds[j][1], False))
            i = j + 1
        else:
            out.append((a, b, False))
            i += 1
    return out


def _split_semicolons(tokens: list[Token]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for t in tokens:
        if t.token_type == TokenType.SEMICOLON:
            parts.append([])
        else:
            parts[-1].append(t)
    return [p for p in parts if p]


def _strip_block_words(tokens: list[Token]) -> list[Token]:
    i = 0
    while i < len(tokens):
        if _word(tokens[i]) in _BLOCK_WORDS:
            i += 1
        elif i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.COLON:  # a label
            i += 2
        else:
            break
    return tokens[i:]


def _has_into_outfile(tokens: list[Token]) -> bool:
    for a, b in itertools.pairwise(tokens):
        if _word(a) == "INTO" and _word(b) in ("OUTFILE", "DUMPFILE"):
            return True
    return False


# --- keyword handlers -------------------------------------------------------------------------------------


def _copy(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    """COPY target FROM|TO STDIN|STDOUT|'file'|PROGRAM 'cmd' [options], read from the tokens: sqlglot's tree
    is lossy here (PROGRAM, options without WITH)."""
    res.command = "COPY"
    depth, direction, at = 0, "", -1
    for i, tok in enumerate(tokens[1:], 1):
        tt = tok.token_type
        if tt == TokenType.L_PAREN:
            depth += 1
        elif tt == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and _word(tok) in ("FROM", "TO"):
            direction, at = _word(tok), i
            break
    if not direction or at + 1 >= len(tokens):
        raise _Unknown("COPY without FROM or TO")
    source = tokens[1:at]
    if source and source[0].token_type == TokenType.L_PAREN:  # COPY (query) TO ...
        inner = c.classify(source[1:-1], None, None)
        if inner.cls == "unknown":
            raise _Unknown(inner.reason)
        res.tables, res.functions = inner.tables, inner.functions
        res.raise_to(inner.cls, inner.reason)
    elif source:
        name_end = next((k for k, t in enumerate(source) if t.token_type == TokenType.L_PAREN), len(source))
        parts = [t.text for t in source[:name_end] if t.token_type != TokenType.DOT]
        if not parts:
            raise _Unknown("COPY of nothing")
        table = ".".join(parts if len(parts) > 1 else [c.default_schema or "", parts[0]]).lstrip(".")
        res.tables = [table]
        if not c.mysql:
            names = [t.text if t.token_type == TokenType.IDENTIFIER else pglex.downcase(t.text)
                     for t in source[:name_end] if t.token_type != TokenType.DOT]
            relation = exp.Table(this=exp.Identifier(this=names[-1], quoted=True),
                                 db=exp.Identifier(this=names[-2], quoted=True) if len(names) > 1 else None)
            c._system_relation(relation, direction == "FROM", res)
        if direction == "FROM":
            res.written = [table]
    else:
        raise _Unknown("COPY of nothing")
    where = _word(tokens[at + 1])
    if where == "PROGRAM":
        res.raise_to("admin", "COPY ... PROGRAM runs a command on the database server")
    elif where in ("STDIN", "STDOUT"):
        res.raise_to("bulk_import" if direction == "FROM" else "bulk_export", "")
    else:
        res.raise_to("admin", "COPY to or from a file on the database server")


def _fixed(cls: str, reason: str = "") -> Handler:
    def handler(c: _Classifier, tokens: list[Token], res: _Result) -> None:
        res.cls, res.reason = cls, reason

    return handler


_CREATE_SKIP = {"OR", "REPLACE", "TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL", "UNIQUE", "MATERIALIZED",
                "RECURSIVE", "TRUSTED", "PROCEDURAL", "DEFAULT", "CONSTRAINT", "DEFINER", "=", "SQL", "SECURITY",
                "ALGORITHM", "UNDEFINED", "MERGE", "TEMPTABLE", "INVOKER", "IF", "NOT", "EXISTS", "ONLINE",
                "OFFLINE", "AGGREGATE", "SQL SECURITY"}
_PRIVILEGE_OBJECTS = {"ROLE", "USER", "GROUP"}
_PROCEDURAL_OBJECTS = {"FUNCTION", "PROCEDURE", "TRIGGER", "EVENT"}
_ADMIN_OBJECTS = {"SERVER", "LANGUAGE", "SUBSCRIPTION", "PUBLICATION", "TABLESPACE", "FOREIGN", "LOGFILE"}


def _object_word(tokens: list[Token]) -> tuple[str, int]:
    i = 1
    while i < len(tokens):
        w = _word(tokens[i])
        if w in _CREATE_SKIP or (w.startswith("`") and i > 1) or tokens[i].token_type == TokenType.PARAMETER:
            i += 1
            continue
        prev = tokens[i - 1]
        if _word(prev) in ("DEFINER", "=") or prev.token_type == TokenType.PARAMETER:  # DEFINER = `u`@`host`
            i += 1
            continue
        return w, i
    return "", i


def _create(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    obj, _ = _object_word(tokens)
    res.command = "CREATE"
    words = [_word(t) for t in tokens]
    if obj in ("FUNCTION", "PROCEDURE") and (
            "SONAME" in words or any(a == "LANGUAGE" and b.strip("'\"").upper() in ("C", "INTERNAL")
                                     for a, b in zip(words, [t.text for t in tokens[1:]], strict=False))):
        res.cls, res.reason = "admin", "the function loads a shared library into the server"
    elif obj in _PRIVILEGE_OBJECTS or (obj == "USER" and _word(tokens[min(len(tokens) - 1, 2)]) == "MAPPING"):
        res.cls = "privilege"
    elif obj == "TRIGGER" and not c.mysql:
        res.cls = "ddl"  # a PostgreSQL trigger attaches an existing function; it holds no code itself
    elif obj in _PROCEDURAL_OBJECTS or obj == "RULE":
        res.cls = "procedural"
    elif obj in _ADMIN_OBJECTS:
        res.cls = "admin"
    elif obj:
        res.cls = "ddl"
    else:
        raise _Unknown("CREATE of nothing dbfw recognises")


def _alter(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    obj, _ = _object_word(tokens)
    res.command = "ALTER"
    if obj == "SYSTEM" or obj == "INSTANCE":
        res.cls, res.reason = "admin", "ALTER SYSTEM changes the server's configuration"
    elif obj in _PRIVILEGE_OBJECTS or obj == "PRIVILEGES":
        res.cls = "privilege"
    elif obj in _PROCEDURAL_OBJECTS:
        res.cls = "procedural"
    elif obj in _ADMIN_OBJECTS:
        res.cls = "admin"
    elif obj:
        res.cls = "ddl"
    else:
        raise _Unknown("ALTER of nothing dbfw recognises")


def _drop(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    obj, _ = _object_word(tokens)
    res.command = "DROP"
    if obj in _PRIVILEGE_OBJECTS or obj == "OWNED":
        res.cls = "privilege"
    elif obj:
        res.cls = "ddl"
    else:
        raise _Unknown("DROP of nothing dbfw recognises")


def _set(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    """SET in all its forms. Changing who the session is: privilege; harmless settings: session."""
    w = _words(tokens, 6)
    res.command = "SET"
    i = 1
    if w[1] in ("SESSION", "LOCAL", "GLOBAL", "PERSIST", "PERSIST_ONLY") and w[2] not in ("", "=", "TO"):
        if w[1] in ("GLOBAL", "PERSIST", "PERSIST_ONLY"):
            res.cls, res.reason = "admin", f"SET {w[1]} changes the server for everyone"
            return
        i = 2
    head = _word(tokens[i]) if i < len(tokens) else ""
    nxt = _word(tokens[i + 1]) if i + 1 < len(tokens) else ""
    if head in ("ROLE", "PASSWORD") or (head == "SESSION" and nxt == "AUTHORIZATION") or head == "AUTHORIZATION" \
            or (head == "DEFAULT" and nxt == "ROLE"):
        res.cls, res.reason = "privilege", "changes the session's identity or credentials"
        return
    if head in ("TRANSACTION", "CONSTRAINTS", "CHARACTERISTICS") or (head == "SESSION" and nxt == "CHARACTERISTICS"):
        res.cls = "transaction"
        _read_write(tokens, res)
        if c.mysql and any(_word(t) == "UNCOMMITTED" for t in tokens):
            res.raise_to("admin", "READ UNCOMMITTED reads other sessions' uncommitted rows")
        return
    if c.mysql and (head in ("NAMES", "CHARSET") or (head == "CHARACTER" and nxt == "SET")):
        _mysql_set_names(c, tokens[i:], res)
        return
    if head in ("NAMES", "CHARSET") or (head == "CHARACTER" and nxt == "SET") or (head == "TIME" and nxt == "ZONE") \
            or (head == "SCHEMA" and not c.mysql):
        res.cls = "session"
        if head == "NAMES" and not c.mysql and i + 1 < len(tokens):
            res.literal_sensitive = True
            res.cls = setting_value_class("client_encoding", tokens[i + 1].text)
        return
    if c.mysql:
        _mysql_set_assignments(c, tokens[i:], res)
        return
    name_tokens = []
    j = i
    while j < len(tokens) and _word(tokens[j]) not in ("=", "TO"):
        name_tokens.append(tokens[j].text)
        j += 1
    if j >= len(tokens) or not name_tokens:
        raise _Unknown("SET without a value")
    name = "".join(name_tokens)
    value = [t.text.lower() for t in tokens[j + 1:]]
    res.literal_sensitive = True  # SET statement_timeout = 0 and = 5000 are different classes
    res.cls = setting_value_class(name, "".join(t.text for t in tokens[j + 1:]), c.server_limits)
    if name.lower() == "standard_conforming_strings" and value in (["on"], ["true"], ["1"], ["yes"]):
        res.cls = "session"  # the default; turning it off would make the server read strings differently
    if res.cls != "session":
        res.reason = f"SET {''.join(name_tokens)} is not a harmless setting"


# The character sets dbfw reads text in exactly as the server does: anything else (a number naming a
# collation, a variable, an expression) could be GBK, where a backslash hides inside a character.
# Character sets a session may switch to through dbfw. latin1 is read (LEX_MYSQL_LATIN1) only when the session
# starts in it: switching to it mid-session is admin.
_MYSQL_SAFE_CHARSETS = frozenset({"utf8", "utf8mb3", "utf8mb4", "ascii", "binary"})


def _safe_charset(words: list[str], latin1: bool = False) -> bool:
    """A SET's value (its tokens' texts) is one character set or collation name dbfw reads exactly (latin1 too
    in a session read as latin1 already)."""
    name = words[0].strip("'\"`").lower().split("_")[0] if len(words) == 1 else ""
    return name in _MYSQL_SAFE_CHARSETS or (latin1 and name == "latin1")
# How the server reads the text a client sends, and how it writes results and messages back: in another
# character set (filename writes ' as @0027) a message's quoted values would not look quoted to masking.
_MYSQL_CHARSET_SETTINGS = frozenset({"character_set_client", "character_set_connection", "collation_connection",
                                     "names", "character_set_results"})


def _plain_value(tokens: list[Token]) -> bool:
    """One literal, word or keyword (ON, DEFAULT, 'READ-COMMITTED', 1000), or a negative number."""
    if len(tokens) == 2 and tokens[0].token_type == TokenType.DASH and tokens[1].token_type == TokenType.NUMBER:
        return True
    return len(tokens) == 1 and tokens[0].token_type not in (TokenType.PARAMETER, TokenType.L_PAREN)


def _mysql_set_names(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    """SET NAMES cs [COLLATE c], ... / SET CHARACTER SET cs, ...: the character set must be one dbfw reads,
    and every other assignment of the list is judged too."""
    parts = split_top_level(tokens)
    first = parts[0]
    k = 2 if _word(first[0]) == "CHARACTER" else 1
    charset = first[k].text.strip("'\"`").lower() if len(first) > k else ""
    res.cls = "session"
    res.literal_sensitive = True  # SET NAMES 'utf8mb4' and SET NAMES 'gbk' are different classes
    rest = [t.text for t in first[k + 1:]]
    collate_ok = not rest or (len(rest) == 2 and rest[0].upper() == "COLLATE" and _safe_charset(rest[1:], c.latin1))
    if not _safe_charset([charset], c.latin1) or not collate_ok:
        res.raise_to("admin", f"character set {charset or '?'}: a session switches only to utf8mb4, utf8, "
                     "ascii or binary (in others a character can hide a backslash, a quote or a space)")
    if len(parts) > 1:
        rest = _mysql_joined(parts[1:])
        _mysql_set_assignments(c, rest, res)


def _mysql_joined(parts: list[list[Token]]) -> list[Token]:
    """Top-level parts put back as one list with commas between them (as _split_top_level reads them)."""
    out: list[Token] = []
    for part in parts:
        if out:
            out.append(Token(TokenType.COMMA, ","))
        out.extend(part)
    return out


_MYSQL_ISOLATION_LEVELS = frozenset(("read-committed", "repeatable-read", "serializable"))


def _mysql_set_assignments(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    """SET a = 1, @@session.b = 2, @x = expr: every system variable assigned must be harmless."""
    res.cls = "session"
    res.literal_sensitive = True  # a character set is a value: 'utf8mb4' and 'big5' are different classes
    for part in split_top_level(tokens):
        lhs: list[str] = []
        rhs: list[str] = []
        for n, tok in enumerate(part):
            if tok.token_type in (TokenType.EQ, TokenType.COLON_EQ):
                rhs = [t.text.strip("'\"`").lower() for t in part[n + 1:]]
                break
            lhs.append(tok.text.lower())
        if lhs and lhs[0] in ("names", "charset", "character"):
            _mysql_set_names(c, part, res)
            continue
        if not lhs:
            raise _Unknown("SET without a name")
        value = part[len(lhs) + 1:]
        called = _mysql_unknown_calls(value, None, c.stored_names)
        for name in called:
            res.raise_to(*c.stored(name))
        if lhs[0] == "@" or (lhs[0].startswith("@") and not lhs[0].startswith("@@")):
            if "select" in rhs or called:  # (a stored function may read a table: its result is a query's)
                res.raise_to("bulk_export", "a query's result into a variable: out of reach of result limits and "
                             "masking")
            continue  # a user variable; its value is checked like any expression
        if not _plain_value(value):
            # A setting set from an expression can carry any value read from a table (and be read back with
            # @@name): a system variable takes a plain value here.
            res.raise_to("admin", f"SET {' '.join(lhs)} to an expression: settings take plain values through dbfw")
        words = [w for w in lhs if w not in ("@@", ".")]
        scope = words.pop(0) if words and words[0] in ("global", "persist", "persist_only", "session", "local") \
            else "session"
        if scope in ("global", "persist", "persist_only"):
            res.raise_to("admin", f"SET {scope.upper()} changes the server for everyone")
        elif ".".join(words) not in MYSQL_HARMLESS_SETTINGS:
            res.raise_to("admin", f"SET {'.'.join(words)} is not a harmless setting")
        elif ".".join(words) in ("tx_isolation", "transaction_isolation") and \
                (len(rhs) != 1 or rhs[0] not in _MYSQL_ISOLATION_LEVELS):
            # An enum takes its index too (0 is READ-UNCOMMITTED): only these names, spelt out.
            res.raise_to("admin", "an isolation level other than READ-COMMITTED, REPEATABLE-READ or SERIALIZABLE "
                         "(READ UNCOMMITTED reads other sessions' uncommitted rows)")
        elif ".".join(words) in _MYSQL_CHARSET_SETTINGS and not _safe_charset(rhs, c.latin1) and not (
                # results as stored (what Connector/J asks for), or in latin1: quotes stay quotes
                ".".join(words) == "character_set_results" and len(rhs) == 1 and rhs[0].lower() in ("null", "latin1")):
            res.raise_to("admin", f"SET {'.'.join(words)} to {' '.join(rhs) or '?'}: a session switches only to "
                         "utf8mb4, utf8, ascii or binary")


def _reset(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    w = _words(tokens, 3)
    res.command = "RESET"
    if c.mysql:
        res.cls = "admin"  # RESET MASTER / REPLICA / QUERY CACHE
    elif w[1] == "ROLE" or (w[1] == "SESSION" and w[2] == "AUTHORIZATION"):
        res.cls = "privilege"
    elif w[1] == "ALL":
        res.cls = "session"
    elif w[1]:
        # Back to the value the database or role gives: no limit is lifted, no identity changes.
        res.cls = "privilege" if setting_class(tokens[1].text) == "privilege" else "session"
    else:
        raise _Unknown("RESET of nothing")


def _explain(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    res.command = "EXPLAIN"
    analyze = False
    for i, tok in enumerate(tokens[1:], 1):
        w = _word(tok)
        if w in ("ANALYZE", "ANALYSE"):
            analyze = True
        if w in _STATEMENT_START:
            if analyze:  # EXPLAIN ANALYZE runs the statement
                inner = c.classify(tokens[i:], None, None)
                res.cls, res.reason, res.command = inner.cls, inner.reason, inner.command
            elif c.mysql:
                # MariaDB's optimizer runs parts of what it explains (derived tables without FROM, constant
                # subqueries, deterministic functions, assignments to @variables): as risky as the statement.
                inner = c.classify(tokens[i:], None, None)
                res.cls, res.reason = inner.cls, inner.reason and f"EXPLAIN may run parts of it: {inner.reason}"
                res.functions = inner.functions
            return
    if c.mysql and "CONNECTION" in (_word(t) for t in tokens):  # EXPLAIN FOR CONNECTION n: another session's
        res.cls, res.reason = "admin", "EXPLAIN FOR CONNECTION shows another session's statement"
        return
    if c.mysql and len(tokens) > 1:  # EXPLAIN t is DESCRIBE t
        return
    raise _Unknown("EXPLAIN of nothing dbfw recognises")


_HANDLE_KEYWORDS = frozenset({"DECLARE", "FETCH", "MOVE", "CLOSE", "PREPARE", "DEALLOCATE", "DISCARD"})


def _server_name(tok: Token) -> str:
    return tok.text if tok.token_type == TokenType.IDENTIFIER else pglex.truncate(pglex.downcase(tok.text))


def _handle(kw: str, tokens: list[Token]) -> str:
    """The cursor or prepared statement a statement names, as the server names it (see Statement.handle)."""
    if len(tokens) < 2:
        return ""
    if kw in ("FETCH", "MOVE"):  # the cursor comes last in every form
        return _server_name(tokens[-1])
    name = tokens[1]
    if kw == "DEALLOCATE" and _word(name) == "PREPARE" and len(tokens) > 2:
        name = tokens[2]
    if kw in ("CLOSE", "DEALLOCATE") and _word(name) == "ALL" and name.token_type != TokenType.IDENTIFIER:
        return ""
    if kw == "DISCARD":
        return "ALL" if _word(name) == "ALL" else ""
    return _server_name(name)


def _holds(tokens: list[Token]) -> bool:
    """DECLARE ... WITH HOLD ... FOR: whether the cursor outlives its transaction."""
    for i, tok in enumerate(tokens[2:], 2):
        w = _word(tok)
        if w == "FOR":
            return False
        if w == "HOLD" and _word(tokens[i - 1]) == "WITH":
            return True
    return False


def _declare(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    res.command = "DECLARE"
    for i, tok in enumerate(tokens):
        if _word(tok) == "FOR" and i + 1 < len(tokens):
            inner = c.classify(tokens[i + 1:], None, None)
            res.cls, res.reason = inner.cls, inner.reason
            if res.cls == "unknown":
                raise _Unknown(inner.reason)
            return
    raise _Unknown("DECLARE without FOR")


def _prepare(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    if _word(tokens[1]) == "TRANSACTION" if len(tokens) > 1 else False:
        res.cls, res.command = "transaction", "PREPARE TRANSACTION"
        return
    res.cls, res.command, res.reason = "procedural", "PREPARE", "PREPARE stores SQL text to run later"
    # The statement being prepared counts too (PostgreSQL: PREPARE name AS stmt).
    for i, tok in enumerate(tokens):
        if _word(tok) == "AS" and i + 1 < len(tokens) and _word(tokens[i + 1]) in _STATEMENT_START:
            inner = c.classify(tokens[i + 1:], None, None)
            res.raise_to(inner.cls, inner.reason)
            return


def _start(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    w = _words(tokens, 2)
    if w[1] == "TRANSACTION":
        res.cls, res.command = "transaction", "START TRANSACTION"
        _read_write(tokens, res)
    elif c.mysql and w[1] in ("SLAVE", "REPLICA", "GROUP_REPLICATION"):
        res.cls, res.command = "admin", "START"
    else:
        raise _Unknown("START of nothing dbfw recognises")


def _commit_like(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    res.cls, res.command = "transaction", _word(tokens[0])
    _read_write(tokens, res)
    if not c.mysql and _words(tokens, 2)[1] == "PREPARED":
        res.raise_to("admin", "COMMIT/ROLLBACK PREPARED finishes a prepared transaction, any session's")


def _read_write(tokens: list[Token], res: _Result) -> None:
    """READ WRITE overrides a read-only default an operator set on the database or role."""
    if any(_word(a) == "READ" and _word(b) == "WRITE" for a, b in itertools.pairwise(tokens)):
        res.raise_to("admin", "READ WRITE overrides a read-only default")


# SHOW forms that describe the session's own schema and settings. Any other (PROCESSLIST, ENGINE, BINLOG,
# MASTER, SLAVE, GRANTS FOR someone, CREATE USER...) shows other sessions or accounts: admin.
_MYSQL_SHOW_READ = frozenset({
    "TABLES", "FULL TABLES", "COLUMNS", "FULL COLUMNS", "FIELDS", "FULL FIELDS", "INDEX", "INDEXES", "KEYS",
    "CREATE TABLE", "CREATE VIEW", "CREATE DATABASE", "CREATE SCHEMA", "CREATE SEQUENCE", "DATABASES", "SCHEMAS",
    "TABLE STATUS", "VARIABLES", "SESSION VARIABLES", "LOCAL VARIABLES", "GLOBAL VARIABLES", "STATUS",
    "SESSION STATUS", "GLOBAL STATUS",
    "LOCAL STATUS", "WARNINGS", "ERRORS", "COUNT", "COLLATION", "CHARACTER SET", "CHARSET", "ENGINES",
    "STORAGE ENGINES", "TRIGGERS", "FUNCTION STATUS", "PROCEDURE STATUS", "OPEN TABLES", "PRIVILEGES",
    "TABLE TYPES", "EVENTS", "PROFILE", "PROFILES"})


def _show(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    res.cls, res.command = ("read" if c.mysql else "session"), "SHOW"
    if not c.mysql:
        return
    words = [_word(t) for t in tokens[1:4]]
    form = next((f for f in (" ".join(words[:2]), words[0] if words else "") if f in _MYSQL_SHOW_READ), None)
    if form is None:
        # (SHOW GRANTS too: the account is dbfw's own, and its grant line can carry its password hash.)
        res.cls, res.reason = "admin", f"SHOW {' '.join(words[:2])} shows the server, other sessions or accounts"
    named = {t.text.strip("`").lower() for t in tokens[1:] if t.token_type not in _LITERALS}
    if named & _MYSQL_SYSTEM_SCHEMAS:  # SHOW COLUMNS FROM mysql.user, SHOW TABLES FROM mysql
        res.raise_to("admin", f"SHOW about the {sorted(named & _MYSQL_SYSTEM_SCHEMAS)[0]} schema")
    words_all = [_word(t) for t in tokens]
    if "WHERE" in words_all and any(t.token_type == TokenType.L_PAREN for t in tokens[words_all.index("WHERE"):]):
        # SHOW ... WHERE evaluates an expression: a subquery or a function there runs as in a SELECT.
        res.cls, res.reason = "admin", "SHOW ... WHERE with a call or subquery"


_WEAK_LOCKS = frozenset({"ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE"})


def _lock(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    """LOCK [TABLE] t [IN mode MODE]: ACCESS EXCLUSIVE when no mode is given. Modes stronger than ROW
    EXCLUSIVE block other sessions' writes (or reads), which no row-level write does: admin."""
    res.cls, res.command = "write", "LOCK"
    if c.mysql:
        res.cls, res.reason = "admin", "LOCK TABLES blocks other sessions"
        return
    words = [_word(t) for t in tokens]
    mode = "ACCESS EXCLUSIVE"
    if "IN" in words:
        start = words.index("IN") + 1
        end = words.index("MODE", start) if "MODE" in words[start:] else len(words)
        mode = " ".join(words[start:end])
    if mode not in _WEAK_LOCKS:
        res.cls, res.reason = "admin", f"LOCK in {mode} mode blocks other sessions"


_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}


def _mysql_string_value(raw: str) -> str:
    """A MySQL string literal's value, from its source text with the quotes (backslash escapes on)."""
    quote, body, out, i = raw[0], raw[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_MYSQL_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        elif ch == quote and body[i + 1:i + 2] == quote:
            out.append(quote)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _mysql_sql_text(c: _Classifier, tokens: list[Token], res: _Result, what: str) -> None:
    """The SQL text a MySQL PREPARE ... FROM or EXECUTE IMMEDIATE runs: one string literal is classified as the
    statement it is (at least procedural); anything else (a variable, an expression) is text dbfw cannot see."""
    res.literal_sensitive = True
    if len(tokens) != 1 or tokens[0].token_type not in _STRINGS or c._sql[tokens[0].start] not in "'\"":
        res.unseen = True
        res.raise_to("unknown", f"{what} runs SQL text held in a variable or computed, which dbfw cannot see")
        return
    text = _mysql_string_value(c._sql[tokens[0].start:tokens[0].end + 1])
    cls, why = c.sql_text(text)
    if cls == "unknown":
        res.unseen = True
        res.raise_to("unknown", f"{what} runs SQL text dbfw cannot classify: {why}")
    else:
        res.raise_to(cls, f"{what} runs SQL text that is {cls}" + (f": {why}" if why else ""))


def _mysql_prepare(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    # PREPARE name FROM 'text' | @var | expression
    res.cls, res.command, res.reason = "procedural", "PREPARE", "PREPARE stores SQL text to run later"
    if len(tokens) < 4 or _word(tokens[2]) != "FROM":
        raise _Unknown("PREPARE without FROM")
    _mysql_sql_text(c, tokens[3:], res, "PREPARE")


def _mysql_execute(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    # EXECUTE name [USING ...] runs what PREPARE stored (approved, or seen, then); EXECUTE IMMEDIATE runs its text.
    res.cls, res.command, res.reason = "procedural", "EXECUTE", "EXECUTE runs stored SQL text"
    if len(tokens) < 2 or _word(tokens[1]) != "IMMEDIATE" or tokens[1].token_type == TokenType.IDENTIFIER:
        return
    depth, end = 0, len(tokens)
    for i, tok in enumerate(tokens[2:], 2):
        if tok.token_type == TokenType.L_PAREN:
            depth += 1
        elif tok.token_type == TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and _word(tok) == "USING":
            end = i
            break
    _mysql_sql_text(c, tokens[2:end], res, "EXECUTE IMMEDIATE")


def _load(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    w = _words(tokens, 2)
    if w[1] in ("DATA", "XML"):
        res.cls, res.command = "bulk_import", "LOAD DATA"
        # LOAD DATA [LOW_PRIORITY | CONCURRENT] LOCAL INFILE 'file' ...: the one file the server may ask the
        # client for (Statement.handle); never cached by shape, as the file is a literal.
        words = [_word(t) for t in tokens[:6]]
        if "LOCAL" in words and "INFILE" in words:
            at = words.index("INFILE") + 1
            name = tokens[at] if at < len(tokens) else None
            if name is not None and name.token_type in _STRINGS and words.index("LOCAL") < at and \
                    (at + 1 == len(tokens) or tokens[at + 1].token_type not in _STRINGS):
                res.handle = _mysql_string_value(c._sql[name.start:name.end + 1])
                res.literal_sensitive = True
        into = next((i for i, t in enumerate(tokens) if _word(t) == "TABLE"), None)
        if into is not None and into + 1 < len(tokens):
            end = into + 2
            while end + 1 < len(tokens) and tokens[end].token_type == TokenType.DOT:
                end += 2
            table = ".".join(t.text for t in tokens[into + 1:end:2]).lower()
            if "." not in table and c.database:
                table = f"{c.database.lower()}.{table}"
            res.tables, res.written = [table], [table]
    else:
        res.cls, res.command, res.reason = "admin", "LOAD", "LOAD brings code into the server"


def _mysql_do(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    # MySQL's DO evaluates expressions: read, unless a function it calls is risky or not a built-in.
    res.cls, res.command = "read", "DO"
    if len(tokens) > 1:  # DO evaluates what SELECT would (subqueries, views, functions): as risky
        first = tokens[1]
        inner = c.classify([Token(TokenType.SELECT, "SELECT", first.line, first.col, first.start, first.start),
                            *tokens[1:]], None, None)
        res.raise_to(inner.cls, inner.reason)
    if _into_variables(tokens):
        res.raise_to("bulk_export", "values stored into the session (@v := ..., LAST_INSERT_ID(expr)): out of "
                     "reach of result limits and masking")
    for tok, nxt in itertools.pairwise(tokens[1:]):
        if nxt.token_type == TokenType.L_PAREN and tok.token_type not in _LITERALS \
                and tok.text.lower() not in MYSQL_BUILTINS:
            res.raise_to("procedural", f"DO calls {tok.text}(), not a built-in function")
    for name in _mysql_unknown_calls(tokens[1:], None, c.stored_names):  # a stored function
        res.raise_to(*c.stored(name))


def _use(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    """USE db: the session's database changes when the server says OK (the session follows it)."""
    res.cls, res.command = "session", "USE"
    if len(tokens) != 2:
        raise _Unknown("USE with other than one database name")
    res.handle = tokens[1].text.strip("`")


def _describe(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    """DESCRIBE t is SHOW COLUMNS; DESCRIBE <statement> (ANALYZE ...) is EXPLAIN, which may run it."""
    if len(tokens) > 1 and _word(tokens[1]) in ("SELECT", "DELETE", "UPDATE", "INSERT", "REPLACE", "ANALYZE",
                                                 "FORMAT", "EXTENDED", "PARTITIONS", "WITH", "TABLE", "("):
        _explain(c, tokens, res)
        return
    res.cls, res.command = "read", "DESCRIBE"


def _handler_statement(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    # A table handle held across statements, read outside SELECT (and outside its lineage): admin.
    res.cls, res.command, res.reason = "admin", "HANDLER", "HANDLER reads a table outside SELECT"


def _rename(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    res.command = "RENAME"
    res.cls = "privilege" if _words(tokens, 2)[1] == "USER" else "ddl"


def _flush(c: _Classifier, tokens: list[Token], res: _Result) -> None:
    res.cls, res.command = "admin", _word(tokens[0])


_COMMON_KEYWORDS: dict[str, Handler] = {
    "CREATE": _create, "ALTER": _alter, "DROP": _drop, "SET": _set, "EXPLAIN": _explain, "PREPARE": _prepare,
    "START": _start, "BEGIN": _commit_like, "COMMIT": _commit_like, "ROLLBACK": _commit_like,
    "SAVEPOINT": _commit_like, "RELEASE": _commit_like, "GRANT": _fixed("privilege"), "REVOKE": _fixed("privilege"),
    "TRUNCATE": _fixed("destructive_write", "TRUNCATE empties the table"), "CALL": _fixed("procedural"),
    "EXECUTE": _fixed("procedural", "EXECUTE runs stored SQL text"), "DEALLOCATE": _fixed("session"),
    "SHOW": _show, "LOCK": _lock, "ANALYZE": _fixed("admin"), "LOAD": _load,
}
_PG_KEYWORDS: dict[str, Handler] = {
    "COPY": _copy,
    "DO": _fixed("procedural", "DO runs a procedural block"), "END": _commit_like, "ABORT": _commit_like,
    "VACUUM": _fixed("admin"), "ANALYSE": _fixed("admin"), "CHECKPOINT": _fixed("admin"), "REINDEX": _fixed("admin"),
    "CLUSTER": _fixed("admin"), "LISTEN": _fixed("session"), "UNLISTEN": _fixed("session"),
    "NOTIFY": _fixed("session"), "DISCARD": _fixed("session"), "RESET": _reset, "DECLARE": _declare,
    "FETCH": _fixed("read"), "MOVE": _fixed("read"), "CLOSE": _fixed("read"), "COMMENT": _fixed("ddl"),
    "SECURITY": _fixed("ddl"), "REFRESH": _fixed("write"), "REASSIGN": _fixed("privilege"), "IMPORT": _fixed("ddl"),
}
_MYSQL_KEYWORDS: dict[str, Handler] = {
    "USE": _use, "DESCRIBE": _describe, "DESC": _describe, "KILL": _fixed("admin"),
    "FLUSH": _flush, "SHUTDOWN": _fixed("admin"), "RESTART": _fixed("admin"), "INSTALL": _fixed("admin"),
    "UNINSTALL": _fixed("admin"), "OPTIMIZE": _fixed("admin"), "REPAIR": _fixed("admin"), "CHECK": _fixed("admin"),
    "CHECKSUM": _fixed("admin"), "PURGE": _fixed("admin"), "RESET": _reset, "CHANGE": _fixed("admin"),
    "STOP": _fixed("admin"), "RENAME": _rename, "UNLOCK": _fixed("session"), "HANDLER": _handler_statement,
    "LOCK TABLES": _lock, "UNLOCK TABLES": _fixed("session"),
    "DO": _mysql_do, "XA": _fixed("admin"), "CACHE": _fixed("admin"), "BINLOG": _fixed("admin"),
    "HELP": _fixed("read"), "PREPARE": _mysql_prepare, "EXECUTE": _mysql_execute,
}


# --- messages -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ShapeEntry:
    # Per statement: everything but its text and fingerprint, ready to build a Statement from.
    statements: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str, bool, str, bool, bool],
                      ...]
    cls: str

    @classmethod
    def of(cls, results: tuple[_Result, ...]) -> _ShapeEntry:
        frozen = tuple((r.cls, r.command, tuple(r.tables), tuple(r.written), tuple(r.functions), r.reason,
                        r.tables_complete, r.handle, r.hold, r.unseen) for r in results)
        return cls(frozen, riskiest([r.cls for r in results]))


class SQLClassifier:
    """Classifies whole messages for one dialect, with two caches: by exact text, and by shape (literals
    replaced) so that the same statement with other values is classified without parsing again."""

    def __init__(self, dialect: str = "postgres", cache_size: int = 10_000):
        if dialect not in ("postgres", "mysql"):
            raise ValueError(f"unsupported dialect {dialect!r}")
        self.dialect = dialect
        self._c = _Classifier(dialect)
        self.mysql = dialect == "mysql"
        self._c.view_class = self._view
        if self.mysql:
            self._c.stored = self._mysql_stored
        self._c.fires = self._fires
        self._c.sql_text = self._sql_text
        self._lex = LEX_STANDARD  # how the message being classified is read
        # Plain dicts evicting their oldest entry (insertion order): cheaper than LRU bookkeeping per hit.
        self._exact: dict[tuple[str, str | None], Classification] = {}
        self._shapes: dict[tuple[str, str | None], _ShapeEntry] = {}
        self.cache_size = cache_size
        self.max_size = 16 * 1024 * 1024  # characters; a larger text is unknown without being read
        self._functions: FunctionCatalog = SNAPSHOT_ONLY
        self._function_rules = NO_RULES
        self._depth = 0  # SQL function bodies being classified inside a statement
        self.hits = 0
        self.shape_hits = 0
        self.misses = 0

    @property
    def function_rules(self) -> FunctionRules:
        return self._function_rules

    @function_rules.setter
    def function_rules(self, rules: FunctionRules) -> None:
        """Operators' classes for functions: every cached classification may change."""
        self._function_rules = rules
        self._exact.clear()
        self._shapes.clear()

    def _key(self, sql: str, database: str | None, lex: int, functions: FunctionCatalog) -> tuple[Any, ...]:
        mysql = self.dialect == "mysql"
        return sql, database if mysql else None, lex, functions.version

    def cached(self, sql: str, database: str | None = None, lex: int = LEX_STANDARD,
               functions: FunctionCatalog = SNAPSHOT_ONLY) -> Classification | None:
        """The classification of a text seen before, without classifying anything."""
        found = self._exact.get(self._key(sql, database, lex, functions))
        if found is not None:
            self.hits += 1
        return found

    def remember(self, sql: str, database: str | None, lex: int, functions: FunctionCatalog,
                 result: Classification) -> None:
        """Keep a classification made elsewhere (the worker process) as if it had been made here."""
        exact = self._exact
        exact[self._key(sql, database, lex, functions)] = result
        self.misses += 1
        if len(exact) > self.cache_size:
            del exact[next(iter(exact))]

    def unknown(self, sql: str, reason: str, lex: int = LEX_STANDARD) -> Classification:
        return self._unknown(sql, reason, lex)

    def classify(self, sql: str, database: str | None = None, lex: int = LEX_STANDARD,
                 functions: FunctionCatalog = SNAPSHOT_ONLY) -> Classification:
        """``functions``: what the database's functions are (PostgreSQL); classifications are cached per
        version of it."""
        key = self._key(sql, database, lex, functions)
        found = self._exact.get(key)
        if found is not None:
            self.hits += 1
            return found
        (previous, previous_lex), self._functions, self._lex = (self._functions, self._lex), functions, lex
        self._c.server_limits = functions.settings
        self._c.number_columns = functions.number_columns
        self._c.all_columns = functions.columns
        self._c.stored_names, self._c.views = functions.stored_in(key[1]), functions.views
        self._c.views_named = {} if self.mysql else functions.views_named()
        try:
            result = self._classify(sql, key[1], lex, key[3])
            if self.dialect == "mysql":
                result = self._mysql_message(sql, key, lex, result)
        finally:
            self._functions, self._lex = previous, previous_lex
            self._c.server_limits = previous.settings
            self._c.number_columns = previous.number_columns
            self._c.all_columns = previous.columns
            self._c.stored_names, self._c.views = previous.stored_in(self._c.database), previous.views
            self._c.views_named = {} if self.mysql else previous.views_named()
        exact = self._exact
        exact[key] = result
        if len(exact) > self.cache_size:
            del exact[next(iter(exact))]
        return result

    def _mysql_message(self, sql: str, key: tuple[Any, ...], lex: int, result: Classification) -> Classification:
        if has_versioned_comment(sql) and _runs_without_versioned(sql):
            # A server may or may not run a versioned executable comment: both readings, the riskier wins
            # (a text that is nothing but such comments runs nothing on a server that skips them). The
            # statement keeps the text as sent, so an approval binds both readings (see statement_fingerprint).
            other = self._classify(sql, key[1], lex, key[3], versioned=False)
            if RANK[other.cls] > RANK[result.cls]:
                result = other
            if len(result.statements) != 1 or len(other.statements) != 1:
                # Each statement's text would be one reading's: approvals and masking need both.
                return self._unknown(sql, "several statements in one message with versioned executable comments "
                                     "(/*!NNNNN ... */): send one statement per message", lex)
            result = replace(result, statements=(replace(result.statements[0], sql=sql),))
        if any(s.command == "USE" for s in result.statements[:-1]):
            return self._unknown(sql, "USE with more statements after it in one message: each is read in the "
                                 "database the session has when the message arrives", lex)
        return result

    def _tokenize(self, text: str) -> list[Token]:
        try:
            return self._c.tokenizer.tokenize(text)
        except TokenError:
            if self.dialect != "postgres" or "$" not in text:
                raise
        # sqlglot's tokenizer fails on a parameter followed by another without a space ($1,$2), which JDBC
        # and ORMs send: tokenize with a space after each parameter, then put the tokens back in place.
        # Only whitespace is added between tokens, so the tokens are the same.
        padded: list[str] = []
        shifts: list[int] = []  # offsets in the original text after which one space was added
        last = 0
        for m in _PARAMETER.finditer(text):
            padded.append(text[last:m.end()])
            padded.append(" ")
            shifts.append(m.end())
            last = m.end()
        padded.append(text[last:])
        tokens = self._c.tokenizer.tokenize("".join(padded))
        spaces = [offset + i for i, offset in enumerate(shifts)]  # where the added spaces are

        def back(pos: int) -> int:
            return pos - bisect.bisect_left(spaces, pos)

        return [Token(t.token_type, t.text, t.line, t.col, back(t.start), back(t.end), t.comments) for t in tokens]

    def _resolve_calls(self, tokens: tuple[pglex.PgToken, ...], res: _Result) -> None:
        """Every function the statement may call, looked up in the catalog (see dbfw.sql.functions)."""
        catalog, rules = self._functions, self._function_rules
        seen: set[tuple[str | None, str, bool]] = set()
        for index, schema, name, attribute in _calls(tokens):
            if (schema, name, attribute) in seen and name not in SQL_TEXT_FUNCTIONS:
                continue
            seen.add((schema, name, attribute))
            procs = catalog.lookup(schema, name)
            if attribute:
                procs = tuple(p for p in procs if p.takes(1) and p.kind == "f")
            elif not procs:
                named = POSTGRES_FUNCTIONS.get(name)
                if named is not None:  # an extension's function dbfw knows by name (dblink, adminpack)
                    res.raise_to(named, f"calls {name}()")
                elif name in res.anonymous:
                    res.raise_to("procedural", f"calls {name}(), which dbfw does not find in the database's catalog")
                continue
            for proc in procs:
                cls, why = proc_class(proc, rules, self._classify_body, self._depth)
                named = POSTGRES_FUNCTIONS.get(name)
                if named is not None and RANK[named] > RANK[cls]:
                    cls, why = named, f"calls {name}()"
                if proc.builtin and name in SQL_TEXT_FUNCTIONS and not attribute:
                    cls, why = self._sql_text_call(tokens, index, SQL_TEXT_FUNCTIONS[name], cls, res)
                if cls != "read":
                    res.raise_to(cls, why or f"calls {name}()")

    def _sql_text_call(self, tokens: tuple[pglex.PgToken, ...], index: int, position: int, cls: str,
                       res: _Result) -> tuple[str, str]:
        """A function that runs SQL text given as an argument: as risky as that text, if it is a literal."""
        res.literal_sensitive = True
        arg = _argument(tokens, index, position)
        if arg is None or self._depth >= 4:
            return "procedural", f"calls {tokens[index].value}() with SQL text dbfw cannot read"
        inner = self._classify_body(arg, self._depth + 1)
        if inner == "unknown":
            return "procedural", f"calls {tokens[index].value}() with SQL text dbfw cannot classify"
        # The result leaves as one value masking cannot trace back to columns: an export at least.
        return riskiest(["bulk_export", inner]), f"calls {tokens[index].value}() with SQL text that is {inner}"

    def _mysql_stored(self, called: str) -> tuple[str, str]:
        """The class of calling ``called`` (``f`` or ``db.f``), not a MariaDB built-in: a stored function
        of the catalog whose body is one RETURN is as risky as that expression (at least read), read in
        the function's own database and sql_mode; anything else is procedural."""
        schema, _, name = called.rpartition(".")
        schema = schema.strip("`").lower() or (self._c.database or "").lower()
        name = name.strip("`").lower()
        procs = [p for p in self._functions.user.get(name, ()) if p.schema == schema]
        if not procs or any(p.kind != "f" for p in procs):
            return _unseen_function(called)
        classes: list[str] = []
        with self._nested():  # the statement being classified goes on after this call
            for proc in procs:  # (schemas differing only in case: the riskiest)
                if proc.body is None or self._depth >= 4:
                    return "procedural", f"{schema}.{name}() has a body dbfw does not classify (only RETURN " \
                        "<expression>)"
                cls = self._classify_body(proc.body, self._depth + 1, proc.schema, proc.lex)
                if cls == "unknown":
                    return "procedural", f"{schema}.{name}() has a body dbfw cannot classify"
                classes.append(cls)
        cls = riskiest(["read", *classes])
        return cls, f"{schema}.{name}() runs SQL that is {cls}" if cls != "read" else ""

    def _view(self, schema: str, name: str) -> tuple[str, str]:
        """What reading a view runs: its definition's riskiest class, for what it calls (a stored function,
        SLEEP, a volatile function); at least read."""
        definition = self._functions.views.get((schema, name))
        if definition is None or self._depth >= 12:  # (views on views: each level read once per catalog)
            return "procedural", f"the view {schema}.{name} nests deeper than dbfw reads"
        with self._nested():
            cls = self._classify_body(definition, self._depth + 1, schema, LEX_STANDARD)
        if cls == "unknown":
            return "procedural", f"the view {schema}.{name} has a definition dbfw cannot classify"
        if cls in ("read", "session", "transaction"):
            return "read", ""
        return cls, f"reading the view {schema}.{name} runs SQL that is {cls}"

    @contextlib.contextmanager
    def _nested(self) -> Iterator[None]:
        """Classify something a statement runs (a body, a view), then go on with the statement."""
        c = self._c
        state = c._sql, c.database, c.latin1, c.stored_names
        try:
            yield
        finally:
            c._sql, c.database, c.latin1, c.stored_names = state

    def _fires(self, written: str, events: frozenset[str], depth: int = 0) -> tuple[str, str] | None:
        """The riskiest of what writing ``written`` fires (triggers, rules; through a view, what writing the
        tables it reads fires), or None."""
        catalog = self._functions
        if not catalog.triggers_known:
            return "procedural", "dbfw could not read the database's triggers: this write may fire any"
        if not catalog.triggers_visible(written, self.mysql):
            return "procedural", "dbfw's upstream user cannot see this database's triggers (it lacks the TRIGGER " \
                "privilege): this write may fire any"
        found = catalog.fired(written, events, exact=self.mysql)
        bases = self._view_tables(written) if catalog.views else []
        if not found and not bases:
            return None
        if self._depth >= 4 or depth >= 4:
            return "procedural", f"fires triggers nested deeper than dbfw reads ({written})"
        with self._nested():
            results = [trigger_class(t, self.dialect, lambda text, schema, lex: self._classify_body(
                text, self._depth + 1, schema or None, lex), self._trigger_function) for t in found]
            results += [r for base in bases if (r := self._fires(base, events, depth + 1)) is not None]
        return max(results, key=lambda r: RANK[r[0]]) if results else None

    def _view_tables(self, written: str) -> list[str]:
        """A view written through (an updatable view, or one with INSTEAD OF triggers): the tables its
        definition reads, which the write may reach."""
        catalog = self._functions
        schema, _, name = written.lower().rpartition(".")
        if self.mysql:
            keys = [(schema, name)] if (schema, name) in catalog.views else []
        else:
            keys = catalog.views_named().get(name, [])
        tables: list[str] = []
        for key in keys:
            with self._nested():
                result = self.classify(catalog.views[key], key[0], LEX_STANDARD, catalog)
            tables += [t for stmt in result.statements for t in stmt.tables]
        return tables

    def _sql_text(self, text: str) -> tuple[str, str]:
        """SQL text a statement runs, classified as one message in the same database and reading."""
        if self._depth >= 4:
            return "unknown", "nested deeper than dbfw reads"
        saved, self._depth = self._depth, self._depth + 1
        try:
            with self._nested():
                result = self.classify(text, self._c.database, self._lex, self._functions)
        finally:
            self._depth = saved
        if len(result.statements) != 1:
            return "unknown", "several statements"
        stmt = result.statements[0]
        return ("unknown", stmt.reason) if stmt.unseen else (stmt.cls, stmt.reason)

    def _trigger_function(self, schema: str, name: str) -> tuple[str, str]:
        procs = [p for p in self._functions.lookup(schema, name) if p.nargs == 0]
        if not procs:
            return "procedural", f"calls {schema}.{name}(), which dbfw does not find in the catalog"
        results = [proc_class(p, self._function_rules, self._classify_body, self._depth) for p in procs]
        return max(results, key=lambda r: RANK[r[0]])

    def _classify_body(self, body: str, depth: int, database: str | None = None, lex: int = LEX_STANDARD) -> str:
        """The class of SQL text a function runs (a LANGUAGE sql body, the text given to query_to_xml)."""
        text = body.strip()
        upper = text[:12].upper()
        if upper.startswith("BEGIN ATOMIC"):
            text = text[12:].rstrip().removesuffix(";").rstrip()
            if text[-3:].upper() == "END":
                text = text[:-3]
        elif upper.startswith("RETURN"):
            text = "SELECT " + text[6:]
        if not text.strip().strip(";").strip():
            return "read"
        saved = self._depth
        self._depth = depth
        try:
            return self.classify(text, database, lex, self._functions).cls
        finally:
            self._depth = saved

    def _unknown(self, sql: str, reason: str, lex: int) -> Classification:
        self.misses += 1
        stmt = Statement(sql, "unknown", "UNKNOWN", reason=reason, dialect=self.dialect, lex=lex)
        return Classification(self.dialect, (stmt,), "unknown")

    def _results(self, tokens: list[Token], marked: list[tuple[int, int, bool]], text: str, database: str | None,
                 lexed: pglex.Lexed | None) -> tuple[_Result, ...]:
        starts = [t.start for t in lexed.tokens] if lexed is not None else None
        return tuple(_Result("unknown", "CREATE", "where this body ends is ambiguous (a block word used as a name): "
                             "the server could run what follows it as separate statements")
                     if ambiguous else self._classify_bounds(tokens, a, b, text, database, lexed, starts)
                     for a, b, ambiguous in marked)

    def _classify_bounds(self, tokens: list[Token], a: int, b: int, text: str, database: str | None,
                         lexed: pglex.Lexed | None = None, starts: list[int] | None = None) -> _Result:
        chunk = tokens[a:b]
        res = self._c.classify(chunk, text, database)
        if lexed is not None and starts is not None and res.cls != "unknown":
            # The server's own tokens of this statement (the message was lexed once, in the session's mode).
            first = bisect.bisect_left(starts, chunk[0].start)
            last = bisect.bisect_right(starts, chunk[-1].end)
            self._resolve_calls(lexed.tokens[first:last], res)
        if any(t.token_type == TokenType.SEMICOLON for t in chunk):
            # A MySQL compound statement (CREATE PROCEDURE ... BEGIN ...; ...; END): its body runs only when
            # called, but a body statement that changes privileges or the server still counts.
            parts = _split_semicolons(chunk)
            begin = next(k for k, t in enumerate(parts[0]) if _word(t) == "BEGIN")
            for inner in [parts[0][begin + 1:], *parts[1:]]:
                inner = _strip_block_words(inner)
                if inner:
                    inner_res = self._c.classify(inner, text, database)
                    if inner_res.cls in ("privilege", "admin"):
                        res.raise_to(inner_res.cls, f"the body {inner_res.reason or 'changes ' + inner_res.cls}")
        return res

    def _unreadable(self, sql: str, lex: int) -> str | None:
        """Why a text is not read at all: too large, or ambiguous in how the session reads text now."""
        if len(sql) > self.max_size:
            return f"the text is larger than dbfw classifies ({self.max_size} characters)"
        if lex & LEX_UNSETTLED:
            why = _unsettled_reading(sql)
            if why is not None:
                return why
        if self.dialect == "mysql" and not sql.isascii() and any(ch.isspace() and ord(ch) > 127 for ch in sql):
            # MariaDB's lexer takes only ASCII whitespace as space: to it U+00A0 is part of a name (and
            # `--` before it no comment), where sqlglot reads a space.
            return "a non-ASCII space character: MariaDB reads it as part of a name, not as a space"
        if lex & LEX_MYSQL_LATIN1 and not sql.isascii() and b"\xa0" in sql.encode("utf-8", "surrogateescape"):
            return "the byte 0xA0, which MariaDB reads as a space in this latin1 session; dbfw does not read it"
        if lex & LEX_MYSQL_NO_BACKSLASH_ESCAPES and "\\" in sql:
            return "the session's sql_mode has NO_BACKSLASH_ESCAPES, which dbfw does not read; write the text " \
                "without backslashes"
        if lex & LEX_MYSQL_ANSI_QUOTES and '"' in sql:
            return "the session's sql_mode has (or may have) ANSI_QUOTES, which dbfw does not read; quote names " \
                "with backticks and strings with single quotes"
        if lex & LEX_ASCII_ONLY and not sql.isascii():
            return "the client encoding can hide quotes and backslashes inside characters; dbfw reads only ASCII " \
                "text in it"
        return None

    def _classify(self, sql: str, database: str | None, lex: int, version: int = 0,
                  versioned: bool = True) -> Classification:
        why = self._unreadable(sql, lex)
        if why is not None:
            return self._unknown(sql, why, lex)
        self._c.latin1 = bool(lex & LEX_MYSQL_LATIN1)
        try:
            text = expand_mysql_executable_comments(sql, versioned) if self.dialect == "mysql" else sql
            tokens = self._tokenize(text)
        except Exception as e:  # TokenError, or anything else the tokenizer raises: fail closed
            why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            return self._unknown(sql, f"cannot tokenize: {why}", lex)
        shape, bounds = _shape_and_bounds(text, tokens)
        marked = _mysql_compound_bounds(tokens, bounds) if self.mysql else [(a, b, False) for a, b in bounds]
        bounds = [(a, b) for a, b, _ in marked]
        shape_key = (shape, database, lex, version)
        entry = self._shapes.get(shape_key)
        postgres = self.dialect == "postgres"
        standard = not lex & LEX_BACKSLASH_ESCAPES
        if entry is not None:
            if postgres:
                # The skeleton was read alike by the server and sqlglot when the shape was first seen; the
                # literals are what is new.
                try:
                    why = pglex.literal_disagreement(text, tokens, _PG_LITERAL_KINDS, standard)
                except pglex.LexError as e:
                    why = str(e)
                if why is not None:
                    return self._unknown(sql, f"PostgreSQL could read this text differently: {why}", lex)
            self.shape_hits += 1
            cached = True
        else:
            lexed: pglex.Lexed | None = None
            if postgres:
                try:
                    lexed = pglex.lex(text, standard)
                except pglex.LexError as e:
                    return self._unknown(sql, f"PostgreSQL would not read this text: {e}", lex)
                why = pglex.disagreement(lexed, tokens, _PG_LITERAL_TYPES, TokenType.SEMICOLON, _PG_PARAMETER_TYPES)
                if why is not None:
                    return self._unknown(sql, f"PostgreSQL could read this text differently: {why}", lex)
            self.misses += 1
            results = self._results(tokens, marked, text, database, lexed)
            entry = _ShapeEntry.of(results)
            cached = False
            if not any(r.literal_sensitive for r in results):
                shapes = self._shapes
                shapes[shape_key] = entry
                if len(shapes) > self.cache_size:
                    del shapes[next(iter(shapes))]
        dialect = self.dialect
        if len(bounds) == 1:
            a, b = bounds[0]
            statements: tuple[Statement, ...] = (Statement(
                text[tokens[a].start:tokens[b - 1].end + 1], *entry.statements[0], dialect=dialect, lex=lex),)
        else:
            statements = tuple(
                Statement(text[tokens[a].start:tokens[b - 1].end + 1], *f, dialect=dialect, lex=lex)  # type: ignore[arg-type]
                for (a, b), f in zip(bounds, entry.statements, strict=True))
        return Classification(dialect, statements, entry.cls, shape, cached)


_NAMES = (pglex.IDENT, pglex.QIDENT)


def _calls(tokens: tuple[pglex.PgToken, ...]) -> list[tuple[int, str | None, str, bool]]:
    """Every place a statement may call a function: ``name(`` or ``schema.name(``, and attribute notation
    ``(x).name`` / ``t.name`` (PostgreSQL reads ``x.f`` as ``f(x)`` when no column ``f`` exists)."""
    out: list[tuple[int, str | None, str, bool]] = []
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if tok.kind not in _NAMES:
            continue
        after_dot = i > 0 and tokens[i - 1].kind == pglex.OP and tokens[i - 1].value == "."
        if i + 1 < n and tokens[i + 1].kind == pglex.OP and tokens[i + 1].value == "(":
            if i > 0 and tokens[i - 1].kind == pglex.IDENT and tokens[i - 1].value == "tablesample":
                continue  # a sampling method, not a function call
            schema = tokens[i - 2].value if after_dot and i >= 2 and tokens[i - 2].kind in _NAMES else None
            out.append((i, schema, tok.value, False))
        elif after_dot:
            out.append((i, None, tok.value, True))
    return out


def _argument(tokens: tuple[pglex.PgToken, ...], index: int, position: int) -> str | None:
    """The value of the ``position``-th argument of the call at ``index`` when it is one string literal."""
    depth, arg, start = 0, 0, index + 2
    for k in range(index + 1, len(tokens)):
        tok = tokens[k]
        if tok.kind == pglex.OP and tok.value in ("(", "["):
            depth += 1
            continue
        if tok.kind == pglex.OP and tok.value in (")", "]"):
            depth -= 1
            if depth == 0:
                break
            continue
        if depth == 1 and tok.kind == pglex.OP and tok.value == ",":
            if arg == position:
                break
            arg, start = arg + 1, k + 1
        elif depth == 1 and arg == position and k == start and tok.kind == pglex.STRING:
            following = tokens[k + 1] if k + 1 < len(tokens) else None
            if following is not None and following.kind == pglex.OP and following.value in (",", ")"):
                return tok.value
    return None


_PARAMETER = re.compile(r"\$[0-9]+(?![0-9])")

# sqlglot's literal token types as the server's lexer knows them (quoted names included: their extent
# and value decide what a statement names).
_PG_LITERAL_KINDS = {TokenType.STRING: "string", TokenType.BYTE_STRING: "escape", TokenType.BIT_STRING: "bits",
                     TokenType.HEX_STRING: "hex", TokenType.HEREDOC_STRING: "dollar",
                     TokenType.UNICODE_STRING: "unicode", TokenType.NATIONAL_STRING: "national",
                     TokenType.RAW_STRING: "unicode", TokenType.IDENTIFIER: "ident", TokenType.NUMBER: "number"}
_PG_LITERAL_TYPES = frozenset(_PG_LITERAL_KINDS) - {TokenType.NUMBER}
# What sqlglot reads as a bind parameter must be one for the server ($1): PostgreSQL reads @x as abs(x).
# (? is an operator too; sqlglot's token for it is the same in both readings, so the tree is checked.)
_PG_PARAMETER_TYPES = frozenset({TokenType.PARAMETER, TokenType.SESSION_PARAMETER})


def parse_statement(sql: str, dialect: str = "postgres") -> exp.Expression:
    """One statement as a sqlglot tree, read the way the classifier reads it (same tokenizer, same
    workarounds for syntax sqlglot's parser misses). Raises on anything that is not one statement."""
    c = _TOKENIZERS.get(f"classifier:{dialect}")
    if c is None:
        c = _TOKENIZERS[f"classifier:{dialect}"] = _Classifier(dialect)
    tokens = [t for t in c.tokenizer.tokenize(sql) if t.token_type != TokenType.SEMICOLON]
    if c.mysql:
        tokens = _mysql_parser_friendly(tokens)
        if tokens and _word(tokens[0]) == "REPLACE":  # read as the INSERT it is (see _from_tree)
            first = tokens[0]
            tokens = [Token(TokenType.INSERT, "INSERT", first.line, first.col, first.start, first.end), *tokens[1:]]
    return c._parse(tokens, sql)


def classify(sql: str, dialect: str = "postgres", database: str | None = None,
             lex: int = LEX_STANDARD) -> Classification:
    """Classify without a long-lived cache (the CLI, tests)."""
    return SQLClassifier(dialect).classify(sql, database, lex)


__all__ = ["CLASSES", "RANK", "Classification", "SQLClassifier", "Statement", "classify", "riskiest", "sqlglot"]
