"""Through the wire: dbfw reads each statement under the session's standard_conforming_strings and client
encoding as the server reports them, and refuses what it cannot read as the server does. The server is
checked afterwards: the table the hostile texts aim at is still there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import DbfwProcess, PgTarget, running_dbfw
from tests.integration.support import EVERYDAY_RULES, scratch_table, sqlstate_of

# Everyday classes run; setting standard_conforming_strings (an admin SET) is allowed here so that the
# sessions below can reach the states an attacker would use. Everything else waits for a reviewer.
RULES = EVERYDAY_RULES + """\
  - name: lexing-settings-for-this-test
    match: {classes: [admin], commands: [SET]}
    action: allow
"""

# Each is one SELECT of strings for a reader that takes '...' literally, and a SELECT then a DROP for the
# server in some session state (standard_conforming_strings off, or a continued E string).
HOSTILE = [
    "SELECT 'x\\', '; DROP TABLE {t}; --'",
    "SELECT N'x\\', '; DROP TABLE {t}; --'",
    "SELECT E'a'\n'\\', '; DROP TABLE {t}; --'",
    "SELECT 'a', 'x\\' , '; DROP TABLE {t}; SELECT '' --'",
]


@pytest.fixture(scope="module")
def guarded(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    directory: Path = tmp_path_factory.mktemp("dbfw-lexing")
    with running_dbfw(directory, pg, RULES, admin=False) as proc:
        yield proc


@pytest.fixture
def table(pg: PgTarget) -> Iterator[str]:
    with scratch_table(pg, "lex", "id int") as name:
        yield name


def _exists(pg: PgTarget, table: str) -> bool:
    with psycopg.connect(pg.conninfo()) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone() == (True,)


@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
@pytest.mark.parametrize("scs", ["off", "on"])
def test_backslashes_are_read_as_the_session_reads_them(guarded: DbfwProcess, pg: PgTarget, table: str,
                                                        scs: str, extended: bool) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        assert sqlstate_of(conn, f"SET standard_conforming_strings = {scs}", False) is None
        # Warm the shape cache with harmless texts of the same shapes first.
        for template in HOSTILE:
            harmless = template.replace("\\", "").format(t=table)
            sqlstate_of(conn, harmless, extended)
            assert _exists(pg, table), f"dropped through dbfw: {harmless!r}"
        for template in HOSTILE:
            sql = template.format(t=table)
            state = sqlstate_of(conn, sql, extended)
            if scs == "off" or "\n" in sql:  # texts that hold a DROP for the server in this state
                assert state is not None and state.startswith(("DBF", "42")), (sql, state)
            assert _exists(pg, table), f"dropped through dbfw: {sql!r} with standard_conforming_strings={scs}"
        # set_config changes the setting without SET: the server reports it, dbfw follows.
        assert sqlstate_of(conn, "SELECT 1", extended) is None
    assert _exists(pg, table)


def test_set_config_of_string_reading_is_followed(guarded: DbfwProcess, pg: PgTarget, table: str) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        state = sqlstate_of(conn, "SELECT set_config('standard_conforming_strings', 'off', false)", False)
        if state is None:  # allowed here: then the next statements are read with escapes
            sql = HOSTILE[0].format(t=table)  # one harmless SELECT if read with standard strings
            assert sqlstate_of(conn, sql, False) is not None
    assert _exists(pg, table)


def test_an_ascii_unsafe_client_encoding_is_refused_at_startup(guarded: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError, match="SJIS is not supported"):
        psycopg.connect(guarded.conninfo(client_encoding="SJIS"))


def test_after_switching_to_an_unsafe_encoding_only_ascii_is_read(guarded: DbfwProcess, pg: PgTarget,
                                                                  table: str) -> None:
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        assert sqlstate_of(conn, "SET client_encoding = 'SJIS'", False) is None
        assert conn.info.encoding == "shift_jis"
        # 0x83 0x5c is one SJIS character whose second byte is a backslash: refused, never guessed at.
        raw = b"SELECT '\x83\x5c'; DROP TABLE " + table.encode() + b"; --'"
        result = conn.pgconn.exec_(raw)
        assert result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"DBF01"
        assert sqlstate_of(conn, "SELECT 1", False) is None  # plain ASCII is read exactly in any encoding
        assert sqlstate_of(conn, "SET client_encoding = 'UTF8'", False) is None
        assert sqlstate_of(conn, "SELECT 'é'", False) is None
    assert _exists(pg, table)


def test_a_pipelined_statement_is_not_read_before_the_session_settles(guarded: DbfwProcess, pg: PgTarget,
                                                                       table: str) -> None:
    """In a pipeline the next statement arrives before the server reports the SET that changes how it reads
    strings: dbfw reads nothing ambiguous until the report is in."""
    with psycopg.connect(guarded.conninfo(), autocommit=True) as conn:
        pgconn = conn.pgconn
        pgconn.enter_pipeline_mode()
        # Both sync points leave in one write: dbfw has the second before the server answers the first.
        pgconn.send_query_params(b"SET standard_conforming_strings = off", None)
        pgconn.pipeline_sync()
        pgconn.send_query_params(HOSTILE[0].format(t=table).encode(), None)
        pgconn.pipeline_sync()
        pgconn.flush()
        states: list[str | None] = []
        syncs = 0
        while syncs < 2:
            result = pgconn.get_result()
            if result is None:
                continue
            if result.status == psycopg.pq.ExecStatus.PIPELINE_SYNC:
                syncs += 1
                continue
            state = result.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
            states.append(state.decode() if state else None)
        pgconn.exit_pipeline_mode()
        assert states[0] is None and states[1] == "DBF01", states
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("off",)
        # Settled: the same text is now read with escapes, as the server reads it, and refused.
        assert sqlstate_of(conn, HOSTILE[0].format(t=table)) == "DBF01"
    assert _exists(pg, table)
