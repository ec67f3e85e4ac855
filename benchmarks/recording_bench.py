"""What recording costs per statement: dbfw's own overhead (dbfw_overhead_seconds) and the statement
time a client sees, with audit.record on and off, in one run.

Run: .venv/bin/python benchmarks/recording_bench.py [--statements N]  (part of `make bench`).
Writes benchmarks/results/recording.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import AGENT_PASSWORD, PgTarget, start_dbfw, write_config


def overhead(port: int) -> tuple[float, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("dbfw_overhead_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("dbfw_overhead_seconds_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


def main() -> dict[str, object]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--statements", type=int, default=20_000)
    args = ap.parse_args()
    os.environ.setdefault("DBFW_TEST_AGENT_PASSWORD", AGENT_PASSWORD)
    pg = PgTarget("127.0.0.1", 5432, "postgres", None, "test", "local")
    results: dict[str, dict[str, float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="dbfw-rec-bench-"))
    for name, record in (("recording_off", "false"), ("recording_on", "true")):
        d = tmp / name
        d.mkdir()
        config = write_config(d, pg, extra=f"audit: {{record: {record}}}\n")
        (d / "rules.yaml").write_text("defaults: {action: allow}\npolicies: []\n")
        proc = start_dbfw(config)
        try:
            with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
                for i in range(500):  # warm the caches
                    conn.execute(f"select {i}", prepare=False)
                s0, c0 = overhead(proc.admin_port or 0)
                started = time.perf_counter()
                for i in range(args.statements):
                    conn.execute(f"select abalance from (select {i} as abalance) t where abalance = {i}",
                                 prepare=False)
                wall = time.perf_counter() - started
                s1, c1 = overhead(proc.admin_port or 0)
        finally:
            proc.stop()
        results[name] = {"overhead_us": round((s1 - s0) / (c1 - c0) * 1e6, 2),
                         "statement_us": round(wall / args.statements * 1e6, 1)}
    off, on = results["recording_off"], results["recording_on"]
    out = {"statements": args.statements, **results,
           "overhead_increase": round(on["overhead_us"] / off["overhead_us"] - 1, 3),
           "statement_time_increase": round(on["statement_us"] / off["statement_us"] - 1, 3)}
    (Path(__file__).resolve().parent / "results" / "recording.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
