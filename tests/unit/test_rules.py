"""Rule files and decisions: validation with file:line and rule name; the most restrictive action wins."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dbfw.config import ConfigError
from dbfw.context import StatementContext
from dbfw.policy.engine import decide
from dbfw.policy.rules import RuleSet, load_rules
from dbfw.sql.classify import classify

ROOT = Path(__file__).resolve().parents[2]


def ctx(identity: str = "agent-ci", database: str = "app", roles: tuple[str, ...] = ("agent",),
        listener: str = "pg") -> StatementContext:
    return StatementContext(identity, frozenset(roles), database, listener, "postgres", "s1")


def rules_from(tmp_path: Path, text: str, name: str = "r.yaml") -> RuleSet:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return load_rules(p)


def action(rules: RuleSet, sql: str, **kw: str) -> tuple[str, str]:
    d = decide(rules, ctx(**kw), classify(sql))  # type: ignore[arg-type]
    return d.action, d.policy


def test_shipped_rule_files_load() -> None:
    default = load_rules(ROOT / "rules" / "default.yaml")
    strict = load_rules(ROOT / "rules" / "strict.yaml")
    assert [p.name for p in default.policies] == ["everyday", "schema-and-exports", "no-drop-in-prod"]
    assert default.limits.max_result_rows == 100000
    assert strict.defaults.action == "deny" and strict.defaults.unknown == "deny"


def test_default_rules_decisions() -> None:
    rules = load_rules(ROOT / "rules" / "default.yaml")
    assert action(rules, "select * from t where id = 1") == ("allow", "everyday")
    assert action(rules, "update t set a = 1 where id = 2") == ("allow", "everyday")
    assert action(rules, "delete from t") == ("require_approval", "schema-and-exports")
    assert action(rules, "drop table t") == ("require_approval", "schema-and-exports")
    assert action(rules, "drop table t", database="prod") == ("deny", "no-drop-in-prod")
    assert action(rules, "select 1; drop table t", database="prod") == ("deny", "no-drop-in-prod")
    assert action(rules, "selec 1") == ("require_approval", "defaults.unknown")
    assert action(rules, "") == ("allow", "empty")


def test_strict_rules_decisions() -> None:
    rules = load_rules(ROOT / "rules" / "strict.yaml")
    assert action(rules, "select 1") == ("allow", "reads")
    assert action(rules, "insert into t values (1)") == ("require_approval", "reviewed-writes")
    assert action(rules, "drop table t") == ("deny", "defaults")
    assert action(rules, "selec 1") == ("deny", "defaults.unknown")


def test_unknown_is_never_allowed_even_by_an_allow_all_policy(tmp_path: Path) -> None:
    rules = rules_from(tmp_path, """
        defaults: {action: allow, unknown: deny}
        policies:
          - {name: all, match: {}, action: allow}
          - {name: unknown-ok, match: {classes: [unknown]}, action: allow}
        """)
    assert action(rules, "selec 1") == ("deny", "defaults.unknown")
    assert action(rules, "drop table t") == ("allow", "all")


def test_match_keys_must_all_hold(tmp_path: Path) -> None:
    rules = rules_from(tmp_path, """
        defaults: {action: allow}
        policies:
          - name: ci-no-pii
            match: {identities: ["agent-*"], tables: ["public.customers", "*.secrets"], classes: [read]}
            action: deny
          - name: reviewers-only-on-replica
            match: {roles: [reviewer], listeners: [replica]}
            action: require_approval
        """)
    assert action(rules, "select * from customers") == ("deny", "ci-no-pii")
    assert action(rules, "select * from vault.secrets") == ("deny", "ci-no-pii")
    assert action(rules, "select * from customers", identity="alice") == ("allow", "defaults")
    assert action(rules, "select * from orders") == ("allow", "defaults")
    assert action(rules, "select 1", roles=("reviewer",), listener="replica") == (
        "require_approval", "reviewers-only-on-replica")
    assert action(rules, "select 1", roles=("reviewer",)) == ("allow", "defaults")


def test_table_patterns_without_schema_match_the_bare_name(tmp_path: Path) -> None:
    rules = rules_from(tmp_path, """
        defaults: {action: allow}
        policies:
          - {name: guard, match: {tables: [customers]}, action: require_approval}
        """)
    assert action(rules, "select * from public.customers") == ("require_approval", "guard")
    assert action(rules, "select * from sales.customers") == ("require_approval", "guard")


def test_restrictive_table_policy_applies_when_tables_cannot_be_named(tmp_path: Path) -> None:
    rules = rules_from(tmp_path, """
        defaults: {action: allow}
        policies:
          - {name: protect, match: {tables: [customers], classes: [write]}, action: deny}
          - {name: let-locks, match: {tables: [orders], classes: [write]}, action: allow}
        """)
    # LOCK's tables are not named by the parser: a deny on tables must still hold.
    assert action(rules, "LOCK TABLE orders IN ROW EXCLUSIVE MODE") == ("deny", "protect")


def test_errors_name_file_line_and_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        rules_from(tmp_path, """\
            defaults: {action: allow}
            policies:
              - name: ok
                match: {classes: [read]}
                action: allow
              - name: broken
                match: {classes: [reed]}
                action: permit
            """)
    text = [str(p) for p in info.value.problems]
    path = tmp_path / "r.yaml"
    assert any(t.startswith(f"{path}:7:") and "policy 'broken'" in t and "classes" in t for t in text), text
    assert any(t.startswith(f"{path}:8:") and "policy 'broken'" in t and "action" in t for t in text), text


def test_duplicate_policy_names_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("policies:\n  - {name: p, action: allow}\n")
    (tmp_path / "b.yaml").write_text("policies:\n  - {name: p, action: deny}\n")
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path)
    assert "already used" in str(info.value) and str(tmp_path / "b.yaml") in str(info.value)


def test_several_files_add_up_and_the_strictest_defaults_win(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("defaults: {action: allow, unknown: require_approval}\nlimits: "
                                     "{max_result_rows: 500}\npolicies:\n  - {name: a, action: allow}\n")
    (tmp_path / "b.yaml").write_text("defaults: {action: deny, unknown: deny}\nlimits: {max_result_rows: 50}\n")
    rules = load_rules(tmp_path)
    assert rules.defaults.action == "deny" and rules.defaults.unknown == "deny"
    assert rules.limits.max_result_rows == 50
    assert [p.name for p in rules.policies] == ["a"]


def test_unknown_reviewer_role_and_bad_mask_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        rules_from(tmp_path, """\
            policies:
              - {name: p, action: require_approval, reviewers: ["role:janitor"]}
            masking:
              - {name: m, columns: [public.t.c], mask: scramble}
            """)
    text = str(info.value)
    assert "role:janitor" in text and "masking rule 'm'" in text


def test_no_rules_fails_closed() -> None:
    rules = RuleSet.fail_closed()
    assert action(rules, "select 1") == ("require_approval", "defaults")


def test_fast_path_function_calls_are_classified_by_oid() -> None:
    import asyncio

    from dbfw.firewall import Firewall

    fw = Firewall(load_rules(ROOT / "rules" / "default.yaml"))
    lo_open, loread, lowrite, lo_export, unknown_oid = 952, 954, 955, 765, 123456
    assert asyncio.run(fw.check_function_call(ctx(), lo_open)).allowed
    for oid in (loread, lowrite, lo_export):  # large objects' contents and changes are admin, as in SQL
        refused = asyncio.run(fw.check_function_call(ctx(), oid))
        assert not refused.allowed and refused.sqlstate == "DBF01"
    unknown = asyncio.run(fw.check_function_call(ctx(), unknown_oid))
    assert not unknown.allowed and unknown.decision is not None and unknown.decision.policy == "defaults.unknown"


def test_functions_map_operators_functions_to_classes(tmp_path: Path) -> None:
    rules = rules_from(tmp_path, """
        functions:
          "public.refresh_stats": write
          "ops.*": read
        """)
    assert rules.functions == {"public.refresh_stats": "write", "ops.*": "read"}
    with pytest.raises(ConfigError, match="functions"):
        rules_from(tmp_path, """
            functions:
              "public.x": harmless
            """)
