"""Start-up settings: what an agent may set in the startup packet, and what it may not."""

from __future__ import annotations

import pytest

from dbfw.sql.settings import SettingNotAllowed, check_startup_settings, parse_libpq_options


def test_parse_libpq_options_forms_and_escapes() -> None:
    assert parse_libpq_options("-c search_path=a,b --statement-timeout=5s -cwork_mem=64MB") == [
        ("search_path", "a,b"), ("statement_timeout", "5s"), ("work_mem", "64MB")]
    assert parse_libpq_options(r"-c application_name=my\ app") == [("application_name", "my app")]
    with pytest.raises(ValueError):
        parse_libpq_options("-D /tmp")
    with pytest.raises(ValueError):
        parse_libpq_options("-c novalue")


def test_driver_startup_parameters_are_allowed() -> None:
    # What psql, JDBC and asyncpg send.
    check_startup_settings({"user": "a", "database": "d", "application_name": "psql", "client_encoding": "UTF8",
                            "DateStyle": "ISO", "TimeZone": "UTC", "extra_float_digits": "3",
                            "options": "-c statement_timeout=30s"})


@pytest.mark.parametrize("params", [
    {"options": "-c role=postgres"},
    {"options": "-c session_replication_role=replica"},
    {"session_authorization": "postgres"},
    {"options": "-D /var/lib"},
])
def test_settings_dbfw_cannot_check_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(SettingNotAllowed):
        check_startup_settings({"user": "a", **params})


def test_listener_can_allow_more() -> None:
    check_startup_settings({"options": "-c myapp.tenant=7"}, frozenset({"myapp.tenant"}))
