"""GET /metrics: every metric of the contract, moving with traffic, with no SQL text or secret in it."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest

from tests.conftest import AGENT_PASSWORD, DbfwProcess, PgTarget, start_dbfw, write_config

CONTRACT_METRICS = [
    "dbfw_connections_active", "dbfw_connections_total", "dbfw_statements_total",
    "dbfw_statement_duration_seconds", "dbfw_overhead_seconds", "dbfw_classify_cache_total",
    "dbfw_parse_failures_total", "dbfw_approvals_pending", "dbfw_approvals_total", "dbfw_masked_values_total",
    "dbfw_bytes_total", "dbfw_upstream_errors_total", "dbfw_rules_reloads_total", "dbfw_build_info",
]


@pytest.fixture(scope="module")
def observed(pg: PgTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DbfwProcess, str]]:
    table = f"met_{uuid4().hex[:6]}"
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        conn.execute(f"create table {table} (id int, email text)")
        conn.execute(f"insert into {table} values (1, 'secret.person@example.com')")
    directory = tmp_path_factory.mktemp("metrics")
    config = write_config(directory, pg)
    (directory / "rules.yaml").write_text(
        "defaults: {action: require_approval}\npolicies:\n"
        "  - {name: everyday, match: {classes: [read, write, session, transaction]}, action: allow}\n"
        f"masking:\n  - {{name: met-email, columns: ['*.{table}.email'], mask: redact}}\n")
    proc = start_dbfw(config)
    try:
        yield proc, table
    finally:
        proc.stop()
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute(f"drop table {table}")


def scrape(proc: DbfwProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.admin_port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_every_contract_metric_is_exposed_and_moves_with_traffic(observed: tuple[DbfwProcess, str]) -> None:
    proc, table = observed
    before = scrape(proc)
    with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
        for _ in range(3):
            conn.execute(f"select * from {table} where id = 1")
        rows = conn.execute(f"select email from {table}").fetchall()
        assert rows == [("****",)]
        with pytest.raises(psycopg.Error):
            conn.execute(f"drop table {table}")
        with pytest.raises(psycopg.Error):
            conn.execute("selec 1")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proc.conninfo(password="wrong"))
    time.sleep(0.3)
    after = scrape(proc)
    for name in CONTRACT_METRICS:
        assert re.search(rf"^{name}(\{{|_bucket\{{| )", after, re.M), f"{name} missing"
    assert value(after, "dbfw_statements_total", identity="agent-ci", **{"class": "read", "action": "allow"}) \
        >= value(before, "dbfw_statements_total", identity="agent-ci", **{"class": "read", "action": "allow"}) + 4
    assert value(after, "dbfw_statements_total", **{"class": "ddl", "action": "require_approval"}) >= 1
    assert value(after, "dbfw_parse_failures_total", listener="pg") >= 1
    assert value(after, "dbfw_masked_values_total", rule="met-email") >= 1
    assert value(after, "dbfw_approvals_total", outcome="requested") >= 1
    assert value(after, "dbfw_connections_total", listener="pg", outcome="auth_failed") >= 1
    assert value(after, "dbfw_overhead_seconds_count", listener="pg") > value(before, "dbfw_overhead_seconds_count",
                                                                                listener="pg")
    assert value(after, "dbfw_statement_duration_seconds_count", listener="pg", **{"class": "read"}) >= 4
    assert value(after, "dbfw_bytes_total", direction="upstream_to_client") > value(
        before, "dbfw_bytes_total", direction="upstream_to_client")
    assert value(after, "dbfw_build_info") == 1
    # Buckets fine enough for sub-millisecond overheads.
    assert 'dbfw_overhead_seconds_bucket{le="5e-05",listener="pg"}' in after


def test_no_sql_text_or_secret_in_metrics(observed: tuple[DbfwProcess, str]) -> None:
    proc, table = observed
    with psycopg.connect(proc.conninfo(), autocommit=True) as conn:
        conn.execute(f"select email from {table} where email <> 'literal-marker-4711'")
    text = scrape(proc)
    for needle in ("literal-marker-4711", "secret.person", table, "select", "SELECT", AGENT_PASSWORD):
        assert needle not in text
