"""Side connections to an upstream with dbfw's own credential: for reading the catalog, and for asking
the server whether it can parse a statement (PostgreSQL as dbfw's second parser). Nothing sent on them
runs a client's statement: Parse only, never Bind or Execute."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .config import Upstream
from .sql import pglex

PARSE_TIMEOUT = 2.0


class SideConnectionError(Exception):
    pass


async def connect_side(up: Upstream, database: str) -> Any:
    import asyncpg

    kwargs: dict[str, object] = {"user": up.user, "database": database, "port": up.port,
                                 "timeout": up.connect_timeout, "host": up.host, "statement_cache_size": 0}
    if up.password:
        kwargs["password"] = up.password
    if not up.host.startswith("/"):
        kwargs["ssl"] = {"disable": False, "prefer": "prefer", "require": "require",
                         "verify-full": "verify-full"}.get(up.tls.mode, "prefer")
    try:
        return await asyncpg.connect(**kwargs)  # type: ignore[arg-type]
    except (TimeoutError, OSError, asyncpg.PostgresError) as e:
        raise SideConnectionError(f"cannot open a side connection: {type(e).__name__}") from None


@dataclass(frozen=True, slots=True)
class SyntaxError_:
    """The server's own syntax error for a client's text: SQLSTATE, message, position (1-based, in the
    client's text)."""

    sqlstate: str
    message: str
    position: int | None


class SyntaxChecker:
    """Asks the upstream to Parse texts dbfw could not classify. One idle connection per (upstream,
    database), used by one check at a time."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str], list[Any]] = {}

    async def check(self, name: str, up: Upstream, database: str, sql: str,
                    standard_strings: bool) -> SyntaxError_ | None:
        key = (name, database)
        idle = self._idle.setdefault(key, [])
        conn = idle.pop() if idle else await connect_side(up, database)
        try:
            result = await asyncio.wait_for(self._check(conn, sql, standard_strings), PARSE_TIMEOUT)
        except BaseException:
            conn.terminate()
            raise
        if len(idle) < 2:
            idle.append(conn)
        else:
            await conn.close()
        return result

    async def _check(self, conn: Any, sql: str, standard_strings: bool) -> SyntaxError_ | None:
        import asyncpg

        wanted = "on" if standard_strings else "off"
        if conn.get_settings().standard_conforming_strings != wanted:
            await conn.execute(f"SET standard_conforming_strings = {wanted}")
        try:
            pieces = _statements(sql, standard_strings)
        except pglex.LexError:
            pieces = [(0, sql)]  # the server's lexer fails too: its error says where
        for offset, text in pieces:
            try:
                await conn.prepare(text)
            except asyncpg.PostgresSyntaxError as e:
                position = int(e.position) + offset if getattr(e, "position", None) else None
                return SyntaxError_(e.sqlstate, e.message, position)
            except asyncpg.PostgresError:
                continue  # valid syntax; an error of this connection's state (no such table here...)
        return None

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                await conn.close()
        self._idle.clear()


def _statements(sql: str, standard_strings: bool) -> list[tuple[int, str]]:
    """Each statement's text and where it starts (in characters), as the server splits the text."""
    tokens = pglex.lex(sql, standard_strings).tokens
    out: list[tuple[int, str]] = []
    start: int | None = None
    end = 0
    for tok in tokens:
        if tok.kind == pglex.SEMICOLON:
            if start is not None:
                out.append((start, sql[start:end + 1]))
            start = None
            continue
        if start is None:
            start = tok.start
        end = tok.end
    if start is not None:
        out.append((start, sql[start:end + 1]))
    return out
