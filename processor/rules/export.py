"""The rule set as the native core (``native/core``) reads it: JSON.

Lookups that depend on Python's string semantics (``casefold`` of stage
spellings, pipeline match values and category aliases) and on pydantic's
defaults are computed here, once, by the same code the Python engine runs,
so the two engines cannot disagree about what a spelling means.
"""

from __future__ import annotations

from typing import Any

import orjson

from processor.rules.config import RULE_IDS, Pipeline, RuleSet, Stage


def _stage(stage: Stage) -> dict[str, Any]:
    return {
        "name": stage.name,
        "aliases": list(stage.aliases),
        "requires": list(stage.requires),
        "forecast_category": stage.forecast_category,
        "allowed_forecast_categories": (
            None if stage.allowed_forecast_categories is None
            else list(stage.allowed_forecast_categories)
        ),
        "stale_after_days": stage.stale_after_days,
        "max_days_in_stage": stage.max_days_in_stage,
        "closed": stage.closed,
        "won": stage.won,
    }


def _pipeline(pipeline: Pipeline) -> dict[str, Any]:
    t = pipeline.thresholds
    return {
        "id": pipeline.id,
        "stages": [_stage(s) for s in pipeline.stages],
        "stage_index": pipeline.stage_index,
        "required_by_position": [list(r) for r in pipeline.required_by_position],
        "rule_start": pipeline.rule_start,
        "close_out_stage": pipeline.close_out_stage,
        "severity": {rule: pipeline.severity_of(rule) for rule in RULE_IDS},
        "disabled_rules": list(pipeline.disabled_rules),
        "thresholds": {
            "close_date_slip": {"max_pushes": t.close_date_slip.max_pushes,
                                "max_days": t.close_date_slip.max_days},
            "parked_close_date_days": t.parked_close_date_days,
            "single_threaded": {"min_amount": float(t.single_threaded.min_amount),
                                "min_contacts": t.single_threaded.min_contacts},
            "close_out_no_activity_days": t.close_out.no_activity_days,
            "default_stale_after_days": t.default_stale_after_days,
        },
    }


def native_rules(rules: RuleSet) -> bytes:
    """Everything ``Engine`` consults, as the native ``Core(rules_json)`` takes it."""
    pipelines = rules.pipelines
    position = {id(p): i for i, p in enumerate(pipelines)}
    junk = rules.junk
    return orjson.dumps({
        "version": rules.version,
        "timezone": rules.timezone,
        "junk": {
            "values": [v.casefold() for v in junk.values],
            "patterns": list(junk.patterns),
            "placeholder_dates": [d.isoformat() for d in junk.placeholder_dates],
            "min_length": junk.min_length,
        },
        "category_lookup": rules._category_lookup,
        "owner_managers": dict(rules.owner_managers),
        "pipelines": [_pipeline(p) for p in pipelines],
        "pipeline_by_match": {
            key: position[id(p)] for key, p in rules._pipeline_by_match.items()
        },
        "default_pipeline": position[id(rules.default_pipeline)],
    })
