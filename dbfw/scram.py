"""PostgreSQL authentication, both sides: SCRAM-SHA-256 (RFC 5802/7677), md5 and cleartext.

Server side authenticates clients against dbfw identities; client side authenticates dbfw to the
upstream with the credential dbfw holds. Pure functions and small state machines, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass

SCRAM = "SCRAM-SHA-256"
DEFAULT_ITERATIONS = 4096


class AuthError(Exception):
    """Authentication failed or the peer broke the exchange."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as e:
        raise AuthError("invalid base64 in SCRAM message") from e


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _prohibited(c: str) -> bool:
    # RFC 4013 section 2.3 prohibited output, plus unassigned code points (RFC 3454 A.1), as PostgreSQL checks.
    return (stringprep.in_table_c12(c) or stringprep.in_table_c21_c22(c) or stringprep.in_table_c3(c)
            or stringprep.in_table_c4(c) or stringprep.in_table_c5(c) or stringprep.in_table_c6(c)
            or stringprep.in_table_c7(c) or stringprep.in_table_c8(c) or stringprep.in_table_c9(c)
            or stringprep.in_table_a1(c))


def saslprep(password: str) -> str:
    """SASLprep (RFC 4013) as PostgreSQL's pg_saslprep() and libpq apply it.

    PostgreSQL is lenient: a password that is not valid UTF-8 or that SASLprep prohibits is used
    unchanged. NFKC alone is not enough: it keeps the characters SASLprep maps to nothing (soft
    hyphen, variation selectors, ...), so such passwords would fail against PostgreSQL's verifiers.
    """
    if password.isascii():
        return password
    if any("\ud800" <= c <= "\udfff" for c in password):  # bytes that were not UTF-8 (surrogateescape)
        return password
    # Map: non-ASCII spaces (checked first, as U+200B is in both tables) to ' ', B.1 characters to nothing.
    mapped = "".join(" " if stringprep.in_table_c12(c) else "" if stringprep.in_table_b1(c) else c for c in password)
    if not mapped:
        return password
    # PostgreSQL runs the prohibited-output and bidi checks on the mapped string, not the normalised one.
    if any(_prohibited(c) for c in mapped):
        return password
    if any(stringprep.in_table_d1(c) for c in mapped) and (
            any(stringprep.in_table_d2(c) for c in mapped)
            or not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1]))):
        return password
    return unicodedata.normalize("NFKC", mapped)


def _salted(password: str, salt: bytes, iterations: int) -> bytes:
    # surrogateescape: a password received as non-UTF-8 bytes is hashed as those bytes, like PostgreSQL does.
    return hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8", "surrogateescape"), salt, iterations)


@dataclass(frozen=True)
class ScramVerifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def __repr__(self) -> str:  # never print key material
        return f"ScramVerifier(iterations={self.iterations})"

    @classmethod
    def from_password(cls, password: str, *, salt: bytes | None = None,
                      iterations: int = DEFAULT_ITERATIONS) -> ScramVerifier:
        salt = salt if salt is not None else secrets.token_bytes(16)
        salted = _salted(password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        return cls(iterations, salt, hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key"))

    @classmethod
    def parse(cls, text: str) -> ScramVerifier:
        """Parse PostgreSQL's format: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>."""
        try:
            method, rest = text.split("$", 1)
            params, keys = rest.split("$", 1)
            iterations_s, salt_s = params.split(":", 1)
            stored_s, server_s = keys.split(":", 1)
            iterations = int(iterations_s)
        except ValueError as e:
            raise ValueError("not a SCRAM-SHA-256 verifier") from e
        if method != SCRAM or iterations < 1:
            raise ValueError("not a SCRAM-SHA-256 verifier")
        try:
            salt, stored, server = (base64.b64decode(x, validate=True) for x in (salt_s, stored_s, server_s))
        except ValueError as e:
            raise ValueError("not a SCRAM-SHA-256 verifier: bad base64") from e
        if len(stored) != 32 or len(server) != 32:
            raise ValueError("not a SCRAM-SHA-256 verifier: keys must be 32 bytes")
        return cls(iterations, salt, stored, server)

    def format(self) -> str:
        return (f"{SCRAM}${self.iterations}:{_b64(self.salt)}$"
                f"{_b64(self.stored_key)}:{_b64(self.server_key)}")


def _parse_attrs(msg: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in msg.split(","):
        if len(part) < 2 or part[1] != "=":
            raise AuthError("malformed SCRAM message")
        out.setdefault(part[0], part[2:])
    return out


_MOCK_SECRET = secrets.token_bytes(32)


def _mock_verifier(user: str) -> ScramVerifier:
    """A stand-in verifier for an unknown user whose salt is stable per user name (as PostgreSQL does),
    so that repeated attempts cannot tell an unknown user from a known one by a changing salt."""
    salt = hmac.new(_MOCK_SECRET, user.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()[:16]
    return ScramVerifier(DEFAULT_ITERATIONS, salt, secrets.token_bytes(32), secrets.token_bytes(32))


class ScramServer:
    """Server side of one SCRAM-SHA-256 exchange.

    With ``verifier=None`` (unknown user) the exchange runs to the end with a made-up verifier and
    fails, so a client cannot tell an unknown user from a wrong password.
    """

    def __init__(self, verifier: ScramVerifier | None, user: str = ""):
        self.known = verifier is not None
        self.verifier = verifier or _mock_verifier(user)
        self._nonce = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._gs2_header = ""

    def first(self, client_first: bytes) -> bytes:
        try:
            text = client_first.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AuthError("SCRAM message is not UTF-8") from e
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise AuthError("malformed SCRAM client-first message")
        cbind, authzid, bare = parts
        if cbind not in ("n", "y") and not cbind.startswith("p="):
            raise AuthError("malformed SCRAM channel binding flag")
        if cbind.startswith("p="):
            raise AuthError("channel binding is not supported by dbfw")
        attrs = _parse_attrs(bare)
        client_nonce = attrs.get("r")
        if not client_nonce or "m" in attrs:
            raise AuthError("malformed SCRAM client-first message")
        self._gs2_header = f"{cbind},{authzid},"
        self._client_first_bare = bare
        self._nonce = client_nonce + _b64(secrets.token_bytes(18))
        self._server_first = f"r={self._nonce},s={_b64(self.verifier.salt)},i={self.verifier.iterations}"
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        """Check the client's proof; return server-final. Raises AuthError on a wrong password."""
        try:
            text = client_final.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AuthError("SCRAM message is not UTF-8") from e
        attrs = _parse_attrs(text)
        if "c" not in attrs or "r" not in attrs or "p" not in attrs or not text.endswith(",p=" + attrs["p"]):
            raise AuthError("malformed SCRAM client-final message")
        if _unb64(attrs["c"]) != self._gs2_header.encode():
            raise AuthError("SCRAM channel binding does not match")
        if attrs["r"] != self._nonce:
            raise AuthError("SCRAM nonce does not match")
        without_proof = text[: -len(",p=" + attrs["p"])]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        proof = _unb64(attrs["p"])
        signature = _hmac(self.verifier.stored_key, auth_message)
        if len(proof) != len(signature):
            raise AuthError("password authentication failed")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        ok = hmac.compare_digest(hashlib.sha256(client_key).digest(), self.verifier.stored_key)
        if not ok or not self.known:
            raise AuthError("password authentication failed")
        server_signature = _hmac(self.verifier.server_key, auth_message)
        return f"v={_b64(server_signature)}".encode()


class ScramClient:
    """Client side of one SCRAM-SHA-256 exchange (dbfw logging in to the upstream)."""

    def __init__(self, password: str):
        self.password = password
        self._nonce = _b64(secrets.token_bytes(18))
        self._client_first_bare = f"n=,r={self._nonce}"
        self._auth_message = b""
        self._salted = b""

    def first(self) -> bytes:
        return ("n,," + self._client_first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8", "replace")
        attrs = _parse_attrs(text)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), attrs.get("i", "")
        # isdigit() alone accepts '²' and numbers pbkdf2_hmac refuses; int() and pbkdf2 must not raise on this input.
        if (not nonce.startswith(self._nonce) or salt is None
                or not (iterations.isascii() and iterations.isdigit() and len(iterations) <= 10)
                or not 1 <= int(iterations) <= 0x7FFFFFFF):
            raise AuthError("the database sent an invalid SCRAM message")
        self._salted = _salted(self.password, _unb64(salt), int(iterations))
        client_key = _hmac(self._salted, b"Client Key")
        without_proof = f"c=biws,r={nonce}"
        self._auth_message = f"{self._client_first_bare},{text},{without_proof}".encode()
        signature = _hmac(hashlib.sha256(client_key).digest(), self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, server_final: bytes) -> None:
        attrs = _parse_attrs(server_final.decode("utf-8", "replace"))
        if "e" in attrs:
            raise AuthError(f"the database rejected SCRAM authentication: {attrs['e']}")
        expected = _hmac(_hmac(self._salted, b"Server Key"), self._auth_message)
        if not hmac.compare_digest(_unb64(attrs.get("v", "")), expected):
            raise AuthError("the database's SCRAM signature is wrong: it may not be the server it claims")


def md5_password(user: str, password: str, salt: bytes) -> str:
    """The response to AuthenticationMD5Password: 'md5' + md5(md5(password + user) + salt)."""
    inner = hashlib.md5((password + user).encode("utf-8")).hexdigest()
    return "md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest()


def check_md5(user: str, password: str, salt: bytes, response: str) -> bool:
    # compare bytes: compare_digest raises TypeError on a str with non-ASCII characters, which a client can send.
    return hmac.compare_digest(md5_password(user, password, salt).encode(),
                               response.encode("utf-8", "surrogateescape"))
