"""The masks: redact, partial, email, hash (keyed HMAC-SHA256), null — and the content detectors.

A masker takes a value as the bytes the server sent (text format, or binary format of a text type,
which is the same UTF-8) and returns the masked bytes, or None for SQL NULL. Columns that are not
text become NULL: always valid for the column's type.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

from ..policy.rules import MaskRule

Masker = Callable[[bytes], bytes | None]

# Types whose text and binary forms are the same UTF-8 text: the mask can be written as a value.
TEXT_TYPE_OIDS = frozenset({25, 1043, 1042, 19, 705})  # text, varchar, bpchar, name, unknown


def _redact(value: bytes) -> bytes | None:
    return b"****"


def _partial(keep_first: int, keep_last: int) -> Masker:
    def mask(value: bytes) -> bytes | None:
        text = value.decode("utf-8", "replace")
        n = len(text)
        if keep_first + keep_last >= n:
            return ("*" * n).encode()
        return (text[:keep_first] + "*" * (n - keep_first - keep_last) + text[n - keep_last:] if keep_last
                else text[:keep_first] + "*" * (n - keep_first)).encode()

    return mask


def _email(value: bytes) -> bytes | None:
    at = value.rfind(b"@")
    if at <= 0:
        return b"****"
    if value[0] < 0x80:
        return value[:1] + b"***" + value[at:]
    return value[:at].decode("utf-8", "replace")[:1].encode() + b"***" + value[at:]


def _hash(key: bytes) -> Masker:
    def mask(value: bytes) -> bytes | None:
        return hmac.new(key, value, hashlib.sha256).hexdigest()[:24].encode()

    return mask


def _null(value: bytes) -> bytes | None:
    return None


def make_masker(rule: MaskRule, key: bytes) -> Masker:
    if rule.mask == "redact":
        return _redact
    if rule.mask == "partial":
        return _partial(int(rule.options.get("keep_first", 0)), int(rule.options.get("keep_last", 4)))
    if rule.mask == "email":
        return _email
    if rule.mask == "hash":
        return _hash(key)
    return _null


# --- content detectors, for values whose origin dbfw could not trace -----------------------------------

# Every pattern runs in time linear in the value: a match may start only where its first run of characters
# starts (an agent's SELECT REPEAT('y', 10000000) must not hold the event loop for hours).
_EMAIL = re.compile(rb"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_CARD = re.compile(rb"(?<!\d)(?:\d[ \-]?){13,19}(?!\d)")
_SSN = re.compile(rb"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_IBAN = re.compile(rb"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_PHONE = re.compile(rb"(?<![\w+])\+?\d[\d ()\-]{8,}\d(?!\w)")


def _luhn(digits: bytes) -> bool:
    nums = [d - 48 for d in digits if 48 <= d <= 57]
    if not 13 <= len(nums) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(nums)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _has_card(value: bytes) -> bool:
    return any(_luhn(m.group(0)) for m in _CARD.finditer(value))


DETECTORS: dict[str, Callable[[bytes], bool]] = {
    "email": lambda v: _EMAIL.search(v) is not None,
    "credit_card": _has_card,
    "ssn": lambda v: _SSN.search(v) is not None,
    "iban": lambda v: _IBAN.search(v) is not None,
    "phone": lambda v: _PHONE.search(v) is not None,
}


def detect(value: bytes, kinds: tuple[str, ...]) -> bool:
    return any(DETECTORS[k](value) for k in kinds)
