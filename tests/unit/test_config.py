"""Config loading: contract shape, ${VAR} expansion, errors with file:line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dbfw.config import ConfigError, load_settings, parse_duration, parse_size

GOOD = """\
listeners:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:6432
    upstream: main
upstreams:
  main:
    host: 127.0.0.1
    port: 5432
    user: postgres
    password: ${PG_PASSWORD}
    database: null
    tls: {mode: prefer}
identities:
  agent-ci:
    password: ${AGENT_CI_PASSWORD}
    roles: [agent]
  alice:
    api_key: ${ALICE_API_KEY}
    roles: [reviewer]
rules: rules/
storage: sqlite:///var/lib/dbfw/dbfw.db
admin:
  listen: 127.0.0.1:8080
"""
ENV = {"PG_PASSWORD": "pgpw", "AGENT_CI_PASSWORD": "agentpw", "ALICE_API_KEY": "key"}


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    p = tmp_path / "dbfw.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=ENV if env is None else env)
    return [str(p) for p in info.value.problems]


def test_contract_example_loads_with_env_expanded(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), env=ENV)
    assert s.listeners[0].address == ("127.0.0.1", 6432)
    assert s.upstreams["main"].password == "pgpw"
    assert s.upstreams["main"].database is None
    assert s.identities["agent-ci"].password == "agentpw"
    assert s.identities["alice"].roles == ["reviewer"]
    assert s.rules == tmp_path.resolve() / "rules"
    assert s.admin is not None and s.admin.address == ("127.0.0.1", 8080)


def test_missing_env_var_is_an_error_at_its_line(tmp_path: Path) -> None:
    env = dict(ENV)
    del env["AGENT_CI_PASSWORD"]
    out = problems(tmp_path, GOOD, env)
    assert out == [f"{tmp_path / 'dbfw.yaml'}:16: environment variable AGENT_CI_PASSWORD is not set"]


def test_unknown_key_reports_its_line(tmp_path: Path) -> None:
    out = problems(tmp_path, GOOD.replace("    port: 5432\n", "    port: 5432\n    prot: 1\n"))
    assert len(out) == 1 and out[0].startswith(f"{tmp_path / 'dbfw.yaml'}:10:") and "prot" in out[0]


def test_bad_value_and_bad_protocol_both_reported(tmp_path: Path) -> None:
    text = GOOD.replace("protocol: postgres", "protocol: oracle").replace("port: 5432", "port: lots")
    out = problems(tmp_path, text)
    assert any(":3:" in p and "protocol" in p for p in out), out
    assert any(":9:" in p and "port" in p for p in out), out


def test_listener_naming_an_undefined_upstream_points_at_that_line(tmp_path: Path) -> None:
    out = problems(tmp_path, GOOD.replace("upstream: main", "upstream: replica"))
    assert len(out) == 1 and ":5:" in out[0] and "replica" in out[0]


def test_invalid_yaml_gives_line(tmp_path: Path) -> None:
    out = problems(tmp_path, "listeners:\n  - name: [unclosed\n")
    assert len(out) == 1 and "invalid YAML" in out[0]
    assert out[0].startswith(f"{tmp_path / 'dbfw.yaml'}:3:") or out[0].startswith(f"{tmp_path / 'dbfw.yaml'}:2:")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    out = problems(tmp_path, GOOD.replace("  alice:\n", "  agent-ci:\n"))
    assert any("duplicate key 'agent-ci'" in p and ":18:" in p for p in out), out


def test_identity_needs_a_secret_and_roles(tmp_path: Path) -> None:
    out = problems(tmp_path, GOOD.replace("    api_key: ${ALICE_API_KEY}\n", ""))
    assert any(":18:" in p and "needs a password" in p for p in out), out


def test_verify_full_needs_ca_file(tmp_path: Path) -> None:
    out = problems(tmp_path, GOOD.replace("{mode: prefer}", "{mode: verify-full}"))
    assert any("ca_file" in p and ":13:" in p for p in out), out


def test_durations_and_sizes() -> None:
    assert parse_duration("15m") == 900
    assert parse_duration("250ms") == 0.25
    assert parse_duration(3) == 3.0
    assert parse_size("64MiB") == 64 * 1024 * 1024
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(ValueError):
        parse_size("-1")


def test_check_command_exit_codes(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "rules" / "default.yaml").write_text("defaults: {action: require_approval}\n")
    env = {**ENV, "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "dbfw.cli", "check", "-c", str(path)], env=env,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    path.write_text(GOOD.replace("listen: 127.0.0.1:6432", "listen: nowhere"))
    bad = subprocess.run([sys.executable, "-m", "dbfw.cli", "check", "-c", str(path)], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{path}:4: listeners.0.listen" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "dbfw.cli", "check", "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 2
