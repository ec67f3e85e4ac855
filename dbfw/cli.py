"""The `dbfw` command."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, log
from .config import ConfigError, Problem, Settings, default_config_path, load_settings
from .policy.rules import RuleSet


def _config_option(f):  # type: ignore[no-untyped-def]
    return click.option("-c", "--config", "config", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help="config file (default: $DBFW_CONFIG, then ./dbfw.yaml)")(f)


def _load(config: Path | None) -> tuple[Settings, Path]:
    path = config or default_config_path()
    try:
        return load_settings(path), path
    except ConfigError as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)


def _load_rules(settings: Settings) -> RuleSet:
    """The configured rules, checked against the config (reviewers must be identities or roles)."""
    from .policy.rules import load_rules

    if settings.rules is None:
        return RuleSet.fail_closed()
    rules = load_rules(settings.rules)
    problems = []
    for policy in rules.policies:
        for reviewer in policy.reviewers:
            if not reviewer.startswith("role:") and reviewer not in settings.identities:
                where = rules.where[policy.name]
                problems.append(Problem(where.file, where.line, f"policy {policy.name!r}: reviewer {reviewer!r} "
                                                                "is not an identity in the config"))
    if problems:
        raise ConfigError(problems)
    return rules


def _load_rules_or_exit(settings: Settings) -> RuleSet:
    try:
        return _load_rules(settings)
    except ConfigError as e:
        for problem in e.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dbfw")
def main() -> None:
    """dbfw: an SQL-aware database firewall for PostgreSQL and MySQL."""


@main.command()
@_config_option
def check(config: Path | None) -> None:
    """Validate the config (and rules); print file:line: message for each error."""
    settings, path = _load(config)
    rules = _load_rules_or_exit(settings)
    click.echo(f"{path}: ok ({len(settings.listeners)} listeners, {len(settings.upstreams)} upstreams, "
               f"{len(settings.identities)} identities)")
    if settings.rules is None:
        click.echo("warning: no rules configured: every statement will wait for an approval", err=True)
    else:
        click.echo(f"{settings.rules}: ok ({len(rules.policies)} policies, {len(rules.masking)} masking rules, "
                   f"defaults: {rules.defaults.action}, unknown: {rules.defaults.unknown})")


@main.command()
@_config_option
def serve(config: Path | None) -> None:
    """Run the firewall. SIGHUP reloads; SIGTERM drains and stops."""
    settings, path = _load(config)
    log.setup(settings.logging.format, settings.logging.level)
    from .server import run

    try:
        _run_loop(run(settings, path))
    except OSError as e:
        click.echo(f"dbfw: cannot start: {e}", err=True)
        sys.exit(1)
    except RuntimeError as e:
        click.echo(f"dbfw: cannot start: {e}", err=True)
        sys.exit(1)


def _run_loop(coro) -> None:  # type: ignore[no-untyped-def]
    import uvloop

    uvloop.run(coro)


@main.command()
@click.option("--dialect", type=click.Choice(["postgres", "mysql"]), default="postgres", show_default=True)
@_config_option
@click.option("--identity", default=None, help="decide as this identity (its roles come from the config)")
@click.option("--database", default=None, help="decide for this database")
@click.argument("sql")
def classify(dialect: str, config: Path | None, identity: str | None, database: str | None, sql: str) -> None:
    """Print the classification of SQL and the policy decision as JSON; changes nothing. SQL '-' reads stdin."""
    from .context import StatementContext
    from .policy.engine import decide
    from .sql.classify import SQLClassifier
    from .sql.functions import FunctionRules

    if sql == "-":
        sql = sys.stdin.read()
    path = config or default_config_path()
    if config is not None or path.exists():
        settings, _ = _load(path)
        rules = _load_rules_or_exit(settings)
        roles = frozenset(settings.identities[identity].roles) if identity in settings.identities else frozenset()
        listener = next((lst.name for lst in settings.listeners if lst.protocol == dialect), "")
    else:
        rules, roles, listener = RuleSet.fail_closed(), frozenset(), ""
    ctx = StatementContext(identity=identity or "", roles=roles, database=database or "", listener=listener,
                           protocol=dialect, session_id="classify")
    classifier = SQLClassifier(dialect)
    classifier.function_rules = FunctionRules(dict(rules.functions))
    classification = classifier.classify(sql, database)
    out = classification.to_json()
    out["decision"] = decide(rules, ctx, classification).to_json()
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


def _admin_client(url: str | None, config: Path | None) -> Any:
    import os

    from .admin.client import AdminClient

    key = os.environ.get("DBFW_API_KEY")
    if not key:
        click.echo("dbfw: set DBFW_API_KEY to your API key", err=True)
        sys.exit(2)
    if url is None:
        path = config or default_config_path()
        if path.exists():
            settings, _ = _load(path)
            if settings.admin is not None:
                url = settings.approvals.public_url or f"http://{settings.admin.listen}"
    return AdminClient(url or "http://127.0.0.1:8080", key)


def _client_call(fn: Any, *args: Any) -> Any:
    from .admin.client import ClientError

    try:
        return fn(*args)
    except ClientError as e:
        click.echo(f"dbfw: {e} (HTTP {e.status})" if e.status else f"dbfw: {e}", err=True)
        sys.exit(1)


@main.group()
def approvals() -> None:
    """List, show, approve and deny approval requests (the admin API; key from $DBFW_API_KEY)."""


def _url_option(f: Any) -> Any:
    return click.option("--url", default=None, help="admin API URL (default: from the config, else "
                                                    "http://127.0.0.1:8080)")(_config_option(f))


@approvals.command("list")
@_url_option
@click.option("--status", type=click.Choice(["pending", "approved", "denied", "expired", "consumed"]),
              default="pending", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def approvals_list(url: str | None, config: Path | None, status: str, as_json: bool) -> None:
    items = _client_call(_admin_client(url, config).list, status)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo(f"no {status} requests")
        return
    for r in items:
        sql = " ".join(r["sql"].split())
        click.echo(f"{r['id']}  {r['status']:<9} {r['requester']:<16} {r['database']:<12} {r['class']:<17} "
                   f"{sql[:60]}")


@approvals.command("show")
@_url_option
@click.argument("request_id")
def approvals_show(url: str | None, config: Path | None, request_id: str) -> None:
    click.echo(json.dumps(_client_call(_admin_client(url, config).show, request_id), indent=2))


@approvals.command("approve")
@_url_option
@click.argument("request_id")
@click.option("--comment", default=None)
def approvals_approve(url: str | None, config: Path | None, request_id: str, comment: str | None) -> None:
    click.echo(json.dumps(_client_call(_admin_client(url, config).approve, request_id, comment), indent=2))


@approvals.command("deny")
@_url_option
@click.argument("request_id")
@click.option("--reason", required=True)
def approvals_deny(url: str | None, config: Path | None, request_id: str, reason: str) -> None:
    click.echo(json.dumps(_client_call(_admin_client(url, config).deny, request_id, reason), indent=2))


def _store_of(config: Path | None) -> Any:
    from .store.factory import open_store

    settings, path = _load(config)
    return open_store(settings.storage, path.resolve().parent)


def _with_store(config: Path | None, work: Any) -> Any:
    import asyncio

    from .store.base import StoreError

    async def run() -> Any:
        store = _store_of(config)
        try:
            await store.open()
        except StoreError as e:
            click.echo(f"dbfw: {e}", err=True)
            sys.exit(1)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


@main.group()
def recordings() -> None:
    """Read session recordings from the configured storage."""


@recordings.command("list")
@_config_option
@click.option("--limit", default=50, show_default=True)
def recordings_list(config: Path | None, limit: int) -> None:
    for s in _with_store(config, lambda st: st.sessions(limit)):
        click.echo(f"{s['id']}  {s['started_at']}  {s['identity']:<16} {s['database']:<12} {s['client_addr']:<22} "
                   f"{s['end_reason'] or 'open'}")


@recordings.command("show")
@_config_option
@click.argument("session_id")
@click.option("--jsonl", is_flag=True, help="one JSON object per event (for a SIEM)")
def recordings_show(config: Path | None, session_id: str, jsonl: bool) -> None:
    found = _with_store(config, lambda st: st.session(session_id))
    if found is None:
        click.echo(f"dbfw: no recorded session {session_id}", err=True)
        sys.exit(1)
    if jsonl:
        for event in found.pop("events"):
            click.echo(json.dumps({"session": found["id"], "identity": found["identity"], **event}))
        return
    click.echo(json.dumps(found, indent=2))


@recordings.command("replay")
@_config_option
@click.argument("session_id")
@click.option("--speed", default=0.0, show_default=True, help="0: print at once; 1: with the original timing")
def recordings_replay(config: Path | None, session_id: str, speed: float) -> None:
    """Print the session as it happened, like a terminal transcript."""
    import time as _time

    found = _with_store(config, lambda st: st.session(session_id))
    if found is None:
        click.echo(f"dbfw: no recorded session {session_id}", err=True)
        sys.exit(1)
    click.echo(f"-- session {found['id']}: {found['identity']} from {found['client_addr']} to "
               f"{found['database']} via {found['listener']}, {found['started_at']}")
    events = found["events"]
    start = events[0]["t"] if events else 0.0
    previous = start
    for e in events:
        if speed > 0:
            _time.sleep(min((e["t"] - previous) / speed, 5.0))
        previous = e["t"]
        stamp = f"[+{e['t'] - start:8.3f}s]"
        kind = e["kind"]
        if kind == "statement":
            verdict = e["action"] if "refused" not in e else f"{e['action']} ({e['refused']})"
            click.echo(f"{stamp} {found['identity']}=> {e['sql']}")
            click.echo(f"{' ' * len(stamp)}    {e['class']}, {verdict}, policy {e['policy'] or '-'}"
                       + (f", approval {e['approval']}" if "approval" in e else ""))
            if "seconds" in e:  # an everyday statement is recorded with its result
                outcome = f"error {e['error']}" if "error" in e else f"{e.get('rows', 0)} row(s)"
                click.echo(f"{' ' * len(stamp)}    -> {outcome} in {e['seconds'] * 1000:.1f} ms")
        elif kind == "result":
            outcome = f"error {e['error']}" if "error" in e else f"{e.get('rows', 0)} row(s)"
            click.echo(f"{' ' * len(stamp)}    -> {outcome} in {e['seconds'] * 1000:.1f} ms")
        else:
            detail = {k: v for k, v in e.items() if k not in ("at", "t", "kind")}
            click.echo(f"{stamp} {kind} {json.dumps(detail)}")
    click.echo(f"-- ended {found['ended_at'] or '(still open)'}: {found['end_reason'] or ''}")


@main.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@_config_option
def audit_verify(config: Path | None) -> None:
    """Check the hash chain of the audit log; exit 1 naming the first broken record."""

    async def work(st: Any) -> tuple[int, Any]:
        await st.seal()
        return await st.verify()

    checked, broken = _with_store(config, work)
    if broken is not None:
        click.echo(f"dbfw: audit chain broken at record {broken['id']} (seal #{broken['seal_seq']}): "
                   f"{broken['why']}; {checked} record(s) before it check out", err=True)
        sys.exit(1)
    click.echo(f"audit chain ok: {checked} record(s)")


@main.command("hash-password")
@click.option("--iterations", default=4096, show_default=True, type=click.IntRange(1000, 10_000_000))
def hash_password(iterations: int) -> None:
    """Read a secret on stdin; print a SCRAM-SHA-256 verifier for an identity's password_scram."""
    from .scram import ScramVerifier

    if sys.stdin.isatty():
        secret = getpass.getpass("password: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        click.echo("dbfw: empty password", err=True)
        sys.exit(1)
    click.echo(ScramVerifier.from_password(secret, iterations=iterations).format())


@main.command()
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the demo keeps its database and config (default: the user's state directory)")
@click.option("--port", default=6432, show_default=True, help="proxy port for the demo agent")
@click.option("--admin-port", default=8080, show_default=True)
@click.option("--mysql-port", default=3307, show_default=True,
              help="port of the MySQL listener, when a MySQL/MariaDB server is reachable ($DBFW_DEMO_MYSQL)")
def up(state_dir: Path | None, port: int, admin_port: int, mysql_port: int) -> None:
    """The demo: embedded PostgreSQL with a seeded schema, dbfw in front of it (and of MySQL, if reachable)."""
    from .demo import run_demo

    sys.exit(run_demo(state_dir, port, admin_port, mysql_port))


if __name__ == "__main__":
    main()
