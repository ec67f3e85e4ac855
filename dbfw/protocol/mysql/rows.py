"""Masking result rows of the MySQL protocol, text and binary, column by column."""

from __future__ import annotations

from ...masking.plan import ColumnMask
from . import packets as p

_FIXED = {p.FieldType.TINY: 1, p.FieldType.SHORT: 2, p.FieldType.YEAR: 2, p.FieldType.LONG: 4,
          p.FieldType.INT24: 4, p.FieldType.FLOAT: 4, p.FieldType.LONGLONG: 8, p.FieldType.DOUBLE: 8}
_SHORT_LENGTH = frozenset({p.FieldType.DATE, p.FieldType.DATETIME, p.FieldType.TIMESTAMP, p.FieldType.TIME,
                           p.FieldType.NEWDATE, p.FieldType.DATETIME2, p.FieldType.TIMESTAMP2, p.FieldType.TIME2})


def mask_text_row(payload: bytes, masks: list[ColumnMask | None], types: list[int] | None = None) -> bytes:
    """A text-protocol row with its masked columns masked (a mask's NULL is the NULL marker)."""
    values = p.text_row_values(payload, len(masks))
    changed = False
    for i, col in enumerate(masks):
        value = values[i]
        if col is None or value is None:
            continue
        is_text = types is None or types[i] in p.TEXT_TYPES
        masked = col.apply(value, is_text)
        if masked is not value:
            values[i] = masked
            changed = True
    return p.text_row(values) if changed else payload


def mask_binary_row(payload: bytes, columns: list[p.Column], masks: list[ColumnMask | None]) -> bytes:
    """A binary-protocol row (COM_STMT_EXECUTE) with its masked columns masked. A masked column that is
    not text becomes NULL (its bit set in the NULL bitmap)."""
    n = len(columns)
    if not payload or payload[0] != 0:
        raise p.PacketError("a binary row does not start with 0x00")
    bitmap_len = (n + 7 + 2) // 8
    bitmap = bytearray(payload[1:1 + bitmap_len])
    if len(bitmap) != bitmap_len:
        raise p.PacketError("a binary row shorter than its NULL bitmap")
    r = p.Reader(payload, 1 + bitmap_len)
    out: list[bytes] = []
    changed = False
    for i, column in enumerate(columns):
        bit = i + 2
        if bitmap[bit // 8] & (1 << (bit % 8)):
            continue
        start = r.pos
        t = column.type
        if t in _FIXED:
            r.fixed(_FIXED[t])
        elif t in _SHORT_LENGTH:
            r.fixed(r.u8())
        elif t == p.FieldType.NULL:
            pass
        else:
            r.lenenc_bytes()
        raw = payload[start:r.pos]
        col = masks[i] if i < len(masks) else None
        if col is None:
            out.append(raw)
            continue
        is_text = t in p.TEXT_TYPES
        value = p.Reader(raw).lenenc_bytes() if is_text else raw
        masked = col.apply(value, is_text)
        if masked is value:
            out.append(raw)
            continue
        changed = True
        if masked is None or not is_text:
            bitmap[bit // 8] |= 1 << (bit % 8)
        else:
            out.append(p.lenenc_bytes(masked))
    if r.left:
        raise p.PacketError("trailing bytes after the last column of a binary row")
    if not changed:
        return payload
    return b"\x00" + bytes(bitmap) + b"".join(out)
