"""TLS between MySQL clients and dbfw: PyMySQL, mysql-connector (pure and C), aiomysql and the mariadb CLI
verify dbfw's certificate against a CA made here, log in (both plugins, and caching_sha2's full
authentication for an identity whose password dbfw keeps only as a SCRAM verifier), and run statements
through the relay over TLS. A client whose first TLS bytes come in the same packet as its SSL request (what
MySQL clients do: they do not wait for an answer) is served, and a plaintext login on a listener that
requires TLS is refused."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
import trustme

from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    ASCII_AGENT,
    ASCII_AGENT_PASSWORD,
    IN_CI,
    DbfwProcess,
    MyTarget,
    start_dbfw,
    write_mysql_config,
)
from tests.integration.mysql_support import DEFAULT_RULES, MASKING

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def tls_fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DbfwProcess,
                                                                                                       Path]]:
    directory = tmp_path_factory.mktemp("dbfw-my-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    listener = (f"tls: {{cert_file: {directory / 'server.crt'}, key_file: {directory / 'server.key'}, "
                "required: true}\nauth_methods: [caching_sha2_password, mysql_native_password]")
    rules = DEFAULT_RULES + MASKING
    proc = start_dbfw(write_mysql_config(directory, mysql, listener=listener, rules=rules))
    try:
        yield proc, directory / "ca.crt"
    finally:
        proc.stop()


def _pymysql(proc: DbfwProcess, ca: Path, user: str = ASCII_AGENT, password: str = ASCII_AGENT_PASSWORD,
             **kw: object) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=proc.ports["my"], user=user, password=password.encode(),
                           database="test", ssl={"ca": str(ca), "check_hostname": True}, **kw)


def test_pymysql_verifies_dbfw_and_runs_statements_over_tls(tls_fw: tuple[DbfwProcess, Path]) -> None:
    proc, ca = tls_fw
    conn = _pymysql(proc, ca, AGENT, AGENT_PASSWORD)
    try:
        assert isinstance(conn._sock, ssl.SSLSocket)
        assert conn._sock.version() in ("TLSv1.2", "TLSv1.3")
        with conn.cursor() as cur:
            cur.execute("SELECT id, email FROM dbfw_my_customers WHERE id = %s", (3,))
            (row,) = cur.fetchall()
            assert row[0] == 3 and row[1] != "user3@example.com" and row[1].endswith("@example.com")
            with pytest.raises(pymysql.err.MySQLError) as info:
                cur.execute("DELETE FROM dbfw_my_canary")
            assert "dbfw:" in str(info.value)
            cur.execute("SELECT COUNT(*) FROM dbfw_my_canary")  # the session goes on after a refusal
            assert cur.fetchall() == ((3,),)
    finally:
        conn.close()


def test_a_large_result_crosses_tls_whole(tls_fw: tuple[DbfwProcess, Path]) -> None:
    """20 MB through dbfw's TLS, with the client reading slowly at first: flow control holds both ways."""
    proc, ca = tls_fw
    conn = _pymysql(proc, ca, cursorclass=pymysql.cursors.SSCursor)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT seq, REPEAT('y', 2000) FROM seq_1_to_10000")
            seen = [(n, len(text)) for n, text in cur]
        assert seen == [(n, 2000) for n in range(1, 10001)]
    finally:
        conn.close()


@pytest.mark.parametrize("use_pure", [True, False])
def test_mysql_connector_verifies_dbfw_over_tls(tls_fw: tuple[DbfwProcess, Path], use_pure: bool) -> None:
    import mysql.connector

    proc, ca = tls_fw
    conn = mysql.connector.connect(host="127.0.0.1", port=proc.ports["my"], user=ASCII_AGENT,
                                   password=ASCII_AGENT_PASSWORD, database="test", use_pure=use_pure,
                                   ssl_ca=str(ca), ssl_verify_cert=True, ssl_verify_identity=True)
    try:
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT id, v FROM dbfw_my_canary WHERE id = %s", (2,))
        assert cur.fetchall() == [(2, "b")]
        cur.close()
    finally:
        conn.close()


def test_aiomysql_over_tls(tls_fw: tuple[DbfwProcess, Path]) -> None:
    import asyncio

    import aiomysql

    proc, ca = tls_fw
    context = ssl.create_default_context(cafile=str(ca))

    async def scenario() -> list[tuple[object, ...]]:
        conn = await aiomysql.connect(host="127.0.0.1", port=proc.ports["my"], user=ASCII_AGENT,
                                      password=ASCII_AGENT_PASSWORD, db="test", ssl=context)
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT id FROM dbfw_my_canary ORDER BY id")
                return list(await cur.fetchall())
        finally:
            conn.close()

    assert asyncio.run(scenario()) == [(1,), (2,), (3,)]


def test_the_mariadb_cli_verifies_dbfw_over_tls(tls_fw: tuple[DbfwProcess, Path]) -> None:
    cli = shutil.which("mariadb") or shutil.which("mysql")
    if cli is None:
        pytest.fail("the mariadb CLI is not installed") if IN_CI else pytest.skip("no mariadb CLI")
    proc, ca = tls_fw
    out = subprocess.run([cli, "-h127.0.0.1", f"-P{proc.ports['my']}", f"-u{ASCII_AGENT}",
                          f"-p{ASCII_AGENT_PASSWORD}", "--ssl", f"--ssl-ca={ca}", "--ssl-verify-server-cert",
                          "test", "--batch", "-e", "SELECT COUNT(*) FROM dbfw_my_orders"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["COUNT(*)", "50"]


def test_an_identity_known_only_by_its_scram_verifier_logs_in_over_tls(tls_fw: tuple[DbfwProcess, Path]) -> None:
    """caching_sha2_password's full authentication: dbfw has no digest to check a scramble against, so it
    asks for the password itself, which crosses TLS, and checks it against the SCRAM verifier."""
    proc, ca = tls_fw
    conn = _pymysql(proc, ca, "scram-only", "scram-only-secret")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 7")
            assert cur.fetchall() == ((7,),)
    finally:
        conn.close()
    with pytest.raises(pymysql.err.OperationalError) as info:
        _pymysql(proc, ca, "scram-only", "not-the-secret")
    assert info.value.args[0] == 1045


def test_a_plaintext_login_on_a_listener_that_requires_tls_is_refused(tls_fw: tuple[DbfwProcess, Path]) -> None:
    proc, _ = tls_fw
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host="127.0.0.1", port=proc.ports["my"], user=ASCII_AGENT,
                        password=ASCII_AGENT_PASSWORD.encode(), database="test", ssl_disabled=True)
    assert info.value.args[0] == 1045 and "requires TLS" in info.value.args[1]


class _ClientTls:
    """A client's TLS on memory buffers, so the test decides exactly which bytes go in which segment."""

    def __init__(self, raw: socket.socket, ca: Path):
        self.raw, self.incoming, self.outgoing = raw, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ssl.create_default_context(cafile=str(ca)).wrap_bio(self.incoming, self.outgoing,
                                                                        server_hostname="127.0.0.1")
        self.plain = b""

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.raw.sendall(self.outgoing.read())
                data = self.raw.recv(65536)
                assert data, "dbfw closed the connection during the TLS handshake"
                self.incoming.write(data)
        self.raw.sendall(self.outgoing.read())

    def send(self, seq: int, payload: bytes) -> None:
        self.tls.write(len(payload).to_bytes(3, "little") + bytes([seq]) + payload)
        self.raw.sendall(self.outgoing.read())

    def packet(self) -> bytes:
        while True:
            if len(self.plain) >= 4:
                n = int.from_bytes(self.plain[:3], "little")
                if len(self.plain) >= 4 + n:
                    payload, self.plain = self.plain[4:4 + n], self.plain[4 + n:]
                    return payload
            try:
                self.plain += self.tls.read(65536)
            except ssl.SSLWantReadError:
                data = self.raw.recv(65536)
                assert data, "dbfw closed the connection"
                self.incoming.write(data)


def test_tls_bytes_that_arrive_with_the_ssl_request_start_the_handshake(tls_fw: tuple[DbfwProcess, Path]) -> None:
    """The SSL request and the ClientHello in one segment, every time: dbfw must hand the bytes it already
    read to TLS. Twenty rounds, each a full handshake, a login and a statement."""
    from dbfw import mysql_auth
    from dbfw.protocol.mysql.packets import Handshake

    proc, ca = tls_fw
    # CLIENT_PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, SSL, CONNECT_WITH_DB
    caps = 0x00000200 | 0x00008000 | 0x00080000 | 0x00000800 | 0x00000008
    for round_ in range(20):
        with socket.create_connection(("127.0.0.1", proc.ports["my"]), timeout=10) as raw:
            length = int.from_bytes(raw.recv(4), "little") & 0xFFFFFF
            greeting = b""
            while len(greeting) < length:
                greeting += raw.recv(length - len(greeting))
            nonce = Handshake.decode(greeting).nonce
            client = _ClientTls(raw, ca)
            with pytest.raises(ssl.SSLWantReadError):
                client.tls.do_handshake()
            request = struct.pack("<IIB23x", caps, 1 << 24, 45)
            raw.sendall(struct.pack("<I", len(request))[:3] + b"\x01" + request + client.outgoing.read())
            client.handshake()
            scramble = mysql_auth.native_scramble(ASCII_AGENT_PASSWORD, nonce)
            login = (struct.pack("<IIB23x", caps, 1 << 24, 45) + ASCII_AGENT.encode() + b"\0"
                     + bytes([len(scramble)]) + scramble + b"test\0" + b"mysql_native_password\0")
            client.send(2, login)
            answer = client.packet()
            assert answer[0] == 0x00, answer  # OK
            client.send(0, b"\x03" + f"SELECT {round_} + 1".encode())
            assert client.packet() == b"\x01"  # one column


def test_garbage_instead_of_a_tls_handshake_ends_that_connection_only(tls_fw: tuple[DbfwProcess, Path]) -> None:
    proc, ca = tls_fw
    caps = 0x00000200 | 0x00008000 | 0x00080000 | 0x00000800
    request = struct.pack("<IIB23x", caps, 1 << 24, 45)
    for junk in (b"\x16\x03\x01\x00\x05hello-not-tls" * 3, b"GET / HTTP/1.1\r\n\r\n", b""):
        with socket.create_connection(("127.0.0.1", proc.ports["my"]), timeout=10) as raw:
            length = int.from_bytes(raw.recv(4), "little") & 0xFFFFFF
            while length > 0:
                length -= len(raw.recv(length))
            raw.sendall(struct.pack("<I", len(request))[:3] + b"\x01" + request + junk)
            if not junk:
                raw.shutdown(socket.SHUT_WR)  # the client goes away before its ClientHello
            rest = b""
            while chunk := raw.recv(65536):  # dbfw closes the connection: no hang
                rest += chunk
            assert len(rest) < 4096
    conn = _pymysql(proc, ca)  # and goes on serving
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
    finally:
        conn.close()
    assert "session.internal_error" not in proc.log_path.read_text()
