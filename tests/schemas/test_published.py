"""The committed JSON Schemas are the published contract: they must match the
models, and real records must validate against them."""

from __future__ import annotations

import json

import jsonschema
import pytest

from processor.core.engine import Engine
from processor.rules import default_rules
from schemas.publish import PUBLISHED, path_for, render
from tests.builders import HEALTHY_DISCOVERY, change


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_schema_file_is_up_to_date(name: str) -> None:
    path = path_for(name)
    assert path.exists(), f"{path} missing: run python -m schemas.publish"
    assert path.read_text() == render(name), f"{path} is stale: run python -m schemas.publish"


def test_emitted_records_validate_against_published_schemas() -> None:
    engine = Engine(default_rules())
    state, outcome = engine.apply(
        None, change(0, **{**HEALTHY_DISCOVERY, "forecast_category": "Commit"})
    )
    assert outcome.alerts and outcome.history
    alert_schema = json.loads(path_for("alert-record").read_text())
    history_schema = json.loads(path_for("stage-history").read_text())
    state_schema = json.loads(path_for("opportunity-state").read_text())
    for alert in outcome.alerts:
        jsonschema.validate(json.loads(alert.model_dump_json()), alert_schema)
    for record in outcome.history:
        jsonschema.validate(json.loads(record.model_dump_json()), history_schema)
    jsonschema.validate(json.loads(state.model_dump_json()), state_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"record_id": 1}, history_schema)
