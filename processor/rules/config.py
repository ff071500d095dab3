"""The rules file: pipelines, ordered stages, gates, thresholds, versioned.

Loaded once and validated strictly: a RevOps engineer edits this file by hand,
so every error names the file, the key path and what is wrong, and an unknown
key is an error rather than a silently ignored typo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from processor.core import fields as f
from processor.core.clock import Days
from processor.rules.junk import JunkDetector
from schemas.alerts import Severity

ForecastCategory = Literal["Pipeline", "Best Case", "Commit", "Closed", "Omitted"]
FORECAST_CATEGORIES: tuple[str, ...] = ("Pipeline", "Best Case", "Commit", "Closed", "Omitted")

RULE_IDS: tuple[str, ...] = (
    "stage_gate_missing_fields",
    "stage_gate_junk_values",
    "stale_no_activity",
    "stale_in_stage",
    "close_date_past",
    "close_date_slipping",
    "next_meeting_missing",
    "forecast_category_mismatch",
    "amount_invalid",
    "next_step_missing",
    "single_threaded",
    "parked_close_date",
    "stage_skipped",
    "stage_regressed",
    "stale_close_out",
    "resync_required",
    "unknown_stage",
)

DEFAULT_SEVERITY: dict[str, Severity] = {
    "stage_gate_missing_fields": "high",
    "stage_gate_junk_values": "high",
    "stale_no_activity": "medium",
    "stale_in_stage": "medium",
    "close_date_past": "high",
    "close_date_slipping": "medium",
    "next_meeting_missing": "medium",
    "forecast_category_mismatch": "high",
    "amount_invalid": "high",
    "next_step_missing": "low",
    "single_threaded": "medium",
    "parked_close_date": "low",
    "stage_skipped": "info",
    "stage_regressed": "info",
    "stale_close_out": "medium",
    "resync_required": "high",
    "unknown_stage": "medium",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JunkPolicy(_Strict):
    """Filler that reps type to get past a required field."""

    values: list[str] = Field(
        default_factory=lambda: [
            "tbd", "tbc", "n/a", "na", "none", "unknown", "-", ".", "..", "?", "x", "xx",
            "asdf", "test", "todo", "pending", "later", "placeholder", "null", "nil", "0",
        ]
    )
    patterns: list[str] = Field(
        default_factory=lambda: [r"^(.)\1{2,}$", r"^[\W_]+$", r"^(asdf|qwer|zxcv|jkl)\w*$"],
        description="Regular expressions matched case-insensitively against the whole value.",
    )
    placeholder_dates: list[date] = Field(
        default_factory=lambda: [date(2099, 12, 31), date(9999, 12, 31), date(1900, 1, 1),
                                 date(1970, 1, 1), date(2100, 1, 1)]
    )
    min_length: int = Field(
        default=2, ge=0, description="Text shorter than this counts as filler."
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
        return patterns


class Stage(_Strict):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(
        default_factory=list, description="Other spellings in the CRM (HubSpot stage ids...)."
    )
    requires: list[str] = Field(
        default_factory=list, description="Fields required to enter this stage (entry criteria)."
    )
    forecast_category: ForecastCategory = "Pipeline"
    allowed_forecast_categories: list[ForecastCategory] | None = Field(
        default=None,
        description="Categories a rep may set in this stage; default: this stage's category "
        "and any more conservative one.",
    )
    stale_after_days: int | None = Field(default=None, gt=0)
    max_days_in_stage: int | None = Field(default=None, gt=0)
    closed: bool = False
    won: bool = False

    @model_validator(mode="after")
    def _won_is_closed(self) -> Stage:
        if self.won and not self.closed:
            raise ValueError("a won stage must also be closed (set closed: true)")
        return self


class CloseDateSlip(_Strict):
    max_pushes: int = Field(default=2, ge=0, description="Alert when pushed more often than this.")
    max_days: int = Field(default=45, ge=0, description="Alert when pushed by more days in all.")


class SingleThreaded(_Strict):
    min_amount: float = Field(default=100_000, ge=0)
    min_contacts: int = Field(default=2, ge=1)


class CloseOut(_Strict):
    no_activity_days: int = Field(default=60, gt=0)
    recommended_stage: str | None = Field(
        default=None, description="Default: the pipeline's first closed, not won stage."
    )


class Thresholds(_Strict):
    close_date_slip: CloseDateSlip = CloseDateSlip()
    parked_close_date_days: int = Field(default=270, gt=0)
    single_threaded: SingleThreaded = SingleThreaded()
    next_meeting_required_from: str | None = None
    next_step_required_from: str | None = None
    amount_required_from: str | None = None
    close_out: CloseOut = CloseOut()
    default_stale_after_days: int | None = Field(default=21, gt=0)


class Pipeline(_Strict):
    id: str = Field(min_length=1)
    name: str | None = None
    match: list[str] = Field(
        default_factory=list, description="Values of the opportunity's pipeline field."
    )
    default: bool = False
    cumulative_requirements: bool = Field(
        default=True, description="A stage also requires what every earlier stage requires."
    )
    stages: list[Stage] = Field(min_length=1)
    thresholds: Thresholds = Thresholds()
    severity: dict[str, Severity] = Field(default_factory=dict)
    disabled_rules: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Pipeline:
        seen: dict[str, str] = {}
        for stage in self.stages:
            for spelling in (stage.name, *stage.aliases):
                key = spelling.casefold()
                if key in seen and seen[key] != stage.name:
                    raise ValueError(
                        f"stage spelling {spelling!r} belongs to both {seen[key]!r} and "
                        f"{stage.name!r}"
                    )
                seen[key] = stage.name
        names = {s.name for s in self.stages}
        t = self.thresholds
        for key, value in (
            ("thresholds.next_meeting_required_from", t.next_meeting_required_from),
            ("thresholds.next_step_required_from", t.next_step_required_from),
            ("thresholds.amount_required_from", t.amount_required_from),
            ("thresholds.close_out.recommended_stage", t.close_out.recommended_stage),
        ):
            if value is not None and value not in names:
                raise ValueError(f"{key}: {value!r} is not a stage of this pipeline")
        for rule in (*self.severity, *self.disabled_rules):
            if rule not in RULE_IDS:
                raise ValueError(f"unknown rule id {rule!r}; known: {', '.join(RULE_IDS)}")
        if not any(s.closed and not s.won for s in self.stages) and (
            t.close_out.recommended_stage is None
        ):
            raise ValueError("no closed, not won stage to recommend on close-out")
        return self

    # Derived lookups, computed once: the core consults them per event.
    @cached_property
    def stage_index(self) -> dict[str, int]:
        index: dict[str, int] = {}
        for position, stage in enumerate(self.stages):
            index[stage.name.casefold()] = position
            for alias in stage.aliases:
                index[alias.casefold()] = position
        return index

    def stage_position(self, raw_stage: str | None) -> int | None:
        if raw_stage is None:
            return None
        return self.stage_index.get(raw_stage.casefold())

    @cached_property
    def open_positions(self) -> list[int]:
        return [i for i, s in enumerate(self.stages) if not s.closed]

    @cached_property
    def required_by_position(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        acc: list[str] = []
        for stage in self.stages:
            if self.cumulative_requirements and not stage.closed:
                acc.extend(x for x in stage.requires if x not in acc)
                out.append(tuple(acc))
            else:
                out.append(tuple(stage.requires))
        return out

    @cached_property
    def rule_start(self) -> dict[str, int | None]:
        """Stage position from which each stage-bound rule applies."""
        t = self.thresholds
        return {
            "next_meeting_missing": self.position_of(t.next_meeting_required_from),
            "next_step_missing": self.position_of(t.next_step_required_from),
            "amount_invalid": self.position_of(t.amount_required_from),
        }

    def canonical_stage(self, raw_stage: str | None) -> str | None:
        """The rules file's name for a CRM stage spelling (unknown ones as is)."""
        position = self.stage_position(raw_stage)
        return raw_stage if position is None else self.stages[position].name

    def position_of(self, stage_name: str | None) -> int | None:
        return None if stage_name is None else self.stage_index.get(stage_name.casefold())

    @cached_property
    def close_out_stage(self) -> str:
        if self.thresholds.close_out.recommended_stage:
            return self.thresholds.close_out.recommended_stage
        return next(s.name for s in self.stages if s.closed and not s.won)

    def severity_of(self, rule_id: str) -> Severity:
        return self.severity.get(rule_id, DEFAULT_SEVERITY[rule_id])

    def enabled(self, rule_id: str) -> bool:
        return rule_id not in self.disabled_rules


class RuleSet(_Strict):
    version: str = Field(min_length=1, description="Stamped on every alert.")
    timezone: str = Field(
        default="UTC",
        description="IANA zone of the team's calendar: when a close, meeting or next-step "
        "date has passed, and which day is today. Moving it shifts those by hours.",
    )
    junk: JunkPolicy = JunkPolicy()
    forecast_category_aliases: dict[str, ForecastCategory] = Field(default_factory=dict)
    pipelines: list[Pipeline] = Field(min_length=1)
    field_mapping: dict[Literal["salesforce", "hubspot", "generic", "bulk"], dict[str, str]] = (
        Field(default_factory=dict)
    )
    owner_managers: dict[str, str] = Field(
        default_factory=dict,
        description="CRM owner id -> manager id, for deals whose manager field is empty: "
        "Salesforce change events never carry a formula or a lookup through the owner.",
    )

    @model_validator(mode="after")
    def _check(self) -> RuleSet:
        ids = [p.id for p in self.pipelines]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"pipeline ids must be unique; repeated: {sorted(dupes)}")
        defaults = [p.id for p in self.pipelines if p.default]
        if len(defaults) > 1:
            raise ValueError(f"only one pipeline may be the default; found {defaults}")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            Days(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             "'America/New_York', or 'UTC')") from None
        return value

    @cached_property
    def days(self) -> Days:
        return Days(self.timezone)

    @cached_property
    def _pipeline_by_match(self) -> dict[str, Pipeline]:
        out: dict[str, Pipeline] = {}
        for pipeline in self.pipelines:
            out[pipeline.id.casefold()] = pipeline
            for value in pipeline.match:
                out[value.casefold()] = pipeline
        return out

    @cached_property
    def default_pipeline(self) -> Pipeline:
        return next((p for p in self.pipelines if p.default), self.pipelines[0])

    def manager_of(self, values: Mapping[str, Any]) -> str | None:
        """The deal's manager: its own field, else the owner's in ``owner_managers``."""
        manager = values.get(f.MANAGER_ID)
        if manager:
            return str(manager)
        owner = values.get(f.OWNER_ID)
        return self.owner_managers.get(owner) if isinstance(owner, str) else None

    def pipeline_for(self, value: str | None) -> Pipeline:
        if value is None:
            return self.default_pipeline
        return self._pipeline_by_match.get(value.casefold(), self.default_pipeline)

    @cached_property
    def _category_lookup(self) -> dict[str, str]:
        lookup = {c.casefold(): c for c in FORECAST_CATEGORIES}
        lookup.update({k.casefold(): v for k, v in self.forecast_category_aliases.items()})
        return lookup

    @cached_property
    def junk_detector(self) -> JunkDetector:
        return JunkDetector(
            self.junk.values,
            self.junk.patterns,
            [d.isoformat() for d in self.junk.placeholder_dates],
            self.junk.min_length,
        )

    def standard_category(self, raw: str | None) -> str | None:
        """Maps a CRM's forecast category spelling onto the five standard ones."""
        if raw is None:
            return None
        return self._category_lookup.get(raw.casefold())


class RulesError(Exception):
    """A rules file could not be loaded; ``str()`` is meant for a human."""


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """Turns pydantic's location into a key path a person can find in YAML,
    using a pipeline's or stage's name instead of a bare list index."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and 0 <= item < len(node):
            entry = node[item]
            label = entry.get("id") or entry.get("name") if isinstance(entry, Mapping) else None
            parts.append(f"[{item}]" + (f"({label})" if label else ""))
            node = entry
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, Mapping) else None
    return "".join(parts) or "(top level)"


def parse_rules(data: Any, source: str = "<rules>") -> RuleSet:
    if not isinstance(data, Mapping):
        raise RulesError(f"{source}: the rules file must be a mapping at the top level")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {exc.error_count()} problem(s) in the rules file:"]
        for error in exc.errors():
            where = _location(error["loc"], data)
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"  - {where}: {message}")
        raise RulesError("\n".join(lines)) from None


def load_rules(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_rules(data, str(path))


DEFAULT_RULES_PATH = Path(__file__).with_name("default.yaml")


def default_rules() -> RuleSet:
    return load_rules(DEFAULT_RULES_PATH)
