"""Fixtures for tests that need a PostgreSQL of their own (restartable, TLS, password-protected roles)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import DbfwProcess, start_dbfw, write_config
from tests.integration.support import OwnedPostgres


@pytest.fixture(scope="session")
def owned() -> Iterator[OwnedPostgres]:
    pg = OwnedPostgres()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture(scope="session")
def dbfw_owned(owned: OwnedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    proc = start_dbfw(write_config(tmp_path_factory.mktemp("dbfw-owned"), owned.target))
    try:
        yield proc
    finally:
        proc.stop()
