"""TLS from dbfw to a MariaDB upstream, against a private MariaDB started here with a certificate from a CA
made here (the machine's own MariaDB has no TLS): `verify-full` with the right CA carries the session
encrypted to a user the server admits only over TLS; `disable` is refused by that server; a certificate
from another CA is refused by dbfw."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
import trustme

from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    ALLOW_ALL_RULES,
    IN_CI,
    DbfwProcess,
    MyTarget,
    start_dbfw,
    write_mysql_config,
)

pytestmark = pytest.mark.timeout(180)

TLS_USER, TLS_PASSWORD = "dbfw_tls", "dbfw-tls-secret"


@dataclass
class TlsMaria:
    port: int
    ca: Path
    directory: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_maria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMaria]:
    server, install = shutil.which("mariadbd") or "/usr/sbin/mariadbd", shutil.which("mariadb-install-db")
    if not Path(server).exists() or install is None:
        pytest.fail("mariadbd is not installed") if IN_CI else pytest.skip("no mariadbd here")
    directory = tmp_path_factory.mktemp("maria-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    data = directory / "data"
    subprocess.run([install, "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = open(directory / "mariadbd.log", "wb")  # owned by the process for its lifetime
    proc = subprocess.Popen([server, "--no-defaults", f"--datadir={data}", "--user=root", f"--port={port}",
                             "--bind-address=127.0.0.1", f"--socket={directory / 'sock'}",
                             f"--pid-file={directory / 'pid'}", f"--ssl-cert={directory / 'server.crt'}",
                             f"--ssl-key={directory / 'server.key'}", f"--ssl-ca={directory / 'ca.crt'}",
                             "--skip-log-bin", "--innodb-buffer-pool-size=16M"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:  # ready when it answers on its socket
            try:
                root = pymysql.connect(unix_socket=str(directory / "sock"), user="root", autocommit=True)
                break
            except pymysql.err.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((directory / "mariadbd.log").read_text()) from None
                time.sleep(0.05)
        with root.cursor() as cur:
            cur.execute(f"CREATE USER '{TLS_USER}'@'%' IDENTIFIED BY '{TLS_PASSWORD}' REQUIRE SSL")
            cur.execute(f"GRANT ALL ON *.* TO '{TLS_USER}'@'%'")
            cur.execute("CREATE DATABASE test")
            cur.execute("CREATE TABLE test.t (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.execute("INSERT INTO test.t VALUES (1, 'one'), (2, 'two')")
        root.close()
        yield TlsMaria(port, directory / "ca.crt", directory)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def _dbfw(tls_maria: TlsMaria, directory: Path, tls: str) -> DbfwProcess:
    target = MyTarget("127.0.0.1", tls_maria.port, TLS_USER, TLS_PASSWORD, "test", "private")
    config = write_mysql_config(directory, target)
    config.write_text(config.read_text().replace("tls: {mode: disable}", tls))
    return start_dbfw(config)


def _login(fw: DbfwProcess) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                           database="test", ssl_disabled=True)


def test_verify_full_carries_the_session_over_tls(tls_maria: TlsMaria, tmp_path: Path) -> None:
    fw = _dbfw(tls_maria, tmp_path, f"tls: {{mode: verify-full, ca_file: {tls_maria.ca}}}")
    try:
        conn = _login(fw)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
                ((_, version),) = cur.fetchall()
                assert version in ("TLSv1.2", "TLSv1.3")
                cur.execute("SELECT v FROM t WHERE id = 2")
                assert cur.fetchall() == (("two",),)
        finally:
            conn.close()
    finally:
        fw.stop()


def test_a_server_that_requires_tls_refuses_dbfw_without_it(tls_maria: TlsMaria, tmp_path: Path) -> None:
    fw = _dbfw(tls_maria, tmp_path, "tls: {mode: disable}")
    try:
        with pytest.raises(pymysql.err.OperationalError) as info:
            _login(fw)
        assert info.value.args[0] == 1045 and "dbfw's own credential" in info.value.args[1]
    finally:
        fw.stop()


def test_a_certificate_from_another_ca_is_refused(tls_maria: TlsMaria, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.crt"
    trustme.CA().cert_pem.write_to_path(str(other))
    fw = _dbfw(tls_maria, tmp_path, f"tls: {{mode: verify-full, ca_file: {other}}}")
    try:
        with pytest.raises(pymysql.err.OperationalError) as info:
            _login(fw)
        assert info.value.args[0] == 2003 and "cannot connect" in info.value.args[1]
        assert "CERTIFICATE_VERIFY_FAILED" in fw.log_path.read_text()
    finally:
        fw.stop()


def test_tls_on_both_sides(tls_maria: TlsMaria, tmp_path: Path) -> None:
    """The client verifies dbfw's certificate, dbfw verifies the server's: the statement crosses two TLS
    sessions, and masking still applies between them."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "dbfw.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "dbfw.crt"))
    ca.cert_pem.write_to_path(str(tmp_path / "dbfw-ca.crt"))
    target = MyTarget("127.0.0.1", tls_maria.port, TLS_USER, TLS_PASSWORD, "test", "private")
    listener = f"tls: {{cert_file: {tmp_path / 'dbfw.crt'}, key_file: {tmp_path / 'dbfw.key'}, required: true}}"
    rules = ALLOW_ALL_RULES + "masking:\n  - name: v\n    columns: [\"test.t.v\"]\n    mask: redact\n"
    config = write_mysql_config(tmp_path, target, listener=listener, rules=rules)
    config.write_text(config.read_text().replace("tls: {mode: disable}",
                                                 f"tls: {{mode: verify-full, ca_file: {tls_maria.ca}}}"))
    fw = start_dbfw(config)
    try:
        conn = pymysql.connect(host="127.0.0.1", port=fw.ports["my"], user=AGENT, password=AGENT_PASSWORD.encode(),
                               database="test", ssl={"ca": str(tmp_path / "dbfw-ca.crt"), "check_hostname": True})
        try:
            assert conn._sock.version() in ("TLSv1.2", "TLSv1.3")
            with conn.cursor() as cur:
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
                ((_, version),) = cur.fetchall()
                assert version in ("TLSv1.2", "TLSv1.3")
                cur.execute("SELECT id, v FROM t ORDER BY id")
                assert cur.fetchall() == ((1, "****"), (2, "****"))
        finally:
            conn.close()
    finally:
        fw.stop()
