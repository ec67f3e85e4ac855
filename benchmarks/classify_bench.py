"""Classification speed: a statement seen before, a known shape with new literals, and a first parse;
the function catalog (a database with many user functions, a call of a LANGUAGE sql function); and
reading the catalog from the upstream (first sight of a database, once per minute after).

Run: .venv/bin/python benchmarks/classify_bench.py  (also part of `make bench`)
Writes benchmarks/results/classify.json and prints a table. Medians of many timed calls.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dbfw.sql.classify import SQLClassifier
from dbfw.sql.functions import FunctionCatalog, Proc

SHORT = [
    "SELECT abalance FROM pgbench_accounts WHERE aid = {n}",
    "UPDATE orders SET status = 'shipped' WHERE id = {n}",
    "INSERT INTO events (kind, payload) VALUES ('click', '{{\"n\": {n}}}')",
    "DELETE FROM sessions WHERE id = {n}",
    "SELECT c.name, sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = {n} GROUP BY 1",
]


def _median_us(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for i in range(rounds):
        t = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def main() -> dict[str, object]:
    results: dict[str, dict[str, float]] = {}
    for template in SHORT:
        c = SQLClassifier("postgres")
        same = template.format(n=1)
        c.classify(same)
        exact = _median_us(lambda i, c=c, same=same: c.classify(same), 5000)
        new_literals = [template.format(n=10_000 + i) for i in range(5000)]
        shape = _median_us(lambda i, c=c, texts=new_literals: c.classify(texts[i]), 5000)
        fresh = SQLClassifier("postgres", cache_size=0)
        firsts = [template.format(n=i) + f" /* {i} */" for i in range(500)]
        first = _median_us(lambda i, c=fresh, texts=firsts: c.classify(texts[i]), 500)
        results[template.split(" ")[0] + " " + template.split(" ")[1]] = {
            "seen_before_us": round(exact, 2), "same_shape_new_literals_us": round(shape, 2),
            "first_parse_us": round(first, 1)}
    catalog = _catalog_costs()
    out = {"python": platform.python_version(), "machine": platform.machine(), "results": results,
           "catalog": catalog,
           "max_cached_us": max(max(r["seen_before_us"], r["same_shape_new_literals_us"]) for r in results.values()),
           "max_first_parse_us": max(r["first_parse_us"] for r in results.values())}
    target = Path(__file__).resolve().parent / "results" / "classify.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'statement':<28} {'seen before':>12} {'same shape':>12} {'first parse':>12}  (µs, median)")
    for name, r in results.items():
        print(f"{name:<28} {r['seen_before_us']:>12} {r['same_shape_new_literals_us']:>12} {r['first_parse_us']:>12}")
    for name, value in catalog.items():
        print(f"{name:<50} {value}")
    return out


def _catalog_costs() -> dict[str, float | str]:
    """Function resolution against a catalog of 5,000 user functions, and reading a live catalog."""
    user = {f"fn_{i}": (Proc("app", f"fn_{i}", "s", "f", "sql", 1, 0, False, "SELECT $1 + 1", False),)
            for i in range(5000)}
    functions = FunctionCatalog(user, live=True)
    out: dict[str, float | str] = {}
    calls = "SELECT app.fn_{n}(id), lower(name), now(), coalesce(a, b) FROM t WHERE id = {n}"
    fresh = SQLClassifier("postgres", cache_size=0)
    texts = [calls.format(n=i) + f" /* {i} */" for i in range(500)]
    out["first_parse_with_4_calls_5000_user_functions_us"] = round(
        _median_us(lambda i: fresh.classify(texts[i], functions=functions), 500), 1)
    warm = SQLClassifier("postgres")
    warm.classify(calls.format(n=1), functions=functions)
    out["seen_before_with_calls_us"] = round(_median_us(lambda i: warm.classify(calls.format(n=1),
                                                                                functions=functions), 5000), 2)
    try:
        import asyncio

        from dbfw.config import Upstream
        from dbfw.masking.catalog import load_catalog

        up = Upstream(host="127.0.0.1", port=5432, user="postgres")
        started = time.perf_counter()
        cat = asyncio.run(load_catalog(up, "test"))
        out["catalog_read_from_upstream_ms"] = round((time.perf_counter() - started) * 1000, 1)
        out["catalog_user_functions"] = sum(len(v) for v in cat.functions.user.values())
    except Exception as e:  # no local server: the offline numbers stand
        out["catalog_read_from_upstream_ms"] = f"unavailable ({type(e).__name__})"
    return out


if __name__ == "__main__":
    main()
