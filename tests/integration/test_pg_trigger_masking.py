"""PostgreSQL triggers and rules in a session masking applies to: a write that fires code naming a masked
column (or a view over one), or building SQL at run time, is refused; the copy never lands. Writes whose
triggers name no masked column run."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest

from tests.conftest import DbfwProcess, PgTarget, running_dbfw
from tests.integration.support import EVERYDAY_RULES

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def schema(pg: PgTarget) -> Iterator[str]:
    name = f"trgm_{uuid4().hex[:8]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        for sql in [
            f"CREATE SCHEMA {name}",
            f"CREATE TABLE {name}.people (id int PRIMARY KEY, name text, email text)",
            f"INSERT INTO {name}.people VALUES (1, 'ann', 'ann@secret.example'), (2, 'bob', 'bob@secret.example')",
            f"CREATE TABLE {name}.log (msg text)",
            f"CREATE VIEW {name}.contacts AS SELECT id, email AS c FROM {name}.people",
            f"CREATE TABLE {name}.ruled (id int, v text)",
            f"CREATE TABLE {name}.viewed (id int)",
            f"CREATE VIEW {name}.viewed_v AS SELECT id FROM {name}.viewed",
            f"CREATE TABLE {name}.trusted_t (id int)",
            f"CREATE VIEW {name}.trusted_v AS SELECT id FROM {name}.trusted_t",
            f"CREATE FUNCTION {name}.trusted_copy() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
            f"INSERT INTO {name}.log SELECT c FROM {name}.contacts WHERE id = NEW.id; RETURN NEW; END$$",
            f"CREATE TRIGGER trusted_copy AFTER INSERT ON {name}.trusted_t FOR EACH ROW "
            f"EXECUTE FUNCTION {name}.trusted_copy()",
            f"CREATE TABLE {name}.dynamic (id int)",
            f"CREATE TABLE {name}.plain (id int PRIMARY KEY, n int)",
            f"INSERT INTO {name}.plain VALUES (1, 0)",
            f"CREATE RULE copy_mail AS ON INSERT TO {name}.ruled DO ALSO "
            f"INSERT INTO {name}.log SELECT email FROM {name}.people WHERE id = NEW.id",
            f"CREATE FUNCTION {name}.copy_contact() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
            f"INSERT INTO {name}.log SELECT c FROM {name}.contacts WHERE id = NEW.id; RETURN NEW; END$$",
            f"CREATE TRIGGER copy_contact AFTER INSERT ON {name}.viewed FOR EACH ROW "
            f"EXECUTE FUNCTION {name}.copy_contact()",
            f"CREATE FUNCTION {name}.built() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
            f"EXECUTE 'INSERT INTO {name}.log SELECT em' || 'ail FROM {name}.people'; RETURN NEW; END$$",
            f"CREATE TRIGGER built AFTER INSERT ON {name}.dynamic FOR EACH ROW EXECUTE FUNCTION {name}.built()",
            f"CREATE FUNCTION {name}.trusted_touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
            f"NEW.n := NEW.n + 1; RETURN NEW; END$$",
            f"CREATE TRIGGER touch BEFORE UPDATE ON {name}.plain FOR EACH ROW EXECUTE FUNCTION {name}.trusted_touch()",
        ]:
            conn.execute(sql)
    yield name
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(scope="module")
def fw(pg: PgTarget, schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    rules = EVERYDAY_RULES + f"""\
functions:
  "{schema}.trusted_*": write
masking:
  - {{name: email, columns: ["{schema}.people.email"], mask: email}}
"""
    with running_dbfw(tmp_path_factory.mktemp("pg-trigger-masking"), pg, rules, admin=False) as proc:
        yield proc


@pytest.mark.parametrize("sql", ["INSERT INTO {s}.ruled VALUES (1, 'x')", "INSERT INTO {s}.viewed VALUES (2)",
                                 "INSERT INTO {s}.dynamic VALUES (1)",
                                 "INSERT INTO {s}.viewed_v VALUES (2)"])  # through a view of the table
def test_a_write_firing_code_that_reads_masked_values_is_refused(fw: DbfwProcess, pg: PgTarget, schema: str,
                                                                 sql: str) -> None:
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(sql.format(s=schema))
    assert info.value.sqlstate in ("DBF01", "DBF02"), info.value
    with psycopg.connect(pg.conninfo()) as direct:
        assert direct.execute(f"SELECT count(*) FROM {schema}.log").fetchone() == (0,)


def test_a_rule_copying_masked_values_is_refused_even_where_writes_are_allowed(fw: DbfwProcess, pg: PgTarget,
                                                                               schema: str) -> None:
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(f"INSERT INTO {schema}.ruled VALUES (1, 'x')")
    assert info.value.sqlstate == "DBF02" and "email" in str(info.value), info.value


@pytest.mark.parametrize("target", ["trusted_t", "trusted_v"])
def test_a_trigger_the_rules_trust_is_still_not_fired_to_copy_masked_values(fw: DbfwProcess, pg: PgTarget,
                                                                           schema: str, target: str) -> None:
    """The rules class the function as a write, so the INSERT runs, unless masking applies: the function names
    a view over a masked column (also when the table is written through a view of its own)."""
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(f"INSERT INTO {schema}.{target} VALUES (1)")
    assert info.value.sqlstate == "DBF02" and "contacts" in str(info.value), info.value
    with psycopg.connect(pg.conninfo()) as direct:
        assert direct.execute(f"SELECT count(*) FROM {schema}.log").fetchone() == (0,)


def test_a_trigger_naming_no_masked_column_runs(fw: DbfwProcess, pg: PgTarget, schema: str) -> None:
    with psycopg.connect(fw.conninfo(), autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.plain SET n = 5 WHERE id = 1")
    with psycopg.connect(pg.conninfo()) as direct:
        assert direct.execute(f"SELECT n FROM {schema}.plain").fetchone() == (6,)
