"""The `dbfw` command."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from . import __version__, log
from .config import ConfigError, Settings, default_config_path, load_settings


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dbfw")
def main() -> None:
    """dbfw: an SQL-aware database firewall for PostgreSQL and MySQL."""


@main.command()
@_config_option
def check(config: Path | None) -> None:
    """Validate the config (and rules); print file:line: message for each error."""
    settings, path = _load(config)
    click.echo(f"{path}: ok ({len(settings.listeners)} listeners, {len(settings.upstreams)} upstreams, "
               f"{len(settings.identities)} identities)")


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


@main.command("hash-password")
@click.option("--iterations", default=4096, show_default=True, type=click.IntRange(1000, 10_000_000))
def hash_password(iterations: int) -> None:
    """Read a secret on stdin; print a SCRAM-SHA-256 verifier for an identity's password_scram."""
    from .protocol.postgres.auth import ScramVerifier

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
def up(state_dir: Path | None, port: int, admin_port: int) -> None:
    """The demo: embedded PostgreSQL with a seeded schema, dbfw in front of it."""
    from .demo import run_demo

    sys.exit(run_demo(state_dir, port, admin_port))


if __name__ == "__main__":
    main()
