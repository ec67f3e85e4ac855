"""Function calls classified from a catalog (no server: a FunctionCatalog made by hand)."""

from __future__ import annotations

import pytest

from dbfw.sql.classify import SQLClassifier
from dbfw.sql.functions import FunctionCatalog, FunctionRules, Proc


def _proc(schema: str, name: str, language: str = "plpgsql", volatility: str = "v", nargs: int = 0,
          body: str | None = None) -> Proc:
    return Proc(schema, name, volatility, "f", language, nargs, 0, False, body, False)


CATALOG = FunctionCatalog({
    "plus_one": (_proc("app", "plus_one", "sql", "s", 1, "SELECT $1 + 1"),),
    "wipe": (_proc("app", "wipe", "sql", "v", 0, "DELETE FROM app.t"),),
    "wipe_atomic": (_proc("app", "wipe_atomic", "sql", "v", 0, "BEGIN ATOMIC\n DELETE FROM app.t;\n SELECT 1;\nEND"),),
    "nested": (_proc("app", "nested", "sql", "v", 0, "SELECT app.wipe()"),),
    "loop": (_proc("app", "loop", "sql", "v", 0, "SELECT app.loop()"),),
    "refresh_stats": (_proc("app", "refresh_stats"),),
    "one_arg": (_proc("app", "one_arg", nargs=1),),
    "lower": (_proc("evil", "lower", nargs=1),),  # shadows pg_catalog.lower under some search_path
}, live=True)


@pytest.mark.parametrize(("sql", "cls"), [
    ("SELECT app.plus_one(1)", "read"),
    ("SELECT app.wipe()", "destructive_write"),
    ("SELECT app.wipe_atomic()", "destructive_write"),
    ("SELECT app.nested()", "destructive_write"),
    ("SELECT app.loop()", "procedural"),             # a body that calls itself ends at the depth limit
    ("SELECT app.refresh_stats()", "procedural"),
    ("SELECT (1).one_arg", "procedural"),            # attribute notation
    ("SELECT t.one_arg FROM t", "procedural"),
    ('SELECT "app"."refresh_stats"()', "procedural"),
    ("SELECT lower('X')", "procedural"),              # any schema's function of that name counts
    ("SELECT pg_catalog.lower('X')", "read"),
    ("SELECT not_a_function(1)", "procedural"),
    ("SELECT * FROM big TABLESAMPLE SYSTEM (1)", "read"),
    ("SELECT now(), random(), gen_random_uuid()", "read"),
    ("SELECT ('/etc/hostname'::text).pg_read_file", "admin"),
    ("SELECT * FROM pg_catalog.pg_ls_dir('.')", "admin"),
    ("SELECT table_to_xml('t', true, false, '')", "bulk_export"),
    ("SELECT query_to_xml('SELECT 1', true, false, '')", "bulk_export"),
    ("SELECT query_to_xml('DELETE FROM t', true, false, '')", "destructive_write"),
    ("SELECT query_to_xml($1, true, false, '')", "procedural"),
    ("SELECT ts_stat('SELECT pg_terminate_backend(1)::text::tsvector')", "admin"),
    ("SELECT pg_advisory_xact_lock(1)", "write"),
    ("SELECT setval('s', 1)", "destructive_write"),
    ("SELECT pg_stat_get_backend_activity(1)", "admin"),
])
def test_calls_are_classified_from_the_catalog(sql: str, cls: str) -> None:
    got = SQLClassifier("postgres").classify(sql, functions=CATALOG)
    assert got.cls == cls, (sql, [s.reason for s in got.statements])


def test_rules_name_the_operators_functions() -> None:
    c = SQLClassifier("postgres")
    assert c.classify("SELECT app.refresh_stats()", functions=CATALOG).cls == "procedural"
    c.function_rules = FunctionRules({"app.refresh_*": "write"})
    assert c.classify("SELECT app.refresh_stats()", functions=CATALOG).cls == "write"


def test_classifications_follow_the_catalog_version() -> None:
    c = SQLClassifier("postgres")
    assert c.classify("SELECT app.plus_one(1)", functions=CATALOG).cls == "read"
    changed = FunctionCatalog({"plus_one": (_proc("app", "plus_one"),)}, live=True)  # replaced by plpgsql
    assert c.classify("SELECT app.plus_one(1)", functions=changed).cls == "procedural"


def test_reading_a_postgres_view_is_as_risky_as_its_definition() -> None:
    wipe = Proc("app", "wipe", "v", "f", "plpgsql", 0, 0, False, None, False)
    catalog = FunctionCatalog(user={"wipe": (wipe,)}, live=True, views={
        ("app", "evil"): "SELECT app.wipe() AS x", ("app", "on_evil"): "SELECT x FROM app.evil",
        ("public", "nice"): "SELECT now() AS x"})
    c = SQLClassifier("postgres")
    for sql in ["SELECT * FROM evil", "SELECT * FROM app.evil", "SELECT * FROM EVIL", "SELECT * FROM on_evil",
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM app.evil)", "INSERT INTO t SELECT x FROM evil"]:
        assert c.classify(sql, functions=catalog).cls == "procedural", sql
    for sql in ["SELECT * FROM nice", 'SELECT * FROM "EVIL"', "SELECT * FROM other.evil",
                "WITH evil AS (SELECT 1) SELECT * FROM evil"]:
        assert c.classify(sql, functions=catalog).cls == "read", sql
