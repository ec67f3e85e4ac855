"""MySQL authentication plugins, both sides, as pure functions.

``mysql_native_password``: the client sends SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))); whoever holds
SHA1(SHA1(pw)) can check it. ``caching_sha2_password`` (fast path): SHA256(pw) XOR
SHA256(SHA256(SHA256(pw)) + nonce), checked with SHA256(SHA256(pw)); its full authentication sends the
password itself: over TLS, or encrypted with the server's RSA public key (RSA-OAEP of the password XOR the
nonce) on a plain connection. Neither needs the plain password on the checking side: dbfw keeps
the two digests per identity that has a plain password configured.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

NATIVE = "mysql_native_password"
CACHING_SHA2 = "caching_sha2_password"
CLEAR = "mysql_clear_password"
PLUGINS = (CACHING_SHA2, NATIVE)

FAST_AUTH_OK = b"\x01\x03"
FULL_AUTH = b"\x01\x04"
PUBLIC_KEY_REQUEST = b"\x02"


def nonce() -> bytes:
    """20 bytes of auth plugin data: printable, never NUL (clients read it up to a NUL)."""
    alphabet = bytes(range(0x21, 0x7F))
    return bytes(secrets.choice(alphabet) for _ in range(20))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, slots=True)
class Verifiers:
    """What checks a password without keeping it: SHA1(SHA1(pw)) and SHA256(SHA256(pw))."""

    native: bytes
    sha2: bytes

    @classmethod
    def from_password(cls, password: str) -> Verifiers:
        pw = password.encode()
        return cls(hashlib.sha1(hashlib.sha1(pw).digest()).digest(),
                   hashlib.sha256(hashlib.sha256(pw).digest()).digest())


def native_scramble(password: str, salt: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    return _xor(stage1, hashlib.sha1(salt[:20] + stage2).digest())


def native_check(token: bytes, salt: bytes, stage2: bytes) -> bool:
    if len(token) != 20:
        return False
    stage1 = _xor(token, hashlib.sha1(salt[:20] + stage2).digest())
    return hmac.compare_digest(hashlib.sha1(stage1).digest(), stage2)


def sha2_scramble(password: str, salt: bytes) -> bytes:
    if not password:
        return b""
    p1 = hashlib.sha256(password.encode()).digest()
    p2 = hashlib.sha256(p1).digest()
    return _xor(p1, hashlib.sha256(p2 + salt[:20]).digest())


def sha2_check(token: bytes, salt: bytes, stage2: bytes) -> bool:
    if len(token) != 32:
        return False
    p1 = _xor(token, hashlib.sha256(stage2 + salt[:20]).digest())
    return hmac.compare_digest(hashlib.sha256(p1).digest(), stage2)


def cleartext(data: bytes) -> str:
    """A password sent in clear (caching_sha2's full authentication over TLS): NUL-terminated."""
    return data.rstrip(b"\x00").decode("utf-8", "surrogateescape")


@functools.cache
def server_rsa_key() -> Any:
    """dbfw's RSA key pair for caching_sha2's full authentication without TLS: made once per process
    (clients ask for the public key each time), never written anywhere."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_password(key: Any, data: bytes, salt: bytes) -> str | None:
    """The password a client encrypted with dbfw's public key; None if it does not decrypt."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        plain = key.decrypt(data, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(),
                                               label=None))
    except ValueError:
        return None
    salt = salt[:20]
    clear = bytes(b ^ salt[i % len(salt)] for i, b in enumerate(plain))
    return cleartext(clear)
