"""A 1M-row result through dbfw with and without a masked column, against direct, in one run.

Run: .venv/bin/python benchmarks/masking_bench.py [--rows N] (also part of `make bench`).
Writes benchmarks/results/masking.json and prints a table of rows/s and ratios to direct.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import AGENT_PASSWORD, PgTarget, start_dbfw, write_config

DB = "dbfw_bench"
TABLE = "bench_rows"


def ensure_data(base: PgTarget, rows: int) -> PgTarget:
    with psycopg.connect(base.conninfo(dbname="postgres"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (DB,)).fetchone():
            conn.execute(f"create database {DB}")
    target = PgTarget(base.host, base.port, base.user, base.password, DB, base.how)
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        have = conn.execute("select count(*) from pg_class where relname = %s", (TABLE,)).fetchone()[0]
        n = conn.execute(f"select count(*) from {TABLE}").fetchone()[0] if have else -1
        if n != rows:
            conn.execute(f"drop table if exists {TABLE}")
            conn.execute(f"create table {TABLE} (id int, name text, email text, amount numeric)")
            conn.execute(f"insert into {TABLE} select g, 'name ' || g, 'user' || g || '@example.com', g * 1.5 "
                         f"from generate_series(1, {rows}) g")
            conn.execute(f"vacuum analyze {TABLE}")
    return target


def fetch_all(conninfo: str) -> tuple[float, int]:
    started = time.perf_counter()
    n = 0
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(f"select id, name, email, amount from {TABLE}")
        while batch := cur.fetchmany(50_000):
            n += len(batch)
    return time.perf_counter() - started, n


def main() -> dict[str, object]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = PgTarget("127.0.0.1", 5432, "postgres", None, "postgres", "local")
    target = ensure_data(base, args.rows)
    tmp = Path(tempfile.mkdtemp(prefix="dbfw-mask-bench-"))
    runs: dict[str, list[float]] = {"direct": [], "dbfw": [], "dbfw_masked": []}
    procs = {}
    for name, masking in (("dbfw", ""), ("dbfw_masked", f'masking:\n  - name: email\n    columns: ["*.{TABLE}.email"]\n'
                                                          "    mask: email\n")):
        d = tmp / name
        d.mkdir()
        config = write_config(d, target, admin=False, extra=f"masking_key: {secrets.token_hex(8)}\n")
        (d / "rules.yaml").write_text("defaults: {action: allow}\npolicies: []\n" + masking)
        procs[name] = start_dbfw(config)
    try:
        for _ in range(args.repeat):
            for name in runs:
                conninfo = target.conninfo() if name == "direct" else procs[name].conninfo(dbname=DB)
                seconds, n = fetch_all(conninfo)
                assert n == args.rows
                runs[name].append(seconds)
    finally:
        for p in procs.values():
            p.stop()
    rates = {k: args.rows / statistics.median(v) for k, v in runs.items()}
    out = {"rows": args.rows, "rows_per_second": {k: round(v) for k, v in rates.items()},
           "ratio_to_direct": {k: round(v / rates["direct"], 3) for k, v in rates.items()},
           "seconds": runs, "cpus": os.cpu_count()}
    target_file = Path(__file__).resolve().parent / "results" / "masking.json"
    target_file.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'path':<14} {'rows/s':>12} {'vs direct':>10}")
    for k, v in rates.items():
        print(f"{k:<14} {round(v):>12} {v / rates['direct']:>10.0%}")
    return out


if __name__ == "__main__":
    os.environ.setdefault("DBFW_TEST_AGENT_PASSWORD", AGENT_PASSWORD)
    main()
