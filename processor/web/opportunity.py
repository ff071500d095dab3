"""What ``GET /v1/opportunities/{id}`` shows: pure, from the stored state.

Open alerts come from the state's own record of them (rule -> when it
opened), so their ids are the ids the stream published; their wording is the
rules' wording now, which is what a rep opening the record wants to read.
"""

from __future__ import annotations

from processor.core import fields as f
from processor.core.alerts import alert_id
from processor.core.clock import from_ms
from processor.rules.checks import evaluate
from processor.rules.config import RuleSet
from processor.web.models import OpenAlert, OpportunityView
from schemas import OpportunityState


def _at(ms: int | None) -> object:
    return None if ms is None else from_ms(ms)


def opportunity_view(
    state: OpportunityState, rules: RuleSet, now_ms: int, served_by: str
) -> OpportunityView:
    values = state.fields
    pipeline = rules.pipeline_for(values.get(f.PIPELINE))
    holding = evaluate(state, rules, max(now_ms, state.high_water_ms))
    alerts = []
    for rule_id, opened in sorted(state.open_alerts.items(), key=lambda item: item[1]):
        finding = holding.get(rule_id)
        alerts.append(OpenAlert(
            alert_id=alert_id(state.opportunity_id, rule_id, opened),
            rule_id=rule_id,
            severity=pipeline.severity_of(rule_id),
            opened_at=from_ms(opened),
            title=finding.title if finding else None,
            message=finding.message if finding else None,
            fix=finding.fix if finding else None,
        ))
    return OpportunityView.model_validate({
        "opportunity_id": state.opportunity_id,
        "pipeline": pipeline.id,
        "stage": pipeline.canonical_stage(values.get(f.STAGE)),
        "fields": {k: v for k, v in values.items() if not k.startswith("_")},
        "deleted": bool(values.get(f.DELETED)),
        "merged_into": state.merged_into,
        "needs_resync": state.needs_resync,
        "created_at": _at(state.created_ms),
        "stage_entered_at": _at(state.stage_entered_ms),
        "last_activity_at": _at(state.last_activity_ms),
        "updated_at": _at(state.high_water_ms or None),
        "close_date_pushes": state.close_pushes,
        "close_date_slip_days": state.close_slip_days,
        "engaged_contacts": max(len(state.contacts), values.get(f.CONTACT_COUNT) or 0),
        "next_sweep_at": _at(state.next_due_ms),
        "open_alerts": alerts,
        "served_by": served_by,
    })
