"""What an approval is bound to: canonical, injective fingerprints of statements.

A fingerprint is a digest of a JSON value (JSON is injective on nested lists of strings and numbers, so
two different token sequences never share the serialisation a fingerprint is taken of), led by the
scheme's version so that a fingerprint of another scheme never matches. PostgreSQL statements are taken
in the server's own tokens (pglex); the classifier adds the MySQL one from sqlglot's tokens.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import pglex

FINGERPRINT_VERSION = 2


def digest(parts: Any) -> str:
    data = json.dumps([FINGERPRINT_VERSION, parts], ensure_ascii=False, separators=(",", ":"))
    return f"{FINGERPRINT_VERSION}{hashlib.sha256(data.encode('utf-8', 'surrogatepass')).hexdigest()[:19]}"


def postgres_fingerprint(sql: str, lex: int, standard_strings: bool) -> str:
    """The server's own tokens: unquoted names and keywords folded as the server folds them, quoted names
    exact, literals by kind and value, and the lexing mode. A text dbfw cannot lex is bound to its exact
    characters."""
    try:
        lexed = pglex.lex(sql, standard_strings)
    except pglex.LexError:
        return digest(["text", lex, sql])
    return digest(["pg", lex, [[t.kind, t.value] for t in lexed.tokens if t.kind != pglex.SEMICOLON]])


def bound_fingerprint(fingerprint: str, path: str) -> str:
    """A statement's fingerprint bound to the search_path its names resolve through: the same text under
    another search_path may name other tables and functions, so an approval of one is not one of the other."""
    return fingerprint if not path else digest(["search_path", fingerprint, path])
