"""Masks, detectors, result tracking and row rebuilding — no sockets."""

from __future__ import annotations

import pytest

from dbfw.masking.maskers import detect, make_masker
from dbfw.masking.plan import ColumnMask, MaskPlan
from dbfw.masking.service import Masking, StatementMask
from dbfw.policy.rules import MaskRule
from dbfw.protocol.postgres import messages as m
from dbfw.protocol.postgres.results import Kind, Portal, Responses, mask_copy_line, mask_data_row


def rule(mask: str, **options: object) -> MaskRule:
    return MaskRule(name="r", columns=["*.*.x"], mask=mask, options=options)  # type: ignore[arg-type]


def test_masks() -> None:
    assert make_masker(rule("email"), b"k")(b"ada.lovelace@example.com") == b"a***@example.com"
    assert make_masker(rule("email"), b"k")(b"no-at-sign") == b"****"
    assert make_masker(rule("partial", keep_last=4), b"k")(b"4111111111111111") == b"************1111"
    assert make_masker(rule("partial", keep_first=2, keep_last=2), b"k")(b"abcdefgh") == b"ab****gh"
    assert make_masker(rule("redact"), b"k")(b"secret") == b"****"
    assert make_masker(rule("null"), b"k")(b"secret") is None
    h = make_masker(rule("hash"), b"key-1")
    assert h(b"v") == h(b"v") != h(b"w")  # deterministic: joins and GROUP BY still work
    assert make_masker(rule("hash"), b"key-2")(b"v") != h(b"v")  # keyed


def test_detectors() -> None:
    assert detect(b"write to ada@example.com", ("email",))
    assert detect(b"card 4111 1111 1111 1111 ok", ("credit_card",))
    assert not detect(b"order 4111111111111112", ("credit_card",))  # fails Luhn
    assert detect(b"ssn 900-12-3456", ("ssn",))
    assert detect(b"DE89 3704 0044 0532 0130 00", ("iban",))
    assert detect(b"+1 (555) 010-9999", ("phone",))
    assert not detect(b"nothing to see", ("email", "credit_card", "ssn", "iban", "phone"))


@pytest.mark.timeout(60)
def test_detectors_take_time_linear_in_the_value() -> None:
    """An agent chooses the values detectors read (SELECT REPEAT('y', 10000000)): a pattern that backtracks
    from every position would hold dbfw's event loop for hours on a megabyte (the email pattern did:
    16 ms for 4 KB, quadratic). Each of these takes milliseconds now, and would not finish before the timeout
    if any pattern were quadratic again."""
    n = 1_000_000
    values = [b"y" * n, b"1 " * (n // 2), b"1" * n, b"a" * n + b"@", b"a@" + b"b." * (n // 2), b"AB12" * (n // 4),
              b"1-" * (n // 2), b"%" * n, b"a@" * (n // 2), b"a@" + b"b" * n, b" 1" + b"(" * n + b"1a",
              b" 1" * (n // 2) + b"a", b"AB12 " + b"ABCD " * (n // 5), b"1-" * (n // 2) + b"x"]
    kinds = ("email", "credit_card", "ssn", "iban", "phone")
    for value in values:
        for kind in kinds:
            detect(value, (kind,))
    assert detect(b"y" * n + b" ada@example.com", ("email",))  # still found after a long run


def test_data_row_rebuilt_only_in_masked_columns() -> None:
    email = make_masker(rule("email"), b"k")
    mask = StatementMask(plan=MaskPlan((None, ColumnMask("pii", email), ColumnMask("pii", email))),
                         types=[23, 25, 23])
    masking = Masking([], b"k", None)
    row = m.DataRow([b"7", b"ada@example.com", b"42"]).encode()
    out = mask_data_row(memoryview(row), mask, [], masking)
    assert m.decode_backend(out[0], out[5:]) == m.DataRow([b"7", b"a***@example.com", None])  # int4 -> NULL
    assert masking.counts == {"pii": 2}
    null_row = m.DataRow([b"7", None, None]).encode()
    assert mask_data_row(memoryview(null_row), mask, [], masking) == null_row


def test_copy_lines_text_and_csv() -> None:
    redact = ColumnMask("r", make_masker(rule("redact"), b"k"))
    masking = Masking([], b"k", None)
    text = StatementMask(plan=MaskPlan((None, redact)), types=[23, 25])
    assert mask_copy_line(b"1\tsecret\\tvalue\n", text, masking) == b"1\t****\n"
    assert mask_copy_line(b"2\t\\N\n", text, masking) == b"2\t\\N\n"
    csv = StatementMask(plan=MaskPlan((None, redact)), types=[23, 25], copy_csv=True)
    assert mask_copy_line(b'1,"a,b ""quoted"""\n', csv, masking) == b"1,****\n"


def test_row_description_names_a_sensitive_column_lineage_missed() -> None:
    redact = ColumnMask("by-oid", make_masker(rule("redact"), b"k"))
    masking = Masking([], b"k", None)
    tracker = Responses(masking, lambda oid, att: redact if (oid, att) == (16500, 3) else None)
    tracker.query([Portal("", None, None)])  # lineage found nothing to mask
    rd = m.RowDescription([m.FieldDescription("id", 16500, 1, 23), m.FieldDescription("e", 16500, 3, 25)])
    tracker.row_description(memoryview(rd.encode())[5:])
    masker = tracker.row_masker()
    assert masker is not None
    row = m.DataRow([b"1", b"ada@example.com"]).encode()
    out = masker(memoryview(row))
    assert m.decode_backend(out[0], out[5:]) == m.DataRow([b"1", b"****"])
    tracker.statement_done()
    tracker.ready()
    assert tracker.row_masker() is None and not tracker.queue


def test_extended_protocol_entries_follow_the_responses() -> None:
    redact = ColumnMask("r", make_masker(rule("redact"), b"k"))
    masking = Masking([], b"k", None)
    tracker = Responses(masking)
    masked = StatementMask(plan=MaskPlan((redact,)))
    portal = Portal("", masked, None, formats=[1])
    tracker.describe(portal)
    tracker.execute(portal)
    tracker.sync()
    rd = m.RowDescription([m.FieldDescription("e", 0, 0, 25, format=1)])
    tracker.row_description(memoryview(rd.encode())[5:])
    assert tracker.current() is portal and portal.mask is masked and masked.types == [25]
    assert tracker.row_masker() is not None
    assert tracker.statement_done() is portal
    assert tracker.current() is None and tracker.row_masker() is None
    tracker.ready()
    assert not tracker.queue
    # An error skips everything up to Sync, as the server does.
    other = Portal("", masked, None)
    tracker.execute(other)
    tracker.execute(other)
    tracker.sync()
    assert tracker.error() is other
    assert [e.kind for e in tracker.queue] == [Kind.SYNC]


def test_values_masked_by_the_upstream_are_counted_from_the_command_tag() -> None:
    masking = Masking([], b"k", None)
    tracker = Responses(masking)
    tracker.query([Portal("", StatementMask(counted=("email", "card")), None)])
    assert tracker.row_masker() is None  # nothing for dbfw to do per row
    tracker.statement_done(memoryview(b"SELECT 7\x00"))
    assert masking.counts == {"email": 7, "card": 7}


def test_a_value_computed_on_the_way_out_of_a_subquery_is_masked_whole() -> None:
    import sqlglot

    from dbfw.masking.catalog import Catalog
    from dbfw.masking.plan import MaskPlanner
    from dbfw.policy.rules import MaskRule

    catalog = Catalog(schema={"public": {"c": {"id": "int", "email": "text"}}})
    planner = MaskPlanner([MaskRule(name="e", columns=["public.c.email"], mask="email")], b"k")

    def masked(sql: str) -> bytes | None:
        col = planner.plan(sqlglot.parse_one(sql, read="postgres"), catalog, planner.rules).for_column(0)
        assert col is not None and col.masker is not None, sql
        return col.masker(b"a@secret_part.example")

    # A partial mask keeps what follows the last '@': 'a@' || email would show the email whole.
    for sql in ("SELECT * FROM (SELECT 'a@' || email AS z FROM c) y", "SELECT z FROM (SELECT lower(email) z FROM c) q",
                "WITH x AS (SELECT 'a@' || email AS z FROM c) SELECT z FROM x"):
        assert masked(sql) == b"****", sql
    for sql in ("SELECT email FROM c", "SELECT z FROM (SELECT email AS z FROM c) q"):
        assert masked(sql) != b"****", sql  # the column itself keeps its rule's own mask


def test_lineage_that_would_take_too_long_inside_one_column_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Derived tables that each combine two columns of the one below double lineage's paths at every level:
    one result column could hold the relay's thread for seconds. Lineage is stopped by its budget, and the
    query is masked as untraceable."""
    import sqlglot

    from dbfw.masking import plan as planning
    from dbfw.masking.catalog import Catalog

    columns = {f"c{i}": "text" for i in range(20)}
    catalog = Catalog(schema={"public": {"t": dict(columns)}}, default_schema="public")
    rules = [MaskRule(name="secret", columns=["public.t.c0"], mask="redact")]
    inner = "SELECT " + ", ".join(columns) + " FROM t"
    for depth in range(22):
        inner = "SELECT " + ", ".join(f"(c{i} || c{(i + 1) % 20}) AS c{i}" for i in range(20)) + \
            f" FROM ({inner}) s{depth}"
    query = sqlglot.parse_one(f"SELECT c5 FROM ({inner}) z", read="postgres")
    steps: list[int] = []
    original = planning._TraceBudget.step

    def counted(self: planning._TraceBudget) -> bool:
        steps.append(1)
        return original(self)

    monkeypatch.setattr(planning, "MAX_TRACE_STEPS", 50)
    monkeypatch.setattr(planning._TraceBudget, "step", counted)
    plan = planning.MaskPlanner(rules, b"k" * 32).plan(query, catalog, rules)
    assert "too costly" in plan.reason
    assert plan.for_column(0) is not None  # masked whole: c0 is in reach
    assert len(steps) <= 51
