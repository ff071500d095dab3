"""The audit report: right numbers, every section, safe markup.

The replay below is small enough to work out by hand; the expected values are
written out from the scenario, not read back from the report's own helpers.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from processor.core.clock import to_ms
from processor.core.engine import Engine
from processor.replay.runner import Replay, ReplayResult
from processor.report.charts import Bar, Segment, bar_chart, empty_chart, nice_ceiling
from processor.report.html import (
    current_history,
    percentile,
    render_report,
    share_text,
    stage_durations,
    summarize,
)
from processor.rules.config import default_rules
from schemas import Alert, DeadLetter, OpportunityChange, Resolution, StageHistoryRecord

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
GENERATED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T_RECEIVED = GENERATED
EVIL = "<script>alert(1)</script>"


class _Changes:
    """Builds OpportunityChange records with unique event ids."""

    def __init__(self) -> None:
        self.items: list[OpportunityChange] = []

    def add(self, opp: str, when: str, op: str = "upsert", **fields: Any) -> None:
        self.items.append(OpportunityChange(
            event_id=f"{opp}-{len(self.items)}",
            source="generic:test",
            opportunity_id=opp,
            occurred_at=datetime.fromisoformat(when).replace(tzinfo=UTC),
            op=op,
            fields=fields,
            full=op == "upsert" and "name" in fields,
        ))


def _scenario() -> list[OpportunityChange]:
    c = _Changes()
    # opp-1: Prospecting 10 days, Discovery 20 days, now in Solution without its fields.
    c.add("opp-1", "2026-01-05", name="Acme expansion", stage="Prospecting", amount=120000.0,
          currency="USD", close_date="2026-03-31", owner_id="u-alice")
    c.add("opp-1", "2026-01-15", stage="Discovery")
    c.add("opp-1", "2026-02-04", stage="Solution")
    c.add("opp-1", "2026-02-26", op="activity")
    # opp-2: hostile name, untouched since creation, stale.
    c.add("opp-2", "2026-01-10", name=EVIL, stage="Prospecting", amount=50000.0,
          currency="USD", owner_id="u-bob")
    # opp-3: won after Prospecting 7 days and Discovery 18 days.
    c.add("opp-3", "2026-01-05", name="Globex", stage="Prospecting", amount=80000.0,
          currency="USD", owner_id="u-alice")
    c.add("opp-3", "2026-01-12", stage="Discovery")
    c.add("opp-3", "2026-01-30", stage="Closed Won")
    # opp-4: in euros, 40 days in Prospecting (limit 30).
    c.add("opp-4", "2026-01-20", name="Initech", stage="Prospecting", amount=30000.0,
          currency="EUR", owner_id="u-carol")
    c.add("opp-4", "2026-02-25", op="activity")
    # opp-5: fresh and clean.
    c.add("opp-5", "2026-02-25", name="Umbrella", stage="Prospecting", amount=10000.0,
          currency="USD", close_date="2026-04-30", owner_id="u-bob")
    c.add("opp-5", "2026-02-26", op="activity")
    # opp-6: deleted.
    c.add("opp-6", "2026-01-05", name="Dupe", stage="Prospecting", amount=1.0,
          currency="USD", owner_id="u-bob")
    c.add("opp-6", "2026-01-06", op="delete")
    # opp-7: nothing for 90 days: a close-out recommendation.
    c.add("opp-7", "2025-12-01", name="Stark", stage="Prospecting", amount=5000.0,
          currency="USD", owner_id="u-carol")
    # opp-8: moved to Discovery on the 10th, then a late event says the 8th:
    # the first transition record is retracted, Prospecting lasted 3 days.
    c.add("opp-8", "2026-01-05", name="Hooli", stage="Prospecting", amount=20000.0,
          currency="USD", owner_id="u-dave")
    c.add("opp-8", "2026-01-10", stage="Discovery")
    c.add("opp-8", "2026-01-08", stage="Discovery")
    c.add("opp-8", "2026-02-27", op="activity")
    return c.items


def _dead_letters() -> list[DeadLetter]:
    def letter(reason: str, error: str, offset: int) -> DeadLetter:
        return DeadLetter(reason=reason, error=error, source="crm.jsonl",
                          offset=offset, original_value_b64=DeadLetter.encode(b"{"),
                          received_at=AS_OF)

    return [
        letter("malformed_json", "Expecting value: <b>line 1</b>", 3),
        letter("malformed_json", "Unterminated string", 9),
        letter("oversized", "message of 2,000,000 bytes over the 1 MiB limit", 12),
    ]


@pytest.fixture(scope="module")
def result() -> ReplayResult:
    replay = Replay(default_rules(), received_at=T_RECEIVED)
    changes = _scenario()
    for change in changes:
        replay.apply(change, b"", "crm.jsonl", None)
    done = replay.finish(to_ms(AS_OF))
    done.dead_letters.extend(_dead_letters())
    done.messages = len(changes) + 3
    done.inputs = ["exports/crm <march>.jsonl"]
    return done


@pytest.fixture(scope="module")
def document(result: ReplayResult) -> str:
    return render_report(result, generated_at=GENERATED, max_items_per_owner=1)


# ---- numbers ---------------------------------------------------------------


def test_headline_numbers(result: ReplayResult) -> None:
    s = summarize(result)
    assert (s.opportunities.open, s.opportunities.won, s.opportunities.lost,
            s.opportunities.removed) == (6, 1, 0, 1)
    assert s.flagged_opportunities == 5  # every open deal but opp-5
    assert s.main_currency == "USD"
    assert s.at_risk == {"USD": 120000.0 + 50000.0 + 5000.0 + 20000.0, "EUR": 30000.0}
    assert s.at_risk_deals == {"USD": 4, "EUR": 1}
    assert s.close_outs == 1
    assert s.close_out_amount == {"USD": 5000.0}
    assert s.dead_letters == Counter({"malformed_json": 2, "oversized": 1})
    assert s.messages == 22 and s.changes == 19


def test_alert_counts_match_the_records(result: ReplayResult) -> None:
    s = summarize(result)
    alerts = {a.alert_id: a for a in result.alerts if isinstance(a, Alert)}
    resolved = {r.alert_id for r in result.alerts if isinstance(r, Resolution)}
    assert s.alerts_raised == len(alerts)
    assert s.resolutions == len(resolved) >= 1  # opp-3's Discovery gate cleared on closing
    raised = Counter(a.rule_id for a in alerts.values())
    engine = Engine(result.rules)
    open_now: Counter[str] = Counter()
    for state in result.states.values():
        open_now.update(list(engine.findings(state, result.as_of_ms)))
    assert {r.rule_id: (r.open_now, r.raised) for r in s.rules} == {
        rule: (open_now[rule], raised[rule]) for rule in set(raised) | set(open_now)
    }
    assert open_now["stale_close_out"] == 1
    assert s.open_findings == sum(open_now.values())


def test_owners_are_ordered_by_dollars_at_risk(result: ReplayResult) -> None:
    owners = summarize(result).owners
    assert [o.owner for o in owners] == ["u-alice", "u-bob", "u-dave", "u-carol"]
    carol = owners[-1]
    assert carol.at_risk == {"EUR": 30000.0, "USD": 5000.0}
    assert [i.opportunity_id for i in carol.items] == ["opp-4", "opp-7"]  # biggest first


def test_stage_durations_and_conversions(result: ReplayResult) -> None:
    s = summarize(result)
    durations = {d.stage: (d.count, d.median_days, d.p75_days) for d in s.durations}
    # Prospecting: 3 (opp-8, after the late event), 7 (opp-3), 10 (opp-1) days.
    assert durations["Prospecting"] == (3, 7.0, 8.5)
    # Discovery: 18 (opp-3) and 20 (opp-1) days.
    assert durations["Discovery"] == (2, 19.0, 19.5)
    assert [d.stage for d in s.durations] == ["Prospecting", "Discovery"]
    moves = {(c.from_stage, c.to_stage): (c.count, c.share) for c in s.conversions}
    assert moves == {
        ("Prospecting", "Discovery"): (3, 1.0),
        ("Discovery", "Solution"): (1, 0.5),
        ("Discovery", "Closed Won"): (1, 0.5),
    }


def test_history_keeps_the_last_version_and_drops_retractions() -> None:
    def record(record_id: str, seconds: int, *, retracted: bool = False) -> StageHistoryRecord:
        return StageHistoryRecord(
            record_id=record_id, opportunity_id="o", pipeline="new_business",
            transition="stage_changed", previous_stage="Prospecting", new_stage="Discovery",
            previous_stage_entered_at=AS_OF, previous_stage_left_at=AS_OF,
            seconds_in_previous_stage=seconds, transitioned_at=AS_OF, source_event_id="e",
            retracted=retracted,
        )

    records = [record("a", 86_400), record("b", 5 * 86_400), record("a", 2 * 86_400),
               record("c", 9 * 86_400), record("c", 9 * 86_400, retracted=True)]
    current = current_history(records)
    assert sorted((r.record_id, r.seconds_in_previous_stage) for r in current) == [
        ("a", 2 * 86_400), ("b", 5 * 86_400)]
    (row,) = stage_durations(current, default_rules())
    assert (row.count, row.median_days, row.p75_days) == (2, 3.5, 4.25)


def test_percentile_interpolates_linearly() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.75) == 3.25
    assert percentile([5.0], 0.75) == 5.0
    assert percentile([], 0.5) == 0.0


# ---- the document -------------------------------------------------------------


_VOID = {"meta", "br", "hr", "img", "input", "link", "col"}


class _StrictParser(HTMLParser):
    """Fails on any unbalanced or mis-nested element (html.parser itself is
    lenient and reports nothing)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(document: str) -> _StrictParser:
    parser = _StrictParser()
    parser.feed(document)
    parser.close()
    return parser


def test_document_is_well_formed(document: str) -> None:
    parser = _parse(document)
    assert parser.errors == []
    assert parser.stack == []
    assert document.startswith("<!DOCTYPE html>")


def test_every_section_is_there(document: str) -> None:
    for anchor in ("summary", "rules", "owners", "stages", "durations", "fix-lists",
                   "dead-letters"):
        assert f'<section id="{anchor}"' in document or f'id="{anchor}"' in document
    text = " ".join(_parse(document).text)
    for heading in ("Alerts by rule", "Alerts by owner", "At-risk pipeline by stage",
                    "Time in stage", "Stage conversions", "Fix lists by owner", "Dead letters"):
        assert heading in text


def test_header_and_cards_show_the_numbers(document: str) -> None:
    text = re.sub(r"\s+", " ", " ".join(_parse(document).text))
    assert "2026.11-default.1" in text
    assert "2026-03-01 00:00 UTC" in text  # as of
    assert "2026-03-02 09:30 UTC" in text  # generated
    assert "exports/crm <march>.jsonl" in text
    assert "6 open" in text and "1 closed (1 won, 0 lost); 1 deleted or merged" in text
    assert "$195K" in text and "4 open deals with a medium or high finding" in text
    assert "\u20ac30K (1 deal)" in text  # the other currency is noted, not added
    assert "2 malformed_json, 1 oversized" in text
    assert "22" in text and "19 changes applied" in text


def test_charts_are_well_formed_svg(document: str) -> None:
    charts = re.findall(r"<svg\b.*?</svg>", document, flags=re.S)
    assert len(charts) == 5  # rules, owner findings, owner dollars, stages, durations
    for chart in charts:
        root = ET.fromstring(chart)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.findall(".//{http://www.w3.org/2000/svg}rect")


def test_crm_text_is_escaped(document: str) -> None:
    assert "<script" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "<b>line 1</b>" not in document
    assert "<march>" not in document
    assert EVIL in " ".join(_parse(document).text)  # and it still reads correctly


def test_fix_lists_are_capped_per_owner(document: str) -> None:
    # u-carol has two deals to fix; with a cap of one, the smaller is summarized.
    carol = document[document.index("<h3>u-carol</h3>"):]
    assert "Initech" in carol
    assert "+1 more deal ($5K) not shown" in carol
    assert "Stark" not in carol
    order = [document.index(f"<h3>{o}</h3>") for o in ("u-alice", "u-bob", "u-dave", "u-carol")]
    assert order == sorted(order)


def test_fix_lists_show_issue_title_message_and_fix(result: ReplayResult) -> None:
    document = render_report(result, generated_at=GENERATED)
    block = document[document.index("<h3>u-alice</h3>"):document.index("<h3>u-bob</h3>")]
    assert "Acme expansion" in block and "opp-1" in block and "$120,000" in block
    assert "2026-03-31" in block and "Solution" in block
    assert 'class="badge sev-high"' in block
    assert "Fix:</span>" in block


def test_empty_result_renders() -> None:
    empty = Replay(default_rules(), received_at=T_RECEIVED).finish()
    document = render_report(empty, title="Nothing & nobody", generated_at=GENERATED)
    assert _parse(document).errors == []
    assert "Nothing &amp; nobody" in document
    assert "Every input was processed." in document


# ---- charts ----------------------------------------------------------------


def test_chart_escapes_labels_and_refuses_odd_colours() -> None:
    svg = bar_chart([Bar('a"<b>', (Segment(3, "#123456"),))], title="t & <u>")
    ET.fromstring(svg)
    assert "<b>" not in svg and "t &amp; &lt;u&gt;" in svg
    with pytest.raises(ValueError):
        bar_chart([Bar("x", (Segment(1, 'red" onload="x'),))], title="t")


def test_empty_chart_is_svg() -> None:
    ET.fromstring(bar_chart([], title="none"))
    ET.fromstring(empty_chart("none"))


@pytest.mark.parametrize(("value", "integer", "expected"), [
    (0.0, False, 1.0), (7.0, False, 8.0), (120.0, False, 120.0), (195000.0, False, 200000.0),
    (0.7, False, 0.8), (1.0, True, 4.0), (5.0, True, 8.0), (4.0, True, 4.0), (0.0, True, 4.0),
    (315.0, True, 320.0),
])
def test_nice_ceiling(value: float, integer: bool, expected: float) -> None:
    assert nice_ceiling(value, integer=integer) == pytest.approx(expected)


def test_percent_never_rounds_to_all_or_nothing() -> None:
    assert share_text(5356, 5380) == "99.6%"
    assert share_text(1, 1000) == "0.1%"
    assert share_text(5, 5) == "100%"
    assert share_text(1, 3) == "33%"
