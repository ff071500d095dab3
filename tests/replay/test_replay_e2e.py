"""End to end offline: simulated CRM traffic in every format through replay;
every planted problem is found and clean opportunities are not flagged."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from processor.core.clock import to_ms
from processor.replay.runner import Replay
from processor.rules import default_rules
from processor.simulate import simulate

START = datetime(2026, 6, 1, tzinfo=UTC)
RECEIVED = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.mark.parametrize("fmt", ["mixed", "salesforce", "hubspot", "generic"])
def test_replay_finds_planted_problems_and_spares_clean_deals(fmt: str) -> None:
    rules = default_rules()
    sim = simulate(opportunities=240, days=90, seed=11, fmt=fmt, start=START, rules=rules)
    replay = Replay(rules, received_at=RECEIVED)
    for number, raw in enumerate(sim.events, start=1):
        replay.feed(raw, "sim.jsonl", number)
    result = replay.finish(to_ms(sim.as_of))

    assert result.dead_letters == []
    fired_once: dict[str, set[str]] = defaultdict(set)
    for alert in result.alerts:
        if alert.kind == "alert" and alert.rule_id == "stage_skipped":
            fired_once[alert.opportunity_id].add(alert.rule_id)
    found = {
        opp: set(state.open_alerts) | fired_once[opp] for opp, state in result.states.items()
    }
    clean = [opp for opp, rules_ in sim.truth.items() if not rules_]
    assert len(clean) >= 0.4 * len(sim.truth)
    assert {opp: found.get(opp, set()) for opp in clean} == {opp: set() for opp in clean}
    mismatches = {
        opp: (expected, found.get(opp, set()))
        for opp, expected in sim.truth.items()
        if expected != found.get(opp, set())
    }
    assert mismatches == {}
    planted = {rule for rules_ in sim.truth.values() for rule in rules_}
    assert len(planted) >= 14
    # Clean deals never raised anything, not even for a moment.
    alerted = {a.opportunity_id for a in result.alerts if a.kind == "alert"}
    assert alerted.isdisjoint(clean)


def test_replay_dead_letters_bad_lines_and_keeps_going() -> None:
    rules = default_rules()
    sim = simulate(opportunities=20, days=30, seed=3, fmt="generic", start=START, rules=rules)
    replay = Replay(rules, received_at=RECEIVED)
    violation = (b'{"source": "x", "event_id": "e1", "opportunity_id": "o1", '
                 b'"occurred_at": "yesterday", "op": "upsert", "fields": {}}')
    bad = [b"{not json", b'{"hello": "world"}', violation]
    lines = [*sim.events[:10], *bad, *sim.events[10:]]
    for number, raw in enumerate(lines, start=1):
        replay.feed(raw, "mixed.jsonl", number)
    result = replay.finish(to_ms(sim.as_of))
    reasons = [(d.reason, d.offset) for d in result.dead_letters]
    assert reasons == [("malformed_json", 11), ("unknown_format", 12),
                       ("schema_violation", 13)]
    assert result.dead_letters[0].original_value() == b"{not json"
    assert len(result.states) == 20
