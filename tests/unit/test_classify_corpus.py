"""Every statement of the corpus (tests/corpus/*.yaml) gets its expected class."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dbfw.sql.classify import SQLClassifier
from dbfw.sql.functions import FunctionCatalog

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _entries(dialect: str) -> list[dict[str, str]]:
    entries = yaml.safe_load((CORPUS / f"{dialect}.yaml").read_text())
    assert isinstance(entries, list) and entries, f"the {dialect} corpus is missing or empty"
    return entries


def _params(dialect: str) -> list[pytest.param]:  # type: ignore[valid-type]
    return [pytest.param(e, id=f"{dialect}-{i}") for i, e in enumerate(_entries(dialect))]


CLASSIFIERS = {"postgres": SQLClassifier("postgres"), "mysql": SQLClassifier("mysql")}


def test_corpus_size_and_coverage() -> None:
    for dialect, minimum in (("postgres", 300), ("mysql", 150)):
        entries = _entries(dialect)
        assert len(entries) >= minimum
        classes = {e["class"] for e in entries}
        assert classes == {"read", "session", "transaction", "write", "bulk_export", "bulk_import",
                           "destructive_write", "ddl", "procedural", "privilege", "admin", "unknown"}


@pytest.mark.parametrize("entry", _params("postgres"))
def test_postgres_corpus(entry: dict[str, str]) -> None:
    got = CLASSIFIERS["postgres"].classify(entry["sql"])
    assert got.cls == entry["class"], f"{entry['sql']!r}: {[(s.cls, s.reason) for s in got.statements]}"


# The MySQL corpus's database, as the listener reads it from the upstream's catalog: the columns a number
# compares with exactly (a string column compared with a number restricts nothing, see _Restriction).
_NUMBERS = (("users", "id"), ("orders", "id"), ("orders", "customer_id"), ("t", "id"), ("t1", "id"), ("t2", "ref_id"),
            ("accounts", "id"), ("logs", "created_at"), ("users", "login_count"))
_STRINGS = (("users", "name"), ("users", "email"), ("orders", "status"), ("orders", "updated_at"), ("t", "grant"),
            ("t", "a"), ("accounts", "balance"))
SHOP = FunctionCatalog(live=True, number_columns=frozenset(("shop", t, c) for t, c in _NUMBERS),
                       columns=frozenset(("shop", t, c) for t, c in _NUMBERS + _STRINGS))


@pytest.mark.parametrize("entry", _params("mysql"))
def test_mysql_corpus(entry: dict[str, str]) -> None:
    got = CLASSIFIERS["mysql"].classify(entry["sql"], "shop", 0, SHOP)
    assert got.cls == entry["class"], f"{entry['sql']!r}: {[(s.cls, s.reason) for s in got.statements]}"
