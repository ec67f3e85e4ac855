"""What each dialect's risky functions and statement keywords are: data, not code.

Function names are matched case-insensitively wherever they are called in a statement (select list,
WHERE, ORDER BY, CTEs, subqueries, SET values, PREPAREd text...). A function listed here raises the
statement's class to at least the one given.
"""

from __future__ import annotations

import json

from .settings import CONTROL_SETTINGS, HARMLESS_SETTINGS, LIMIT_SETTINGS, value_escapes_control

POSTGRES_FUNCTIONS: dict[str, str] = {
    # server files
    **dict.fromkeys((
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir", "pg_ls_waldir",
        "pg_ls_tmpdir", "pg_ls_archive_statusdir", "pg_ls_logicalsnapdir", "pg_ls_logicalmapdir",
        "pg_ls_replslotdir", "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls",
        "lo_import", "lo_export", "pg_file_settings", "pg_hba_file_rules", "pg_ident_file_mappings",
        "pg_show_all_file_settings", "pg_config",
    ), "admin"),
    # server processes and state
    **dict.fromkeys((
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
        "pg_switch_wal", "pg_switch_xlog", "pg_create_restore_point", "pg_start_backup", "pg_stop_backup",
        "pg_backup_start", "pg_backup_stop", "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot", "pg_drop_replication_slot", "pg_copy_physical_replication_slot",
        "pg_copy_logical_replication_slot", "pg_replication_slot_advance", "pg_replication_origin_create",
        "pg_replication_origin_drop", "pg_replication_origin_session_setup", "pg_wal_replay_pause",
        "pg_wal_replay_resume", "pg_log_backend_memory_contexts", "pg_stat_reset", "pg_stat_reset_shared",
        "pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters", "pg_stat_reset_slru",
        "pg_stat_reset_replication_slot", "pg_stat_statements_reset", "pg_import_system_collations",
        "pg_logical_emit_message",
    ), "admin"),
    # other servers
    **dict.fromkeys((
        "dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query", "dblink_open",
        "dblink_fetch", "dblink_get_result", "dblink_disconnect", "dblink_build_sql_insert",
        "dblink_build_sql_delete", "dblink_build_sql_update",
    ), "admin"),
    # the function form of NOTIFY
    "pg_notify": "session",
    # functions that change data
    "nextval": "write",
    "setval": "destructive_write",
    # large objects live outside tables: any change to them is the server's business
    **dict.fromkeys(("lo_create", "lo_creat", "lo_unlink", "lo_put", "lo_from_bytea", "lowrite", "lo_truncate",
                     "lo_truncate64"), "admin"),
}

MYSQL_FUNCTIONS: dict[str, str] = {
    **dict.fromkeys(("load_file", "sys_exec", "sys_eval", "sys_get", "sys_set", "lib_mysqludf_sys_info"), "admin"),
    # holding a connection (and its locks) or a CPU for as long as asked; waiting on replication
    **dict.fromkeys(("sleep", "benchmark", "master_pos_wait", "master_gtid_wait", "source_pos_wait"), "admin"),
    # server-wide named locks: other sessions wait on them, and see their names
    **dict.fromkeys(("get_lock", "release_lock", "release_all_locks", "is_used_lock", "is_free_lock"), "admin"),
    # sequences: the next value is taken for good; SETVAL rewinds
    "nextval": "write",
    "setval": "destructive_write",
}


def _mariadb_builtins() -> frozenset[str]:
    from importlib import resources

    text = resources.files("dbfw.sql").joinpath("data/mariadb_functions.json").read_text(encoding="utf-8")
    return frozenset(json.loads(text)["functions"])


# MariaDB's own functions (a snapshot of a server's, scripts/snapshot_mariadb_functions.py): a call of any
# other name is a stored function, which runs a body dbfw does not see.
MYSQL_BUILTINS = _mariadb_builtins()

# Settings that change who the session is.
PRIVILEGE_SETTINGS = frozenset({"role", "session_authorization"})


def setting_class(name: str) -> str:
    """The class of changing one setting: identity changes are privilege, the harmless list is session,
    anything else (superuser settings, replication role, string parsing) is admin."""
    name = name.lower().strip('"')
    if name in PRIVILEGE_SETTINGS:
        return "privilege"
    if name in HARMLESS_SETTINGS:
        return "session"
    return "admin"


def _unsafe_encoding(value: str) -> bool:
    from .pglex import unsafe_encoding

    return unsafe_encoding(value.strip().strip("'\"")) is not None


def setting_value_class(name: str, value: str | None, current: dict[str, int] | None = None) -> str:
    """The class of setting ``name`` to ``value`` (None: a value dbfw cannot read, DEFAULT is "default"):
    a harmless setting stays session unless the value switches off a limit or control the operator set."""
    cls = setting_class(name)
    name = name.lower().strip('"')
    if name == "client_encoding" and value is not None and _unsafe_encoding(value):
        return "admin"
    if cls == "session" and ((value is None and name in LIMIT_SETTINGS | CONTROL_SETTINGS)
                             or (value is not None and value_escapes_control(name, value, current))):
        return "admin"
    return cls


MYSQL_HARMLESS_SETTINGS = frozenset(s.lower() for s in (
    "autocommit", "names", "character_set_client", "character_set_results", "character_set_connection",
    "collation_connection", "time_zone", "sql_select_limit", "wait_timeout", "interactive_timeout",
    "net_read_timeout", "net_write_timeout", "lock_wait_timeout", "innodb_lock_wait_timeout",
    "transaction_isolation", "tx_isolation", "group_concat_max_len", "div_precision_increment", "lc_time_names",
    "sql_notes", "sql_warnings", "profiling", "optimizer_search_depth", "max_join_size", "sql_big_selects",
    "sort_buffer_size", "join_buffer_size", "tmp_table_size", "max_heap_table_size", "long_query_time",
    "character_set_database", "default_storage_engine", "session_track_schema", "session_track_state_change",
    "session_track_system_variables", "session_track_transaction_info",
))
# Not harmless, and so not above: max_execution_time (0 lifts the time limit), transaction_read_only and
# tx_read_only (lift a read-only default), unique_checks (lets duplicate keys in), timestamp, insert_id and
# last_insert_id (falsify times and keys later writes record), sql_auto_is_null (WHERE id IS NULL names a row).
