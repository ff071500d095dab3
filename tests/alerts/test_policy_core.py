"""The policy's pure parts: thresholds, budget days, degraded mode, the
packing of a batch for the script and the reading of its answer, the breaker."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from processor.alerts.breaker import Breaker
from processor.alerts.policy import (
    Decision,
    budget_day,
    degraded,
    published,
    threshold_reason,
)
from processor.alerts.store import Keys, decide_call, read_decisions, release_call
from schemas import Alert, datetime_to_ms

from .policy_support import alert, resolution, rules


def test_thresholds_send_small_or_minor_alerts_to_the_digest() -> None:
    policy = rules(min_severity="medium", min_amount=10_000)
    assert threshold_reason(alert(severity="medium", amount=10_000), policy) is None
    assert threshold_reason(alert(severity="low"), policy) == "below_severity"
    assert threshold_reason(alert(severity="high", amount=9_999.99), policy) == "below_amount"
    # The missing amount may be what the alert is about: never "below".
    assert threshold_reason(alert(amount=None), policy) is None
    assert threshold_reason(alert(amount=1.0), rules(min_amount=0)) is None


@pytest.mark.parametrize(
    ("instant", "zone", "day"),
    [
        ("2026-03-02T23:30:00+00:00", "UTC", "2026-03-02"),
        ("2026-03-02T23:30:00+00:00", "Europe/Paris", "2026-03-03"),
        ("2026-03-03T04:59:00+00:00", "America/New_York", "2026-03-02"),
        ("2026-03-03T05:00:00+00:00", "America/New_York", "2026-03-03"),
    ],
)
def test_the_budget_day_is_the_owners_local_day(instant: str, zone: str, day: str) -> None:
    now = datetime_to_ms(datetime.fromisoformat(instant))
    found, ttl = budget_day(now, zone)
    assert found == day
    local_midnight = datetime.fromisoformat(f"{day}T00:00:00").replace(tzinfo=ZoneInfo(zone))
    ends = datetime_to_ms(local_midnight) + 86_400_000
    assert ttl == ends - now + 86_400_000


def test_a_dst_day_is_23_hours_long() -> None:
    # 2026-03-08 springs forward in New York: that day ends 23 h after it starts.
    start = datetime_to_ms(datetime(2026, 3, 8, 5, 0, tzinfo=UTC))
    _, ttl = budget_day(start, "America/New_York")
    assert ttl == 23 * 3_600_000 + 86_400_000


def test_degraded_mode_publishes_every_alert_with_the_thresholds_applied() -> None:
    batch = [alert("a1"), alert("a2", severity="info"), resolution("a0")]
    out = degraded(batch, rules())
    assert [r.alert_id for r in out] == ["a1", "a2", "a0"]
    first, second = out[0], out[1]
    assert isinstance(first, Alert) and isinstance(second, Alert)
    assert (first.delivery, first.delivery_reason) == ("realtime", "policy_unavailable")
    assert (second.delivery, second.delivery_reason) == ("digest", "below_severity")
    assert out[2] is batch[2]


def test_published_drops_duplicates_and_marks_the_rest() -> None:
    batch = [alert("a1"), alert("a2"), resolution("a0"), alert("a3")]
    decisions: list[Decision | None] = [
        Decision("realtime"), Decision("duplicate", None, "a1"), None,
        Decision("digest", "over_budget"),
    ]
    out = published(batch, decisions)
    assert [r.alert_id for r in out] == ["a1", "a0", "a3"]
    assert out[0] is batch[0]  # realtime without a reason: the record as the engine made it
    last = out[2]
    assert isinstance(last, Alert)
    assert (last.delivery, last.delivery_reason) == ("digest", "over_budget")


def test_a_batch_packs_four_keys_and_six_arguments_per_record() -> None:
    keys = Keys("p:")
    now = datetime_to_ms(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    batch = [alert("a1", severity="info"), resolution("a0", opp="006B"), alert("a2", owner=None)]
    call = decide_call(batch, rules(), keys, now, "tok")
    assert len(call.keys) == 12 and len(call.args) == 6 + 18
    assert call.keys[:4] == ["p:alert:a1", "p:open:006A|missing_next_step",
                             "p:snooze:006A|missing_next_step", "p:budget:005REP:2026-03-02"]
    assert call.keys[11] == "p:budget:-:2026-03-02"  # unowned alerts share one budget
    assert call.args[6:12] == ["a", "a1", "below_severity", "006A", "missing_next_step",
                               "005REP"]
    assert call.args[12:14] == ["r", "a0"]


def test_the_answer_is_read_per_record_and_checked() -> None:
    batch = [alert("a1"), resolution("a0"), alert("a2"), alert("a3")]
    answer = ["realtime", "", "", "resolution", "", "", "duplicate", "", "a1",
              "digest", "snoozed", ""]
    assert read_decisions(batch, answer) == [
        Decision("realtime"), None, Decision("duplicate", None, "a1"),
        Decision("digest", "snoozed"),
    ]
    with pytest.raises(ValueError, match="answered 3 values"):
        read_decisions(batch, answer[:3])
    with pytest.raises(ValueError, match="'resolution' for alert a1"):
        read_decisions([alert("a1")], ["resolution", "", ""])


def test_release_undoes_only_what_counted_against_a_budget() -> None:
    batch = [alert("a1"), alert("a2"), alert("a3"), resolution("a0")]
    decisions: list[Decision | None] = [
        Decision("realtime"), Decision("digest", "over_budget"), Decision("digest", "snoozed"),
        None,
    ]
    call = release_call(batch, decisions, rules(), Keys("p:"), 0, "tok")
    assert call is not None
    assert call.args == ["tok", "a1", "1", "a2", "1", "a3", "0"]
    assert len(call.keys) == 9
    assert release_call([resolution()], [None], rules(), Keys("p:"), 0, "tok") is None


def test_the_breaker_backs_off_exponentially_and_closes_on_success() -> None:
    breaker = Breaker(first_backoff=1.0, max_backoff=4.0)
    assert breaker.allows(0.0) and not breaker.degraded
    assert breaker.failed(10.0) is True  # the failure that degrades
    assert not breaker.allows(10.9) and breaker.allows(11.0)
    assert breaker.failed(11.0) is False
    assert not breaker.allows(12.9) and breaker.allows(13.0)
    breaker.failed(13.0)
    breaker.failed(17.0)
    assert not breaker.allows(20.9) and breaker.allows(21.0)  # capped at 4 s
    assert breaker.succeeded() is True and not breaker.degraded
    assert breaker.succeeded() is False and breaker.allows(0.0)
