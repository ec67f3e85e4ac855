"""PostgreSQL as dbfw's second parser: text the server cannot parse gets the server's own syntax error
(42601, its message and position), as without dbfw, whatever the rules say about unknown statements;
text it can parse but dbfw cannot classify stays unknown. Nothing is run to find out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import pq

from tests.conftest import DbfwProcess, PgTarget, running_dbfw

RULES = """\
defaults: {action: allow, unknown: deny}
policies:
  - name: everything-but-unknown
    match: {}
    action: allow
"""

TEXTS = [
    "selec 1",
    "SELECT 1 FROM",
    "SELECT 'unterminated",
    "SELECT 1; SELEC 2",
    "SELECT (1",
    "INSERT INTO t VALUES (1,",
    "SELECT $$abc",
    "/* unterminated comment SELECT 1",
]


def _error(conn: psycopg.Connection, sql: str, extended: bool) -> tuple[str | None, str | None, str | None]:
    pgconn = conn.pgconn
    result = pgconn.exec_params(sql.encode(), []) if extended else pgconn.exec_(sql.encode())
    field = result.error_field
    decoded = [field(f) for f in (pq.DiagnosticField.SQLSTATE, pq.DiagnosticField.MESSAGE_PRIMARY,
                                  pq.DiagnosticField.STATEMENT_POSITION)]
    return tuple(v.decode() if v is not None else None for v in decoded)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def guarded(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    directory: Path = tmp_path_factory.mktemp("dbfw-second-parser")
    with running_dbfw(directory, pg, RULES, admin=False) as proc:
        yield proc


@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
def test_syntax_errors_are_the_servers_own(guarded: DbfwProcess, pg: PgTarget, extended: bool) -> None:
    with psycopg.connect(pg.conninfo(), autocommit=True) as direct, \
            psycopg.connect(guarded.conninfo(), autocommit=True) as through:
        for sql in TEXTS:
            if extended and ";" in sql:
                continue  # the extended protocol takes one statement
            expected = _error(direct, sql, extended)
            assert expected[0] == "42601", sql
            assert _error(through, sql, extended) == expected, sql
            assert through.execute("SELECT 1").fetchone() == (1,)


def test_valid_text_dbfw_cannot_classify_stays_unknown(guarded: DbfwProcess) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        # Valid PostgreSQL, but a Unicode-escaped name dbfw does not read through sqlglot: the rules decide.
        state, _, _ = _error(conn, 'SELECT U&"\\0061" FROM (SELECT 1 AS a) s', False)
        assert state == "DBF05"
