"""Writes the JSON Schema files that downstream teams consume.

Run ``python -m schemas.publish`` after changing a model; a test fails when a
committed file is out of date, so the published contract never drifts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .alerts import Alert, AlertRecord, AlertStatus, Resolution
from .change import OpportunityChange
from .commands import CloseOutCommand
from .deadletter import DeadLetter
from .digest import Digest
from .forecast import OverrideLogRecord, OverrideRequest, RollupRecord, RollupRowRecord
from .history import StageHistoryRecord
from .state import OpportunityState

SCHEMA_DIR = Path(__file__).parent

PUBLISHED: dict[str, Any] = {
    "opportunity-change": OpportunityChange,
    "opportunity-state": OpportunityState,
    "alert": Alert,
    "resolution": Resolution,
    "alert-record": AlertRecord,
    "alert-status": AlertStatus,
    "stage-history": StageHistoryRecord,
    "close-out-command": CloseOutCommand,
    "dead-letter": DeadLetter,
    "digest": Digest,
    "rollup": RollupRecord,
    "rollup-row": RollupRowRecord,
    "override-request": OverrideRequest,
    "override-log": OverrideLogRecord,
}


def render(name: str) -> str:
    target = PUBLISHED[name]
    if isinstance(target, type) and issubclass(target, BaseModel):
        schema = target.model_json_schema(mode="serialization")
    else:
        schema = TypeAdapter(target).json_schema(mode="serialization")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"revops-hygiene/{name}.schema.json",
        **schema,
    }
    if "title" not in schema or name == "alert-record":
        schema["title"] = name
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def path_for(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.schema.json"


def main() -> int:
    for name in PUBLISHED:
        path_for(name).write_text(render(name))
        print(f"wrote {path_for(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
