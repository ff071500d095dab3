"""Alert, resolution and digest records for the notifier's tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson

from schemas import Alert, Digest, QueueIssue, QueueItem, Resolution

NOW = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)


def alert(n: int = 1, **overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "alert_id": f"al_{n:04d}",
        "opportunity_id": f"006Ab00000{n:05d}",
        "opportunity_name": f"Globex renewal {n}",
        "pipeline": "new_business",
        "stage": "Negotiation",
        "owner_id": "005OWNER1",
        "manager_id": "005MGR1",
        "amount": 125000.0 + n,
        "currency": "USD",
        "close_date": date(2026, 11, 28),
        "rule_id": "single_threaded",
        "ruleset_version": "2026.11-default.1",
        "severity": "high",
        "title": "Big deal, single-threaded",
        "message": "A 125,000 deal has 1 engaged contact; deals above 100,000 need at least 2.",
        "fix": "Get a second stakeholder involved and log the contact on the deal.",
        "opened_at": datetime(2026, 11, 14, 16, 9, tzinfo=UTC),
        "source_event_id": f"sf:tx{n}:1:006Ab00000{n:05d}",
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


def resolution(of: Alert, reason: str = "condition cleared") -> Resolution:
    return Resolution(alert_id=of.alert_id, opportunity_id=of.opportunity_id,
                      owner_id=of.owner_id, rule_id=of.rule_id,
                      ruleset_version=of.ruleset_version,
                      resolved_at=datetime(2026, 11, 15, 10, 0, tzinfo=UTC), reason=reason)


def item(n: int, amount: float | None, currency: str | None = "USD",
         issues: int = 1) -> QueueItem:
    return QueueItem(
        opportunity_id=f"{1000 + n}", opportunity_name=f"Deal {n}", pipeline="new_business",
        stage="Discovery", amount=amount, currency=currency, close_date=date(2026, 12, 1),
        issues=[QueueIssue(alert_id=f"al_d{n}_{k}", rule_id="next_step_missing",
                           severity="medium", title="No next step",
                           fix=f"Add a dated next step ({k}).",
                           message="The deal has no next step.",
                           opened_at=datetime(2026, 11, 10, tzinfo=UTC))
                for k in range(issues)],
    )


def digest(items: list[QueueItem], owner: str = "005OWNER1") -> Digest:
    return Digest(
        owner_id=owner, period_start=date(2026, 11, 16), generated_at=NOW,
        ruleset_version="2026.11-default.1", opportunity_count=len(items),
        issue_count=sum(len(i.issues) for i in items),
        amount_at_risk=sum(i.amount or 0.0 for i in items), items=items,
    )


def encode(record: Alert | Resolution | Digest, **extra: Any) -> bytes:
    """The JSON a producer writes; ``extra`` adds fields the Alert schema in
    this checkout may not know yet (``delivery``, ``delivery_reason``)."""
    obj = record.model_dump(mode="json")
    obj.update(extra)
    return orjson.dumps(obj)
