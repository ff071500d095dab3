"""The simulator: deterministic, realistic vendor traffic with a truth that a
rules engine can be held to."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.rules import RULE_IDS, RuleSet, default_rules
from processor.simulate import (
    PATHOLOGIES,
    Format,
    Simulation,
    _Scenario,
    iter_events,
    simulate,
    write_jsonl,
    write_truth,
)
from processor.simulate.pathologies import JUNK_TEXT, Oracle, fold
from processor.simulate.render import salesforce_id
from processor.simulate.story import _TEXT, DAY, Change, field_text

START = datetime(2026, 1, 5, tzinfo=UTC)
SIZE = 300
DAYS = 90
VENDOR_FORMATS: tuple[Format, ...] = ("salesforce", "hubspot", "generic")


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return default_rules()


@pytest.fixture(scope="module")
def sims(rules: RuleSet) -> dict[str, Simulation]:
    return {
        fmt: simulate(opportunities=SIZE, days=DAYS, seed=7, fmt=fmt, start=START, rules=rules)
        for fmt in (*VENDOR_FORMATS, "mixed")
    }


def _events(sim: Simulation) -> list[Any]:
    return [orjson.loads(raw) for raw in sim.events]


# ---- determinism ----------------------------------------------------------------


def test_same_seed_same_bytes(rules: RuleSet, sims: dict[str, Simulation]) -> None:
    again = simulate(opportunities=SIZE, days=DAYS, seed=7, fmt="mixed", start=START, rules=rules)
    assert again.events == sims["mixed"].events
    assert again.keys == sims["mixed"].keys
    assert again.truth == sims["mixed"].truth


def test_other_seed_other_bytes(rules: RuleSet, sims: dict[str, Simulation]) -> None:
    other = simulate(opportunities=SIZE, days=DAYS, seed=8, fmt="mixed", start=START, rules=rules)
    assert other.events != sims["mixed"].events


def test_iterator_yields_the_same_deliveries(rules: RuleSet, sims: dict[str, Simulation]) -> None:
    truth: dict[str, set[str]] = {}
    stream = iter_events(
        opportunities=SIZE, days=DAYS, seed=7, fmt="hubspot", start=START, rules=rules,
        truth=truth,
    )
    assert truth == sims["hubspot"].truth  # complete before the first delivery
    deliveries = list(stream)
    assert [d.payload for d in deliveries] == sims["hubspot"].events
    assert [d.key for d in deliveries] == sims["hubspot"].keys
    times = [d.at for d in deliveries]
    assert times == sorted(times)
    assert all(START <= t < sims["hubspot"].as_of for t in times)


def test_write_jsonl_and_truth(tmp_path: Path, sims: dict[str, Simulation]) -> None:
    sim = sims["generic"]
    path = tmp_path / "events.jsonl"
    assert write_jsonl(sim, path) == len(sim.events)
    assert path.read_bytes().splitlines() == sim.events
    write_truth(sim, tmp_path / "truth.json")
    document = orjson.loads((tmp_path / "truth.json").read_bytes())
    assert {k: set(v) for k, v in document["truth"].items()} == sim.truth
    assert document["as_of"] == sim.as_of.isoformat()


def test_arguments_are_checked(rules: RuleSet) -> None:
    with pytest.raises(ValueError, match="pathology_rate"):
        simulate(opportunities=10, days=30, seed=1, fmt="generic", start=START, rules=rules,
                 pathology_rate=0.7)
    with pytest.raises(ValueError, match="days"):
        simulate(opportunities=10, days=0, seed=1, fmt="generic", start=START, rules=rules)
    with pytest.raises(ValueError, match="format"):
        simulate(opportunities=10, days=30, seed=1, fmt="sap", start=START,  # type: ignore[arg-type]
                 rules=rules)


# ---- vendor shapes --------------------------------------------------------------

_SF_ID = re.compile(r"^[0-9A-Za-z]{18}$")


def _valid_sf_id(value: str, prefix: str) -> bool:
    return bool(_SF_ID.match(value)) and value.startswith(prefix) and (
        salesforce_id(prefix, 0)[:3] == prefix and _checksum_ok(value)
    )


def _checksum_ok(value: str) -> bool:
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(value[chunk * 5 : chunk * 5 + 5]) if ch.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return value[15:] == suffix


def test_salesforce_checksum_matches_a_documented_id() -> None:
    assert _checksum_ok("001D000000IqhSLIAZ")
    assert _checksum_ok(salesforce_id("006", 12345))


def test_salesforce_shape(sims: dict[str, Simulation], rules: RuleSet) -> None:
    entities: Counter[str] = Counter()
    spellings = {a for p in rules.pipelines for s in p.stages for a in (s.name, *s.aliases)}
    for event in _events(sims["salesforce"]):
        header = event["ChangeEventHeader"]
        entities[header["entityName"]] += 1
        assert set(header) >= {
            "entityName", "recordIds", "changeType", "changeOrigin", "transactionKey",
            "sequenceNumber", "commitTimestamp", "commitNumber", "commitUser", "changedFields",
            "nulledFields", "diffFields",
        }
        assert isinstance(header["commitTimestamp"], int)
        assert _valid_sf_id(header["commitUser"], "005")
        if header["entityName"] == "Opportunity":
            assert header["changeType"] in ("CREATE", "UPDATE", "DELETE")
            assert _valid_sf_id(header["recordIds"][0], "006")
            if header["changeType"] == "UPDATE":
                changed = set(header["changedFields"])
                assert changed and changed <= set(event) - {"ChangeEventHeader"}
            if "StageName" in event:
                assert event["StageName"] in spellings
            assert event.get("Pipeline__c") in (None, "Renewal")
        else:
            assert header["changeType"] == "CREATE"
            assert _valid_sf_id(event["WhatId"], "006")
            assert _valid_sf_id(event["WhoId"], "003")
            prefix = "00T" if header["entityName"] == "Task" else "00U"
            assert _valid_sf_id(header["recordIds"][0], prefix)
            assert {"Subject", "ActivityDate"} <= set(event)
    assert set(entities) == {"Opportunity", "Task", "Event"}


def test_salesforce_uses_some_org_stage_labels(sims: dict[str, Simulation]) -> None:
    labels = Counter(e.get("StageName") for e in _events(sims["salesforce"]))
    assert labels["Prospecting"] and labels["Discovery"]
    assert labels["Qualification"] or labels["Value Proposition"] or labels["Negotiation/Review"]


_HS_STAGES = {"appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
              "decisionmakerboughtin", "contractsent", "closedwon", "closedlost",
              "Upcoming", "Engaged", "Quote Sent", "Renewed", "Churned"}
_HS_DATES = {"closedate", "notes_next_activity_date", "next_step_date"}


def test_hubspot_shape(sims: dict[str, Simulation]) -> None:
    kinds: Counter[str] = Counter()
    for batch in _events(sims["hubspot"]):
        assert isinstance(batch, list) and batch
        assert len({e["objectId"] if "objectId" in e else e["fromObjectId"] for e in batch}) == 1
        for event in batch:
            kinds[event["subscriptionType"]] += 1
            assert isinstance(event["eventId"], int) and isinstance(event["occurredAt"], int)
            assert event["attemptNumber"] in (0, 1)
            assert {"subscriptionId", "portalId", "appId", "changeSource"} <= set(event)
            if event["subscriptionType"] == "deal.associationChange":
                assert event["associationType"] == "DEAL_TO_CONTACT"
                continue
            assert isinstance(event["objectId"], int)
            if event["subscriptionType"] != "deal.propertyChange":
                continue
            name, value = event["propertyName"], event["propertyValue"]
            assert isinstance(value, str)
            if name == "dealstage":
                assert value in _HS_STAGES
            if name == "pipeline":
                assert value in ("default", "renewals")
            if name in _HS_DATES:
                assert value.isdigit() and int(value) % 86_400_000 == 0
            if name == "hs_manual_forecast_category":
                assert value in ("PIPELINE", "BEST_CASE", "COMMIT", "CLOSED", "OMIT")
    assert set(kinds) == {"deal.creation", "deal.propertyChange", "deal.associationChange",
                          "deal.deletion"}


def test_hubspot_orders_a_batch_for_per_event_processing(sims: dict[str, Simulation]) -> None:
    """Gate fields and the pipeline arrive before the stage move they gate,
    the stage before the forecast category only that stage allows, and a new
    deal's contacts before its amount."""
    after_stage = {"hs_manual_forecast_category", "hs_deal_stage_probability"}
    for batch in _events(sims["hubspot"]):
        names = [e.get("propertyName") or e["subscriptionType"] for e in batch]
        if "dealstage" in names:
            stage = names.index("dealstage")
            assert set(names[stage + 1 :]) <= after_stage
        if names[0] == "deal.creation":
            assert names[1] == "deal.associationChange"


def test_generic_shape(sims: dict[str, Simulation], rules: RuleSet) -> None:
    ops: Counter[str] = Counter()
    canonical = set(_canonical_names())
    for event in _events(sims["generic"]):
        assert set(event) <= {"source", "event_id", "opportunity_id", "occurred_at", "op",
                              "fields", "contact_ids", "full"}
        assert event["source"] == "pipedrive"
        assert datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")) >= START
        ops[event["op"]] += 1
        assert set(event["fields"]) <= canonical
        if event["op"] == "activity":
            assert event["contact_ids"]
    assert set(ops) == {"upsert", "activity", "delete"}


def _canonical_names() -> list[str]:
    from processor.core import fields as f

    return [
        f.NAME, f.ACCOUNT_NAME, f.STAGE, f.AMOUNT, f.CURRENCY, f.CLOSE_DATE, f.OWNER_ID,
        f.MANAGER_ID, f.PIPELINE, f.FORECAST_CATEGORY, f.NEXT_STEP, f.NEXT_STEP_DATE,
        f.NEXT_MEETING_DATE, f.CONTACT_COUNT, f.PROBABILITY, *f.MEDDICC,
    ]


def test_mixed_uses_every_format(sims: dict[str, Simulation]) -> None:
    assert set(sims["mixed"].formats.values()) == set(VENDOR_FORMATS)


def test_realism(sims: dict[str, Simulation]) -> None:
    events = _events(sims["generic"])
    fields = [e["fields"] for e in events if e["op"] == "upsert"]
    amounts = [x["amount"] for x in fields if "amount" in x and x["amount"] > 0]
    assert min(amounts) >= 5_000 and max(amounts) <= 500_000
    assert Counter(x.get("currency") for x in fields)["EUR"] > 0
    assert any(x.get("pipeline") == "Renewal" for x in fields)
    stages = Counter(x["stage"] for x in fields if "stage" in x)
    assert stages["Closed Won"] and stages["Closed Lost"] and stages["Negotiation"]
    per_opportunity = len(sims["generic"].events) / SIZE
    assert 15 <= per_opportunity <= 40


# ---- delivery -------------------------------------------------------------------


def test_some_events_are_redelivered_or_late(sims: dict[str, Simulation]) -> None:
    events = _events(sims["generic"])
    ids = Counter(e["event_id"] for e in events)
    assert 0 < sum(n - 1 for n in ids.values()) < len(events) * 0.03
    late = 0
    newest = START
    for event in events:
        at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        if at < newest:
            late += 1
            assert newest - at <= timedelta(minutes=16)
        newest = max(newest, at)
    assert 0 < late < len(events) * 0.1


# ---- truth ----------------------------------------------------------------------


def test_truth_has_clean_and_broken_opportunities(sims: dict[str, Simulation]) -> None:
    for sim in sims.values():
        assert len(sim.truth) == SIZE
        clean = [k for k, v in sim.truth.items() if not v]
        assert len(clean) >= 0.4 * SIZE
        assert len(clean) < SIZE
        assert set().union(*sim.truth.values()) <= set(RULE_IDS)
        assert set(sim.keys) == set(sim.truth)


def test_every_pathology_is_planted_and_found(sims: dict[str, Simulation]) -> None:
    for sim in sims.values():
        planted = Counter(sim.planted.values())
        assert set(planted) == set(PATHOLOGIES)
        for opportunity, kind in sim.planted.items():
            assert kind in sim.truth[opportunity]


def test_clean_deals_are_clean_at_every_moment(rules: RuleSet) -> None:
    """A correct engine raises nothing on a clean deal along the way, not
    just at as_of: no alert to open and resolve."""
    scenario = _Scenario(200, DAYS, 11, "mixed", START, rules, 0.35)
    oracle = Oracle(rules)
    flagged: Counter[str] = Counter()
    checked = 0
    for index in range(200):
        story = scenario.story(index)
        if story.truth or story.planted:
            continue
        start = story.changes[0].at
        grid = [start + k * 0.37 * DAY for k in range(int(DAYS / 0.37) + 1)]
        moments = [c.at for c in story.changes] + grid
        for moment in sorted(m for m in moments if start <= m < scenario.window.as_of):
            state = fold(story.changes, story.pipeline, moment)
            flagged.update(oracle.judge(state, story.pipeline, moment).rules)
        checked += 1
    assert checked > 100
    assert not flagged


def test_required_text_is_never_junk(rules: RuleSet) -> None:
    import random

    oracle = Oracle(rules)
    rng = random.Random(1)
    for name in (*_TEXT, "champion", "economic_buyer", "custom_field"):
        for _ in range(50):
            assert not oracle.is_junk(name, field_text(name, rng))
    for junk in JUNK_TEXT:
        assert oracle.is_junk("champion", junk)
    assert oracle.is_junk("close_date", "2099-12-31")


# ---- the oracle's reading of the rules -------------------------------------------

AS_OF = datetime(2026, 4, 1, tzinfo=UTC).timestamp()


def _at(days_before: float) -> float:
    return AS_OF - days_before * DAY


def _day(days_after: int) -> str:
    return (date(2026, 4, 1) + timedelta(days=days_after)).isoformat()


def _clean_discovery(**extra: Any) -> list[Change]:
    fields: dict[str, Any] = {
        "stage": "Discovery", "amount": 20_000.0, "close_date": _day(40),
        "forecast_category": "Pipeline", "next_step": "Send mutual action plan",
        "next_step_date": _day(5), "next_meeting_date": _day(4),
        "identify_pain": "Manual reconciliation", "metrics": "Save 2 FTE",
    }
    fields.update(extra)
    return [
        Change(_at(10), "create", fields),
        Change(_at(1), "activity", {}, ("c1",)),
    ]


def _judge(rules: RuleSet, changes: list[Change]) -> frozenset[str]:
    pipeline = rules.default_pipeline
    verdict = Oracle(rules).verdict(changes, pipeline, AS_OF)
    assert not verdict.doubts
    return verdict.rules


def test_oracle_reads_a_clean_deal_as_clean(rules: RuleSet) -> None:
    assert _judge(rules, _clean_discovery()) == frozenset()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"forecast_category": "Commit"}, {"forecast_category_mismatch"}),
        ({"forecast_category": "Omitted"}, set()),
        ({"metrics": "tbd"}, {"stage_gate_junk_values"}),
        ({"metrics": None}, {"stage_gate_missing_fields"}),
        ({"close_date": _day(-5)}, {"close_date_past"}),
        ({"close_date": _day(300)}, {"parked_close_date"}),
        ({"next_step_date": _day(-4)}, {"next_step_missing"}),
        ({"amount": 0.0}, set()),  # amounts are required from Solution on
        ({"amount": 150_000.0}, {"single_threaded"}),
    ],
)
def test_oracle_rules(rules: RuleSet, extra: dict[str, Any], expected: set[str]) -> None:
    assert _judge(rules, _clean_discovery(**extra)) == expected


def test_oracle_counts_pushes_not_pull_ins(rules: RuleSet) -> None:
    changes = _clean_discovery()
    pushes = [Change(_at(9 - i), "update", {"close_date": _day(41 + i)}) for i in range(3)]
    assert _judge(rules, sorted([*changes, *pushes])) == {"close_date_slipping"}
    pull_ins = [Change(_at(9 - i), "update", {"close_date": _day(39 - i)}) for i in range(3)]
    assert _judge(rules, sorted([*changes, *pull_ins])) == frozenset()


def test_oracle_skip_and_closed_moves(rules: RuleSet) -> None:
    base = _clean_discovery(stage="Prospecting")
    jump = Change(_at(2), "update", {
        "stage": "Proposal", "forecast_category": "Best Case", "champion": "Dana, VP",
        "economic_buyer": "CFO Priya", "decision_criteria": "SSO", "decision_process": "CFO",
    })
    assert _judge(rules, sorted([*base, jump])) == {"stage_skipped"}
    lost = Change(_at(2), "update", {"stage": "Closed Lost", "forecast_category": "Omitted"})
    assert _judge(rules, sorted([*base, lost])) == frozenset()


# ---- the processor reads every event -----------------------------------------------


@pytest.mark.parametrize("fmt", [*VENDOR_FORMATS, "mixed"])
def test_every_event_decodes(fmt: str, sims: dict[str, Simulation], rules: RuleSet) -> None:
    detect = pytest.importorskip("processor.sources.detect")
    from processor.sources.mapping import FieldMappings

    mappings = FieldMappings.with_overrides({str(k): v for k, v in rules.field_mapping.items()})
    sim = sims[fmt]
    seen: set[str] = set()
    for raw in sim.events:
        result = detect.decode(raw, mappings)
        assert not result.rejects, result.rejects[0].error
        assert result.ignored == 0
        seen.update(change.opportunity_id for change in result.changes)
    assert seen == set(sim.truth)


def test_the_engine_finds_exactly_the_truth(sims: dict[str, Simulation], rules: RuleSet) -> None:
    """Every delivery (duplicates and late ones included) through the real
    decoder and engine: at as_of the engine's findings, plus the one-off skip
    notices it published, are the truth for every opportunity, and no clean
    opportunity ever got an alert along the way."""
    engine_module = pytest.importorskip("processor.core.engine")
    detect = pytest.importorskip("processor.sources.detect")
    from processor.core.clock import to_ms
    from processor.sources.mapping import FieldMappings

    mappings = FieldMappings.with_overrides({str(k): v for k, v in rules.field_mapping.items()})
    engine = engine_module.Engine(rules)
    sim = sims["mixed"]
    clean = {k for k, v in sim.truth.items() if not v}
    states: dict[str, Any] = {}
    notices: dict[str, set[str]] = {k: set() for k in sim.truth}
    along_the_way: Counter[str] = Counter()
    for raw in sim.events:
        for change in detect.decode(raw, mappings).changes:
            state, outcome = engine.apply(states.get(change.opportunity_id), change)
            states[change.opportunity_id] = state
            for alert in outcome.alerts:
                if alert.kind != "alert":
                    continue
                if alert.rule_id in ("stage_skipped", "stage_regressed"):
                    notices[change.opportunity_id].add(alert.rule_id)
                if change.opportunity_id in clean:
                    along_the_way[alert.rule_id] += 1
    now = to_ms(sim.as_of)
    wrong = {
        opportunity: (sorted(truth), sorted(found))
        for opportunity, truth in sim.truth.items()
        if (found := set(engine.findings(states[opportunity], now)) | notices[opportunity])
        != truth
    }
    assert not wrong
    assert not along_the_way
