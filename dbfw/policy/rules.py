"""Rule files (rules/*.yaml): load, validate, merge. Errors name the file, the line and the rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from ..config import ROLES, ConfigError, Duration, Problem, Size, _Model, load_yaml, validation_problems
from ..sql.classes import CLASSES, RANK

Action = Literal["allow", "require_approval", "deny"]
ACTION_RANK = {"allow": 0, "require_approval": 1, "deny": 2}
ClassName = Literal["read", "session", "transaction", "write", "bulk_export", "bulk_import", "destructive_write",
                    "ddl", "procedural", "privilege", "admin", "unknown"]
assert set(ClassName.__args__) == set(CLASSES)  # type: ignore[attr-defined]


class Match(_Model):
    classes: list[ClassName] | None = None
    commands: list[str] | None = None
    identities: list[str] | None = None
    roles: list[str] | None = None
    databases: list[str] | None = None
    tables: list[str] | None = None
    listeners: list[str] | None = None

    @field_validator("commands")
    @classmethod
    def _upper(cls, v: list[str] | None) -> list[str] | None:
        return [c.upper() for c in v] if v is not None else None


def _check_reviewers(v: list[str]) -> list[str]:
    for r in v:
        if r.startswith("role:") and r[5:] not in ROLES:
            raise ValueError(f"unknown role in {r!r} (roles: {', '.join(ROLES)})")
    return v


class Limits(_Model):
    """What one statement's portal or cursor may deliver, and for how long it may run. None: no limit."""

    max_result_rows: int | None = Field(default=None, ge=1)
    max_result_bytes: Size | None = Field(default=None, ge=1)
    max_statement_seconds: Duration | None = Field(default=None, gt=0)

    def tightened(self, other: Limits | None) -> Limits:
        """Both limits at once: for each, the smaller one."""
        if other is None or other == self:
            return self
        return Limits(max_result_rows=_smaller(self.max_result_rows, other.max_result_rows),
                      max_result_bytes=_smaller(self.max_result_bytes, other.max_result_bytes),
                      max_statement_seconds=_smaller(self.max_statement_seconds, other.max_statement_seconds))

    def overridden(self, other: Limits | None) -> Limits:
        """These limits with every value ``other`` gives in place of this one's."""
        if other is None:
            return self
        return Limits(max_result_rows=_first(other.max_result_rows, self.max_result_rows),
                      max_result_bytes=_first(other.max_result_bytes, self.max_result_bytes),
                      max_statement_seconds=_first(other.max_statement_seconds, self.max_statement_seconds))

    @property
    def any(self) -> bool:
        return self.max_result_rows is not None or self.max_result_bytes is not None \
            or self.max_statement_seconds is not None


def _smaller(a: Any, b: Any) -> Any:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _first(a: Any, b: Any) -> Any:
    return b if a is None else a


class Policy(_Model):
    name: str = Field(min_length=1)
    match: Match = Match()
    action: Action
    approvals: int = Field(default=1, ge=1, le=10)
    reviewers: list[str] = Field(default_factory=lambda: ["role:reviewer"], min_length=1)
    ttl: Duration = 900.0
    hold: Duration = 0.0
    description: str | None = None
    limits: Limits | None = None  # for the statements this policy matches: overrides the defaults' values

    @field_validator("reviewers")
    @classmethod
    def _reviewers(cls, v: list[str]) -> list[str]:
        return _check_reviewers(v)


class Defaults(_Model):
    action: Action = "require_approval"
    unknown: Literal["require_approval", "deny"] = "require_approval"


class MaskRule(_Model):
    name: str = Field(min_length=1)
    columns: list[str] = Field(min_length=1)
    mask: Literal["redact", "partial", "email", "hash", "null"]
    options: dict[str, str | int | bool] = Field(default_factory=dict)
    unmasked_for: list[str] = Field(default_factory=list)
    # Content detectors applied to result values whose origin dbfw cannot trace (a function's result...).
    detect: list[Literal["email", "credit_card", "ssn", "iban", "phone"]] = Field(default_factory=list)


class RuleFile(_Model):
    defaults: Defaults | None = None
    policies: list[Policy] = Field(default_factory=list)
    masking: list[MaskRule] = Field(default_factory=list)
    limits: Limits | None = None
    # Operators' own functions: "schema.name" globs -> the class a call of them has (overrides the catalog).
    functions: dict[str, ClassName] = Field(default_factory=dict)


@dataclass(frozen=True)
class Located:
    file: str
    line: int | None


@dataclass
class RuleSet:
    defaults: Defaults = field(default_factory=Defaults)
    policies: list[Policy] = field(default_factory=list)
    masking: list[MaskRule] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    functions: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    where: dict[str, Located] = field(default_factory=dict)  # policy name -> file and line

    @classmethod
    def fail_closed(cls) -> RuleSet:
        """What applies when no rules are configured: every statement waits for a reviewer."""
        return cls(Defaults(action="require_approval", unknown="require_approval"))


def rule_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise ConfigError([Problem(str(path), None, "no rule files (*.yaml) in this folder")])
        return files
    return [path]


def load_rules(path: str | Path) -> RuleSet:
    """Load a rule file or a folder of them. Raises ConfigError listing every problem.

    Several files add up: all their policies apply, and the most restrictive defaults and the
    smallest limits win.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError([Problem(str(path), None, "rules path does not exist")])
    rules = RuleSet()
    problems: list[Problem] = []
    defaults_from: Located | None = None
    for f in rule_files(path):
        name = str(f)
        try:
            data, located = load_yaml(f)
        except ConfigError as e:
            problems += e.problems
            continue
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append(Problem(name, located.line_of(()), "a rule file must be a YAML mapping"))
            continue
        try:
            parsed = RuleFile.model_validate(data)
        except ValidationError as e:
            for p in validation_problems(name, e, located):
                problems.append(_with_rule_name(p, data))
            continue
        rules.sources.append(name)
        if parsed.defaults is not None:
            # Several files: the most restrictive defaults win, as policies do.
            if defaults_from is None:
                rules.defaults = parsed.defaults
            else:
                rules.defaults = Defaults(
                    action=max(rules.defaults.action, parsed.defaults.action, key=ACTION_RANK.__getitem__),
                    unknown=max(rules.defaults.unknown, parsed.defaults.unknown, key=ACTION_RANK.__getitem__))
            defaults_from = Located(name, located.line_of(("defaults",)))
        for i, policy in enumerate(parsed.policies):
            line = located.line_of(("policies", i))
            if policy.name in rules.where:
                first = rules.where[policy.name]
                problems.append(Problem(name, line, f"policy {policy.name!r}: the name is already used at "
                                                    f"{first.file}:{first.line}"))
                continue
            rules.where[policy.name] = Located(name, line)
            rules.policies.append(policy)
        rules.masking += parsed.masking
        for pattern, cls in parsed.functions.items():
            # The same function named in two files: the riskier class holds.
            if pattern not in rules.functions or RANK[cls] > RANK[rules.functions[pattern]]:
                rules.functions[pattern] = cls
        rules.limits = rules.limits.tightened(parsed.limits)
    if problems:
        raise ConfigError(problems)
    return rules


def _with_rule_name(p: Problem, data: dict) -> Problem:  # type: ignore[type-arg]
    """'policies.2.action: ...' reads better as 'policy "drop-guard": action: ...'."""
    parts = p.message.split(":", 1)
    loc = parts[0].split(".")
    if len(loc) >= 2 and loc[0] in ("policies", "masking") and loc[1].isdigit():
        items = data.get(loc[0]) or []
        idx = int(loc[1])
        rule_name = items[idx].get("name") if idx < len(items) and isinstance(items[idx], dict) else None
        if rule_name:
            kind = "policy" if loc[0] == "policies" else "masking rule"
            rest = ".".join(loc[2:]) or "(rule)"
            return Problem(p.file, p.line, f"{kind} {rule_name!r}: {rest}:{parts[1] if len(parts) > 1 else ''}")
    return p
