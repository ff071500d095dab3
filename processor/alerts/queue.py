"""Hygiene queues: each owner's list of data to fix, biggest deals first.

Built from the states and the same checks that raise alerts, so the queue
never disagrees with the alerts a rep already received; pure, so the weekly
digest, the HTTP endpoint and the offline audit report share it. The stream
builds each opportunity's item where its state lives (``queue_item``) and
ranks and wraps them where the owner's queue lives (``rank``, ``digest_of``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date

from processor.core import fields as f
from processor.core.alerts import alert_id
from processor.core.clock import from_ms
from processor.core.engine import Engine
from schemas import Digest, OpportunityState, QueueIssue, QueueItem
from schemas.alerts import SEVERITY_RANK
from schemas.digest import NO_CURRENCY, amounts_by_currency


def queue_item(state: OpportunityState, engine: Engine, now_ms: int) -> QueueItem | None:
    """The opportunity's entry in its owner's queue, or None when there is
    nothing to fix; issues worst first."""
    found = engine.findings(state, now_ms)
    if not found:
        return None
    pipeline = engine.rules.pipeline_for(state.fields.get(f.PIPELINE))
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
    return QueueItem(
        opportunity_id=state.opportunity_id,
        opportunity_name=values.get(f.NAME),
        pipeline=pipeline.id,
        stage=pipeline.canonical_stage(values.get(f.STAGE)),
        amount=values.get(f.AMOUNT),
        currency=values.get(f.CURRENCY),
        close_date=values.get(f.CLOSE_DATE),
        manager_id=engine.rules.manager_of(values),
        issues=issues,
    )


def rank(items: Iterable[QueueItem]) -> list[QueueItem]:
    """Deal size first (largest first), then the worst severity, then the id,
    so two builders of the same items always agree on the order."""
    def key(item: QueueItem) -> tuple[float, int, str]:
        worst = max((SEVERITY_RANK[i.severity] for i in item.issues), default=0)
        return -(item.amount or 0.0), -worst, item.opportunity_id

    return sorted(items, key=key)


def queue_items(
    states: Iterable[OpportunityState], engine: Engine, now_ms: int
) -> list[QueueItem]:
    """One item per opportunity with something to fix, ranked."""
    return rank(item for state in states
                if (item := queue_item(state, engine, now_ms)) is not None)


def digest_of(
    owner_id: str,
    items: Iterable[QueueItem],
    period_start: date,
    now_ms: int,
    ruleset_version: str,
) -> Digest:
    ranked = rank(items)
    by_currency: dict[str, float] = {}
    for code, total in amounts_by_currency(ranked).items():
        key = code or NO_CURRENCY  # None and "" alike: currency unknown
        by_currency[key] = by_currency.get(key, 0.0) + total
    return Digest(
        owner_id=owner_id,
        manager_id=_usual_manager(ranked),
        period_start=period_start,
        generated_at=from_ms(now_ms),
        ruleset_version=ruleset_version,
        opportunity_count=len(ranked),
        issue_count=sum(len(i.issues) for i in ranked),
        amount_at_risk=sum(i.amount or 0.0 for i in ranked),
        amount_at_risk_by_currency=dict(sorted(by_currency.items())),
        items=ranked,
    )


def _usual_manager(items: list[QueueItem]) -> str | None:
    """An owner has one manager, but a CRM can disagree with itself deal by
    deal (a reorg half applied): the one most deals name, then the smallest."""
    counts = Counter(i.manager_id for i in items if i.manager_id)
    if not counts:
        return None
    return min(counts, key=lambda m: (-counts[m], m))


def build_digest(
    owner_id: str,
    states: Iterable[OpportunityState],
    engine: Engine,
    now_ms: int,
    period_start: date,
) -> Digest:
    owned = (s for s in states if s.fields.get(f.OWNER_ID) == owner_id)
    return digest_of(owner_id, queue_items(owned, engine, now_ms), period_start, now_ms,
                     engine.rules.version)


SnoozeKey = tuple[str, str]
"""(opportunity id, rule id): what a snooze quiets, whatever the alert's id."""


def snooze_keys(digests: Iterable[Digest]) -> list[SnoozeKey]:
    return sorted({(item.opportunity_id, issue.rule_id)
                   for digest in digests for item in digest.items for issue in item.issues})


def with_snoozes(digest: Digest, until_ms: Mapping[SnoozeKey, int]) -> Digest:
    """The digest with each snoozed issue marked with its snooze's expiry."""
    if not until_ms:
        return digest
    items = []
    for item in digest.items:
        issues = [issue.model_copy(update={"snoozed_until": from_ms(until)})
                  if (until := until_ms.get((item.opportunity_id, issue.rule_id))) is not None
                  else issue for issue in item.issues]
        items.append(item.model_copy(update={"issues": issues}))
    return digest.model_copy(update={"items": items})
