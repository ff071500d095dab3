"""The OpenAPI document is a valid 3.1 document built from the models, and
the opportunity view shows the alerts the engine has open under the ids it
published them with."""

from __future__ import annotations

import schemathesis

from processor.core.engine import Engine
from processor.rules import default_rules
from processor.web.models import OpportunityView, StageGateRequest, StageGateResult
from processor.web.openapi import document
from processor.web.opportunity import opportunity_view
from schemas import Alert
from tests.builders import HEALTHY_DISCOVERY, change, ms

RULES = default_rules()


def test_document_loads_and_names_every_operation() -> None:
    doc = document()
    schema = schemathesis.openapi.from_dict(doc)
    operations = {r.ok().definition.raw["operationId"] for r in schema.get_all_operations()}
    assert operations == {"healthz", "readyz", "metrics", "openapi", "checkStageGate",
                          "getOpportunity", "getOwnerQueue", "getAlertStatus", "snoozeAlert",
                          "ackAlert", "submitOverride"}
    assert doc["openapi"] == "3.1.0"
    assert doc["security"] == [{"bearerAuth": []}]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert doc["paths"][path]["get"]["security"] == []


def test_document_schemas_are_the_models_schemas() -> None:
    components = document()["components"]["schemas"]
    ref = "#/components/schemas/{model}"
    for model, mode in ((StageGateRequest, "validation"), (StageGateResult, "serialization"),
                        (OpportunityView, "serialization")):
        generated = model.model_json_schema(ref_template=ref, mode=mode)  # type: ignore[arg-type]
        generated.pop("$defs", None)
        assert components[model.__name__] == generated


def test_opportunity_view_lists_open_alerts_with_their_published_ids() -> None:
    engine = Engine(RULES)
    fields = {**HEALTHY_DISCOVERY, "metrics": "tbd", "next_step": None}
    state, outcome = engine.apply(None, change(0, opp="006V", **fields))
    published = {a.alert_id: a for a in outcome.alerts if isinstance(a, Alert)}
    assert published
    view = opportunity_view(state, RULES, ms(1), "http://worker-1:6066")
    assert {a.alert_id for a in view.open_alerts} == set(published)
    for alert in view.open_alerts:
        assert alert.rule_id == published[alert.alert_id].rule_id
        assert alert.title == published[alert.alert_id].title
    assert view.stage == "Discovery" and view.pipeline == "new_business"
    assert view.fields["metrics"] == "tbd"
    assert view.served_by == "http://worker-1:6066"
    assert not view.deleted


def test_a_deleted_opportunity_shows_as_deleted_without_alerts() -> None:
    engine = Engine(RULES)
    state, _ = engine.apply(None, change(0, opp="006D", **HEALTHY_DISCOVERY))
    state, _ = engine.apply(state, change(1, op="delete", opp="006D"))
    view = opportunity_view(state, RULES, ms(2), "http://w")
    assert view.deleted and view.open_alerts == []
    assert "_deleted" not in view.fields
