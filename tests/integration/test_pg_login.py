"""Logging in through dbfw: each agent with its own identity; dbfw alone holds the database credential."""

from __future__ import annotations

import json
import os
import subprocess
import time

import psycopg
import pytest

from tests.conftest import (
    AGENT,
    AGENT_MD5,
    AGENT_MD5_PASSWORD,
    AGENT_PASSWORD,
    REVIEWER,
    REVIEWER_PASSWORD,
    DbfwProcess,
    PgTarget,
    client_binary,
    start_dbfw,
    write_config,
)


def test_psql_runs_queries_as_the_agent_identity(dbfw: DbfwProcess) -> None:
    env = {**os.environ, "PGPASSWORD": AGENT_PASSWORD}
    out = subprocess.run(
        [client_binary("psql"), "-X", "-A", "-t", "-h", dbfw.host, "-p", str(dbfw.port), "-U", AGENT, "-d", "test",
         "-c", "select 40 + 2", "-c", "select 'a'::text || 'b'; select 7"],
        env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "ab", "7"]


def test_scram_login_and_query(dbfw: DbfwProcess) -> None:
    with psycopg.connect(dbfw.conninfo()) as conn:
        assert conn.execute("select current_database()").fetchone() == ("test",)
        assert conn.pgconn.used_password


def test_md5_login_when_the_listener_allows_it(dbfw: DbfwProcess) -> None:
    # The identity has a plain password and the listener lists md5 after SCRAM: SCRAM is still preferred.
    with psycopg.connect(dbfw.conninfo(user=AGENT_MD5, password=AGENT_MD5_PASSWORD)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_wrong_password_gets_28P01(dbfw: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dbfw.conninfo(password="not-the-password"))
    assert "28P01" in str(info.value) or "password authentication failed" in str(info.value)
    assert 'dbfw: password authentication failed for user "agent-ci"' in str(info.value)


def test_unknown_user_gets_the_same_28P01(dbfw: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dbfw.conninfo(user="mallory", password="x"))
    assert 'password authentication failed for user "mallory"' in str(info.value)


def test_upstream_superuser_does_not_exist_for_clients(dbfw: DbfwProcess, pg: PgTarget) -> None:
    # The upstream's own user is not a dbfw identity, even with the right (or no) password.
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dbfw.conninfo(user=pg.user, password=pg.password or "anything"))
    assert "password authentication failed" in str(info.value)


def test_identity_without_agent_role_is_refused(dbfw: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dbfw.conninfo(user=REVIEWER, password=REVIEWER_PASSWORD))
    assert "may not connect through a listener" in str(info.value)


def test_replication_connection_is_refused_with_a_clear_error(dbfw: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dbfw.conninfo(replication="database"))
    assert "replication connections are not allowed through dbfw" in str(info.value)


def test_the_log_never_contains_passwords(dbfw: DbfwProcess) -> None:
    with psycopg.connect(dbfw.conninfo()) as conn:
        conn.execute("select 1")
    log = dbfw.log()
    assert "session.start" in log
    for secret in (AGENT_PASSWORD, AGENT_MD5_PASSWORD, REVIEWER_PASSWORD, "alice-api-key"):
        assert secret not in log


def test_startup_options_that_change_role_are_refused(dbfw: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dbfw.conninfo(options="-c session_replication_role=replica"))
    assert 'the start-up setting "session_replication_role" is not allowed' in str(info.value)
    with psycopg.connect(dbfw.conninfo(options="-c statement_timeout=1234", application_name="ci-job")) as conn:
        assert conn.execute("show statement_timeout").fetchone() == ("1234ms",)
        assert conn.execute("show application_name").fetchone() == ("ci-job",)


@pytest.fixture(scope="module")
def md5_json_dbfw(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    config = write_config(tmp_path_factory.mktemp("md5"), pg, admin=False,
                          extra="logging: {format: json, level: info}\n")
    config.write_text(config.read_text().replace("auth_methods: [scram-sha-256, md5]", "auth_methods: [md5]"))
    proc = start_dbfw(config)
    yield proc
    proc.stop()


def test_md5_only_listener(md5_json_dbfw: DbfwProcess) -> None:
    with psycopg.connect(md5_json_dbfw.conninfo(user=AGENT_MD5, password=AGENT_MD5_PASSWORD,
                                                require_auth="md5")) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(md5_json_dbfw.conninfo(user=AGENT_MD5, password="wrong"))
    assert "password authentication failed" in str(info.value)


def test_json_log_lines_are_one_event_each(md5_json_dbfw: DbfwProcess) -> None:
    with psycopg.connect(md5_json_dbfw.conninfo(user=AGENT_MD5, password=AGENT_MD5_PASSWORD)) as conn:
        conn.execute("select 'a-result-value-7391'")
    deadline = time.monotonic() + 5
    while "session.end" not in md5_json_dbfw.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    events = [json.loads(line) for line in md5_json_dbfw.log().splitlines() if line.strip()]
    names = [e["event"] for e in events]
    assert "listener.start" in names and "session.start" in names and "session.end" in names
    assert all({"ts", "level", "event"} <= e.keys() for e in events)
    assert "a-result-value-7391" not in md5_json_dbfw.log()
    assert AGENT_MD5_PASSWORD not in md5_json_dbfw.log()
