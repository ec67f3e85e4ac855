"""Functions are classified from the database's own catalog, through the wire: a call is as risky as what
the function does (its SQL body, its language, its volatility), whatever it is called and however it is
spelled. The server is checked afterwards: rows the refused calls would delete are still there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from tests.conftest import DbfwProcess, PgTarget, running_dbfw
from tests.integration.support import EVERYDAY_RULES, sqlstate_of

RULES = EVERYDAY_RULES + """\
  - name: functions-may-be-created-here
    match: {classes: [procedural], commands: [CREATE]}
    action: allow
functions:
  "{schema}.trusted_*": read
"""


@pytest.fixture(scope="module")
def schema(pg: PgTarget) -> Iterator[str]:
    name = f"fn_{uuid4().hex[:8]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        conn.execute(f"CREATE TABLE {name}.t (id int)")
        conn.execute(f"INSERT INTO {name}.t SELECT generate_series(1, 10)")
        conn.execute(f"CREATE FUNCTION {name}.plus_one(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT $1 + 1'")
        conn.execute(f"CREATE FUNCTION {name}.wipe() RETURNS int LANGUAGE sql AS "
                     f"'DELETE FROM {name}.t RETURNING 1'")
        conn.execute(f"CREATE FUNCTION {name}.wipe_atomic() RETURNS int LANGUAGE sql "
                     f"BEGIN ATOMIC DELETE FROM {name}.t; SELECT 1; END")
        conn.execute(f"CREATE FUNCTION {name}.wipe_pl(x int) RETURNS int LANGUAGE plpgsql AS "
                     f"$$BEGIN DELETE FROM {name}.t; RETURN x; END$$")
        conn.execute(f"CREATE FUNCTION {name}.trusted_wipe() RETURNS int LANGUAGE plpgsql AS "
                     f"$$BEGIN RETURN 1; END$$")
        # A function named like a built-in: which one runs depends on search_path.
        conn.execute(f"CREATE FUNCTION {name}.upper(text) RETURNS text LANGUAGE plpgsql AS "
                     f"$$BEGIN DELETE FROM {name}.t; RETURN $1; END$$")
        # What writes fire: a PL/pgSQL trigger function, one the rules name, and a rule.
        conn.execute(f"CREATE TABLE {name}.w (id int PRIMARY KEY, v text)")
        conn.execute(f"CREATE TABLE {name}.tw (id int PRIMARY KEY, v text)")
        conn.execute(f"CREATE TABLE {name}.r (id int)")
        conn.execute(f"INSERT INTO {name}.w VALUES (1, 'a')")
        conn.execute(f"CREATE FUNCTION {name}.wipe_rows() RETURNS trigger LANGUAGE plpgsql AS "
                     f"$$BEGIN DELETE FROM {name}.t; RETURN NEW; END$$")
        conn.execute(f"CREATE FUNCTION {name}.trusted_touch() RETURNS trigger LANGUAGE plpgsql AS "
                     f"$$BEGIN RETURN NEW; END$$")
        conn.execute(f"CREATE TRIGGER wipe BEFORE INSERT ON {name}.w FOR EACH ROW EXECUTE FUNCTION {name}.wipe_rows()")
        conn.execute(f"CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON {name}.tw FOR EACH ROW "
                     f"EXECUTE FUNCTION {name}.trusted_touch()")
        conn.execute(f"CREATE TRIGGER wipe_all AFTER TRUNCATE ON {name}.tw EXECUTE FUNCTION {name}.wipe_rows()")
        conn.execute(f"CREATE RULE wipe_too AS ON INSERT TO {name}.r DO ALSO DELETE FROM {name}.t")
        # What a write reaches beyond its table: a view's table, a cascading foreign key, a partition, a child.
        conn.execute(f"CREATE VIEW {name}.w_v AS SELECT * FROM {name}.w")
        conn.execute(f"CREATE TABLE {name}.p (id int PRIMARY KEY)")
        conn.execute(f"CREATE TABLE {name}.c (id int, pid int REFERENCES {name}.p ON DELETE CASCADE)")
        conn.execute(f"CREATE TRIGGER wipe_c AFTER DELETE ON {name}.c FOR EACH ROW EXECUTE FUNCTION {name}.wipe_rows()")
        conn.execute(f"CREATE TABLE {name}.part (id int, v text) PARTITION BY RANGE (id)")
        conn.execute(f"CREATE TABLE {name}.part1 PARTITION OF {name}.part FOR VALUES FROM (0) TO (100)")
        conn.execute(f"CREATE TRIGGER wipe_part AFTER INSERT ON {name}.part1 FOR EACH ROW "
                     f"EXECUTE FUNCTION {name}.wipe_rows()")
        conn.execute(f"CREATE TABLE {name}.inh_parent (id int, v text)")
        conn.execute(f"CREATE TABLE {name}.inh_child () INHERITS ({name}.inh_parent)")
        conn.execute(f"CREATE TRIGGER wipe_child AFTER UPDATE ON {name}.inh_child FOR EACH ROW "
                     f"EXECUTE FUNCTION {name}.wipe_rows()")
        conn.execute(f"INSERT INTO {name}.p VALUES (1)")
        conn.execute(f"INSERT INTO {name}.c VALUES (1, 1)")
        # Views: reading one runs what its definition calls.
        conn.execute(f"CREATE VIEW {name}.evil_v AS SELECT {name}.wipe_pl(1) AS x")
        conn.execute(f"CREATE VIEW {name}.evil_on_evil AS SELECT x FROM {name}.evil_v")
        conn.execute(f"CREATE VIEW {name}.nice_v AS SELECT {name}.plus_one(id) AS x FROM {name}.t")
    yield name
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(scope="module")
def guarded(pg: PgTarget, schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    directory: Path = tmp_path_factory.mktemp("dbfw-functions")
    with running_dbfw(directory, pg, RULES.replace("{schema}", schema), admin=False) as proc:
        yield proc


def _rows(pg: PgTarget, schema: str) -> int:
    with psycopg.connect(pg.conninfo()) as conn:
        return conn.execute(f"SELECT count(*) FROM {schema}.t").fetchone()[0]  # type: ignore[index]


@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
def test_calls_are_as_risky_as_the_function(guarded: DbfwProcess, pg: PgTarget, schema: str,
                                            extended: bool) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        assert sqlstate_of(conn, f"SELECT {schema}.plus_one(1)", extended) is None  # a stable SQL function: read
        for sql in [f"SELECT {schema}.wipe()",
                    f"SELECT {schema}.wipe_atomic()",
                    f"SELECT {schema}.wipe_pl(1)",
                    "SELECT (1).wipe_pl",                       # attribute notation, no schema
                    f'SELECT "{schema}"."wipe_pl"(1)',
                    f"SELECT * FROM {schema}.wipe()",
                    f"SELECT x FROM {schema}.t, LATERAL {schema}.wipe_pl(id) AS x",
                    f"SET search_path = {schema}, pg_catalog; SELECT upper('x')",
                    "SELECT ('/etc/hostname'::text).pg_read_file",
                    "SELECT pg_catalog.pg_ls_dir('.')"]:
            state = sqlstate_of(conn, sql, extended and ";" not in sql)
            assert state == "DBF01", (sql, state)
            assert _rows(pg, schema) == 10, f"rows deleted through dbfw by {sql!r}"
        # Rules name the operator's own functions.
        assert sqlstate_of(conn, f"SELECT {schema}.trusted_wipe()", extended) is None


def test_a_function_created_through_dbfw_is_known_at_once(guarded: DbfwProcess, pg: PgTarget, schema: str) -> None:
    name = f"{schema}.fresh_{uuid4().hex[:6]}"
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        assert sqlstate_of(conn, f"CREATE FUNCTION {name}() RETURNS int LANGUAGE sql AS 'SELECT 7'", False) is None
        assert conn.execute(f"SELECT {name}()").fetchone() == (7,)


def test_a_function_dbfw_has_not_seen_fails_closed(guarded: DbfwProcess, pg: PgTarget, schema: str) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the catalog is read
        name = f"{schema}.late_{uuid4().hex[:6]}"
        with psycopg.connect(pg.conninfo(), autocommit=True) as direct:  # created behind dbfw's back
            direct.execute(f"CREATE FUNCTION {name}() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        assert sqlstate_of(conn, f"SELECT {name}()", False) == "DBF01"


@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
def test_a_write_is_as_risky_as_the_triggers_and_rules_it_fires(guarded: DbfwProcess, pg: PgTarget, schema: str,
                                                               extended: bool) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        for sql in [f"INSERT INTO {schema}.w VALUES (2, 'b')",            # a PL/pgSQL trigger: procedural
                    f"INSERT INTO {schema}.W (id, v) SELECT 3, 'c'",
                    f"WITH x AS (SELECT 1) INSERT INTO {schema}.w VALUES (4, 'd')",
                    f"INSERT INTO {schema}.r VALUES (1)",                 # a rule that deletes: destructive
                    f"TRUNCATE {schema}.tw",                              # a TRUNCATE trigger
                    f"INSERT INTO {schema}.w_v VALUES (5, 'e')",          # through a view
                    f"DELETE FROM {schema}.p WHERE id = 1",               # a cascade to a table with a trigger
                    f"INSERT INTO {schema}.part VALUES (5, 'x')",         # a partition's trigger
                    f"UPDATE {schema}.inh_parent SET v = 'b' WHERE id = 1"]:  # an inheritance child's
            state = sqlstate_of(conn, sql, extended)
            assert state == "DBF01", (sql, state)
            assert _rows(pg, schema) == 10, f"rows deleted through dbfw by {sql!r}"
        with pytest.raises(psycopg.Error) as info:
            conn.execute(f"INSERT INTO {schema}.r VALUES (1)")
        assert "destructive_write" in str(info.value) and "wipe_too" in str(info.value)
        # A trigger for other events does not fire; a trigger function the rules class as read is a read.
        assert sqlstate_of(conn, f"UPDATE {schema}.w SET v = 'z' WHERE id = 1", extended) is None
        assert sqlstate_of(conn, f"INSERT INTO {schema}.tw VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = 'b'",
                           extended) is None
    with psycopg.connect(pg.conninfo()) as direct:
        assert direct.execute(f"SELECT v FROM {schema}.w ORDER BY id").fetchall() == [("z",)]
        assert direct.execute(f"SELECT count(*) FROM {schema}.r").fetchone() == (0,)


@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
def test_reading_a_view_is_as_risky_as_what_its_definition_calls(guarded: DbfwProcess, pg: PgTarget, schema: str,
                                                                 extended: bool) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        for sql in [f"SELECT * FROM {schema}.evil_v", f"SELECT count(*) FROM {schema}.evil_on_evil",
                    f"SELECT 1 WHERE EXISTS (SELECT 1 FROM {schema}.evil_v)"]:
            state = sqlstate_of(conn, sql, extended)
            assert state == "DBF01", (sql, state)
            assert _rows(pg, schema) == 10, f"rows deleted through dbfw by {sql!r}"
        assert sqlstate_of(conn, f"SELECT * FROM {schema}.nice_v", extended) is None
