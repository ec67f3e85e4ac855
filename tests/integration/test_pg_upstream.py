"""dbfw logging in to the upstream: every authentication method and TLS mode, and their failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trustme

from tests.conftest import DbfwProcess, start_dbfw, write_config
from tests.integration.support import UPSTREAM_AUTH_USERS, OwnedPostgres

# listener name -> (upstream user, password, tls block)
CASES = {
    "scram_verify_full": ("dbfw_scram", "scram-pw", "{mode: verify-full, ca_file: owned-ca.crt}"),
    "md5_require": ("dbfw_md5", "md5-pw", "{mode: require}"),
    "cleartext_prefer": ("dbfw_clear", "clear-pw", "{mode: prefer}"),
    "scram_disable": ("dbfw_scram", "scram-pw", "{mode: disable}"),
    "wrong_password": ("dbfw_scram", "not-it", "{mode: require}"),
    "wrong_ca": ("dbfw_scram", "scram-pw", "{mode: verify-full, ca_file: other-ca.crt}"),
}


@pytest.fixture(scope="module")
def multi(owned: OwnedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    directory: Path = tmp_path_factory.mktemp("dbfw-upstreams")
    (directory / "owned-ca.crt").write_bytes(owned.ca_file.read_bytes())
    trustme.CA().cert_pem.write_to_path(str(directory / "other-ca.crt"))
    config = write_config(directory, owned.target, admin=False)
    text = config.read_text()
    listeners = "".join(
        f"  - name: {name}\n    protocol: postgres\n    listen: 127.0.0.1:0\n    upstream: {name}\n"
        for name in CASES)
    upstreams = "".join(
        f"  {name}:\n    host: 127.0.0.1\n    port: {owned.tcp_port}\n    user: {user}\n"
        f"    password: {password}\n    tls: {tls}\n    connect_timeout: 5s\n"
        for name, (user, password, tls) in CASES.items())
    text = text.replace("listeners:\n", "listeners:\n" + listeners).replace("upstreams:\n", "upstreams:\n" + upstreams)
    config.write_text(text)
    proc = start_dbfw(config)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize(("listener", "tls"), [
    ("scram_verify_full", True), ("md5_require", True), ("cleartext_prefer", True), ("scram_disable", False)])
def test_upstream_authentication_and_tls(multi: DbfwProcess, owned: OwnedPostgres, listener: str, tls: bool) -> None:
    assert owned.tls, "these tests need PostgreSQL binaries built with TLS"
    user = CASES[listener][0]
    assert UPSTREAM_AUTH_USERS[user][0] in ("scram-sha-256", "md5", "password")
    with psycopg.connect(multi.conninfo(listener=listener)) as conn:
        row = conn.execute("select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
    assert row == (user, tls)


def test_wrong_upstream_password_tells_the_client_it_is_dbfws_credential(multi: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(multi.conninfo(listener="wrong_password"))
    assert "dbfw: the database refused dbfw's own credential" in str(info.value)
    assert "not-it" not in multi.log()


def test_upstream_certificate_from_another_ca_is_refused(multi: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(multi.conninfo(listener="wrong_ca"))
    assert "dbfw: cannot connect to the database" in str(info.value)
    assert "CERTIFICATE_VERIFY_FAILED" in multi.log()


def test_require_against_a_server_without_tls_fails(pg_no_tls_dbfw: DbfwProcess) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(pg_no_tls_dbfw.conninfo())
    assert "dbfw: cannot connect to the database" in str(info.value)
    assert "does not offer TLS" in pg_no_tls_dbfw.log()


@pytest.fixture
def pg_no_tls_dbfw(pg, tmp_path: Path) -> Iterator[DbfwProcess]:  # type: ignore[no-untyped-def]
    with psycopg.connect(pg.conninfo()) as conn:
        if conn.execute("show ssl").fetchone() == ("on",):
            pytest.fail("the test database offers TLS; this test needs one that does not")
    config = write_config(tmp_path, pg, admin=False)
    config.write_text(config.read_text().replace("tls: {mode: disable}", "tls: {mode: require}"))
    proc = start_dbfw(config)
    try:
        yield proc
    finally:
        proc.stop()
