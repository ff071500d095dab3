"""Small builders for test inputs: canonical changes with sensible defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from processor.core.clock import to_ms
from schemas import OpportunityChange

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_ids = count(1)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def ms(days: float) -> int:
    return to_ms(at(days))


def change(
    days: float = 0,
    op: str = "upsert",
    opp: str = "006A",
    event_id: str | None = None,
    nulled: list[str] | None = None,
    contacts: list[str] | None = None,
    **fields: Any,
) -> OpportunityChange:
    return OpportunityChange(
        event_id=event_id or f"ev-{next(_ids)}",
        source="generic:test",
        opportunity_id=opp,
        occurred_at=at(days),
        op=op,  # type: ignore[arg-type, unused-ignore]
        fields=fields,
        nulled_fields=nulled or [],
        contact_ids=contacts or [],
    )


HEALTHY_DISCOVERY: dict[str, Any] = {
    "name": "Acme renewal",
    "stage": "Discovery",
    "owner_id": "005OWNER1",
    "manager_id": "005MGR1",
    "amount": 40000.0,
    "currency": "USD",
    "close_date": "2026-03-31",
    "identify_pain": "Manual reconciliation costs 3 FTE",
    "metrics": "Cut close time from 10 to 4 days",
    "next_step": "Demo with finance team",
    "next_step_date": "2026-01-20",
    "forecast_category": "Pipeline",
}

HEALTHY_NEGOTIATION: dict[str, Any] = {
    **HEALTHY_DISCOVERY,
    "stage": "Negotiation",
    "forecast_category": "Commit",
    "champion": "Dana Ruiz, VP Finance",
    "economic_buyer": "Sam Lee, CFO",
    "next_meeting_date": "2026-01-15",
    "decision_criteria": "SOX-compliant audit trail; SSO",
    "decision_process": "CFO signs after security review",
    "paper_process": "MSA redlines with legal, 2 weeks",
    "competition": "Incumbent spreadsheets; BlackLine",
}
