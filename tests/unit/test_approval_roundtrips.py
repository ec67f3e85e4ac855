"""Storage cost on the data path: an allowed statement touches storage not at all; consuming an
approval costs exactly one storage round trip."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dbfw.approvals.service import ApprovalService
from dbfw.context import StatementContext
from dbfw.firewall import Firewall
from dbfw.identity import Principal
from dbfw.policy.rules import load_rules
from dbfw.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]


class CountingStore(SQLiteStore):
    calls = 0

    async def _run(self, fn: Any, *args: Any) -> Any:
        CountingStore.calls += 1
        return await super()._run(fn, *args)


def test_storage_round_trips_on_the_data_path(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = CountingStore(str(tmp_path / "s.db"), "sqlite:///s.db")
        await store.open()
        approvals = ApprovalService(store)
        fw = Firewall(load_rules(ROOT / "rules" / "default.yaml"), approvals)
        ctx = StatementContext("agent-ci", frozenset({"agent"}), "app", "pg", "postgres", "s1")
        try:
            CountingStore.calls = 0
            for _ in range(5):
                assert (await fw.check(ctx, "select * from t where id = 1")).allowed
            assert CountingStore.calls == 0, "an allowed statement must not touch storage"

            refused = await fw.check(ctx, "DROP TABLE t")
            assert refused.sqlstate == "DBF01"
            record = (await store.list("pending"))[0]
            reviewer = Principal("alice", frozenset({"reviewer"}))
            await approvals.approve(reviewer, record.id, None)

            CountingStore.calls = 0
            assert (await fw.check(ctx, "drop table T")).allowed
            assert CountingStore.calls == 1, "consuming an approval must cost one storage round trip"
            assert (await store.get(record.id)).status == "consumed"  # type: ignore[union-attr]
            assert [e["action"] for e in await store.audit_events(record.id)][-1] == "approval.consumed"
        finally:
            await store.close()

    asyncio.run(scenario())


def test_pending_requests_are_counted_as_they_change_state(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(str(tmp_path / "s.db"), "sqlite:///s.db")
        await store.open()
        approvals = ApprovalService(store)
        fw = Firewall(load_rules(ROOT / "rules" / "default.yaml"), approvals)
        ctx = StatementContext("agent-ci", frozenset({"agent"}), "app", "pg", "postgres", "s1")
        reviewer = Principal("alice", frozenset({"reviewer"}))
        try:
            for sql in ("DROP TABLE a", "DROP TABLE b", "DROP TABLE c"):
                assert (await fw.check(ctx, sql)).sqlstate == "DBF01"
            assert (await fw.check(ctx, "DROP TABLE a")).sqlstate == "DBF01"  # the same request again
            assert approvals.pending == 3
            first, second, _ = await store.list("pending")
            await approvals.approve(reviewer, first.id, None)
            await approvals.deny(reviewer, second.id, "no")
            assert approvals.pending == 1 == await store.count_pending(0)
        finally:
            await store.close()

    asyncio.run(scenario())
