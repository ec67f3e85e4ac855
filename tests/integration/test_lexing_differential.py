"""dbfw's lexer against the server's: generated texts full of quotes, backslashes, dollar quotes, comments
and semicolons, under every standard_conforming_strings / client encoding combination dbfw accepts.

The server is the oracle. A text it runs is split into statements and literal values exactly as dbfw's
lexer splits it, or dbfw refuses it (unknown). Texts are SELECTs of literals: nothing they can turn
into does any harm."""

from __future__ import annotations

import random

import psycopg
import pytest
from psycopg import pq

from dbfw.sql import pglex
from dbfw.sql.classify import LEX_BACKSLASH_ESCAPES, LEX_STANDARD, SQLClassifier
from tests.conftest import PgTarget

_CONTENT = ["'", "''", "\\", "\\'", ";", "$", "$a$", "$$", "--", "/*", "*/", '"', "\n", " ", "a", "x", "1",
            "\\n", "\\x41", "E", "ä", "é"]
_QUOTING = ["'{}'", "E'{}'", "e'{}'", "$a${}$a$", "$${}$$", "N'{}'", "'{}'\n'{}'", "E'{}'\n'{}'", "'{}' -- c\n'{}'",
            "U&'{}'", "B'{}'"]
_BETWEEN = [", ", ",", " , ", "/* c */,", ", /* /* n */ */", ",\n", "; SELECT ", ";SELECT ", " -- x\n,"]


def _text(rng: random.Random) -> str:
    parts = ["SELECT "]
    for i in range(rng.randint(1, 4)):
        if i:
            parts.append(rng.choice(_BETWEEN))
        quoting = rng.choice(_QUOTING)
        parts.append(quoting.format(*("".join(rng.choice(_CONTENT) for _ in range(rng.randint(0, 5)))
                                      for _ in range(quoting.count("{}")))))
    if rng.random() < 0.3:
        parts.append(rng.choice([";", " ;", "-- end", "/* end */", ";;"]))
    return "".join(parts)


def _server(conn: psycopg.Connection, text: str, encoding: str) -> list[list[str]] | None:
    """Each statement's row as the server returns it, or None if the server refused the text."""
    pgconn = conn.pgconn
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        return None
    pgconn.send_query(data)
    rows: list[list[str]] = []
    failed = False
    while (result := pgconn.get_result()) is not None:
        if result.status == pq.ExecStatus.TUPLES_OK:
            rows.append([(result.get_value(0, c) or b"").decode(encoding) for c in range(result.nfields)])
        elif result.status != pq.ExecStatus.COMMAND_OK:
            failed = True
    return None if failed else rows


def _literal_values(lexed: pglex.Lexed) -> list[list[str]] | None:
    """Per statement, the values of a SELECT of plain string literals (continued parts joined); None when a
    statement is anything else."""
    out: list[list[str]] = []
    current: list[str] | None = None
    last_end = -1
    for tok in lexed.tokens:
        if tok.kind == pglex.SEMICOLON:
            if current is not None:
                out.append(current)
            current = None
            continue
        if current is None:
            if tok.kind != pglex.IDENT or tok.value != "select":
                return None
            current = []
        elif tok.kind == pglex.STRING:
            if current and last_end >= 0:
                current[-1] += tok.value  # a part continuing the previous literal
            else:
                current.append(tok.value)
            last_end = tok.end
            continue
        elif tok.kind == pglex.OP and tok.value == ",":
            last_end = -1
            continue
        else:
            return None
        last_end = -1
    if current is not None:
        out.append(current)
    return out


@pytest.mark.parametrize(("scs", "encoding"), [("on", "UTF8"), ("off", "UTF8"), ("on", "LATIN1"), ("off", "LATIN1"),
                                               ("on", "EUC_JP")])
def test_dbfw_splits_and_reads_literals_as_the_server_does(pg: PgTarget, scs: str, encoding: str) -> None:
    rng = random.Random(f"{scs}-{encoding}")
    codec = {"UTF8": "utf-8", "LATIN1": "latin-1", "EUC_JP": "euc_jp"}[encoding]
    lex = LEX_STANDARD if scs == "on" else LEX_BACKSLASH_ESCAPES
    classifier = SQLClassifier("postgres")
    accepted = agreed = refused_by_dbfw = compared = 0
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"SET standard_conforming_strings = {scs}")
        conn.execute("SET escape_string_warning = off")
        conn.execute(f"SET client_encoding = '{encoding}'")
        for _ in range(700):
            text = _text(rng)
            server = _server(conn, text, codec)
            classified = classifier.classify(text, lex=lex)
            try:
                lexed = pglex.lex(text, scs == "on")
            except pglex.LexError:
                # What dbfw's lexer cannot read, the server does not run, and the classifier refuses.
                assert server is None, text
                assert classified.cls == "unknown", text
                continue
            if server is None:
                continue
            accepted += 1
            assert pglex.statement_count(lexed) == len(server), text
            values = _literal_values(lexed)
            if values is not None:
                compared += 1
                assert values == server, text
            if classified.cls == "unknown":
                refused_by_dbfw += 1
                continue
            agreed += 1
            assert len(classified.statements) == len(server), text
    # The generator exercises both outcomes: texts the server runs and dbfw classifies, and texts dbfw refuses.
    assert accepted > 150 and agreed > 80 and compared > 100, (accepted, agreed, compared, refused_by_dbfw)
