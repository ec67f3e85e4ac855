"""Session recordings and the tamper-evident audit chain."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbfw.store.base import expand_event
from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    REVIEWER_PASSWORD,
    DbfwProcess,
    PgTarget,
    running_dbfw,
    start_dbfw,
    write_config,
)

RULES = """\
defaults: {action: require_approval}
policies:
  - {name: everyday, match: {classes: [read, write, session, transaction]}, action: allow}
"""


def _get(proc: DbfwProcess, path: str, key: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(f"http://127.0.0.1:{proc.admin_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbfw.cli", *args, "-c", str(config)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "DBFW_TEST_AGENT_PASSWORD": AGENT_PASSWORD})


@pytest.fixture
def recorded(pg: PgTarget, tmp_path: Path) -> Any:
    config = write_config(tmp_path, pg, extra="audit: {redact_literals: false}\n")
    (tmp_path / "rules.yaml").write_text(RULES)
    proc = start_dbfw(config)
    yield proc, config, tmp_path / "dbfw.db"
    proc.stop()


def test_sessions_are_recorded_and_readable_by_auditors(recorded: Any) -> None:
    proc, config, _ = recorded
    with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
        conn.execute("select 42 as answer")
        with pytest.raises(psycopg.Error):
            conn.execute("drop table if exists nothing_here")
        with pytest.raises(psycopg.Error):
            conn.execute("select 1/0")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proc.conninfo(password="wrong-password-xyz"))
    assert _get(proc, "/api/v1/sessions", None)[0] == 401
    assert _get(proc, "/api/v1/sessions", "alice-api-key")[0] == 403  # a reviewer is not an auditor
    status, listing = _get(proc, "/api/v1/sessions", "carol-api-key")
    assert status == 200 and listing["sessions"]
    mine = [s for s in listing["sessions"] if s["identity"] == AGENT]
    deadline = time.monotonic() + 5
    while not mine[0]["ended_at"] and time.monotonic() < deadline:
        time.sleep(0.2)
        mine = [s for s in _get(proc, "/api/v1/sessions", "carol-api-key")[1]["sessions"] if s["identity"] == AGENT]
    status, session = _get(proc, f"/api/v1/sessions/{mine[0]['id']}", "carol-api-key")
    assert status == 200 and session["database"] == "test"
    kinds = [e["kind"] for e in session["events"]]
    assert kinds[0] == "session_start" and kinds[-1] == "session_end" and "statement" in kinds and "result" in kinds
    statements = [e for e in session["events"] if e["kind"] == "statement"]
    assert statements[0]["sql"] == "select 42 as answer" and statements[0]["action"] == "allow"
    assert statements[0]["policy"] == "everyday" and len(statements[0]["fingerprint"]) >= 16
    refused = [e for e in statements if e.get("refused")]
    assert refused and refused[0]["refused"] == "DBF01" and refused[0]["approval"].startswith("req_")
    # An everyday statement is one event with its result; a refused one gets its result separately.
    assert statements[0]["rows"] == 1 and statements[0]["seconds"] > 0
    assert any(e.get("error") == "22012" for e in statements)
    assert any(e["kind"] == "result" for e in session["events"])
    replay = _cli(config, "recordings", "replay", mine[0]["id"])
    assert replay.returncode == 0 and "select 42 as answer" in replay.stdout and "1 row(s)" in replay.stdout
    jsonl = _cli(config, "recordings", "show", mine[0]["id"], "--jsonl").stdout.splitlines()
    assert all(json.loads(line)["session"] == mine[0]["id"] for line in jsonl) and len(jsonl) == len(kinds)
    everything = json.dumps(listing) + json.dumps(session) + replay.stdout
    for secret in (AGENT_PASSWORD, REVIEWER_PASSWORD, "wrong-password-xyz", "carol-api-key"):
        assert secret not in everything


def test_literals_can_be_kept_out_of_recordings(pg: PgTarget, tmp_path: Path) -> None:
    with running_dbfw(tmp_path, pg, RULES, extra="audit: {redact_literals: true}\n") as proc, \
            psycopg.connect(proc.conninfo(), autocommit=True) as conn:
        conn.execute("select 'a-secret-literal-77' as x, 12345 as y")
    db = sqlite3.connect(tmp_path / "dbfw.db")
    details = " ".join(r[0] for r in db.execute("select detail from audit_events"))
    assert "a-secret-literal-77" not in details and "12345" not in details
    assert "select ? as x, ? as y" in details


def test_an_edited_record_is_caught(recorded: Any) -> None:
    proc, config, db_path = recorded
    with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
        for i in range(5):
            conn.execute(f"select {i}")
    assert proc.stop() == 0
    ok = _cli(config, "audit", "verify")
    assert ok.returncode == 0 and "audit chain ok" in ok.stdout
    db = sqlite3.connect(db_path)
    victim = db.execute("select id from audit_events where action = 'statements' and detail like '%select 2%'"
                        ).fetchone()[0]
    db.execute("update audit_events set detail = replace(detail, 'select 2', 'select 9') where id = ?", (victim,))
    db.commit()
    broken = _cli(config, "audit", "verify")
    assert broken.returncode == 1 and f"record {victim}" in broken.stderr and "changed" in broken.stderr
    db.execute("delete from audit_events where id = ?", (victim,))  # removing it breaks the next link
    db.commit()
    assert "broken" in _cli(config, "audit", "verify").stderr


def test_sigterm_under_load_loses_no_recorded_statement(recorded: Any) -> None:
    proc, _, db_path = recorded
    ran = [0] * 4
    stop = threading.Event()

    def load(i: int) -> None:
        try:
            with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute(f"select {i} /* load */")
                    ran[i] += 1
        except psycopg.Error:
            pass  # the connection is closed by the shutdown

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    assert len(_writer_pids(db_path)) == 1
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(30) == 0
    assert not _writer_pids(db_path)  # the writer process ends with dbfw, after the last flush
    stop.set()
    for t in threads:
        t.join()
    db = sqlite3.connect(db_path)
    events = [e for row in db.execute("select at, action, detail from audit_events") for e in expand_event(*row)]
    recorded_statements = sum(1 for e in events if e["kind"] == "statement" and "/* load */" in e["sql"])
    assert sum(ran) > 50
    assert recorded_statements >= sum(ran)
    unsealed = db.execute("select count(*) from audit_events where seal_seq is null").fetchone()[0]
    assert unsealed == 0


def _recorded_count(db_path: Path, marker: str, expected: int, timeout: float = 20) -> None:
    """Wait until the store holds ``expected`` statements carrying ``marker`` (the writer flushed them)."""
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(db_path)
        try:
            rows = db.execute("select at, action, detail from audit_events").fetchall()
        except sqlite3.OperationalError:  # the writer holds the database: look again
            rows = []
        finally:
            db.close()
        found = sum(1 for row in rows for e in expand_event(*row) if e["kind"] == "statement" and marker in e["sql"])
        if found >= expected:
            return
        assert time.monotonic() < deadline, f"only {found} of {expected} statements were recorded"
        time.sleep(0.05)


def _writer_pids(db_path: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dbfw.store.writer_process" in cmdline and str(db_path).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the writer process through /proc")
def test_recordings_survive_the_writer_process_going_away(recorded: Any) -> None:
    proc, _, db_path = recorded
    (writer,) = _writer_pids(db_path)  # recordings are written by a process of their own
    with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
        for i in range(20):
            conn.execute(f"select {i} /* before */", prepare=False)
        _recorded_count(db_path, "/* before */", 20)  # flushed through the writer
        os.kill(writer, signal.SIGKILL)
        for i in range(20):
            conn.execute(f"select {i} /* after */", prepare=False)
    assert proc.stop() == 0
    assert "recording.writer_lost" in proc.log()
    db = sqlite3.connect(db_path)
    events = [e for row in db.execute("select at, action, detail from audit_events") for e in expand_event(*row)]
    sqls = [e["sql"] for e in events if e["kind"] == "statement"]
    assert sum("/* before */" in s for s in sqls) == 20
    assert sum("/* after */" in s for s in sqls) == 20
    assert _cli_verify_ok(proc.config_path)


def _cli_verify_ok(config: Path) -> bool:
    res = _cli(config, "audit", "verify")
    return res.returncode == 0 and "audit chain ok" in res.stdout


def test_a_large_bind_is_recorded_as_the_statement_it_runs(pg: PgTarget, tmp_path: Path) -> None:
    # A Bind larger than a read is not relayed in pieces past the portal bookkeeping: the execution it
    # starts is recorded as its own statement, not as the portal's previous one.
    config = write_config(tmp_path, pg)
    (tmp_path / "rules.yaml").write_text("defaults: {action: allow}\npolicies: []\n")
    table = f"rec_big_{os.getpid()}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as direct:
        direct.execute(f"drop table if exists {table}")
        direct.execute(f"create table {table} (id int)")
        direct.execute(f"insert into {table} select generate_series(1, 10)")
    proc = start_dbfw(config)
    try:
        with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
            conn.execute("select 1 /* first */", prepare=True)
            big = "x" * 2_000_000
            cur = conn.execute(f"delete from {table} where %s <> 'y' /* big */", (big,), prepare=True)
            assert cur.rowcount == 10
    finally:
        assert proc.stop() == 0
        with psycopg.connect(pg.conninfo(), autocommit=True) as direct:
            direct.execute(f"drop table if exists {table}")
    db = sqlite3.connect(tmp_path / "dbfw.db")
    events = [e for row in db.execute("select at, action, detail from audit_events") for e in expand_event(*row)]
    sqls = [e["sql"] for e in events if e["kind"] == "statement"]
    assert sum("/* first */" in s for s in sqls) == 1
    assert any("/* big */" in s for s in sqls)
