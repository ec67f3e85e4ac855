"""benchmarks/run.py end to end with tiny settings: every part of the report is written, nothing is timed.

The harness runs in a subprocess against the test PostgreSQL, in a database of its own (so a
benchmark someone runs at the same time keeps its tables), and writes into the test's tmp_path,
never into benchmarks/results/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from numbers import Real
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, MyTarget, PgTarget, client_binary

SMOKE_DB = "dbfw_bench_smoke"


@pytest.fixture
def smoke_db(pg: PgTarget) -> Iterator[str]:
    try:
        yield SMOKE_DB
    finally:
        with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SMOKE_DB} WITH (FORCE)")


def number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def test_the_benchmark_harness_writes_a_complete_report(pg: PgTarget, smoke_db: str, tmp_path: Path) -> None:
    client_binary("pgbench")  # skips (fails under CI) without the PostgreSQL client tools
    out = tmp_path / "results"
    committed = [ROOT / "benchmarks" / "results" / name for name in ("latest.json", "latest.md")]
    before = [f.stat().st_mtime_ns if f.exists() else None for f in committed]
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--duration", "1", "--clients", "2",
           "--modes", "simple", "--warmup", "0", "--no-pgbouncer", "--copy-mb", "1", "--idle-conns", "10",
           "--stream-mb", "5", "--database", smoke_db, "--pg-host", pg.host, "--pg-port", str(pg.port),
           "--pg-user", pg.user, "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "DBFW_BENCH_PG_PASSWORD"}
    if pg.password:
        env["DBFW_BENCH_PG_PASSWORD"] = pg.password
    try:
        res = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=150, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the harness did not finish: {e.stderr!r}"[-3000:])
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stderr[-4000:]}"

    report = json.loads((out / "latest.json").read_text())
    markdown = (out / "latest.md").read_text()
    assert report["schema"] == 2
    assert report["settings"]["clients"] == [2]
    paths = report["paths"]
    for name in ("direct", "dbfw", "dbfw-norec"):
        assert paths[name]["status"] == "ok", (name, paths[name])
    assert paths["pgbouncer"]["status"] == "unavailable"
    assert any("rules/default.yaml" in r for r in paths["dbfw"]["rules"])
    assert paths["dbfw"]["record"] is True and paths["dbfw-norec"]["record"] is False

    for name in ("direct", "dbfw", "dbfw-norec"):
        cell = report["results"][name]["2"]["simple"]
        assert "error" not in cell, cell
        for key in ("tps", "latency_ms", "p50_ms", "p99_ms"):
            assert number(cell[key]) and cell[key] > 0, (name, key, cell)
        assert cell["p99_ms"] >= cell["p50_ms"]
        if name != "direct":
            assert number(cell["proxy_cpu_us_per_txn"]), cell
    ratios = report["ratios"]["2"]["simple"]
    for key in ("dbfw_vs_direct", "recording_cost"):
        assert number(ratios[key]), ratios
    assert ratios["dbfw_vs_pgbouncer"] is None
    assert number(report["added_p50_us"]["2"]["simple"]["dbfw"])

    for direction in ("out", "in"):
        copy = report["copy"][direction]
        for name in ("direct", "dbfw"):
            assert "error" not in copy["paths"][name], copy["paths"][name]
            assert number(copy["paths"][name]["mib_s"]) and copy["paths"][name]["bytes"] > 0
        assert number(copy["ratios"]["dbfw_vs_direct"])

    idle = report["memory"]["idle"]
    assert "error" not in idle, idle
    assert idle["opened"] == 10 and number(idle["rss_before_kib"]) and number(idle["rss_after_kib"])
    stream = report["memory"]["stream"]
    assert "error" not in stream, stream
    assert stream["received_rows"] == stream["rows"]
    assert number(stream["rss_start_kib"]) and stream["rss_peak_kib"] >= stream["rss_start_kib"]

    for heading in ("Throughput", "p50 / p99", "Added p50", "Proxy CPU", "COPY", "memory"):
        assert heading in markdown, heading
    # --out is honoured: the committed results are left alone.
    assert [f.stat().st_mtime_ns if f.exists() else None for f in committed] == before


def test_the_mysql_benchmark_writes_its_table(mysql: MyTarget, tmp_path: Path) -> None:
    """benchmarks/sysbench_mysql.py with one thread and one second per run (sysbench is what `make bench` uses;
    where it is not installed the script says so and writes nothing)."""
    import shutil

    env = {**os.environ, "DBFW_BENCH_MYSQL": f"mysql://{mysql.user}:{mysql.password}@{mysql.host}:{mysql.port}"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sysbench_mysql.py"), "--duration", "1",
                           "--threads", "1", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr
    if shutil.which("sysbench") is None:
        assert "sysbench is not installed" in done.stderr
        return
    report = json.loads((tmp_path / "mysql.json").read_text())
    assert [(c["threads"], c["mode"]) for c in report["cells"]] == [(1, "text"), (1, "prepared")]
    for cell in report["cells"]:
        assert cell["direct"]["tps"] > 0 and cell["dbfw"]["tps"] > 0 and cell["dbfw"]["errors"] == 0
    assert "| 1 | text |" in (tmp_path / "mysql.md").read_text()
