"""The reviewer's impact sentence and what dbfw estimates, without a database."""

from __future__ import annotations

from dbfw.approvals.impact import _postgres_plan, describe, what_to_estimate
from dbfw.sql.classify import SQLClassifier


def test_which_statements_are_explained_and_which_are_read_from_the_catalog() -> None:
    pg = SQLClassifier("postgres")
    assert what_to_estimate(pg.classify("DELETE FROM t WHERE v > 1"))[1] == "explain"
    assert what_to_estimate(pg.classify("DROP TABLE t"))[1] == "objects"
    assert what_to_estimate(pg.classify("TRUNCATE t"))[1] == "objects"
    stmt, why = what_to_estimate(pg.classify("SELECT pg_read_file('/etc/passwd')"))
    assert stmt is None and "admin" in why  # code is never explained
    stmt, why = what_to_estimate(pg.classify("DELETE FROM t; DELETE FROM u"))
    assert stmt is None and "several" in why


def test_a_plan_gives_the_rows_written_or_exported() -> None:
    plan = [{"Plan": {"Node Type": "ModifyTable", "Operation": "Delete", "Plan Rows": 0,
                      "Plans": [{"Node Type": "Seq Scan", "Plan Rows": 1234}]}}]
    assert _postgres_plan(plan) == {"estimated_rows": 1234, "operation": "Delete"}
    assert _postgres_plan('[{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 10, "Plan Width": 8}}]') == \
        {"estimated_rows": 10, "estimated_bytes": 80}


def test_the_impact_sentence() -> None:
    assert describe({"estimated_rows": 1500}) == "Impact (estimated): about 1,500 rows."
    text = describe({"objects": [{"name": "public.t", "estimated_rows": 10, "bytes": 8192,
                                  "dependents": ["view public.v"]}]})
    assert text == "Impact (estimated): public.t (about 10 rows, 8,192 bytes), with 1 dependent(s): view public.v."
    assert describe({"note": "not estimated: the server took too long"}) == \
        "Impact: not estimated: the server took too long."
    assert describe(None) == ""
