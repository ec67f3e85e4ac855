"""What calling a function does, from the catalog rather than from a list of names.

Every function a PostgreSQL statement may call is looked up by name in the server's catalog (the
shipped snapshot of pg_catalog for the built-ins, the upstream's pg_proc for everything else).
Without a schema, every schema's functions of that name count, the riskiest deciding: which one runs
depends on search_path, which an agent controls.

- immutable and stable built-ins are ``read``, except those that export whole tables or run SQL text;
- volatile built-ins are ``procedural`` unless reviewed below (harmless, a write, a lock, or a
  category of ``admin``: server files, signals, replication, WAL, large objects, statistics);
- other functions: LANGUAGE sql bodies are classified like a statement (their riskiest statement,
  at least ``read``); any other language is ``procedural``;
- rules' ``functions:`` (globs on ``schema.name``) override all of it.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .catalog import snapshot

# Volatile built-ins reviewed one by one. Anything volatile not here is procedural.
_HARMLESS_VOLATILE = frozenset({
    "random", "random_normal", "setseed", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7",
    "array_sample", "array_shuffle", "currval", "lastval", "current_query", "timezone", "pg_sleep", "pg_sleep_for",
    "pg_sleep_until", "pg_is_in_recovery", "pg_is_in_backup", "pg_is_wal_replay_paused", "pg_current_wal_lsn",
    "pg_current_wal_flush_lsn", "pg_current_wal_insert_lsn", "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp", "pg_last_committed_xact", "pg_jit_available", "pg_database_size",
    "pg_relation_size", "pg_table_size", "pg_indexes_size", "pg_total_relation_size", "pg_tablespace_size",
    "pg_partition_ancestors", "pg_partition_tree", "pg_notification_queue_usage", "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids", "pg_isolation_test_session_is_blocked", "pg_lock_status",
    "pg_stat_have_stats", "pg_stat_clear_snapshot", "pg_stat_force_next_flush", "pg_stat_get_io",
    "pg_stat_get_backend_io", "pg_stat_get_backend_wal", "pg_stat_get_recovery_prefetch", "pg_xact_commit_timestamp",
    "pg_xact_commit_timestamp_origin", "pg_xact_status", "txid_status", "pg_collation_actual_version",
    "pg_database_collation_actual_version", "pg_get_wait_events", "pg_get_wal_replay_pause_state",
    "pg_sequence_last_value", "pg_export_snapshot", "pg_control_checkpoint", "pg_control_init",
    "pg_control_recovery", "pg_control_system", "pg_get_backend_memory_contexts", "pg_get_multixact_members",
    "pg_prepared_xact", "pg_get_wal_resource_managers", "pg_available_wal_summaries", "pg_get_wal_summarizer_state",
    "pg_get_aios", "pg_get_loaded_modules", "pg_current_logfile", "lo_open", "lo_close", "lo_lseek",
    "lo_lseek64", "lo_tell", "lo_tell64",
    "pg_advisory_unlock", "pg_advisory_unlock_all", "pg_advisory_unlock_shared",  # the session's own locks
}) | frozenset(n for n in ("pg_stat_get_xact_blocks_fetched", "pg_stat_get_xact_blocks_hit",
                           "pg_stat_get_xact_function_calls", "pg_stat_get_xact_function_self_time",
                           "pg_stat_get_xact_function_total_time", "pg_stat_get_xact_numscans",
                           "pg_stat_get_xact_tuples_deleted", "pg_stat_get_xact_tuples_fetched",
                           "pg_stat_get_xact_tuples_hot_updated", "pg_stat_get_xact_tuples_inserted",
                           "pg_stat_get_xact_tuples_newpage_updated", "pg_stat_get_xact_tuples_returned",
                           "pg_stat_get_xact_tuples_updated"))

# Reviewed built-ins whose class is not their volatility's.
BUILTIN_CLASSES: dict[str, str] = {
    **dict.fromkeys(("nextval", "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_xact_lock",
                     "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
                     "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared"), "write"),
    "pg_notify": "session",
    "set_config": "session",  # and by the setting it changes: see classify's set_config rule
    # whole tables, schemas or databases as one value
    **dict.fromkeys(("table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema", "schema_to_xml",
                     "schema_to_xmlschema", "schema_to_xml_and_xmlschema", "database_to_xml",
                     "database_to_xmlschema", "database_to_xml_and_xmlschema", "cursor_to_xml",
                     "cursor_to_xmlschema"), "bulk_export"),
    # the contents of large objects: no table, no column, no masking (as reading pg_largeobject)
    **dict.fromkeys(("lo_get", "loread"), "admin"),
    # other sessions' statements and the server's own activity
    **dict.fromkeys(("pg_stat_get_activity", "pg_stat_get_backend_activity"), "admin"),
    # rewinding a sequence makes later inserts collide with existing rows
    "setval": "destructive_write",
}

# Functions that run SQL text passed as an argument: the text is classified as a statement when it is a
# literal; otherwise the call is procedural.
SQL_TEXT_FUNCTIONS: dict[str, int] = {  # name -> index of the SQL argument
    "query_to_xml": 0, "query_to_xmlschema": 0, "query_to_xml_and_xmlschema": 0, "ts_stat": 0, "ts_rewrite": 1,
}


@dataclass(frozen=True, slots=True)
class Proc:
    schema: str
    name: str
    volatility: str   # i, s, v
    kind: str         # f, a, w, p
    language: str
    nargs: int
    ndefaults: int
    variadic: bool
    body: str | None  # LANGUAGE sql only (MySQL: a stored function's RETURN expression, as SELECT <expression>)
    builtin: bool
    lex: int = 0  # MySQL: how the server reads the body (the sql_mode it was created under)

    def takes(self, count: int) -> bool:
        return (self.variadic and count >= self.nargs - 1) or self.nargs - self.ndefaults <= count <= self.nargs


def _builtins() -> dict[str, tuple[Proc, ...]]:
    out: dict[str, tuple[Proc, ...]] = {}
    for name, entries in snapshot()["functions"].items():
        out[name] = tuple(Proc("pg_catalog", name, e[0], e[1], e[2], e[3], e[4], bool(e[5]),
                               e[8] if len(e) > 8 else None, True) for e in entries)
    return out


@dataclass(frozen=True, slots=True)
class Trigger:
    """What runs when a table is written: a trigger (PostgreSQL: its function; MySQL: its body) or a
    PostgreSQL rule (its action). A write is as risky as what it fires."""

    schema: str
    table: str
    name: str
    events: frozenset[str]  # INSERT, UPDATE, DELETE, TRUNCATE
    body: str | None = None  # MySQL: the statement(s) it runs; PostgreSQL: the rule's definition, the function's source
    function: tuple[str, str] | None = None  # PostgreSQL trigger: (schema, name) of its function
    lex: int = 0  # MySQL: the sql_mode it was created under


WRITE_EVENTS = frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE"})


_BUILTINS: dict[str, tuple[Proc, ...]] | None = None
_versions = itertools.count(1)


@dataclass
class FunctionCatalog:
    """The functions one database can call: the built-ins of the snapshot, and the upstream's own (user
    functions, extensions, anything created after initdb) when they were read. ``version`` changes
    whenever the contents do: classifications are cached per version."""

    user: dict[str, tuple[Proc, ...]] = field(default_factory=dict)
    live: bool = False  # the upstream's pg_proc was read; otherwise only the snapshot is known
    # The database's own limits for dbfw's upstream role (statement_timeout...), in base units: an agent
    # may lower them, not raise them.
    settings: dict[str, int] = field(default_factory=dict)
    # MySQL: the (schema, table, column) of columns a number compares with exactly (numbers, dates, enums), in
    # lower case. MySQL compares a string column with a number as numbers (name = 0 matches most rows), so
    # only on these does `col = 5` restrict.
    number_columns: frozenset[tuple[str, str, str]] = frozenset()
    # MySQL: every (schema, table, column), lower case. A name that is none of them (UTC_DATE, CURRENT_ROLE:
    # functions MariaDB calls without parentheses) is no column, whatever sqlglot reads it as.
    columns: frozenset[tuple[str, str, str]] = frozenset()
    # MySQL: view definitions by (schema, view), lower case: reading a view runs the functions it calls.
    views: dict[tuple[str, str], str] = field(default_factory=dict)
    # Triggers and rules by the lower-case name of the table they are on. ``triggers_known`` is False when
    # the database could not be read: then any write may fire anything.
    triggers: dict[str, tuple[Trigger, ...]] = field(default_factory=dict)
    triggers_known: bool = True
    # MySQL: the databases whose triggers dbfw's upstream user sees (TRIGGER privilege); None: all of them.
    trigger_schemas: frozenset[str] | None = None
    version: int = field(default_factory=lambda: next(_versions))

    @staticmethod
    def builtins() -> dict[str, tuple[Proc, ...]]:
        global _BUILTINS
        if _BUILTINS is None:
            _BUILTINS = _builtins()
        return _BUILTINS

    def stored_in(self, schema: str | None) -> frozenset[str]:
        """MySQL: the names of the stored functions of one database (what an unqualified call there may be)."""
        if not self.user or schema is None:
            return frozenset()
        cache = self.__dict__.setdefault("_stored_in", {})
        found = cache.get(schema.lower())
        if found is None:
            found = cache[schema.lower()] = frozenset(
                name for name, procs in self.user.items() if any(p.schema == schema.lower() for p in procs))
        return found

    def views_named(self) -> dict[str, list[tuple[str, str]]]:
        """The views by name: (schema, name) of each."""
        found = self.__dict__.get("_views_named")
        if found is None:
            found = self.__dict__["_views_named"] = {}
            for key in self.views:
                found.setdefault(key[1], []).append(key)
        return found

    def triggers_visible(self, written: str, mysql: bool) -> bool:
        if self.trigger_schemas is None or not mysql:
            return True
        return written.lower().rpartition(".")[0] in self.trigger_schemas

    def fired(self, written: str, events: frozenset[str], exact: bool = False) -> list[Trigger]:
        """The triggers and rules a write of ``written`` (``schema.table`` as the classifier names it) may
        fire for ``events``. PostgreSQL: the table is matched by its name in any schema (which one an
        unqualified name writes depends on the search path); ``exact`` (MySQL, whose names are always
        qualified by the classifier): in its schema."""
        written = written.lower()
        parts = written.split(".")
        # (a quoted name may hold dots: every suffix is a candidate name)
        names = {".".join(parts[k:]) for k in range(len(parts))}
        return [t for name in names for t in self.triggers.get(name, ()) if t.events & events
                and (not exact or written == f"{t.schema.lower()}.{t.table}")]

    def lookup(self, schema: str | None, name: str) -> tuple[Proc, ...]:
        found = self.builtins().get(name, ()) + self.user.get(name, ())
        if schema is not None:
            found = tuple(p for p in found if p.schema == schema)
        return found


SNAPSHOT_ONLY = FunctionCatalog()
# The database could not be read: its own functions are unknown (procedural), and any write may fire
# triggers dbfw does not know.
UNREAD = FunctionCatalog(triggers_known=False)

ClassifyBody = Callable[[str, int], str]


@dataclass
class FunctionRules:
    """Operators' own classes for functions (rules' ``functions:``), globs on ``schema.name``."""

    globs: Mapping[str, str] = field(default_factory=dict)

    def class_of(self, proc: Proc) -> str | None:
        qualified = f"{proc.schema}.{proc.name}"
        for pattern, cls in self.globs.items():
            if fnmatch.fnmatchcase(qualified, pattern) or fnmatch.fnmatchcase(proc.name, pattern):
                return cls
        return None


NO_RULES = FunctionRules()


def proc_class(proc: Proc, rules: FunctionRules, classify_body: ClassifyBody, depth: int) -> tuple[str, str]:
    """The class of calling ``proc`` and why."""
    ruled = rules.class_of(proc)
    if ruled is not None:
        return ruled, f"rules class {proc.schema}.{proc.name}() as {ruled}"
    if proc.kind == "p":
        return "procedural", f"{proc.name} is a procedure"
    if proc.builtin:
        if proc.name in BUILTIN_CLASSES:
            return BUILTIN_CLASSES[proc.name], f"calls {proc.name}()"
        if proc.volatility in "is" or proc.name in _HARMLESS_VOLATILE:
            return "read", ""
        return "procedural", f"calls {proc.name}(), a volatile built-in dbfw has not reviewed"
    if proc.language == "sql" and proc.body is not None and depth < 4:
        body_class = classify_body(proc.body, depth + 1)
        if body_class == "unknown":
            return "procedural", f"{proc.schema}.{proc.name}() has a body dbfw cannot classify"
        return body_class, f"{proc.schema}.{proc.name}() runs SQL that is {body_class}" if body_class != "read" else ""
    return "procedural", f"{proc.schema}.{proc.name}() runs {proc.language} code"
