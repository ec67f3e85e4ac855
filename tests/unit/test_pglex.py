"""PostgreSQL's lexer as dbfw runs it, and the agreement check that makes a statement unknown wherever
sqlglot could read a text differently from the server. The server itself is asked in
tests/integration/test_lexing_differential.py; these pin the cases one by one, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbfw.sql import pglex
from dbfw.sql.classify import LEX_ASCII_ONLY, LEX_BACKSLASH_ESCAPES, LEX_STANDARD, SQLClassifier, statement_fingerprint


def _values(text: str, standard: bool = True) -> list[tuple[str, str]]:
    return [(t.kind, t.value) for t in pglex.lex(text, standard).tokens if t.kind in pglex.LITERAL_KINDS]


def _count(text: str, standard: bool = True) -> int:
    return pglex.statement_count(pglex.lex(text, standard))


@pytest.mark.parametrize(("text", "standard", "count"), [
    ("SELECT 'a\\'; DROP TABLE t; --'", True, 2),     # standard strings: the backslash is a character
    ("SELECT 'a\\'; DROP TABLE t; --'", False, 1),    # escapes on: \' is a quote inside the string
    ("SELECT E'a\\'; DROP TABLE t; --'", True, 1),
    ("SELECT /* /* */ ; DROP TABLE t; */ 1", True, 1),  # block comments nest
    ("SELECT /* */ ; DROP TABLE t; /* */", True, 2),
    ("SELECT $a$ ; DROP TABLE t; $a$", True, 1),
    ("SELECT $a$ $b$ ; $b$ $a$", True, 1),
    ("SELECT x$a$; SELECT 1", True, 2),                 # $ continues an identifier: no dollar quote
    ("SELECT E'a'\n'\\'; DROP TABLE t; --'", True, 1),  # a continued E string reads escapes after the newline
    ("SELECT 'a'\n'\\'; DROP TABLE t; --'", True, 2),
    ("SELECT 1 +-- c\n; 2", True, 2),
    ("SELECT 1;;;SELECT 2;", True, 2),
    ("SELECT N'\\'; DROP TABLE t; --'", False, 1),
    ("SELECT B'1'; SELECT X'ff'", True, 2),
])
def test_statement_boundaries_follow_the_server(text: str, standard: bool, count: int) -> None:
    assert _count(text, standard) == count


def test_literal_values_are_the_servers() -> None:
    assert _values("SELECT 'it''s', E'a\\nb\\x41\\101\\u00e4', $q$x'y$q$, \"Na\"\"me\", U&'\\00e4!'") == [
        ("string", "it's"), ("string", "a\nbAAä"), ("string", "x'y"), ("qident", 'Na"me'), ("string", "ä!")]
    assert _values("SELECT U&\"\\0070g_read_file\"") == [("qident", "pg_read_file")]
    assert _values("SELECT U&'!0041' UESCAPE '!'") == [("string", "A")]
    assert _values("SELECT 'a\\\\b'", False) == [("string", "a\\b")]
    # Unquoted names fold with ASCII rules only: the long s is not an s.
    words = [t.value for t in pglex.lex("SELECT FROM USERS, u\u017fers").tokens if t.kind == pglex.IDENT]
    assert words == ["select", "from", "users", "u\u017fers"]
    # Names are cut at 63 bytes, as the server cuts them.
    long = "a" * 70
    assert [t.value for t in pglex.lex(f"SELECT {long}").tokens][1] == "a" * 63


@pytest.mark.parametrize("text", [
    "SELECT 'abc", "SELECT E'abc\\'", "SELECT /* /* */", "SELECT $a$ x", "SELECT \"abc", "SELECT \"\"",
    "SELECT 1abc", "SELECT 0x1F", "SELECT $1abc", "SELECT U&'\\zzzz'",
])
def test_text_the_server_cannot_lex_raises(text: str) -> None:
    with pytest.raises(pglex.LexError):
        pglex.lex(text)


def test_unicode_strings_are_refused_with_escapes_on() -> None:
    with pytest.raises(pglex.LexError):
        pglex.lex("SELECT U&'x'", standard_strings=False)


@pytest.mark.parametrize(("text", "lex"), [
    ("SELECT 'a\\'; DROP TABLE t; --'", LEX_BACKSLASH_ESCAPES),
    ("SELECT e'\\x80'", LEX_STANDARD),  # a high byte in the server's encoding: dbfw cannot know its value
    ("SELECT E'a'\n'\\'; DROP TABLE t; --'", LEX_STANDARD),
    ("SELECT U&\"\\0070g_read_file\"('/etc/hostname')", LEX_STANDARD),
    ("SELECT 'é'", LEX_ASCII_ONLY),
])
def test_texts_sqlglot_could_read_otherwise_are_unknown(text: str, lex: int) -> None:
    result = SQLClassifier("postgres").classify(text, lex=lex)
    assert result.cls == "unknown", result.statements[0].reason


def test_a_shape_seen_before_does_not_vouch_for_new_literals() -> None:
    c = SQLClassifier("postgres")
    # Same sqlglot shape (two strings, a comma); with escapes on the second text is one string for the server.
    assert c.classify("SELECT 'x' , 'y'", lex=LEX_BACKSLASH_ESCAPES).cls == "read"
    tricky = c.classify("SELECT 'x\\' , ';DROP TABLE t;--'", lex=LEX_BACKSLASH_ESCAPES)
    assert tricky.cls == "unknown"
    # ...while under standard strings the very same text is three harmless statements and a drop.
    assert c.classify("SELECT 'x\\' , ';DROP TABLE t;--'", lex=LEX_STANDARD).cls in ("read", "unknown")
    # And a shape seen under standard strings is never reused for escapes-on text.
    assert c.classify("SELECT 'p' , 'q'").cls == "read"
    assert c.classify("SELECT 'p\\' , 'q'", lex=LEX_BACKSLASH_ESCAPES).cls == "unknown"


def test_everyday_texts_agree() -> None:
    c = SQLClassifier("postgres")
    for text in ["SELECT id, email FROM users WHERE email = 'a@b.c' AND id > 5 ORDER BY id LIMIT 10",
                 "SELECT $1::int[], $$body$$, E'tab\\there', 'it''s' -- comment\n",
                 "/* hello /* nested */ */ SELECT a->>'k', j #> '{a,b}' FROM t WHERE j @> '{}'::jsonb",
                 "INSERT INTO t (a, b) VALUES ('x', 1.5e3), (\"b\", .5) RETURNING *",
                 "SELECT 'a'\n  'b'"]:
        assert c.classify(text).cls != "unknown", (text, c.classify(text).statements[0].reason)


def test_fingerprints_are_injective_and_fold_only_ascii() -> None:
    def fp(sql: str, lex: int = LEX_STANDARD) -> str:
        return statement_fingerprint(sql, "postgres", lex)

    assert fp("select * from users where id = 1") == fp("SELECT  *\nFROM Users /* x */ WHERE ID = 1")
    assert fp("SELECT * FROM users") != fp("SELECT * FROM u\u017fers")
    assert fp("SELECT * FROM users") != fp('SELECT * FROM "Users"')
    assert fp('SELECT * FROM "users"') != fp("SELECT * FROM users")  # quoted and unquoted stay apart
    # A separator inside a literal cannot forge a token boundary.
    assert fp("SELECT 'a\x1f\"b'") != fp("SELECT 'a', \"b\"")
    assert fp("SELECT 'a', 'b'") != fp("SELECT 'a,', 'b'")
    # The same characters read under another lexing mode are another statement.
    assert fp("SELECT 'a\\'", LEX_BACKSLASH_ESCAPES) != fp("SELECT 'a\\'")
    assert fp("SELECT E'x'") == fp("SELECT 'x'")  # the same value: the same statement
    assert fp("SELECT 1")[0] == "2" and len(fp("SELECT 1")) == 20


_CONTENT = st.lists(st.sampled_from(["'", "\\", ";", "$", "--", "/*", "*/", '"', "\n", " ", "a", "ä", "''", "\\'"]),
                   max_size=6).map("".join)
_QUOTING = st.sampled_from(["'{}'", "E'{}'", "$a${}$a$", '"{}"', "'{}'\n'{}'", "E'{}'\n'{}'", "N'{}'"])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_QUOTING, _CONTENT, _CONTENT), min_size=1, max_size=4),
       st.lists(st.tuples(_CONTENT, _CONTENT), min_size=4, max_size=4), st.booleans())
def test_the_shape_path_refuses_what_the_full_path_refuses(literals: list[tuple[str, str, str]],
                                                             others: list[tuple[str, str]], standard: bool) -> None:
    """Two texts with the same quoting but other contents often share sqlglot's shape. Whatever the first
    one left in the shape cache, the second is refused exactly when it is refused on first sight."""
    first = "SELECT " + ", ".join(q.format(a, b) for q, a, b in literals)
    second = "SELECT " + ", ".join(q.format(a, b) for (q, _, _), (a, b) in zip(literals, others, strict=False))
    lex = LEX_STANDARD if standard else LEX_BACKSLASH_ESCAPES
    fresh = SQLClassifier("postgres").classify(second, lex=lex)
    primed = SQLClassifier("postgres")
    primed.classify(first, lex=lex)
    after = primed.classify(second, lex=lex)
    if fresh.cls == "unknown":
        assert after.cls == "unknown", (first, second)
    try:
        pglex.lex(second, standard)
    except pglex.LexError:
        assert after.cls == "unknown", second


def test_parameters_without_spaces_are_read() -> None:
    """JDBC and ORMs send IN ($1,$2) and SET a=$1,b=$2; sqlglot's tokenizer alone fails on them."""
    c = SQLClassifier("postgres")
    assert c.classify("SELECT * FROM t WHERE id IN ($1,$2,$3) AND v = 'x'").cls == "read"
    update = c.classify("UPDATE t SET status=$1,total=$2 WHERE id=$3")
    assert update.cls == "write" and update.statements[0].sql == "UPDATE t SET status=$1,total=$2 WHERE id=$3"
    # Inside a literal a parameter is text: padding would change its value, so the check refuses rather
    # than guess.
    assert c.classify("SELECT '$1,$2' || $1,$2").cls in ("read", "unknown")
