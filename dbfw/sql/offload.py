"""Classification of large statements in a process of its own, with a time budget.

Parsing is CPU work that holds the interpreter: a megabyte of SQL takes seconds, and even in a thread it
stalls every other session's event loop for hundreds of milliseconds. Statements above a size are
classified by a worker process instead; one that takes longer than the budget is unknown, and its worker
is ended so the CPU it burns is given back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .classify import Classification, SQLClassifier
from .functions import FunctionCatalog, FunctionRules

_WORKER_CLASSIFIERS: dict[str, SQLClassifier] = {}


def _classify_in_worker(dialect: str, sql: str, database: str | None, lex: int, functions: FunctionCatalog,
                        rules: dict[str, str], max_size: int | None = None) -> Classification:
    classifier = _WORKER_CLASSIFIERS.get(dialect)
    if classifier is None:
        classifier = _WORKER_CLASSIFIERS[dialect] = SQLClassifier(dialect, cache_size=64)
    if max_size is not None:
        classifier.max_size = max_size  # the configured classification.max_size, as in the server
    if dict(classifier.function_rules.globs) != rules:
        classifier.function_rules = FunctionRules(rules)
    return classifier.classify(sql, database, lex, functions)


class BudgetExceeded(Exception):
    pass


OVER_BUDGET = "classification took longer than its budget"


class ClassifyPool:
    def __init__(self, budget: float):
        self.budget = budget
        self._executor: ProcessPoolExecutor | None = None
        self._started = False

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn: a fresh interpreter, not a copy of this process and its event loop
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    async def start(self) -> None:
        """Start the worker (on first need: its start-up is not part of any statement's budget)."""
        await asyncio.wrap_future(self._pool().submit(_classify_in_worker, "postgres", "SELECT 1", None, 0,
                                                      FunctionCatalog(), {}))
        self._started = True

    async def classify(self, classifier: SQLClassifier, sql: str, database: str | None, lex: int,
                       functions: FunctionCatalog) -> Classification:
        if not self._started:
            await self.start()
        future = self._pool().submit(_classify_in_worker, classifier.dialect, sql, database, lex, functions,
                                     dict(classifier.function_rules.globs), classifier.max_size)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.budget)
        except TimeoutError:
            self._end_workers()
            raise BudgetExceeded(f"{OVER_BUDGET} ({self.budget:g} s)") from None
        except BrokenProcessPool:
            self._end_workers()
            raise BudgetExceeded("the classification worker stopped") from None

    def _end_workers(self) -> None:
        executor, self._executor = self._executor, None
        self._started = False
        if executor is None:
            return
        processes: dict[Any, Any] = getattr(executor, "_processes", None) or {}
        for process in list(processes.values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
