#!/usr/bin/env python3
"""Snapshot a PostgreSQL server's built-in catalog for dbfw's offline classification.

    snapshot_pg_catalog.py DSN > pg15.json
        Connects to DSN (a libpq connection string or URI) and prints that server's fragment:
        its major version, the built-in functions of schema pg_catalog and the built-in
        relations of pg_catalog and information_schema.

    snapshot_pg_catalog.py --merge pg13.json pg14.json ... > dbfw/sql/data/pg_catalog.json
        Merges fragments of different major versions into the data file dbfw ships.

"Built-in" means created by initdb: OID below FirstNormalObjectId (16384). That keeps out
whatever an extension (adminpack, say) or a user put into pg_catalog of the database dumped.
Indexes are not listed among the relations. Nothing is downloaded; the only dependency is psycopg.

Function entries, keyed by proname, one per distinct
    [provolatile, prokind, language, pronargs, pronargdefaults, provariadic <> 0, proretset,
     [major versions], body]
where body is the text of a LANGUAGE sql function (prosrc, or for SQL-standard bodies — BEGIN
ATOMIC / RETURN, PostgreSQL 14+ — pg_get_function_sqlbody()), and null for any other language.
Overloads that agree on all of these but the versions are merged into one entry.
"""

from __future__ import annotations

import json
import sys
from typing import Any

FIRST_NORMAL_OBJECT_ID = 16384
FORMAT = 1


def dump(dsn: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.read_only = True
        num = conn.info.server_version
        major = num // 10000 if num >= 100000 else num // 100  # 90600 -> 906 (never used: 11+ expected)
        version = conn.execute("SHOW server_version").fetchone()[0]

        if num >= 110000:
            kind = "p.prokind"
        else:
            kind = "CASE WHEN p.proisagg THEN 'a' WHEN p.proiswindow THEN 'w' ELSE 'f' END"
        if num >= 140000:
            body = "CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) ELSE p.prosrc END"
        else:
            body = "p.prosrc"
        rows = conn.execute(
            f"""
            SELECT p.proname, p.provolatile, {kind}, l.lanname, p.pronargs, p.pronargdefaults,
                   p.provariadic <> 0, p.proretset, CASE WHEN l.lanname = 'sql' THEN {body} END
              FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
             WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.oid < %s
             ORDER BY p.proname, p.oid
            """,
            (FIRST_NORMAL_OBJECT_ID,),
        ).fetchall()
        functions: dict[str, list[list[Any]]] = {}
        for name, *entry in rows:
            entries = functions.setdefault(name, [])
            if entry not in entries:
                entries.append(entry)

        relations: dict[str, dict[str, str]] = {"pg_catalog": {}, "information_schema": {}}
        for nsp, name, relkind in conn.execute(
            """
            SELECT n.nspname, c.relname, c.relkind::text
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.oid < %s
               AND c.relkind NOT IN ('i', 'I')
             ORDER BY n.nspname, c.relname
            """,
            (FIRST_NORMAL_OBJECT_ID,),
        ):
            relations[nsp][name] = relkind

    return {"format": FORMAT, "major": major, "server_version": version, "functions": functions,
            "relations": relations["pg_catalog"], "information_schema": relations["information_schema"]}


def merge(fragments: list[dict[str, Any]]) -> dict[str, Any]:
    majors = [f["major"] for f in fragments]
    if len(set(majors)) != len(majors):
        raise SystemExit(f"two fragments of the same major version: {sorted(majors)}")
    fragments = sorted(fragments, key=lambda f: f["major"])

    functions: dict[str, dict[tuple, list[int]]] = {}
    for frag in fragments:
        for name, entries in frag["functions"].items():
            merged = functions.setdefault(name, {})
            for vol, kind, lang, nargs, ndef, variadic, retset, body in entries:
                key = (vol, kind, lang, nargs, ndef, variadic, retset, body)
                merged.setdefault(key, []).append(frag["major"])

    def relations(field: str) -> dict[str, list[Any]]:
        out: dict[str, dict[str, list[int]]] = {}
        for frag in fragments:
            for name, relkind in frag[field].items():
                out.setdefault(name, {}).setdefault(relkind, []).append(frag["major"])
        for name, kinds in out.items():
            if len(kinds) > 1:  # the format has one relkind per name
                raise SystemExit(f"{field} {name} changed relkind across versions: {kinds}")
        return {name: [k, v] for name, kinds in sorted(out.items()) for k, v in kinds.items()}

    return {
        "format": FORMAT,
        "versions": [f["major"] for f in fragments],
        "server_versions": {str(f["major"]): f["server_version"] for f in fragments},
        "functions": {
            name: [[*key[:7], versions, key[7]] for key, versions in
                   sorted(entries.items(), key=lambda kv: (kv[1][0], kv[0][3], repr(kv[0])))]
            for name, entries in sorted(functions.items())
        },
        "relations": relations("relations"),
        "information_schema": relations("information_schema"),
    }


def render(data: dict[str, Any]) -> str:
    """JSON with one line per function or relation: diffable, and compact."""
    def one(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    parts = []
    for key, value in data.items():
        if isinstance(value, dict) and value and key != "server_versions":
            inner = ",\n".join(f"  {one(k)}: {one(v)}" for k, v in value.items())
            parts.append(f"{one(key)}: {{\n{inner}\n}}")
        else:
            parts.append(f"{one(key)}: {one(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "--merge":
        fragments = []
        for path in argv[1:]:
            with open(path, encoding="utf-8") as f:
                fragments.append(json.load(f))
        sys.stdout.write(render(merge(fragments)))
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(render(dump(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
