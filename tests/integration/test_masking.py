"""Masking end to end: no seeded secret, nor a simple encoding of it, reaches a client — through psql,
psycopg (text and binary), asyncpg prepared statements — and unmasked columns are intact."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import psycopg
import pytest

from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    DbfwProcess,
    PgTarget,
    client_binary,
    running_dbfw,
)

SUFFIX = uuid4().hex[:6]
C = f"mcust_{SUFFIX}"  # customers
O_ = f"morder_{SUFFIX}"  # orders
V = f"mview_{SUFFIX}"  # a view over customers
F = f"mfunc_{SUFFIX}"  # a function that returns an email

CUSTOMERS = [
    (1, "Ada Lovelace", "ada.lovelace@example.com", "4111111111111111", "900-12-3456"),
    (2, "Alan Turing", "alan.turing@example.org", "5500005555555559", "900-65-4321"),
    (3, "Grace Hopper", "grace.hopper@example.net", "340000000000009", "900-11-2222"),
]
SECRETS = [s for _, _, email, card, ssn in CUSTOMERS for s in (email, card, ssn)]


def encodings(secret: str) -> list[str]:
    b = secret.encode()
    return [secret, secret.upper(), secret.lower(), secret[::-1], base64.b64encode(b).decode(),
            b.hex(), "\\x" + b.hex(), base64.b64encode(b).decode().rstrip("=")]


RULES = f"""\
defaults: {{action: allow, unknown: require_approval}}
policies: []
masking:
  - name: customer-email
    columns: ["public.{C}.email"]
    mask: email
  - name: card
    columns: ["*.*.card_number"]
    mask: partial
    options: {{keep_last: 4}}
  - name: ssn
    columns: ["*.{C}.ssn"]
    mask: redact
    detect: [email, credit_card, ssn]
  - name: dba-sees-all
    columns: ["*.*.never_matches"]
    mask: "null"
    unmasked_for: [role:admin]
"""

QUERIES = [
    f"SELECT id, name, email FROM {C} ORDER BY id",
    f"SELECT * FROM {C} ORDER BY id",
    f"SELECT {C}.* FROM {C} ORDER BY id",
    f"SELECT email AS e, name FROM {C} ORDER BY id",
    f"SELECT upper(email), lower(email) FROM {C}",
    f"SELECT email || '' AS x FROM {C}",
    f"SELECT coalesce(email, '-') FROM {C}",
    f"SELECT substring(email from 1 for 200) FROM {C}",
    f"SELECT reverse(email) FROM {C}",
    f"SELECT concat('<', email, '>') FROM {C}",
    f"SELECT format('%s', email) FROM {C}",
    f"SELECT CASE WHEN id > 0 THEN email ELSE name END FROM {C}",
    f"WITH x AS (SELECT email, card_number FROM {C}) SELECT * FROM x",
    f"WITH x AS (SELECT email AS a FROM {C}), y AS (SELECT a AS b FROM x) SELECT b FROM y",
    f"SELECT s.e FROM (SELECT email AS e FROM {C}) s",
    f"SELECT (SELECT email FROM {C} c2 WHERE c2.id = c.id) FROM {C} c",
    f"SELECT o.id, c.email, o.amount FROM {O_} o JOIN {C} c ON c.id = o.customer_id ORDER BY o.id",
    f"SELECT id FROM {C} UNION ALL SELECT length(email) FROM {C}",
    f"SELECT name FROM {C} UNION SELECT email FROM {C}",
    f"SELECT email, row_number() OVER (ORDER BY email) FROM {C}",
    f"SELECT first_value(ssn) OVER (ORDER BY id) FROM {C}",
    f"SELECT l.e FROM {O_} o, LATERAL (SELECT email AS e FROM {C} WHERE id = o.customer_id) l",
    f"SELECT * FROM {V} ORDER BY id",
    f"SELECT email FROM {V}",
    f"SELECT row_to_json(c) FROM {C} c",
    f"SELECT to_jsonb(c.*) FROM {C} c",
    f"SELECT json_agg(c) FROM {C} c",
    f"SELECT json_build_object('e', email) FROM {C}",
    f"SELECT c FROM {C} c",
    f"SELECT (c).email FROM {C} c",
    f"SELECT array_agg(email) FROM {C}",
    f"SELECT string_agg(card_number, ',') FROM {C}",
    f"SELECT max(email), min(ssn) FROM {C}",
    f"SELECT count(email) AS n FROM {C}",
    f"SELECT email::bytea FROM {C}",
    f"SELECT encode(convert_to(email, 'UTF8'), 'base64') FROM {C}",
    f"SELECT encode(convert_to(card_number, 'UTF8'), 'hex') FROM {C}",
    f"SELECT md5(email) FROM {C}",
    f"SELECT {F}(1)",
    f"SELECT * FROM {F}_all()",
    f"SELECT card_number FROM {C} WHERE id = 1",
    f"SELECT ssn, name FROM {C} ORDER BY id",
    f"SELECT t.email FROM {C} AS t WHERE t.id IN (1, 2)",
    f"SELECT email FROM public.{C}",
    f"SELECT \"email\" FROM \"{C}\"",
    f"TABLE {C}",
    f"SELECT id, name FROM {C} WHERE email LIKE 'ada%'",
]


# Every way a value leaves the server through a function: set-returning and record-returning functions in
# FROM, SQL functions (their bodies are traced like views), other languages (untraceable), XML and JSON
# exports of whole rows or tables. Each is masked, or refused; never passed in clear.
FUNCTION_QUERIES = [
    f"SELECT * FROM unnest((SELECT array_agg(id) FROM {C}), (SELECT array_agg(ssn) FROM {C}), "
    f"(SELECT array_agg(email) FROM {C}))",
    f"SELECT u.* FROM (SELECT array_agg(id) a, array_agg(ssn) b, array_agg(email) c FROM {C}) s, "
    "unnest(s.a, s.b, s.c) u",
    f"SELECT * FROM unnest(ARRAY(SELECT email FROM {C}))",
    f"SELECT * FROM ROWS FROM (unnest(ARRAY(SELECT id FROM {C})), unnest(ARRAY(SELECT card_number FROM {C})))",
    f"SELECT x FROM unnest(ARRAY(SELECT ssn FROM {C})) AS x",
    f"SELECT * FROM {F}_emails()",
    f"SELECT {F}_emails()",
    f"SELECT e FROM {F}_emails() AS e",
    f"SELECT * FROM {F}_rows()",
    f"SELECT id, email FROM {F}_rows()",
    f"SELECT r.ssn FROM {F}_rows() r WHERE r.id > 0",
    f"SELECT ({F}_rows()).*",
    f"SELECT {F}_rows()",
    f"SELECT * FROM {F}_pl()",
    f"SELECT {F}_pl()",
    f"SELECT {F}_pick(1)",
    f"SELECT * FROM {F}_pick(2)",
    f"SELECT * FROM json_populate_recordset(null::{C}, (SELECT json_agg(c) FROM {C} c))",
    f"SELECT * FROM jsonb_to_recordset((SELECT jsonb_agg(c) FROM {C} c)) AS x(id int, email text)",
    f"SELECT * FROM json_each_text((SELECT row_to_json(c) FROM {C} c WHERE id = 1))",
    f"SELECT jsonb_agg(c) FROM {C} c",
    f"SELECT json_object_agg(id, email) FROM {C}",
    f"SELECT array_to_json(array_agg(c)) FROM {C} c",
    f"SELECT to_json(ARRAY(SELECT ssn FROM {C}))",
    f"SELECT table_to_xml('{C}', true, false, '')",
    f"SELECT query_to_xml('select * from {C}', true, false, '')",
    f"SELECT xmlforest(email, ssn) FROM {C}",
    f"SELECT xmlagg(xmlelement(name e, email)) FROM {C}",
    f"SELECT (x).* FROM (SELECT c AS x FROM {C} c) s",
    f"SELECT (x).email FROM (SELECT c AS x FROM {C} c) s",
    f"SELECT id, e || '', s || '' FROM {C} x(id, n, e, cn, s)",
    f"SELECT string_agg(e, ',') FROM {C} AS x(i, n, e)",
    f"SELECT b FROM {V} AS w(a, z, b)",
    f"SELECT * FROM (SELECT 'a@' || string_agg(replace(email, '@', '_'), ' ') z FROM (SELECT email FROM {C}) q) y",
    f"SELECT * FROM (SELECT 'a@' || email AS z FROM {C}) y",
    f"SELECT z FROM (SELECT x AS z FROM (SELECT lower(email) AS x FROM {C}) p) q",
]


@pytest.fixture(scope="module")
def seeded(pg: PgTarget) -> Iterator[PgTarget]:
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"create table {C} (id int primary key, name text, email text, card_number text, ssn text)")
        conn.execute(f"create table {O_} (id int primary key, customer_id int, amount numeric)")
        for row in CUSTOMERS:
            conn.execute(f"insert into {C} values (%s, %s, %s, %s, %s)", row)
        conn.execute(f"insert into {O_} select g, (g % 3) + 1, g * 10 from generate_series(1, 6) g")
        conn.execute(f"create view {V} as select id, name, email from {C}")
        conn.execute(f"create function {F}(i int) returns text language sql as "
                     f"$$ select email from {C} where id = i $$")
        conn.execute(f"create function {F}_all() returns table (x text) language sql as "
                     f"$$ select email || ' ' || ssn from {C} $$")
        conn.execute(f"create function {F}_emails() returns setof text language sql as $$ select email from {C} $$")
        conn.execute(f"create function {F}_rows() returns table (id int, email text, ssn text) language sql as "
                     f"$$ select id, email, ssn from {C} $$")
        conn.execute(f"create function {F}_pl() returns setof text language plpgsql as "
                     f"$$ begin return query select email from {C}; end $$")
        conn.execute(f"create function {F}_pick(i int) returns text language sql begin atomic "
                     f"select ssn from {C} where id = i; end")
    yield pg
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"drop view if exists {V}")
        conn.execute(f"drop function if exists {F}(int)")
        conn.execute(f"drop function if exists {F}_all()")
        for fn in ("emails()", "rows()", "pl()", "pick(int)"):
            conn.execute(f"drop function if exists {F}_{fn}")
        conn.execute(f"drop table if exists {O_}")
        conn.execute(f"drop table if exists {C}")


@pytest.fixture(scope="module")
def masked(seeded: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with running_dbfw(tmp_path_factory.mktemp("masking"), seeded, RULES,
                      extra="masking_key: test-masking-key\n") as proc:
        yield proc


def assert_no_secret(text: str, query: str) -> None:
    for secret in SECRETS:
        for form in encodings(secret):
            assert form not in text, f"{form!r} (from {secret!r}) leaked by {query!r}"


def _psycopg(conninfo: str, query: str, binary: bool) -> list[tuple[object, ...]]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.cursor(binary=binary).execute(query).fetchall()


@pytest.mark.parametrize("query", QUERIES)
def test_no_secret_reaches_psycopg_text_or_binary(masked: DbfwProcess, query: str) -> None:
    for binary in (False, True):
        rows = _psycopg(masked.conninfo(), query, binary)
        assert rows, query
        assert_no_secret(repr(rows), query)


def test_no_secret_reaches_psql(masked: DbfwProcess) -> None:
    env = {**os.environ, "PGPASSWORD": AGENT_PASSWORD}
    script = "\n".join(q + ";" for q in QUERIES)
    out = subprocess.run([client_binary("psql"), "-X", "-h", masked.host, "-p", str(masked.port), "-U", AGENT, "-d",
                          "test", "-v", "ON_ERROR_STOP=1"], input=script, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ada" in out.stdout.lower()  # results did arrive
    assert_no_secret(out.stdout, "psql script")


def test_no_secret_reaches_asyncpg_prepared_statements(masked: DbfwProcess) -> None:
    async def scenario() -> list[str]:
        conn = await asyncpg.connect(host=masked.host, port=masked.port, user=AGENT, password=AGENT_PASSWORD,
                                     database="test")
        try:
            out = []
            for query in QUERIES:
                stmt = await conn.prepare(query)
                for _ in range(2):  # a prepared statement executed again is masked again
                    out.append(repr(await stmt.fetch()))
            out.append(repr(await conn.fetch(f"SELECT email, name FROM {C} WHERE id = $1", 1)))
            return out
        finally:
            await conn.close()

    for text in asyncio.run(scenario()):
        assert_no_secret(text, "asyncpg")


def test_masks_keep_their_documented_shape_and_unmasked_columns_are_intact(masked: DbfwProcess,
                                                                           seeded: PgTarget) -> None:
    query = f"SELECT id, name, email, card_number, ssn FROM {C} ORDER BY id"
    direct = _psycopg(seeded.conninfo(), query, False)
    through = _psycopg(masked.conninfo(), query, False)
    for d, t in zip(direct, through, strict=True):
        assert t[0] == d[0] and t[1] == d[1]  # unmasked columns byte-identical
        assert t[2] == d[2][0] + "***@" + d[2].split("@")[1]  # email: first character and domain
        assert t[3] == "*" * (len(d[3]) - 4) + d[3][-4:]  # partial: last four kept
        assert t[4] == "****"  # redact
    # Joins and numbers are untouched.
    q2 = f"SELECT o.id, o.amount, c.name FROM {O_} o JOIN {C} c ON c.id = o.customer_id ORDER BY o.id"
    assert _psycopg(masked.conninfo(), q2, True) == _psycopg(seeded.conninfo(), q2, True)


def test_a_masked_non_text_column_becomes_null(masked: DbfwProcess) -> None:
    rows = _psycopg(masked.conninfo(), f"SELECT email::bytea, length(email) FROM {C}", True)
    assert all(r == (None, None) for r in rows)


def test_dml_returning_is_masked(masked: DbfwProcess, seeded: PgTarget) -> None:
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn:
        row = conn.execute(f"UPDATE {C} SET name = name WHERE id = 1 RETURNING email, name").fetchone()
    assert row is not None and row[1] == "Ada Lovelace"
    assert_no_secret(repr(row), "UPDATE ... RETURNING")


def test_server_side_cursor_fetch_is_masked(masked: DbfwProcess) -> None:
    with psycopg.connect(masked.conninfo()) as conn, conn.cursor(name="masked_cursor") as cur:
        cur.execute(f"SELECT id, email, ssn FROM {C} ORDER BY id")
        rows = cur.fetchmany(2) + cur.fetchall()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert_no_secret(repr(rows), "cursor")


def test_copy_to_stdout_text_and_csv_are_masked_binary_refused(masked: DbfwProcess) -> None:
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn, conn.cursor() as cur:
        for fmt in ("", " (FORMAT csv)", " (FORMAT csv, HEADER)", " WITH (DELIMITER ',')", " (DELIMITER '|')",
                    " WITH (FORMAT csv, DELIMITER '|')", " WITH CSV DELIMITER ';' QUOTE ''''",
                    " (FORMAT csv, QUOTE '*', ESCAPE '~', FORCE_QUOTE *)", " (NULL 'none')", " WITH DELIMITER ' '"):
            data = b""
            with cur.copy(f"COPY {C} TO STDOUT{fmt}") as copy:
                for chunk in copy:
                    data += bytes(chunk)
            assert b"Ada" in data and b"Lovelace" in data  # unmasked columns pass
            assert_no_secret(data.decode(), f"COPY{fmt}")
        for q in (f"COPY (SELECT name, email FROM {C}) TO STDOUT",
                  f"COPY (SELECT name, email, ')' AS paren FROM {C}) TO STDOUT",
                  f"COPY (SELECT name, /* ) */ email FROM {C}) TO STDOUT (FORMAT csv)"):
            data = b""
            with cur.copy(q) as copy:
                for chunk in copy:
                    data += bytes(chunk)
            assert b"Ada Lovelace" in data
            assert_no_secret(data.decode(), q)
        with pytest.raises(psycopg.Error) as info, cur.copy(f"COPY {C} TO STDOUT (ENCODING 'LATIN1')") as copy:
            for _ in copy:
                pass
        assert info.value.sqlstate == "DBF02"
        with pytest.raises(psycopg.Error) as info, cur.copy(f"COPY {C} TO STDOUT (FORMAT binary)") as copy:
            for _ in copy:
                pass
        assert info.value.sqlstate == "DBF02"


def test_role_in_unmasked_for_sees_the_data(masked: DbfwProcess, seeded: PgTarget) -> None:
    # root-admin is exempt only from the "dba-sees-all" rule; the customer rules still mask for it.
    rows = _psycopg(masked.conninfo(user="root-admin", password="root-admin-secret"), f"SELECT email FROM {C}",
                    False)
    assert_no_secret(repr(rows), "admin")


def test_new_view_after_ddl_is_masked(masked: DbfwProcess, seeded: PgTarget) -> None:
    view = f"mview2_{uuid4().hex[:6]}"
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE VIEW {view} AS SELECT name, email AS contact FROM {C}")
        try:
            import time

            time.sleep(1.2)  # the catalog is read again after DDL
            rows = conn.execute(f"SELECT * FROM {view}").fetchall()
            assert len(rows) == 3
            assert_no_secret(repr(rows), "new view")
        finally:
            conn.execute(f"DROP VIEW {view}")


def test_masked_value_counts_are_kept(masked: DbfwProcess) -> None:
    _psycopg(masked.conninfo(), f"SELECT email FROM {C}", False)
    assert Path(masked.log_path).exists()


@pytest.mark.parametrize("mask,options", [("email", {}), ("partial", {"keep_last": 4}),
                                          ("partial", {"keep_first": 2, "keep_last": 3}), ("redact", {}),
                                          ("null", {})])
def test_masks_run_by_the_upstream_equal_dbfws_own(pg: PgTarget, mask: str, options: dict[str, int]) -> None:
    """A plain SELECT may be masked by the upstream itself (no per-row work in dbfw): same output, always."""
    from dbfw.masking.maskers import make_masker
    from dbfw.masking.plan import sql_mask
    from dbfw.policy.rules import MaskRule

    rule = MaskRule(name="r", columns=["*.*.x"], mask=mask, options=options)  # type: ignore[arg-type]
    python = make_masker(rule, b"k")
    for version in (150000, 130000):  # both forms of the email mask: PostgreSQL 14+ and older
        _compare_sql_and_python(pg, python, sql_mask(rule, version))


def _compare_sql_and_python(pg: PgTarget, python, template: str | None) -> None:  # type: ignore[no-untyped-def]
    assert template is not None
    values = [None, "", "@", "@only-domain", "a@b", "a@b@c.org", "ada.lovelace@example.com", "é@x.org", "no-at",
              "12", "4111111111111111", "line\nbreak@x.io", "  spaced@x.io "]
    with psycopg.connect(pg.conninfo()) as conn:
        for value in values:
            got = conn.execute(f"SELECT {template.format(c='%s::text')}", (value,) * template.count("{c}")
                               ).fetchone()[0]  # type: ignore[index]
            expected = None if value is None else python(value.encode())
            assert got == (expected.decode() if expected is not None else None), (template, value)


def test_statements_the_upstream_cannot_wrap_are_still_masked(masked: DbfwProcess, seeded: PgTarget) -> None:
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn:
        # A data-modifying WITH must stay at the top level; FOR UPDATE and DISTINCT are not wrapped either.
        row = conn.execute(f"WITH u AS (UPDATE {C} SET name = name WHERE id = 2 RETURNING id) "
                           f"SELECT c.email, c.name FROM {C} c JOIN u ON u.id = c.id").fetchone()
        assert row is not None and row[1] == "Alan Turing"
        assert_no_secret(repr(row), "data-modifying WITH")
        with conn.transaction():
            rows = conn.execute(f"SELECT email FROM {C} WHERE id = 1 FOR UPDATE").fetchall()
        assert_no_secret(repr(rows), "FOR UPDATE")
        rows = conn.execute(f"SELECT DISTINCT email FROM {C}").fetchall()
        assert len(rows) == 3
        assert_no_secret(repr(rows), "DISTINCT")


@pytest.mark.parametrize("query", FUNCTION_QUERIES)
def test_values_leaving_through_functions_are_masked_or_refused(masked: DbfwProcess, query: str) -> None:
    for binary in (False, True):
        try:
            rows = _psycopg(masked.conninfo(), query, binary)
        except psycopg.Error as e:
            assert (e.sqlstate or "").startswith("DBF"), f"{query}: {e}"
            continue
        assert_no_secret(repr(rows), query)


ERROR_QUERIES = [
    f"SELECT email::int FROM {C} WHERE id = 1",
    f"SELECT (string_agg(email || ':' || ssn, ','))::int FROM {C}",
    f"SELECT card_number::date FROM {C} WHERE id = 2",
    f"SELECT ssn::json FROM {C} WHERE id = 3",
    f"SELECT ('{{\"a\": ' || email || '}}')::json FROM {C} WHERE id = 1",
    f"DO $$ BEGIN RAISE EXCEPTION '%', (SELECT string_agg(email, ',') FROM {C}); END $$",
    f"DO $$ BEGIN RAISE EXCEPTION 'x' USING DETAIL = (SELECT min(ssn) FROM {C}); END $$",
    f"SELECT ('<' || string_agg('r' || id || '-' || replace(email, '@', '_'), '-') || '></x>')::xml FROM {C}",
    f"SELECT chr(replace(ssn, '-', '')::int + 2000000) FROM {C} WHERE id = 1",
    f"SELECT get_byte('\\x00'::bytea, replace(ssn, '-', '')::int) FROM {C} WHERE id = 2",
]


@pytest.mark.parametrize("query", ERROR_QUERIES)
def test_values_quoted_in_errors_are_withheld(masked: DbfwProcess, query: str) -> None:
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(query)
        diag = info.value.diag
        text = " ".join(str(x) for x in (info.value, diag.message_detail, diag.message_hint, diag.context,
                                         diag.internal_query))
        assert_no_secret(text, query)
        assert info.value.sqlstate and not info.value.sqlstate.startswith("DBF")  # the server's own error
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_notices_and_notifications_do_not_carry_values(masked: DbfwProcess) -> None:
    notices: list[str] = []
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(f"{d.message_primary} {d.message_detail}"))
        conn.execute(f"DO $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(ssn, ',') FROM {C}); END $$")
        conn.execute("LISTEN masked_channel")
        conn.execute(f"SELECT count(pg_notify('masked_channel', email)) FROM {C}")
        payloads = [n.payload for n in conn.notifies(timeout=2, stop_after=3)]
    assert notices and payloads
    assert_no_secret(repr(notices) + repr(payloads), "notices")


def test_an_error_cannot_carry_a_result_past_the_limits(pg: PgTarget, tmp_path: Path) -> None:
    with running_dbfw(tmp_path, pg, "defaults: {action: allow}\npolicies: []\nlimits: {max_result_bytes: 100KB}\n",
                      admin=False) as proc, psycopg.connect(proc.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute("SELECT repeat('x', 3000000)::int")
        assert len(str(info.value)) < 2000


LAUNDERING = [
    f"UPDATE {C} SET name = email WHERE id = 1",
    f"UPDATE {C} SET name = email || '|' || ssn WHERE id = 1 RETURNING id, name",
    f"INSERT INTO {O_} (id, customer_id, amount) SELECT 100 + id, id, ssn::numeric FROM {C} WHERE id = 1",
    f"WITH u AS (UPDATE {C} SET name = card_number WHERE id = 2 RETURNING name) SELECT * FROM u",
    f"UPDATE {O_} o SET amount = length(c.email) FROM {C} c WHERE c.id = o.customer_id AND o.id = 1",
    f"UPDATE {C} SET (name, card_number) = (SELECT email, ssn) WHERE id = 1",
    f"UPDATE {C} SET (name) = (SELECT email) WHERE id = 1 RETURNING name",
    f"UPDATE {C} SET (name, ssn) = (email, 'x') WHERE id = 1",
    f"UPDATE {C} x SET (name) = (SELECT c2.ssn FROM {C} c2 WHERE c2.id = x.id) WHERE id = 2",
]


@pytest.mark.parametrize("query", LAUNDERING)
def test_masked_values_cannot_be_copied_into_unmasked_columns(masked: DbfwProcess, seeded: PgTarget,
                                                              query: str) -> None:
    before = _psycopg(seeded.conninfo(), f"SELECT * FROM {C} ORDER BY id", False)
    orders = _psycopg(seeded.conninfo(), f"SELECT * FROM {O_} ORDER BY id", False)
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(query)
        assert info.value.sqlstate == "DBF02" and "not masked" in str(info.value)
    assert _psycopg(seeded.conninfo(), f"SELECT * FROM {C} ORDER BY id", False) == before
    assert _psycopg(seeded.conninfo(), f"SELECT * FROM {O_} ORDER BY id", False) == orders


def test_a_masked_column_may_be_rewritten_in_place(masked: DbfwProcess, seeded: PgTarget) -> None:
    with psycopg.connect(masked.conninfo(), autocommit=True) as conn:
        conn.execute(f"UPDATE {C} SET email = lower(email) WHERE id = 1")
        conn.execute(f"UPDATE {C} SET name = upper(name) WHERE id = 1")
        conn.execute(f"UPDATE {C} SET name = initcap(name) WHERE id = 1")
