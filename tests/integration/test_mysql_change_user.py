"""COM_CHANGE_USER through the MySQL listener, with mysql-connector (pure and C), which send it: the new user
logs in as a dbfw identity; the session goes on with a fresh upstream session under dbfw's credential (the
old one's variables, temporary tables and statement ids are gone); a wrong password, the server's own user
or an identity without the agent role ends the session."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from mysql import connector as myconnector

from tests.conftest import (
    AGENT,
    AGENT_PASSWORD,
    ASCII_AGENT,
    ASCII_AGENT_PASSWORD,
    DbfwProcess,
    MyTarget,
)
from tests.integration.mysql_support import serving

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def fw(mysql: MyTarget, tables: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbfwProcess]:
    with serving(tmp_path_factory.mktemp("dbfw-my-change-user"), mysql) as proc:
        yield proc


def _connect(fw: DbfwProcess, use_pure: bool) -> object:
    return myconnector.connect(host="127.0.0.1", port=fw.ports["my"], user=ASCII_AGENT, password=ASCII_AGENT_PASSWORD,
                               database="test", use_pure=use_pure, autocommit=True, ssl_disabled=True)


def _value(conn: object, sql: str) -> object:
    cur = conn.cursor()  # type: ignore[attr-defined]
    cur.execute(sql)
    (row,) = cur.fetchall()
    cur.close()
    return row[0]


def _gone_from_the_server(mysql: MyTarget, connection_id: int) -> bool:
    direct = mysql.connect()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the server ends a thread after its QUIT, not before answering
            with direct.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s", (connection_id,))
                if cur.fetchone()[0] == 0:
                    return True
            time.sleep(0.05)
        return False
    finally:
        direct.close()


@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "c-extension"])
def test_change_user_logs_the_new_identity_in_and_resets_the_upstream(fw: DbfwProcess, mysql: MyTarget,
                                                                      use_pure: bool) -> None:
    conn = _connect(fw, use_pure)
    try:
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SET @left_behind = 42")
        cur.execute("CREATE TEMPORARY TABLE dbfw_my_scratch (id INT)")
        cur.close()
        before = int(_value(conn, "SELECT CONNECTION_ID()"))  # type: ignore[arg-type]
        conn.cmd_change_user(username=AGENT, password=AGENT_PASSWORD, database="test")  # type: ignore[attr-defined]
        after = int(_value(conn, "SELECT CONNECTION_ID()"))  # type: ignore[arg-type]
        assert after != before
        assert _value(conn, "SELECT @left_behind") is None
        assert _value(conn, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'dbfw_my_scratch'"
                              " AND table_type LIKE '%TEMPORARY%'") == 0
        assert _value(conn, "SELECT id FROM dbfw_my_canary WHERE id = 2") == 2
        assert _gone_from_the_server(mysql, before)
    finally:
        conn.close()  # type: ignore[attr-defined]
    lines = fw.log_path.read_text().splitlines()
    end = [i for i, line in enumerate(lines) if "reason=change_user" in line and f"identity={ASCII_AGENT} " in line][-1]
    # The new identity's session started just before (its login), under a session id of its own.
    start = [line for line in lines[:end] if "session.start" in line][-1]
    assert f"identity={AGENT} " in start
    assert start.split("session=")[1].split()[0] != lines[end].split("session=")[1].split()[0]


def test_statement_ids_of_the_old_session_are_forgotten(fw: DbfwProcess) -> None:
    conn = _connect(fw, use_pure=True)
    try:
        stmt = conn.cmd_stmt_prepare(b"SELECT v FROM dbfw_my_canary WHERE id = ?")  # type: ignore[attr-defined]
        conn.cmd_change_user(username=AGENT, password=AGENT_PASSWORD, database="test")  # type: ignore[attr-defined]
        with pytest.raises(myconnector.Error) as info:
            conn.cmd_stmt_execute(stmt["statement_id"], data=(1,), parameters=stmt["parameters"])  # type: ignore
        assert info.value.errno == 1243
        assert _value(conn, "SELECT 3") == 3  # and the session goes on
    finally:
        conn.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("user", "password", "errno"), [
    (AGENT, "wrong", 1045),
    ("root", "", 1045),  # the server's own user never gets through
    ("nobody", "x", 1045),
    ("alice", "alice-secret", 1227),  # a reviewer, not an agent
])
def test_a_change_to_a_user_dbfw_does_not_let_in_ends_the_session(fw: DbfwProcess, user: str, password: str,
                                                                   errno: int) -> None:
    conn = _connect(fw, use_pure=True)
    try:
        with pytest.raises(myconnector.Error) as info:
            conn.cmd_change_user(username=user, password=password, database="test")  # type: ignore[attr-defined]
        assert info.value.errno == errno
        with pytest.raises(myconnector.Error):  # the connection is closed, not left logged in as anyone
            _value(conn, "SELECT 1")
    finally:
        conn.close()  # type: ignore[attr-defined]
    assert "session.internal_error" not in fw.log_path.read_text()


def test_a_command_sent_right_behind_the_change_runs(fw: DbfwProcess) -> None:
    """A client may pipeline: COM_CHANGE_USER and a COM_QUERY in one write. The query runs as the new
    identity once the change is done, without waiting for more bytes."""
    import socket
    import struct

    from dbfw import mysql_auth
    from dbfw.protocol.mysql.packets import Handshake

    def packet(sock: socket.socket) -> tuple[int, bytes]:
        header = b""
        while len(header) < 4:
            header += sock.recv(4 - len(header))
        n, body = int.from_bytes(header[:3], "little"), b""
        while len(body) < n:
            body += sock.recv(n - len(body))
        return header[3], body

    def frame(seq: int, payload: bytes) -> bytes:
        return len(payload).to_bytes(3, "little") + bytes([seq]) + payload

    caps = 0x00000200 | 0x00008000 | 0x00080000 | 0x00000008  # 4.1, secure connection, plugin auth, with db
    with socket.create_connection(("127.0.0.1", fw.ports["my"]), timeout=10) as sock:
        _, greeting = packet(sock)
        nonce = Handshake.decode(greeting).nonce
        login = (struct.pack("<IIB23x", caps, 1 << 24, 45) + ASCII_AGENT.encode() + b"\0" + b"\x14"
                 + mysql_auth.native_scramble(ASCII_AGENT_PASSWORD, nonce) + b"test\0mysql_native_password\0")
        sock.sendall(frame(1, login))
        assert packet(sock)[1][0] == 0x00
        scramble = mysql_auth.native_scramble(AGENT_PASSWORD, nonce)
        change = (b"\x11" + AGENT.encode() + b"\0" + bytes([len(scramble)]) + scramble + b"test\0"
                  + struct.pack("<H", 45) + b"mysql_native_password\0")
        sock.sendall(frame(0, change) + frame(0, b"\x03SELECT CURRENT_USER() IS NOT NULL, 5"))
        _, ok = packet(sock)
        assert ok[0] == 0x00, ok
        assert packet(sock)[1] == b"\x02"  # the query's result: two columns
