#!/usr/bin/env python3
"""Snapshot the built-in functions of a MariaDB server, for the MySQL classifier's allowlist.

    .venv/bin/python scripts/snapshot_mariadb_functions.py [host] [port] [user]

MariaDB ships its manual's function pages in mysql.help_topic; every name of a function category is
taken, with the window and JSON functions the help tables lack. Writes
dbfw/sql/data/mariadb_functions.json. A call of a name not in it (a stored function) is procedural.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pymysql

OUT = Path(__file__).resolve().parent.parent / "dbfw" / "sql" / "data" / "mariadb_functions.json"
CATEGORIES = ("String Functions", "Date and Time Functions", "Numeric Functions", "Functions", "Miscellaneous "
              "Functions", "Information Functions", "Functions and Modifiers for Use with GROUP BY", "Bit Functions",
              "Control flow functions", "Geographic Features", "Encryption Functions", "Comparison operators",
              "Logical operators", "Geometry constructors", "Geometry properties", "Geometry relations",
              "GeometryCollection properties", "LineString properties", "MBR", "Point properties",
              "Polygon properties", "WKB", "WKT")
EXTRA = ("row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
         "last_value", "nth_value", "json_array", "json_arrayagg", "json_array_append", "json_array_insert",
         "json_array_intersect", "json_compact", "json_contains", "json_contains_path", "json_depth",
         "json_detailed", "json_equals", "json_exists", "json_extract", "json_insert", "json_keys", "json_length",
         "json_loose", "json_merge", "json_merge_patch", "json_merge_preserve", "json_normalize", "json_object",
         "json_objectagg", "json_object_filter_keys", "json_object_to_array", "json_overlaps", "json_pretty",
         "json_query", "json_quote", "json_remove", "json_replace", "json_schema_valid", "json_search", "json_set",
         "json_table", "json_type", "json_unquote", "json_valid", "json_value", "regexp_instr", "regexp_replace",
         "regexp_substr", "regexp_like", "median", "percentile_cont", "percentile_disc", "values", "value", "if",
         "ifnull", "nullif", "coalesce", "greatest", "least", "interval", "isnull", "char", "convert", "cast",
         "date_add", "date_sub", "extract", "position", "substring", "trim", "weight_string", "group_concat",
         "count", "sum", "avg", "min", "max", "std", "stddev", "variance", "exists", "not", "in", "mod", "div",
         "aes_encrypt", "aes_decrypt", "md5", "sha", "sha1", "sha2", "crc32", "crc32c", "compress", "uncompress",
         "uncompressed_length", "random_bytes", "kdf", "password", "old_password", "lastval", "row")


def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 3306
    user = sys.argv[3] if len(sys.argv) > 3 else "root"
    conn = pymysql.connect(host=host, port=port, user=user, password="")
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        (version,) = cur.fetchone()
        cur.execute("SELECT t.name FROM mysql.help_topic t JOIN mysql.help_category c "
                    "ON c.help_category_id = t.help_category_id WHERE c.name IN %s", (CATEGORIES,))
        names = set()
        for (topic,) in cur.fetchall():
            word = topic.replace("\\", "").split(" ")[0].split("(")[0].lower()
            if re.fullmatch(r"[a-z_][a-z0-9_]*", word):
                names.add(word)
    names.update(EXTRA)
    OUT.write_text(json.dumps({"server": version, "functions": sorted(names)}, indent=0) + "\n")
    print(f"{len(names)} functions from MariaDB {version} -> {OUT}")


if __name__ == "__main__":
    main()
