"""Properties of classification: layout never changes a class; a hidden second statement never lowers it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbfw.sql.classify import RANK, SQLClassifier

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

BUILTIN = {
    "postgres": [
        "select id, name from customers where id = 1", "SELECT * FROM t WHERE a IN (1, 2) ORDER BY b DESC LIMIT 5",
        "insert into t (a, b) values (1, 'x') on conflict (a) do update set b = excluded.b",
        "update t set a = a + 1 where id = $1", "delete from t where created_at < now() - interval '1 day'",
        "delete from t", "update t set a = 1 where 1 = 1", "truncate t", "drop table t", "create table x (a int)",
        "grant select on t to bob", "set role postgres", "copy t to stdout", "copy t from stdin",
        "do $$ begin perform 1; end $$", "vacuum t", "select pg_read_file('/etc/passwd')", "begin", "commit",
        "set search_path = public", "show search_path", "with d as (delete from t returning *) select * from d",
        "select * into n from t", "explain analyze delete from t", "prepare p as select 1", "selec 1",
        "select $$a; drop table t$$", "select 'drop table x'", "listen ch", "select set_config('role', 'x', false)",
    ],
    "mysql": [
        "select `id` from `t` where id = 1", "insert into t values (1) on duplicate key update a = 1",
        "replace into t values (1)", "update t set a = 1 limit 5", "delete from t where id = 2", "delete from t",
        "select 1 /*! ; drop table t */", "select * from t into outfile '/tmp/x'", "load data infile 'x' into table t",
        "set names utf8mb4", "set global max_connections = 1", "kill 5", "show tables", "use db", "flush privileges",
        "create user x identified by 'y'", "select load_file('/etc/passwd')", "call p()", "start transaction",
    ],
}

HIGH_RISK = {
    "postgres": ["drop table t", "delete from t", "grant all on t to public", "copy t to program 'sh'",
                 "alter system set x = 1", "do $$ begin end $$", "selec garbage"],
    "mysql": ["drop table t", "delete from t", "grant all on *.* to x", "select 1 into outfile '/tmp/x'",
              "kill 1", "shutdown"],
}


def _corpus(dialect: str) -> list[str]:
    path = CORPUS / f"{dialect}.yaml"
    entries = yaml.safe_load(path.read_text()) if path.exists() else []
    return BUILTIN[dialect] + [e["sql"] for e in entries or []]


CLASSIFIERS = {d: SQLClassifier(d, cache_size=0) for d in ("postgres", "mysql")}


def _cls(dialect: str, sql: str) -> str:
    return CLASSIFIERS[dialect].classify(sql).cls


def _relayout(dialect: str, sql: str, seps: list[str], cases: list[bool]) -> str:
    """The same tokens, with other whitespace/comments where there was whitespace and other keyword case."""
    c = CLASSIFIERS[dialect]._c
    tokens = c.tokenizer.tokenize(sql)
    text = sql
    if not tokens:
        return sql
    out: list[str] = [text[:tokens[0].start]]  # leading comments (MySQL's /*! */ may be code) stay as they are
    for i, tok in enumerate(tokens):
        piece = text[tok.start:tok.end + 1]
        if tok.token_type.name not in ("STRING", "IDENTIFIER", "HEREDOC_STRING", "BYTE_STRING", "NATIONAL_STRING",
                                       "RAW_STRING", "BIT_STRING", "HEX_STRING", "UNICODE_STRING", "PARAMETER",
                                       "SESSION_PARAMETER") and piece.isascii() and piece.isalpha():
            piece = piece.upper() if cases[i % len(cases)] else piece.lower()
        out.append(piece)
        if i + 1 < len(tokens):
            gap = text[tok.end + 1:tokens[i + 1].start]
            out.append(seps[i % len(seps)] if gap.strip() == "" and gap else gap)
    out.append(text[tokens[-1].end + 1:])
    return "".join(out)


def _separators(dialect: str) -> st.SearchStrategy[str]:
    comments = ["/* c */", "/* ; drop table t */", "-- drop table t; \n", "\n-- x\n"]
    if dialect == "mysql":
        comments.append("# ; drop table t\n")
    return st.sampled_from([" ", "\n", "\t ", "  \r\n  ", *[f" {c} " for c in comments]])


_SAMPLES = {d: st.sampled_from(_corpus(d)) for d in ("postgres", "mysql")}


def _corpus_param(dialect: str) -> st.SearchStrategy[str]:
    return _SAMPLES[dialect]


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whitespace_comments_and_keyword_case_never_change_the_class(dialect: str, data: st.DataObject) -> None:
    sql = data.draw(_corpus_param(dialect))
    seps = data.draw(st.lists(_separators(dialect), min_size=1, max_size=8))
    cases = data.draw(st.lists(st.booleans(), min_size=1, max_size=8))
    expected = _cls(dialect, sql)
    if expected == "unknown":  # text that does not tokenize cannot be laid out again; it stays unknown
        return
    variant = _relayout(dialect, sql, seps, cases)
    assert _cls(dialect, variant) == expected, (sql, variant)


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_appending_a_high_risk_statement_never_lowers_the_class(dialect: str, data: st.DataObject) -> None:
    sql = data.draw(_corpus_param(dialect))
    risky = data.draw(st.sampled_from(HIGH_RISK[dialect]))
    sep = data.draw(st.sampled_from(["; ", ";", ";\n", " ; "]))
    combined = f"{sql}{sep}{risky}"
    assert RANK[_cls(dialect, combined)] >= RANK[_cls(dialect, sql)], combined
    # And unless the first statement swallows it (an open comment or string), the risky one counts.
    if not any(m in sql for m in ("--", "#", "/*", "'", "$$", '"')):
        assert RANK[_cls(dialect, combined)] >= RANK[_cls(dialect, risky)], combined


def test_cache_returns_the_same_class_for_the_same_shape() -> None:
    c = SQLClassifier("postgres")
    first = c.classify("select * from t where id = 1")
    second = c.classify("select * from t where id = 2")
    assert second.cached and first.cls == second.cls == "read"
    assert first.fingerprint != second.fingerprint  # approvals bind to the literals
    # set_config's first argument decides its class, so such a shape is never reused.
    assert c.classify("select set_config('search_path', 'x', false)").cls == "session"
    assert c.classify("select set_config('role', 'x', false)").cls == "privilege"


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("selct *fromwhedDROP;'\"$()/-#!\\\n`@:=,.0123456789")),
                    max_size=80))
def test_any_text_gets_a_class_and_nothing_escapes(dialect: str, text: str) -> None:
    c = CLASSIFIERS[dialect].classify(text)
    assert c.cls in RANK


def test_deeply_nested_input_fails_closed() -> None:
    c = SQLClassifier("postgres").classify("select " + "(" * 5000 + "1" + ")" * 5000)
    assert c.cls in ("unknown", "read")
    assert SQLClassifier("postgres").classify("select " + "(" * 5000 + "pg_read_file('x')" + ")" * 5000).cls in (
        "unknown", "admin")


@pytest.mark.parametrize("first, second", [
    ("delete from t where 1 = 2", "delete from t where 1 = 1"),
    ("update t set a = 1 where 1 > 2", "update t set a = 1 where 3 > 2"),
    ("delete from t where id = 3 or 1 = 2", "delete from t where id = 3 or 1 = 1"),
    ("delete from t where 'a' = 'b'", "delete from t where 'a' = 'a'"),
    ("select set_config('application_name', 'x', false)", "select set_config('role', 'x', false)"),
])
def test_a_shape_seen_before_never_decides_a_message_whose_literals_change_its_class(first: str, second: str) -> None:
    warm = SQLClassifier("postgres")
    warm.classify(first)
    assert warm.classify(second).cls == SQLClassifier("postgres").classify(second).cls
