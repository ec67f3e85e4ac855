"""PostgreSQL authentication: SCRAM-SHA-256 both sides, verifiers compatible with PostgreSQL, md5.

The verifiers below were produced by a real PostgreSQL 15 (``create role ... password '...'`` with
``password_encryption = 'scram-sha-256'``, then ``select rolpassword from pg_authid``), so they pin
dbfw's key derivation, SASLprep and verifier format to PostgreSQL's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbfw.scram import (
    DEFAULT_ITERATIONS,
    SCRAM,
    AuthError,
    ScramClient,
    ScramServer,
    ScramVerifier,
    check_md5,
    md5_password,
    saslprep,
)

# create role dbfw_tmp_x login password 'pw' (PostgreSQL 15.20)
PG_VERIFIER_PW = ("SCRAM-SHA-256$4096:fqOMTu6QXRBmwM3BJn1oyA==$fRmig+P65KdIi4mOAQ+gRw/kOcDGSAgw3GFGQ00FHjY="
                  ":lPqW8xrUeGX8PgyAzmr6gq02yUx27OWmjKorWi3uLQI=")

# (password, what SASLprep makes of it, the verifier PostgreSQL 15 stored for it)
PG_SASLPREP_CASES: list[tuple[str, str, str]] = [
    # U+FE0F (variation selector) is mapped to nothing; NFKC alone keeps it.
    ("\u2764\ufe0f", "\u2764",
     "SCRAM-SHA-256$4096:FKfEje6n/W2admaB7ws8Wg=="
     "$lWWb5rOr+inVh+d5XeU2QP4hRnkjt7ZnpSq4oauqovc=:08l5VZ7+2ypIiu4Z/Jpf9nNJhDjJVYPHwDmVAvbV6RQ="),
    # Soft hyphen: mapped to nothing.
    ("a\u00adb", "ab",
     "SCRAM-SHA-256$4096:4cdsI3nL0aHrZyK44xxmgQ=="
     "$ViAyohgREFlgBhVoW4gmWGhpTX+wyBuC4gTermias74=:byh7L6YrrRAJTzwU/4c8zOK3c2MJBy8pacEWTd406e8="),
    # Zero-width space is both a non-ASCII space and "mapped to nothing"; the space mapping wins.
    ("\u200b", " ",
     "SCRAM-SHA-256$4096:WGEORJmsTbe0a1jVJaREfg=="
     "$Jm5gKF/tpo+Hcb9KdWi/9l6bPqCVPSQgMF6inFhAo9o=:UT+2RVGiLSD9U8oprhApO6sX2Iuu1jm4OTKGwYd3Gps="),
    # Non-ASCII spaces become ' ', then NFKC.
    ("\u00a0x\u2163", " xIV",
     "SCRAM-SHA-256$4096:jdHC7IL4ALy8N6VV5i3GqQ=="
     "$ZS70c/6AUunJByMQgN2/bwZTySHwP6NoS0/KvqwxBnQ=:+fcLluTczU519SzS32JVbg5cKtucvdZwmzqIKfEM1oM="),
    ("\uff21\u2002b", "A b",
     "SCRAM-SHA-256$4096:ajGFECJY9fqxvbJFA9pDLQ=="
     "$KrhApwBhIUdB5Y1FexDSuCTctbKWHZAnUxQRoFEpDpM=:3y6XOZlGW4XXIAfe1yM8DLL6EDXNi/7nDF2JKPZgtVo="),
    # Prohibited output (an ASCII control character): the password is used unchanged, not NFKC'd.
    ("\ufb01\u0007x", "\ufb01\u0007x",
     "SCRAM-SHA-256$4096:Np9C64QSL3L4LU9UsNDvWA=="
     "$UpFQ1HHFBdDTWnfGLTOj+mwe9jpDIV5qGvptDJlLn4Q=:6c10PbcXLtlwxkhRNeGKITcVKPTAM/WHh2CkbmmOpAo="),
    # A tagging character (prohibited): unchanged.
    ("\u2163\U000e0001", "\u2163\U000e0001",
     "SCRAM-SHA-256$4096:nD4Ac9mnlgBlLrSOEu0aig=="
     "$S2noVZmHsd1BJQPl0vtTlR9k74PiKGYLoxYorSjLvlA=:+8np29bxbs83bAY6AVQVplH3MbXUCMQOG15ypiyt6kc="),
    # Bidi: left-to-right and right-to-left letters mixed: unchanged.
    ("\ufb01\u05d0", "\ufb01\u05d0",
     "SCRAM-SHA-256$4096:HgrZervj1tyc8keG8zKrZQ=="
     "$Wjyskdfc5ZjyE+5ejdXxtYFuetq/ClZvBJaBcIX4QSA=:fJXif/s4F//ejYbk5jAWRRzTqC2sWZ0lwgh/XS1BgcE="),
    ("\u05d0\u2163\u05d1", "\u05d0\u2163\u05d1",
     "SCRAM-SHA-256$4096:LNJyY1oiv4Q/zoCITkdLrA=="
     "$1aUDk7jDg6PWdcfSjD4j1SMf3q+Uyl6ny0gOy3/ICJ4=:4t69zYsCmD4ePFaX/87I//t8jlswYadugUGkUNa41Nc="),
    # Unassigned in Unicode 3.2 (an emoji): unchanged, so the fraction is not NFKC'd either.
    ("\u00bd\U0001f600", "\u00bd\U0001f600",
     "SCRAM-SHA-256$4096:YWYKm4XqS012glYMTkRfTw=="
     "$p7srfD+CROtIvo/JO/4oHxcmtwjo7h8lWBmBLAhorzw=:hRPaSm/zTnIkmnP+RCgpOqkxd6r0Iefv9DbT8uJ7K4M="),
    # Private use (prohibited): unchanged.
    ("\u00e9\ue000\u2163", "\u00e9\ue000\u2163",
     "SCRAM-SHA-256$4096:ZZy6XgWGc7DpJBmQAf4z+A=="
     "$xe2RTYWWvWvx9Rt8AZYXrZe6kEQtT3SyKwK3jHtPwcM=:zQu+TDwSmBI10HA/OyrbC1YXb5vD1Qfgv9DU63GYxWU="),
    # Decomposed e + combining acute: NFKC composes it.
    ("e\u0301", "\u00e9",
     "SCRAM-SHA-256$4096:VN4Nu3HUul3ek0Tuys/tKA=="
     "$X1FSKGFL9iPa86ZYkzMTiLbvJ5lErr7RLz2YeCh+sAE=:cN/+tRG/y6Lsktp+YiNAKgE489S+yUMdJ1pIn3xspqE="),
]


def _exchange(server: ScramServer, client: ScramClient) -> None:
    """Run one SCRAM exchange; raises AuthError where either side refuses."""
    server_first = server.first(client.first())
    server_final = server.final(client.final(server_first))
    client.verify(server_final)


def _b64d(s: str) -> bytes:
    return base64.b64decode(s)


# --- SCRAM: dbfw's server and client talk to each other ------------------------------------------------------


@pytest.mark.parametrize("password", ["secret", "", "agent-ci-secret-\u03a9", "p\u00e4ss w\u00f6rd", "x" * 200])
def test_scram_right_password_succeeds(password: str) -> None:
    verifier = ScramVerifier.from_password(password)
    _exchange(ScramServer(verifier), ScramClient(password))


def test_scram_messages_have_the_rfc_shape() -> None:
    verifier = ScramVerifier.from_password("pw", salt=b"0123456789abcdef", iterations=4096)
    server, client = ScramServer(verifier), ScramClient("pw")
    first = client.first()
    assert first.startswith(b"n,,n=,r=")  # no channel binding, empty user name (PostgreSQL ignores it)
    server_first = server.first(first).decode()
    client_nonce = first.decode().split("r=", 1)[1]
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    assert attrs["r"].startswith(client_nonce) and len(attrs["r"]) > len(client_nonce)
    assert _b64d(attrs["s"]) == b"0123456789abcdef"
    assert attrs["i"] == "4096"
    client_final = client.final(server_first.encode()).decode()
    assert client_final.startswith(f"c=biws,r={attrs['r']},p=")  # biws = base64("n,,")
    server_final = server.final(client_final.encode()).decode()
    assert server_final.startswith("v=") and len(_b64d(server_final[2:])) == 32
    client.verify(server_final.encode())


@pytest.mark.parametrize("wrong", ["Secret", "secret ", "", "secre", "s\u00e9cret"])
def test_scram_wrong_password_fails(wrong: str) -> None:
    verifier = ScramVerifier.from_password("secret")
    with pytest.raises(AuthError, match="password authentication failed"):
        _exchange(ScramServer(verifier), ScramClient(wrong))


@pytest.mark.parametrize("guess", ["any", "", "secret", "password"])
def test_scram_unknown_user_always_fails(guess: str) -> None:
    server = ScramServer(None)
    assert server.known is False
    client = ScramClient(guess)
    server_first = server.first(client.first())
    # The exchange looks like any other up to the end: a salt and the default iteration count.
    attrs = dict(part.split("=", 1) for part in server_first.decode().split(","))
    assert set(attrs) == {"r", "s", "i"} and attrs["i"] == str(DEFAULT_ITERATIONS) and len(_b64d(attrs["s"])) == 16
    with pytest.raises(AuthError, match="password authentication failed"):
        server.final(client.final(server_first))


def test_scram_unknown_user_fails_even_with_the_made_up_verifiers_password() -> None:
    # Even a client whose proof matches the throwaway verifier is refused: the user is unknown.
    with mock.patch("dbfw.scram._mock_verifier",
                    return_value=ScramVerifier.from_password("guessed")):
        server = ScramServer(None, "mallory")
    client = ScramClient("guessed")
    with pytest.raises(AuthError, match="password authentication failed"):
        server.final(client.final(server.first(client.first())))


def test_scram_server_rejects_proof_for_a_different_exchange() -> None:
    verifier = ScramVerifier.from_password("pw")
    s1, c1 = ScramServer(verifier), ScramClient("pw")
    s2, c2 = ScramServer(verifier), ScramClient("pw")
    f1 = s1.first(c1.first())
    s2.first(c2.first())
    replay = c1.final(f1)
    with pytest.raises(AuthError, match="nonce"):
        s2.final(replay)


def test_scram_client_detects_a_server_that_does_not_know_the_password() -> None:
    # A man in the middle that accepts anything cannot produce the right ServerSignature.
    real = ScramVerifier.from_password("pw")
    impostor = ScramVerifier(real.iterations, real.salt, real.stored_key, b"\x00" * 32)
    server, client = ScramServer(impostor), ScramClient("pw")
    server_final = server.final(client.final(server.first(client.first())))
    with pytest.raises(AuthError, match="signature"):
        client.verify(server_final)


def test_scram_client_matches_rfc7677_test_vector() -> None:
    """RFC 7677 section 3: user 'user', password 'pencil'."""
    client = ScramClient("pencil")
    client._nonce = "rOprNGfwEbeRWgbNEkqO"
    client._client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    assert client.final(server_first) == (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                          b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(AuthError):
        client.verify(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_server_matches_rfc7677_test_vector() -> None:
    verifier = ScramVerifier.from_password("pencil", salt=_b64d("W22ZaJ0SNY7soEsUEjb6gQ=="), iterations=4096)
    server = ScramServer(verifier)
    server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    # Pin the server's random nonce to the RFC's so the transcript is the RFC's.
    server._nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    server._server_first = f"r={server._nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = server.final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                         b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


# --- verifiers: PostgreSQL's format ----------------------------------------------------------------------------


def test_verifier_from_real_postgres() -> None:
    v = ScramVerifier.parse(PG_VERIFIER_PW)
    assert v.iterations == 4096 and len(v.salt) == 16 and len(v.stored_key) == 32 and len(v.server_key) == 32
    assert v.format() == PG_VERIFIER_PW
    # dbfw derives the very same keys from the password, salt and iteration count.
    assert ScramVerifier.from_password("pw", salt=v.salt, iterations=v.iterations) == v
    assert ScramVerifier.from_password("pW", salt=v.salt, iterations=v.iterations) != v
    _exchange(ScramServer(v), ScramClient("pw"))
    with pytest.raises(AuthError):
        _exchange(ScramServer(v), ScramClient("nope"))


def test_verifier_derivation_is_rfc5802() -> None:
    """StoredKey = H(HMAC(SaltedPassword, 'Client Key')), ServerKey = HMAC(SaltedPassword, 'Server Key')."""
    salt, iterations = b"\x01" * 16, 1000
    salted = hashlib.pbkdf2_hmac("sha256", b"hunter2", salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    expected = ScramVerifier(iterations, salt, hashlib.sha256(client_key).digest(),
                             hmac.new(salted, b"Server Key", hashlib.sha256).digest())
    assert ScramVerifier.from_password("hunter2", salt=salt, iterations=iterations) == expected
    assert expected.format() == (f"SCRAM-SHA-256$1000:{base64.b64encode(salt).decode()}$"
                                 f"{base64.b64encode(expected.stored_key).decode()}:"
                                 f"{base64.b64encode(expected.server_key).decode()}")


@pytest.mark.parametrize(("password", "prepared", "pg_verifier"), PG_SASLPREP_CASES,
                         ids=[repr(c[0]) for c in PG_SASLPREP_CASES])
def test_saslprep_matches_postgres(password: str, prepared: str, pg_verifier: str) -> None:
    assert saslprep(password) == prepared
    v = ScramVerifier.parse(pg_verifier)
    assert ScramVerifier.from_password(password, salt=v.salt, iterations=v.iterations) == v
    _exchange(ScramServer(v), ScramClient(password))


def test_saslprep_ascii_and_invalid_utf8_are_untouched() -> None:
    assert saslprep("plain ascii \x01\x7f") == "plain ascii \x01\x7f"
    assert saslprep("") == ""
    # A password that arrived as non-UTF-8 bytes (surrogateescape) is hashed as those bytes.
    raw = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert saslprep(raw) == raw
    v = ScramVerifier.from_password(raw, salt=b"s" * 16, iterations=10)
    salted = hashlib.pbkdf2_hmac("sha256", b"caf\xe9", b"s" * 16, 10)
    assert v.stored_key == hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()


def test_verifier_round_trip() -> None:
    for v in (ScramVerifier.from_password("a"), ScramVerifier.from_password("b", salt=b"", iterations=1),
              ScramVerifier.from_password("c", salt=b"\xff" * 32, iterations=100_000)):
        text = v.format()
        assert text.startswith(f"{SCRAM}${v.iterations}:")
        assert ScramVerifier.parse(text) == v
        assert ScramVerifier.parse(text).format() == text


def test_verifier_repr_hides_keys() -> None:
    v = ScramVerifier.parse(PG_VERIFIER_PW)
    assert "fRmig" not in repr(v) and "lPqW8" not in repr(v) and "fqOMT" not in repr(v)


_SALT, _STORED, _SERVER = ("fqOMTu6QXRBmwM3BJn1oyA==", "fRmig+P65KdIi4mOAQ+gRw/kOcDGSAgw3GFGQ00FHjY=",
                            "lPqW8xrUeGX8PgyAzmr6gq02yUx27OWmjKorWi3uLQI=")


@pytest.mark.parametrize("text", [
    "",
    "pw",
    "md5bfb807f3841986018055a7ad90d19b01",
    f"SCRAM-SHA-1$4096:{_SALT}${_STORED}:{_SERVER}",
    f"SCRAM-SHA-256$0:{_SALT}${_STORED}:{_SERVER}",
    f"SCRAM-SHA-256$-1:{_SALT}${_STORED}:{_SERVER}",
    f"SCRAM-SHA-256$x:{_SALT}${_STORED}:{_SERVER}",
    f"SCRAM-SHA-256$4096:{_SALT}${_STORED}",
    f"SCRAM-SHA-256$4096${_STORED}:{_SERVER}",
    f"SCRAM-SHA-256$4096:!!!${_STORED}:{_SERVER}",
    f"SCRAM-SHA-256$4096:{_SALT}$c2hvcnQ=:{_SERVER}",  # StoredKey not 32 bytes
    f"SCRAM-SHA-256$4096:{_SALT}${_STORED}:c2hvcnQ=",
    f"SCRAM-SHA-256$4096:{_SALT}${_STORED}:\u00e9\u00e9\u00e9\u00e9",
    f"SCRAM-SHA-256$4096:{_SALT}${_STORED[:-1]}:{_SERVER}",  # bad padding
])
def test_verifier_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="not a SCRAM-SHA-256 verifier"):
        ScramVerifier.parse(text)


# --- md5 ---------------------------------------------------------------------------------------------------------


def _md5_reference(user: str, password: str, salt: bytes) -> str:
    # PostgreSQL: pg_md5_encrypt(password, user) = 'md5' || md5(password || user); the client answers
    # 'md5' || md5(<those 32 hex digits> || salt).
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


def test_md5_password_known_values() -> None:
    salt = b"\x01\x02\x03\x04"
    assert md5_password("postgres", "secret", salt) == _md5_reference("postgres", "secret", salt)
    # PostgreSQL 15 stored 'md5bfb807f3841986018055a7ad90d19b01' for role dbfw_tmp_y, password 'md5-secret'.
    assert hashlib.md5(b"md5-secretdbfw_tmp_y").hexdigest() == "bfb807f3841986018055a7ad90d19b01"
    expected = "md5" + hashlib.md5(b"bfb807f3841986018055a7ad90d19b01" + salt).hexdigest()
    assert md5_password("dbfw_tmp_y", "md5-secret", salt) == expected
    assert md5_password("u", "p", b"\x00\x00\x00\x00") == "md5" + hashlib.md5(
        hashlib.md5(b"pu").hexdigest().encode() + b"\x00\x00\x00\x00").hexdigest()
    assert len(md5_password("u", "p\u00e9", salt)) == 35
    assert md5_password("u", "p\u00e9", salt) == _md5_reference("u", "p\u00e9", salt)


def test_check_md5() -> None:
    salt = b"abcd"
    good = md5_password("alice", "s3cret", salt)
    assert check_md5("alice", "s3cret", salt, good)
    assert not check_md5("alice", "s3cret", b"abce", good)
    assert not check_md5("alice", "other", salt, good)
    assert not check_md5("bob", "s3cret", salt, good)
    assert not check_md5("alice", "s3cret", salt, "")
    assert not check_md5("alice", "s3cret", salt, good.upper())
    # A client may send anything: non-ASCII or undecodable answers are a failed login, not a crash.
    assert not check_md5("alice", "s3cret", salt, "md5\u00e9" + good[4:])
    assert not check_md5("alice", "s3cret", salt, b"\xff\xfe".decode("utf-8", "surrogateescape"))


# --- malformed SCRAM messages: AuthError, never anything else ----------------------------------------------------

SERVER_FIRST_BAD: list[bytes] = [
    b"",
    b"garbage",
    b"\xff\xfe\x00",  # not UTF-8
    b"n,,",
    b"n,",
    b"x,,n=,r=abc",  # bad channel-binding flag
    b"p=tls-server-end-point,,n=,r=abc",  # channel binding requested
    b"p=,,n=,r=abc",
    b"n,,n=,",
    b"n,,n=",
    b"n,,n=,r=",  # empty nonce
    b"n,,n=,m=ext,r=abc",  # mandatory extension
    b"n,,n=,r=abc,m=x",
    b"n,,n=,s=abc",
    b"n,,=,r=abc",
    b"n,,n=,r=abc,,",
]


@pytest.mark.parametrize("msg", SERVER_FIRST_BAD, ids=repr)
def test_scram_server_first_rejects_malformed(msg: bytes) -> None:
    with pytest.raises(AuthError):
        ScramServer(ScramVerifier.from_password("pw", iterations=1)).first(msg)


def _started(password: str = "pw") -> tuple[ScramServer, ScramClient, str]:
    server, client = ScramServer(ScramVerifier.from_password(password, iterations=16)), ScramClient(password)
    server_first = server.first(client.first())
    return server, client, client.final(server_first).decode()


def _client_final_variants(good: str) -> list[bytes]:
    without_proof, proof = good.rsplit(",p=", 1)
    nonce = without_proof.split(",r=", 1)[1]
    return [
        b"",
        b"garbage",
        b"\xff\xfe",
        good[:-1].encode() + b"!",  # bad base64 proof
        f"{without_proof},p=".encode(),  # empty proof
        f"{without_proof},p=AAAA".encode(),  # proof of the wrong length
        f"{without_proof},p={base64.b64encode(bytes(32)).decode()}".encode(),  # wrong proof
        f"c=biws,r={nonce}x,p={proof}".encode(),  # wrong nonce
        f"c=biws,r={nonce[:-1]},p={proof}".encode(),
        f"c=biws,r=,p={proof}".encode(),
        f"c=eSws,r={nonce},p={proof}".encode(),  # channel binding 'y,,' instead of 'n,,'
        f"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r={nonce},p={proof}".encode(),  # 'p=tls-server-end-point,'
        f"c=!!!!,r={nonce},p={proof}".encode(),
        f"r={nonce},p={proof}".encode(),  # no channel binding attribute
        f"c=biws,p={proof}".encode(),  # no nonce
        f"c=biws,r={nonce}".encode(),  # no proof
        f"c=biws,r={nonce},p={proof},x=1".encode(),  # proof not last
        f"{good},".encode(),
        f"{good}\u00e9".encode(),
        (good + "\0").encode(),
    ]


@pytest.mark.parametrize("variant", range(len(_client_final_variants("c=biws,r=n,p=x"))))
def test_scram_server_final_rejects_malformed(variant: int) -> None:
    server, _, good = _started()
    with pytest.raises(AuthError):
        server.final(_client_final_variants(good)[variant])
    # The untouched message works on a fresh exchange, so the variant failed for its defect.
    server, _, good = _started()
    server.final(good.encode())


def test_scram_server_final_before_first_fails() -> None:
    server = ScramServer(ScramVerifier.from_password("pw", iterations=1))
    for msg in (b"c=,r=,p=", b"c=biws,r=,p=" + base64.b64encode(bytes(32))):
        with pytest.raises(AuthError):
            server.final(msg)


def _client_after_first(password: str = "pw") -> tuple[ScramClient, str]:
    client = ScramClient(password)
    nonce = client.first().decode().split("r=", 1)[1]
    return client, nonce


@pytest.mark.parametrize("template", [
    "",
    "garbage",
    "r=other-nonce,s=c2FsdA==,i=4096",  # does not extend our nonce
    "r={n}x,i=4096",  # no salt
    "r={n}x,s=c2FsdA==",  # no iteration count
    "r={n}x,s=c2FsdA==,i=",
    "r={n}x,s=c2FsdA==,i=0",
    "r={n}x,s=c2FsdA==,i=-1",
    "r={n}x,s=c2FsdA==,i=4k",
    "r={n}x,s=c2FsdA==,i=\u00b2",  # a Unicode digit: str.isdigit() says yes, int() says no
    "r={n}x,s=c2FsdA==,i=\u0664\u0660\u0669\u0666",  # Arabic-Indic 4096
    "r={n}x,s=c2FsdA==,i=99999999999999999999",
    "r={n}x,s=c2FsdA==,i=2147483648",
    "r={n}x,s=!!!,i=4096",  # bad base64 salt
    "r={n}x,s=c2FsdA,i=4096",  # unpadded base64
    "r={n}x,s=\u00e9,i=4096",
    "e=invalid-proof",
    "r={n}x,,s=c2FsdA==,i=4096",
])
def test_scram_client_final_rejects_malformed(template: str) -> None:
    client, nonce = _client_after_first()
    with pytest.raises(AuthError):
        client.final(template.replace("{n}", nonce).encode())


def test_scram_client_final_rejects_non_utf8() -> None:
    client, nonce = _client_after_first()
    with pytest.raises(AuthError):
        client.final(f"r={nonce}x,s=".encode() + b"\xff\xfe" + b",i=4096")


@pytest.mark.parametrize("msg", [b"", b"garbage", b"v=", b"v=!!!", b"v=AAAA", b"e=invalid-proof",
                                 b"e=other-error,v=AAAA", b"\xff\xfe", b"x=1"])
def test_scram_client_verify_rejects_malformed(msg: bytes) -> None:
    server, client = ScramServer(ScramVerifier.from_password("pw", iterations=16)), ScramClient("pw")
    server.final(client.final(server.first(client.first())))
    with pytest.raises(AuthError):
        client.verify(msg)


def test_scram_client_verify_before_final_fails() -> None:
    with pytest.raises(AuthError):
        ScramClient("pw").verify(b"v=" + base64.b64encode(bytes(32)))


# --- fuzz: only AuthError escapes ------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scram_text = st.one_of(
    st.binary(max_size=80),
    st.lists(st.one_of(st.sampled_from(["n", "y", "p=x", "", "n=", "r=", "c=biws", "p=", "s=c2FsdA==", "i=1", "m=",
                                        "e=x", "v=", "=", ",", "r=abc", "i=\u00b2"]),
                       st.text(max_size=8)), max_size=8).map(lambda parts: ",".join(parts).encode("utf-8",
                                                                                            "surrogatepass")),
)


@FUZZ
@given(first=scram_text, final=scram_text)
def test_scram_server_fuzz(first: bytes, final: bytes) -> None:
    server = ScramServer(ScramVerifier.from_password("pw", iterations=1))
    try:
        server.first(first)
    except AuthError:
        pass
    with pytest.raises(AuthError):  # nothing random can carry a valid proof
        server.final(final)


@FUZZ
@given(data=st.data(), server_first=scram_text, server_final=scram_text, use_nonce=st.booleans())
def test_scram_client_fuzz(data: st.DataObject, server_first: bytes, server_final: bytes, use_nonce: bool) -> None:
    client = ScramClient("pw")
    if use_nonce:
        nonce = client.first().decode().split("r=", 1)[1]
        salt = base64.b64encode(data.draw(st.binary(max_size=8))).decode()
        iterations = data.draw(st.sampled_from(["1", "2", "0", "", "-3", "\u00b9", "0x10", "1e3", " 1", "08"]))
        suffix = data.draw(st.text(max_size=4))
        server_first = f"r={nonce}{suffix},s={salt},i={iterations}".encode("utf-8", "surrogatepass")
    try:
        client.final(server_first)
    except AuthError:
        pass
    with pytest.raises(AuthError):
        client.verify(server_final)


def test_unknown_user_gets_a_stable_salt_per_name() -> None:
    # A salt that changed on every attempt would tell an attacker the user does not exist.
    def salt_of(user: str) -> str:
        server = ScramServer(None, user)
        first = server.first(b"n,,n=,r=abcdefgh").decode()
        return dict(p.split("=", 1) for p in first.split(","))["s"]

    assert salt_of("mallory") == salt_of("mallory")
    assert salt_of("mallory") != salt_of("trudy")
