"""PostgreSQL's built-in catalog as data: the relations and functions of pg_catalog (and the views of
information_schema) of PostgreSQL 13-18, dumped from the servers themselves by
scripts/snapshot_pg_catalog.py. Loaded once, on first use."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

# Catalogs whose rows are credentials, server files or other users' data: reading them is admin.
CREDENTIAL_RELATIONS = frozenset({
    "pg_authid", "pg_shadow", "pg_user_mapping", "pg_user_mappings", "pg_hba_file_rules",
    "pg_ident_file_mappings", "pg_file_settings", "pg_largeobject", "pg_statistic", "pg_statistic_ext_data",
    "pg_subscription", "pg_config", "pg_replication_origin",
    "pg_stat_activity",  # other sessions' statements, literals and all
    "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs",  # samples of every column's values
})
# information_schema views that show user mappings' options (passwords of foreign servers).
CREDENTIAL_INFORMATION_SCHEMA = frozenset({"user_mapping_options", "user_mappings", "_pg_user_mappings"})


@cache
def snapshot() -> dict[str, Any]:
    text = resources.files("dbfw.sql").joinpath("data/pg_catalog.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def pg_catalog_relations() -> frozenset[str]:
    return frozenset(snapshot()["relations"])


@cache
def information_schema_relations() -> frozenset[str]:
    return frozenset(snapshot()["information_schema"])


def system_relation(schema: str, name: str) -> str | None:
    """The system schema a relation named ``schema.name`` (names as the server folds them; schema "" when
    unqualified) resolves to, or None. An unqualified name of a pg_catalog relation is that relation:
    pg_catalog is searched before any schema unless search_path names it later, and dbfw does not let
    that decide."""
    if schema == "pg_catalog" or (not schema and name in pg_catalog_relations()):
        return "pg_catalog"
    if schema == "information_schema":
        return "information_schema"
    return None
