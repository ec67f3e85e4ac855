"""Verdict: the firewall's answer to a session."""

from __future__ import annotations

import dataclasses

from dbfw.verdict import Verdict


def test_recorded_copies_every_field_and_sets_only_the_record() -> None:
    # Every field given a value that is not its default, so a field the copy forgets shows up.
    values: dict[str, object] = {}
    for f in dataclasses.fields(Verdict):
        values[f.name] = True if f.type == "bool" else f"value-of-{f.name}"
    original = Verdict(**values)  # type: ignore[arg-type]
    record = {"sql": "select 1"}
    copy = original.recorded(record)
    assert copy == dataclasses.replace(original, record=record)
    assert copy.record is record and original.record == "value-of-record"
