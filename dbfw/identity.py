"""Who may log in: dbfw identities, their secrets and roles.

Plain passwords from the config are turned into SCRAM verifiers once, at load; they are kept only
when md5 or cleartext client authentication needs them. API keys are compared by SHA-256 digest in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from .config import Settings
from .mysql_auth import Verifiers
from .scram import ScramVerifier


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    scram: ScramVerifier | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    api_key_sha256: bytes | None = field(default=None, repr=False)
    mysql: Verifiers | None = field(default=None, repr=False)  # from a plain password: MySQL logins

    def has_role(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles

    @property
    def can_connect(self) -> bool:
        # "admin" is all of reviewer/auditor/rule reload; connecting through a listener is what
        # "agent" grants, and it is granted explicitly.
        return "agent" in self.roles


class Identities:
    def __init__(self, principals: dict[str, Principal]):
        self._by_name = principals

    @classmethod
    def from_settings(cls, settings: Settings, previous: Identities | None = None) -> Identities:
        out: dict[str, Principal] = {}
        for name, ident in settings.identities.items():
            scram = None
            if ident.password_scram:
                scram = ScramVerifier.parse(ident.password_scram)
            elif ident.password is not None:
                # A reload keeps the verifier of an unchanged password: no new salt, no PBKDF2 cost.
                old = previous.get(name) if previous else None
                scram = (old.scram if old and old.password == ident.password and old.scram
                         else ScramVerifier.from_password(ident.password))
            key_hash = None
            if ident.api_key is not None:
                key_hash = hashlib.sha256(ident.api_key.encode()).digest()
            elif ident.api_key_sha256 is not None:
                key_hash = bytes.fromhex(ident.api_key_sha256)
            old = previous.get(name) if previous else None
            mysql = None
            if ident.password is not None:
                mysql = (old.mysql if old and old.password == ident.password and old.mysql
                         else Verifiers.from_password(ident.password))
            out[name] = Principal(name, frozenset(ident.roles), scram, ident.password, key_hash, mysql)
        return cls(out)

    def get(self, name: str) -> Principal | None:
        return self._by_name.get(name)

    def by_api_key(self, key: str) -> Principal | None:
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for p in self._by_name.values():
            if p.api_key_sha256 is not None and hmac.compare_digest(p.api_key_sha256, digest):
                found = p
        return found

    def __len__(self) -> int:
        return len(self._by_name)
