"""psql and pgbench through dbfw, compared with the same commands run directly against PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import AGENT, AGENT_PASSWORD, DbfwProcess, PgTarget, client_binary

pytestmark = pytest.mark.timeout(60)


def _name(prefix: str = "t_cli") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _conn_args(target: DbfwProcess | PgTarget) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGSSLMODE": "prefer"}
    env.pop("PGSERVICE", None)
    if isinstance(target, DbfwProcess):
        env["PGPASSWORD"] = AGENT_PASSWORD
        return ["-h", target.host, "-p", str(target.port), "-U", AGENT, "-d", "test"], env
    if target.password:
        env["PGPASSWORD"] = target.password
    else:
        env.pop("PGPASSWORD", None)
    return ["-h", target.host, "-p", str(target.port), "-U", target.user, "-d", target.dbname], env


def psql(target: DbfwProcess | PgTarget, *args: str, stdin: str | None = None, cwd: Path | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    conn, env = _conn_args(target)
    return subprocess.run([client_binary("psql"), "-X", "-q", *conn, *args], input=stdin, env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def psql_both(dbfw: DbfwProcess, pg: PgTarget, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run psql through dbfw and directly: same exit code, output and errors. Returns dbfw's run."""
    through = psql(dbfw, *args, **kw)  # type: ignore[arg-type]
    direct = psql(pg, *args, **kw)  # type: ignore[arg-type]
    assert (through.returncode, through.stdout, through.stderr) == (direct.returncode, direct.stdout,
                                                                     direct.stderr)
    return through


def _drop(pg: PgTarget, *tables: str) -> None:
    with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
        for table in tables:
            conn.execute(f'drop table if exists "{table}"')


# --- psql --------------------------------------------------------------------------------------------------------


def test_psql_several_statements_in_one_command(dbfw: DbfwProcess, pg: PgTarget) -> None:
    table = _name()
    command = (f"create table {table} (id int, v text); insert into {table} values (1, 'ä'), (2, 'b'); "
               f"update {table} set v = v || '!' where id = 2; select * from {table} order by id; "
               f"select count(*) from {table}; drop table {table}")
    try:
        out = psql_both(dbfw, pg, "-A", "-t", "-c", command)
    finally:
        _drop(pg, table)
    assert out.returncode == 0
    assert out.stdout.split() == ["1|ä", "2|b!", "2"]


def test_psql_several_commands(dbfw: DbfwProcess, pg: PgTarget) -> None:
    out = psql_both(dbfw, pg, "-A", "-t", "-c", "select 1", "-c", "select 2", "-c", "select 'three', 3.0::numeric")
    assert out.stdout.split() == ["1", "2", "three|3.0"]


def test_psql_aligned_output_and_describe(dbfw: DbfwProcess, pg: PgTarget) -> None:
    table = _name()
    try:
        psql(pg, "-c", f"create table {table} (id serial primary key, name text not null default 'x', "
                       f"data jsonb, at timestamptz); create index on {table} (name)")
        out = psql_both(dbfw, pg, "-c", f"\\d {table}", "-c", f"select * from {table}", "-c", "\\dt public.*")
        assert f'Table "public.{table}"' in out.stdout
        assert f"{table}_pkey" in out.stdout
        assert "(0 rows)" in out.stdout
    finally:
        _drop(pg, table)


def test_psql_copy_in_and_out_through_a_file(dbfw: DbfwProcess, pg: PgTarget, tmp_path: Path) -> None:
    table = _name()
    source = tmp_path / "in.csv"
    lines = ["id,name,amount"] + [f'{i},"name {i}, with comma and ü",{i * 1.25}' for i in range(5000)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = {}
    try:
        for label, target in (("dbfw", dbfw), ("direct", pg)):
            _drop(pg, table)
            psql(pg, "-c", f"create table {table} (id int primary key, name text, amount numeric)")
            dest = tmp_path / f"out-{label}.csv"
            result = psql(target, "-v", "ON_ERROR_STOP=1",
                          "-c", f"\\copy {table} from '{source}' with (format csv, header true)",
                          "-c", f"\\copy (select * from {table} order by id) to '{dest}' with (format csv, header)",
                          "-c", f"\\copy {table} to stdout", "-c", f"select count(*), sum(amount) from {table}")
            assert result.returncode == 0, result.stderr
            outputs[label] = (dest.read_bytes(), result.stdout)
    finally:
        _drop(pg, table)
    assert outputs["dbfw"] == outputs["direct"]
    assert outputs["dbfw"][0].decode().splitlines() == lines
    assert "5000 | 15621875.00" in outputs["dbfw"][1] or "5000|15621875.00" in outputs["dbfw"][1]


def test_psql_script_with_on_error_stop(dbfw: DbfwProcess, pg: PgTarget, tmp_path: Path) -> None:
    table = _name()
    script = tmp_path / "script.sql"
    script.write_text(f"""\\set ON_ERROR_STOP 1
create table {table} (id int);
insert into {table} values (1);
copy {table} from stdin;
2
3
\\.
select 'before error', count(*) from {table};
select 1 / 0;
insert into {table} values (99);
select 'never printed';
""")
    try:
        through = psql(dbfw, "-A", "-t", "-f", str(script))
        _drop(pg, table)
        direct = psql(pg, "-A", "-t", "-f", str(script))
        remaining = psql(pg, "-A", "-t", "-c", f"select array_agg(id order by id) from {table}")
    finally:
        _drop(pg, table)
    assert (through.returncode, through.stdout, through.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert through.returncode == 3
    assert through.stdout.split() == ["before", "error|3"]
    assert f"psql:{script}:9: ERROR:  division by zero" in through.stderr
    assert remaining.stdout.strip() == "{1,2,3}"


def test_psql_script_without_on_error_stop_goes_on(dbfw: DbfwProcess, pg: PgTarget) -> None:
    script = "select 1;\nselect nonsense_column;\nselect 2;\nbegin;\nselect 1/0;\nselect 3;\nrollback;\nselect 4;\n"
    out = psql_both(dbfw, pg, "-A", "-t", stdin=script)
    assert out.returncode == 0
    assert out.stdout.split() == ["1", "2", "4"]
    assert "current transaction is aborted" in out.stderr


def test_psql_single_transaction_rolls_back_on_error(dbfw: DbfwProcess, pg: PgTarget, tmp_path: Path) -> None:
    table = _name()
    script = tmp_path / "tx.sql"
    script.write_text(f"create table {table} (id int);\ninsert into {table} values (1);\nselect 1/0;\n")
    try:
        out = psql(dbfw, "-1", "-v", "ON_ERROR_STOP=1", "-f", str(script))
        assert out.returncode == 3
        exists = psql(pg, "-A", "-t", "-c", f"select to_regclass('{table}') is null")
        assert exists.stdout.strip() == "t"
    finally:
        _drop(pg, table)


def test_psql_variables_gset_and_gexec(dbfw: DbfwProcess, pg: PgTarget) -> None:
    script = ("select 6 * 7 as answer, 'Ω' as sym \\gset\n"
              "\\echo :answer :sym\n"
              "select format('select %s + 1 as next', g) from generate_series(1, 3) g \\gexec\n"
              "select :'sym' || 'x' as quoted \\gx\n")
    out = psql_both(dbfw, pg, "-A", "-t", stdin=script)
    assert out.stdout.split() == ["42", "Ω", "2", "3", "4", "quoted|Ωx"]


def test_psql_large_objects_use_the_fast_path(dbfw: DbfwProcess, pg: PgTarget, tmp_path: Path) -> None:
    # libpq implements lo_import/lo_export with the fast-path FunctionCall message.
    blob = bytes(range(256)) * 4000 + "Ω".encode()
    source = tmp_path / "blob.bin"
    source.write_bytes(blob)
    exported = tmp_path / "exported.bin"
    out = psql(dbfw, "-v", "ON_ERROR_STOP=1", "-A", "-t", stdin=f"""\\lo_import '{source}'
\\set oid :LASTOID
select length(lo_get(:oid));
\\lo_export :oid '{exported}'
\\lo_unlink :oid
select count(*) from pg_largeobject_metadata where oid = :oid;
""")
    assert out.returncode == 0, out.stderr
    assert exported.read_bytes() == blob
    assert out.stdout.split()[-2:] == [str(len(blob)), "0"]


def test_psql_notices_and_listen_notify(dbfw: DbfwProcess, pg: PgTarget) -> None:
    channel = _name("chan")
    script = (f"do $$ begin raise notice 'hello from %', 'plpgsql'; end $$;\n"
              f"listen {channel};\nnotify {channel}, 'payload';\nselect 1;\n")
    through = psql(dbfw, "-A", "-t", stdin=script)
    direct = psql(pg, "-A", "-t", stdin=script)
    assert through.returncode == direct.returncode == 0
    assert "NOTICE:  hello from plpgsql" in through.stderr
    assert re.search(rf'Asynchronous notification "{channel}" with payload "payload" received from server '
                     r"process with PID \d+", through.stdout)
    assert through.stdout.split()[-1] == direct.stdout.split()[-1] == "1"


def test_psql_interrupt_cancels_the_running_query(dbfw: DbfwProcess, pg: PgTarget) -> None:
    # Ctrl-C in psql sends a CancelRequest on a new connection with the key from BackendKeyData.
    results = {}
    for label, target in (("dbfw", dbfw), ("direct", pg)):
        conn, env = _conn_args(target)
        proc = subprocess.Popen([client_binary("psql"), "-X", *conn, "-c", "select pg_sleep(15)"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        results[label] = (proc.returncode, stderr.strip(), time.monotonic() - started < 3)
    assert results["dbfw"] == results["direct"]
    assert results["dbfw"] == (1, "Cancel request sent\nERROR:  canceling statement due to user request", True)


# --- pgbench -----------------------------------------------------------------------------------------------------


def pgbench(target: DbfwProcess | PgTarget, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    conn, env = _conn_args(target)
    # pgbench takes the database as its last argument, not -d.
    conn_args = conn[:-2]
    return subprocess.run([client_binary("pgbench"), *conn_args, *args, conn[-1]], env=env, capture_output=True,
                          text=True, timeout=timeout)


PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


@pytest.fixture(scope="module")
def pgbench_db(dbfw: DbfwProcess, pg: PgTarget) -> Iterator[DbfwProcess]:
    """pgbench's tables in ``test``, created by ``pgbench -i`` through dbfw (COPY of 100 000 rows)."""
    out = pgbench(dbfw, "-i", "-s", "1", "--unlogged-tables", "-q")
    try:
        assert out.returncode == 0, f"pgbench -i through dbfw failed:\n{out.stdout}\n{out.stderr}"
        assert "done in" in out.stderr
        with psycopg.connect(pg.conninfo()) as conn:
            counts = conn.execute("select (select count(*) from pgbench_accounts), "
                                  "(select count(*) from pgbench_branches), (select count(*) from pgbench_tellers)"
                                  ).fetchone()
        assert counts == (100_000, 1, 10)
        yield dbfw
    finally:
        _drop(pg, *PGBENCH_TABLES)


def _check_pgbench(out: subprocess.CompletedProcess[str]) -> float:
    assert out.returncode == 0, f"pgbench failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    assert "number of failed transactions: 0 " in out.stdout, out.stdout
    tps = re.search(r"^tps = ([\d.]+) \((without initial connection|including reconnection) times?\)", out.stdout, re.M)
    assert tps is not None, out.stdout
    return float(tps.group(1))


@pytest.mark.parametrize("mode", ["simple", "prepared", "extended"])
def test_pgbench_select_only(pgbench_db: DbfwProcess, mode: str) -> None:
    out = pgbench(pgbench_db, "-S", "-T", "3", "-c", "4", "-M", mode)
    tps = _check_pgbench(out)
    assert tps > 0
    assert f"query mode: {mode}" in out.stdout
    processed = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    assert processed is not None and int(processed.group(1)) > 0


def test_pgbench_tpcb_like_writes(pgbench_db: DbfwProcess) -> None:
    out = pgbench(pgbench_db, "-T", "2", "-c", "3", "-M", "prepared", "-n")
    assert _check_pgbench(out) > 0


def test_pgbench_new_connection_per_transaction(pgbench_db: DbfwProcess) -> None:
    # -C: every transaction logs in through dbfw (SCRAM) and opens its own upstream connection.
    out = pgbench(pgbench_db, "-S", "-T", "2", "-c", "2", "-C", "-M", "extended")
    assert _check_pgbench(out) > 0
