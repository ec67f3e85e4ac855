"""The classification worker: the same answer as in-process, a budget that ends the worker, a size past
which nothing is read."""

from __future__ import annotations

import asyncio

import pytest

from dbfw.sql.classify import SQLClassifier
from dbfw.sql.functions import FunctionCatalog
from dbfw.sql.offload import BudgetExceeded, ClassifyPool


def test_the_worker_classifies_as_the_event_loop_would() -> None:
    async def run() -> None:
        pool = ClassifyPool(budget=30.0)
        try:
            classifier = SQLClassifier("postgres")
            for sql in ["DELETE FROM t WHERE id = id", "SELECT 1; DROP TABLE t", "SELECT pg_read_file('x')"]:
                remote = await pool.classify(classifier, sql, None, 0, FunctionCatalog())
                local = SQLClassifier("postgres").classify(sql)
                assert [(s.cls, s.sql) for s in remote.statements] == [(s.cls, s.sql) for s in local.statements]
        finally:
            pool.close()

    asyncio.run(run())


def test_past_the_budget_the_worker_is_ended() -> None:
    async def run() -> None:
        pool = ClassifyPool(budget=0.05)
        try:
            await pool.start()
            heavy = "SELECT * FROM t WHERE id IN (" + ",".join(str(i) for i in range(100_000)) + ")"
            with pytest.raises(BudgetExceeded):
                await pool.classify(SQLClassifier("postgres"), heavy, None, 0, FunctionCatalog())
            pool.budget = 30.0  # a new worker takes the next statement
            result = await pool.classify(SQLClassifier("postgres"), "SELECT 1", None, 0, FunctionCatalog())
            assert result.cls == "read"
        finally:
            pool.close()

    asyncio.run(run())


def test_a_text_past_the_size_limit_is_unknown_unread() -> None:
    classifier = SQLClassifier("postgres")
    classifier.max_size = 100
    assert classifier.classify("SELECT 1 -- " + "x" * 200).cls == "unknown"
    assert classifier.classify("SELECT 1").cls == "read"
