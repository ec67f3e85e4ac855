#!/usr/bin/env python3
"""sysbench oltp_point_select direct to MySQL/MariaDB and through dbfw's MySQL listener, interleaved.

    .venv/bin/python benchmarks/sysbench_mysql.py [--duration 10] [--threads 1,8,64] [--repeat 1]

The server: $DBFW_BENCH_MYSQL (mysql://user:password@host:port), else root on 127.0.0.1:3306. A database
``dbfw_sysbench`` is prepared once (one table of 10,000 rows). dbfw runs the project's default rules
with recording on, as in production. For each repeat, threads and mode (text: --db-ps-mode=disable;
prepared: server-side prepared statements), direct then dbfw. Writes benchmarks/results/mysql.json and
mysql.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
DATABASE = "dbfw_sysbench"
MODES = {"text": "disable", "prepared": "auto"}


def say(msg: str) -> None:
    print(f"[sysbench] {msg}", file=sys.stderr, flush=True)


def target() -> dict[str, Any]:
    u = urlparse(os.environ.get("DBFW_BENCH_MYSQL", "mysql://root@127.0.0.1:3306"))
    return {"host": u.hostname or "127.0.0.1", "port": u.port or 3306, "user": unquote(u.username or "root"),
            "password": unquote(u.password or "")}


def sysbench(args: list[str], conn: dict[str, Any], timeout: float) -> str:
    cmd = ["sysbench", "oltp_point_select", "--db-driver=mysql", f"--mysql-host={conn['host']}",
           f"--mysql-port={conn['port']}", f"--mysql-user={conn['user']}", f"--mysql-password={conn['password']}",
           f"--mysql-db={DATABASE}", "--tables=1", "--table-size=10000", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"sysbench failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    return done.stdout


def parse(out: str) -> dict[str, float | None]:
    def num(pattern: str) -> float | None:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    return {"tps": num(r"transactions:\s+\d+\s+\(([\d.]+) per sec"), "avg_ms": num(r"avg:\s+([\d.]+)"),
            "p95_ms": num(r"95th percentile:\s+([\d.]+)"), "errors": num(r"ignored errors:\s+(\d+)")}


def prepare(conn: dict[str, Any]) -> None:
    import pymysql

    c = pymysql.connect(host=conn["host"], port=conn["port"], user=conn["user"], password=conn["password"])
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
        cur.execute(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{DATABASE}' "
                    "AND table_name = 'sbtest1'")
        exists = cur.fetchone()[0]
    c.close()
    if not exists:
        say("preparing the sysbench table")
        sysbench(["prepare"], conn, 300)


def start_dbfw(workdir: Path, conn: dict[str, Any], password: str) -> tuple[subprocess.Popen[bytes], int]:
    upstream_password = f", password: {json.dumps(conn['password'])}" if conn["password"] else ""
    config = workdir / "dbfw.yaml"
    config.write_text(textwrap.dedent(f"""\
        listeners:
          - {{name: my, protocol: mysql, listen: 127.0.0.1:0, upstream: maria, max_connections: 1000}}
        upstreams:
          maria: {{host: {json.dumps(conn['host'])}, port: {conn['port']}, user: {json.dumps(conn['user'])}\
{upstream_password}, tls: {{mode: disable}}}}
        identities:
          bench-agent: {{password: {json.dumps(password)}, roles: [agent]}}
        rules: {json.dumps(str(ROOT / "rules" / "default.yaml"))}
        storage: {json.dumps("sqlite:///" + str(workdir / "dbfw.db"))}
        audit: {{record: true}}
        shutdown_grace: 5s
        """))
    log = workdir / "dbfw.log"
    proc = subprocess.Popen([sys.executable, "-m", "dbfw.cli", "serve", "-c", str(config)], cwd=str(ROOT),
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"listener\.start listener=my .*address=127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if m and "dbfw.ready" in log.read_text(errors="replace"):
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"dbfw did not start: {log.read_text(errors='replace')[-2000:]}")


def render(report: dict[str, Any]) -> str:
    lines = [f"# sysbench oltp_point_select, MySQL/MariaDB direct and through dbfw ({report['timestamp']})", "",
             f"Server: {report['server']}; sysbench {report['sysbench']}; {report['duration']} s per run, "
             f"{report['repeat']} run(s) per cell (median); dbfw: default rules, recording on.", "",
             "| threads | mode | direct tps | dbfw tps | dbfw % of direct | avg ms direct → dbfw | "
             "p95 ms direct → dbfw |", "| ---: | --- | ---: | ---: | ---: | --- | --- |"]
    for cell in report["cells"]:
        d, f = cell["direct"], cell["dbfw"]
        pct = f"{f['tps'] / d['tps'] * 100:.1f}%" if d["tps"] and f["tps"] else "n/a"
        lines.append(f"| {cell['threads']} | {cell['mode']} | {d['tps']:,.0f} | {f['tps']:,.0f} | {pct} | "
                     f"{d['avg_ms']} → {f['avg_ms']} | {d['p95_ms']} → {f['p95_ms']} |")
    return "\n".join(lines) + "\n"


def median_cell(samples: list[dict[str, float | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("tps", "avg_ms", "p95_ms", "errors"):
        values = [s[key] for s in samples if s[key] is not None]
        out[key] = statistics.median(values) if values else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--threads", default="1,8,64")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if shutil.which("sysbench") is None:
        say("sysbench is not installed (Debian: apt-get install -y sysbench); skipping the MySQL benchmark")
        return 0
    conn = target()
    try:
        prepare(conn)
    except Exception as e:
        say(f"no MySQL/MariaDB at {conn['host']}:{conn['port']} ({e}); skipping the MySQL benchmark")
        return 0
    password = secrets.token_urlsafe(12)
    workdir = Path(tempfile.mkdtemp(prefix="dbfw-sysbench-"))
    proc, port = start_dbfw(workdir, conn, password)
    through = {"host": "127.0.0.1", "port": port, "user": "bench-agent", "password": password}
    threads = [int(t) for t in args.threads.split(",")]
    samples: dict[tuple[int, str, str], list[dict[str, float | None]]] = {}
    try:
        for _ in range(args.repeat):
            for t in threads:
                for mode, ps in MODES.items():
                    for path, c in (("direct", conn), ("dbfw", through)):
                        out = sysbench([f"--threads={t}", f"--time={args.duration}", f"--db-ps-mode={ps}",
                                        "--percentile=95", "run"], c, args.duration * 3 + 60)
                        result = parse(out)
                        say(f"threads={t} {mode} {path}: {result['tps']} tps, avg {result['avg_ms']} ms")
                        samples.setdefault((t, mode, path), []).append(result)
    finally:
        proc.terminate()
        proc.wait(30)
    version = subprocess.run(["sysbench", "--version"], capture_output=True, text=True).stdout.strip()
    import pymysql

    c = pymysql.connect(host=conn["host"], port=conn["port"], user=conn["user"], password=conn["password"])
    with c.cursor() as cur:
        cur.execute("SELECT VERSION()")
        server = cur.fetchone()[0]
    c.close()
    report = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "server": server, "sysbench": version,
              "duration": args.duration, "repeat": args.repeat,
              "cells": [{"threads": t, "mode": mode, "direct": median_cell(samples[(t, mode, "direct")]),
                         "dbfw": median_cell(samples[(t, mode, "dbfw")])} for t in threads for mode in MODES]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mysql.json").write_text(json.dumps(report, indent=1) + "\n")
    text = render(report)
    (args.out / "mysql.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
