"""The store named by a storage URL: the one module that knows every backend (base.py knows none)."""

from __future__ import annotations

from pathlib import Path

from .base import Store, StoreError
from .postgres import PostgresStore
from .sqlite import SQLiteStore


def open_store(url: str, base: Path | None = None) -> Store:
    """``sqlite:///abs/path.db``, ``sqlite:////abs/path.db``, ``sqlite://relative.db`` (to the config's
    folder), ``sqlite://:memory:``; or ``postgresql://user:pass@host/db``."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):]
        if path == ":memory:":
            return SQLiteStore(":memory:", url)
        if path.startswith("//"):
            path = path[1:]
        p = Path(path)
        if not p.is_absolute():
            p = (base or Path.cwd()) / p
        return SQLiteStore(str(p), url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise StoreError(f"unsupported storage URL {url.split('://')[0]}:// (use sqlite:/// or postgresql://)")
