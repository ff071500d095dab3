"""The pure queue builder's totals and the manager a digest names."""

from __future__ import annotations

from datetime import UTC, date, datetime

from processor.alerts.queue import digest_of, snooze_keys, with_snoozes
from schemas import QueueIssue, QueueItem
from schemas.digest import NO_CURRENCY


def _item(n: int, amount: float | None, currency: str | None, manager: str | None) -> QueueItem:
    return QueueItem(
        opportunity_id=f"{1000 + n}", pipeline="new_business", amount=amount,
        currency=currency, manager_id=manager,
        issues=[QueueIssue(alert_id=f"al_{n}", rule_id="next_step_missing", severity="medium",
                           title="No next step", message="m", fix="f",
                           opened_at=datetime(2026, 11, 10, tzinfo=UTC))],
    )


def test_a_digest_totals_each_currency_apart_and_names_the_usual_manager() -> None:
    items = [_item(1, 100.0, "EUR", "005MGR_B"), _item(2, 50.0, "USD", "005MGR_A"),
             _item(3, 25.0, "EUR", "005MGR_B"), _item(4, 10.0, None, None),
             _item(5, None, "USD", "005MGR_A")]
    digest = digest_of("005OWNER", items, date(2026, 11, 16), 0, "v1")
    assert digest.amount_at_risk_by_currency == {"EUR": 125.0, "USD": 50.0, NO_CURRENCY: 10.0}
    assert digest.amount_at_risk == 185.0  # across currencies, as before
    assert digest.manager_id == "005MGR_A"  # 2 deals each: the smaller id
    assert digest_of("005OWNER", items[:1], date(2026, 11, 16), 0, "v1").manager_id == "005MGR_B"
    assert digest_of("005OWNER", items[3:4], date(2026, 11, 16), 0, "v1").manager_id is None


def test_snoozed_issues_are_marked_by_opportunity_and_rule() -> None:
    items = [_item(1, 100.0, "EUR", None), _item(2, 50.0, "USD", None)]
    digest = digest_of("005OWNER", items, date(2026, 11, 16), 0, "v1")
    assert snooze_keys([digest]) == [("1001", "next_step_missing"), ("1002", "next_step_missing")]
    until = 1_800_000_000_000
    marked = with_snoozes(digest, {("1002", "next_step_missing"): until})
    by_opp = {i.opportunity_id: i.issues[0].snoozed_until for i in marked.items}
    assert by_opp == {"1001": None, "1002": datetime.fromtimestamp(until / 1000, tz=UTC)}
    assert with_snoozes(digest, {}) is digest
