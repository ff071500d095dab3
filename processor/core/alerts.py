"""Turning findings into published records: alerts, resolutions, commands.

Ids are derived from the opportunity, the rule and when the condition opened,
so the same episode keeps the same id across replays, and a notifier can
update the message it posted when the resolution arrives.
"""

from __future__ import annotations

import hashlib
from datetime import date

from processor.core import fields as f
from processor.core.clock import from_ms
from processor.rules.checks import Finding
from processor.rules.config import Pipeline, RuleSet
from schemas import Alert, CloseOutCommand, OpportunityState, Resolution


def alert_id(opportunity_id: str, rule_id: str, opened_ms: int) -> str:
    digest = hashlib.blake2b(
        f"{opportunity_id}\x1f{rule_id}\x1f{opened_ms}".encode(), digest_size=10
    ).hexdigest()
    return f"al_{digest}"


def _date(value: object) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def build_alert(
    state: OpportunityState,
    finding: Finding,
    rules: RuleSet,
    pipeline: Pipeline,
    opened_ms: int,
    source_event_id: str | None,
    identifier: str | None = None,
) -> Alert:
    values = state.fields
    return Alert(
        alert_id=identifier or alert_id(state.opportunity_id, finding.rule_id, opened_ms),
        opportunity_id=state.opportunity_id,
        opportunity_name=values.get(f.NAME),
        pipeline=pipeline.id,
        stage=pipeline.canonical_stage(values.get(f.STAGE)),
        owner_id=values.get(f.OWNER_ID),
        manager_id=rules.manager_of(values),
        amount=values.get(f.AMOUNT),
        currency=values.get(f.CURRENCY),
        close_date=_date(values.get(f.CLOSE_DATE)),
        rule_id=finding.rule_id,
        ruleset_version=rules.version,
        severity=pipeline.severity_of(finding.rule_id),
        title=finding.title,
        message=finding.message,
        fix=finding.fix,
        details=finding.details,
        opened_at=from_ms(opened_ms),
        source_event_id=source_event_id,
    )


def build_resolution(
    state: OpportunityState,
    rule_id: str,
    opened_ms: int,
    rules: RuleSet,
    resolved_ms: int,
    reason: str,
    source_event_id: str | None,
) -> Resolution:
    return Resolution(
        alert_id=alert_id(state.opportunity_id, rule_id, opened_ms),
        opportunity_id=state.opportunity_id,
        owner_id=state.fields.get(f.OWNER_ID),
        rule_id=rule_id,
        ruleset_version=rules.version,
        resolved_at=from_ms(resolved_ms),
        reason=reason,
        source_event_id=source_event_id,
    )


def build_close_out(
    state: OpportunityState, alert: Alert, pipeline: Pipeline, rules: RuleSet
) -> CloseOutCommand:
    last = state.last_activity_ms if state.last_activity_ms is not None else state.created_ms
    return CloseOutCommand(
        command_id=alert.alert_id.replace("al_", "cmd_", 1),
        opportunity_id=state.opportunity_id,
        opportunity_name=alert.opportunity_name,
        owner_id=alert.owner_id,
        pipeline=pipeline.id,
        current_stage=alert.stage,
        recommended_stage=pipeline.close_out_stage,
        amount=alert.amount,
        currency=alert.currency,
        days_without_activity=int(alert.details.get("days_without_activity", 0)),
        last_activity_at=from_ms(last) if last is not None else None,
        issued_at=alert.opened_at,
        ruleset_version=rules.version,
        reason=alert.message,
    )
