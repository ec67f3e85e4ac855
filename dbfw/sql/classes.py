"""The statement classes, least to most risky: one vocabulary for the classifier, the rules, verdicts and
metrics (members are strings, so a class reads and compares as its name)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class StatementClass(StrEnum):
    READ = "read"
    SESSION = "session"
    TRANSACTION = "transaction"
    WRITE = "write"
    BULK_EXPORT = "bulk_export"
    BULK_IMPORT = "bulk_import"
    DESTRUCTIVE_WRITE = "destructive_write"
    DDL = "ddl"
    PROCEDURAL = "procedural"
    PRIVILEGE = "privilege"
    ADMIN = "admin"
    UNKNOWN = "unknown"


CLASSES: tuple[StatementClass, ...] = tuple(StatementClass)  # in order of risk
RANK: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}


def riskiest(classes: Sequence[str]) -> str:
    return max(classes, key=RANK.__getitem__) if classes else StatementClass.READ
