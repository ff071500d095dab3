"""Hygiene queues: each owner's list of data to fix, biggest deals first.

Built from the states and the same checks that raise alerts, so the queue
never disagrees with the alerts a rep already received; pure, so the weekly
digest, the HTTP endpoint and the offline audit report share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from processor.core import fields as f
from processor.core.alerts import alert_id
from processor.core.clock import from_ms
from processor.core.engine import Engine
from schemas import Digest, OpportunityState, QueueIssue, QueueItem
from schemas.alerts import SEVERITY_RANK


def queue_items(
    states: Iterable[OpportunityState], engine: Engine, now_ms: int
) -> list[QueueItem]:
    """One item per opportunity with something to fix, ordered by deal size
    (largest first), then by the worst severity."""
    rules = engine.rules
    items: list[tuple[float, int, QueueItem]] = []
    for state in states:
        found = engine.findings(state, now_ms)
        if not found:
            continue
        pipeline = rules.pipeline_for(state.fields.get(f.PIPELINE))
        issues = []
        for rule_id, finding in found.items():
            opened = state.open_alerts.get(rule_id, now_ms)
            issues.append(QueueIssue(
                alert_id=alert_id(state.opportunity_id, rule_id, opened),
                rule_id=rule_id,
                severity=pipeline.severity_of(rule_id),
                title=finding.title,
                message=finding.message,
                fix=finding.fix,
                opened_at=from_ms(opened),
            ))
        issues.sort(key=lambda i: -SEVERITY_RANK[i.severity])
        values = state.fields
        amount = values.get(f.AMOUNT)
        item = QueueItem(
            opportunity_id=state.opportunity_id,
            opportunity_name=values.get(f.NAME),
            pipeline=pipeline.id,
            stage=pipeline.canonical_stage(values.get(f.STAGE)),
            amount=amount,
            currency=values.get(f.CURRENCY),
            close_date=values.get(f.CLOSE_DATE),
            issues=issues,
        )
        worst = SEVERITY_RANK[issues[0].severity]
        items.append((-(amount or 0.0), -worst, item))
    items.sort(key=lambda x: (x[0], x[1], x[2].opportunity_id))
    return [item for _, _, item in items]


def build_digest(
    owner_id: str,
    states: Iterable[OpportunityState],
    engine: Engine,
    now_ms: int,
    period_start: date,
) -> Digest:
    items = queue_items((s for s in states if s.fields.get(f.OWNER_ID) == owner_id), engine,
                        now_ms)
    return Digest(
        owner_id=owner_id,
        period_start=period_start,
        generated_at=from_ms(now_ms),
        ruleset_version=engine.rules.version,
        opportunity_count=len(items),
        issue_count=sum(len(i.issues) for i in items),
        amount_at_risk=sum(i.amount or 0.0 for i in items),
        items=items,
    )
