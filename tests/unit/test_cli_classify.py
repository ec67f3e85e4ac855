"""`dbfw classify` and `dbfw check` as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dbfw(*args: str, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbfw.cli", *args], capture_output=True, text=True, cwd=cwd,
                          input=stdin, timeout=60)


def test_classify_prints_the_contract_json(tmp_path: Path) -> None:
    out = dbfw("classify", "DROP TABLE t", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["dialect"] == "postgres" and doc["class"] == "ddl"
    stmt = doc["statements"][0]
    assert (stmt["sql"], stmt["class"], stmt["command"]) == ("DROP TABLE t", "ddl", "DROP")
    assert stmt["tables"] == ["public.t"]
    assert len(stmt["fingerprint"]) >= 16
    assert doc["decision"] == {"action": "require_approval", "policy": "defaults"}  # no config: fail closed


def test_classify_with_config_identity_and_database(tmp_path: Path) -> None:
    (tmp_path / "dbfw.yaml").write_text(textwrap.dedent(f"""\
        listeners: [{{name: pg, protocol: postgres, listen: "127.0.0.1:6432", upstream: main}}]
        upstreams: {{main: {{user: postgres}}}}
        identities: {{agent-ci: {{password: x, roles: [agent]}}}}
        rules: {ROOT / 'rules' / 'default.yaml'}
        """))
    out = dbfw("classify", "-c", str(tmp_path / "dbfw.yaml"), "--identity", "agent-ci", "--database", "prod",
               "select 1; drop table t")
    doc = json.loads(out.stdout)
    assert doc["class"] == "ddl"
    assert doc["decision"] == {"action": "deny", "policy": "no-drop-in-prod"}
    everyday = json.loads(dbfw("classify", "-c", str(tmp_path / "dbfw.yaml"), "select * from t where id = 1").stdout)
    assert everyday["decision"] == {"action": "allow", "policy": "everyday"}


def test_classify_mysql_executable_comment_is_code(tmp_path: Path) -> None:
    doc = json.loads(dbfw("classify", "--dialect", "mysql", "select 1 /*!50000 ; drop table t */", cwd=tmp_path).stdout)
    # A second statement inside a versioned comment: each reading has its own statements, so not read at all.
    assert doc["dialect"] == "mysql" and doc["class"] == "unknown"
    doc = json.loads(dbfw("classify", "--dialect", "mysql", "/*! drop table t */", cwd=tmp_path).stdout)
    assert doc["class"] == "ddl"  # an unversioned executable comment is code every server runs


def test_classify_reads_stdin(tmp_path: Path) -> None:
    doc = json.loads(dbfw("classify", "-", cwd=tmp_path, stdin="select 1").stdout)
    assert doc["class"] == "read"


def test_check_reports_rule_errors_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "policies:\n  - name: bad\n    action: allow\n    match: {classes: [x]}\n"
        "  - name: who\n    action: require_approval\n    reviewers: [carol]\n")
    (tmp_path / "dbfw.yaml").write_text(textwrap.dedent("""\
        listeners: [{name: pg, protocol: postgres, listen: "127.0.0.1:6432", upstream: main}]
        upstreams: {main: {user: postgres}}
        rules: rules/
        """))
    out = dbfw("check", "-c", str(tmp_path / "dbfw.yaml"))
    assert out.returncode == 1
    assert f"{tmp_path / 'rules' / 'r.yaml'}:4: policy 'bad': match.classes.0:" in out.stderr
    (tmp_path / "rules" / "r.yaml").write_text("policies:\n  - name: who\n    action: require_approval\n"
                                               "    reviewers: [carol]\n")
    out = dbfw("check", "-c", str(tmp_path / "dbfw.yaml"))
    assert out.returncode == 1
    assert f"{tmp_path / 'rules' / 'r.yaml'}:2: policy 'who': reviewer 'carol' is not an identity" in out.stderr
