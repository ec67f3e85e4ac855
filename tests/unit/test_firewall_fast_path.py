"""Firewall.check_now (decided without waiting) agrees with Firewall.check on every corpus statement."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from dbfw import metrics
from dbfw.context import StatementContext
from dbfw.firewall import Firewall
from dbfw.masking.catalog import Catalog
from dbfw.masking.service import Masking
from dbfw.policy.rules import MaskRule, load_rules
from dbfw.verdict import ALLOW, Verdict

ROOT = Path(__file__).resolve().parents[2]


def _ctx(identity: str = "agent-ci", roles: frozenset[str] = frozenset({"agent"})) -> StatementContext:
    return StatementContext(identity, roles, "app", "fastpath", "postgres", "s-fast", "127.0.0.1:1")


def test_check_now_agrees_with_check_or_defers_to_it() -> None:
    entries = yaml.safe_load((ROOT / "tests" / "corpus" / "postgres.yaml").read_text())
    for rules in ("default.yaml", "strict.yaml"):
        fw = Firewall(load_rules(ROOT / "rules" / rules))
        ctx = _ctx()
        decided_now = 0
        for entry in entries:
            sql = entry["sql"]
            slow = asyncio.run(fw.check(ctx, sql))
            fast = fw.check_now(ctx, sql)
            if fast is None:
                assert not slow.allowed or slow.cls in ("unknown",) or slow.masks, (rules, sql, slow)
                continue
            decided_now += 1
            assert fast.allowed and slow.allowed, (rules, sql)
            assert (fast.cls, fast.sqlstate, fast.masks) == (slow.cls, slow.sqlstate, slow.masks), (rules, sql)
        assert decided_now > 50, rules  # reads and ordinary writes take the fast path


def test_check_now_counts_each_statement_once() -> None:
    fw = Firewall(load_rules(ROOT / "rules" / "default.yaml"))
    ctx = _ctx(identity="agent-count")
    counter = metrics.statements_total.labels("fastpath", "agent-count", "read", "allow")
    before = counter.value
    assert fw.check_now(ctx, "select 1") is not None
    assert fw.check_now(ctx, "drop table t") is None  # not allowed: check() decides, and counts
    assert counter.value == before + 1


def test_a_firewall_that_overrides_check_is_never_bypassed() -> None:
    class Own(Firewall):
        def __init__(self) -> None:
            super().__init__(load_rules(ROOT / "rules" / "default.yaml"))

        async def check(self, ctx: StatementContext, sql: str, record: bool = True) -> Verdict:
            return ALLOW

    assert Own().check_now(_ctx(), "select 1") is None


def test_a_literal_that_changes_the_class_is_not_decided_by_shape() -> None:
    # Same shape, different classes: a constant-false WHERE is an ordinary write, a constant-true one
    # deletes every row. Deciding the second by the first one's shape would let it through.
    fw = Firewall(load_rules(ROOT / "rules" / "default.yaml"))
    ctx = _ctx(identity="agent-shape")
    first = fw.check_now(ctx, "delete from t where 1 = 2")
    slow = asyncio.run(fw.check(ctx, "delete from t where 1 = 1"))
    assert not slow.allowed and slow.cls == "destructive_write"
    assert fw.check_now(ctx, "delete from t where 1 = 1") is None
    assert first is None or first.cls != "destructive_write"


def _masking_firewall() -> Firewall:
    catalog = Catalog(schema={"public": {"people": {"id": "INT", "ssn": "TEXT", "name": "TEXT"}}})

    async def catalogs(ctx: StatementContext) -> Catalog:
        return catalog

    rules = [MaskRule(name="ssn", columns=["public.people.ssn"], mask="redact", unmasked_for=["role:admin"]),
             MaskRule(name="name", columns=["public.people.name"], mask="redact")]
    return Firewall(load_rules(ROOT / "rules" / "default.yaml"), masking=Masking(rules, b"k", catalogs))


def _masked_rules(verdict: Verdict | None) -> set[str]:
    assert verdict is not None and verdict.allowed
    plan = verdict.masks[0].plan if verdict.masks and verdict.masks[0] is not None else None
    return {c.rule for c in plan.columns if c is not None} if plan is not None else set()


def test_masks_remembered_for_one_set_of_roles_never_serve_another() -> None:
    fw = _masking_firewall()
    sql = "select lower(ssn) as s, name from people"
    admin = _ctx(roles=frozenset({"agent", "admin"}))
    agent = _ctx(roles=frozenset({"agent"}))  # the same identity after losing the admin role
    assert _masked_rules(asyncio.run(fw.check(admin, sql))) == {"name"}
    assert _masked_rules(fw.check_now(admin, sql)) == {"name"}
    fast = fw.check_now(agent, sql)
    assert fast is None or _masked_rules(fast) == {"ssn", "name"}
    assert _masked_rules(asyncio.run(fw.check(agent, sql))) == {"ssn", "name"}
    assert _masked_rules(fw.check_now(agent, sql)) == {"ssn", "name"}


def test_ddl_always_goes_through_check_so_masking_plans_are_renewed() -> None:
    fw = _masking_firewall()
    admin = _ctx(identity="root-admin", roles=frozenset({"agent", "admin"}))
    assert fw.check_now(admin, "create or replace view v as select id, ssn as note from people") is None
