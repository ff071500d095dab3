"""Request and response bodies of the HTTP API. The OpenAPI document is
generated from these, so the document and the validation cannot drift."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from schemas import Severity, UtcDatetime

FieldValue = str | int | float | bool | None
MAX_FIELDS = 500


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Body):
    error: str = Field(description="Machine-readable code, e.g. unauthorized, bad_json.")
    message: str = Field(description="What went wrong, for a person.")


class StageGateRequest(_Body):
    opportunity_id: str = Field(
        min_length=1, max_length=255, description="The CRM's id of the opportunity."
    )
    stage: str = Field(
        min_length=1, max_length=255,
        description="The stage the deal is about to enter: the rules file's stage name or "
        "any alias of it (Salesforce StageName, HubSpot dealstage id).",
    )
    fields: dict[str, FieldValue] = Field(
        default_factory=dict,
        max_length=MAX_FIELDS,
        description="The record's field values as they will be saved. Keys are canonical "
        "field names (metrics, champion, next_step, close_date...) or the vendor names the "
        "field mapping knows (Salesforce API names such as Metrics__c or NextStep, HubSpot "
        "property names); other keys are kept as they are. null clears a field. Values "
        "override what the worker has stored for the opportunity.",
    )
    pipeline: str | None = Field(
        default=None, max_length=255,
        description="Pipeline id or CRM pipeline value; default: the pipeline in fields, "
        "then the stored one, then the rules file's default pipeline.",
    )


class GateField(_Body):
    field: str
    required_by_stage: str = Field(description="The stage whose entry criteria ask for it.")
    stream_rule: str = Field(
        description="The rule the stream raises for it once the move is saved "
        "(stage_gate_missing_fields, stage_gate_junk_values, or a field's own rule such as "
        "amount_invalid)."
    )


class JunkField(GateField):
    value: FieldValue = Field(description="The filler value found.")


class StageGateResult(_Body):
    passed: bool = Field(description="True (HTTP 200) when the move passes the gate.")
    opportunity_id: str
    pipeline: str = Field(description="The pipeline id whose rules were applied.")
    stage: str = Field(description="The rules file's name of the stage (as given if unknown).")
    stage_known: bool = Field(description="False when the stage is not in the pipeline's rules.")
    required_fields: list[str] = Field(description="Every field the stage requires.")
    missing_fields: list[GateField]
    junk_fields: list[JunkField]
    stored_state: Literal["merged", "none", "unavailable"] = Field(
        description="merged: the worker's stored state filled the fields not sent; none: "
        "the opportunity is not known yet; unavailable: its owner could not be asked "
        "(rebalancing), so only the fields sent were checked."
    )
    ruleset_version: str
    message: str = Field(description="One sentence a CRM can show the rep.")


class OpenAlert(_Body):
    alert_id: str
    rule_id: str
    severity: Severity
    opened_at: UtcDatetime
    title: str | None = Field(
        default=None, description="Null when the condition no longer holds at this moment "
        "and waits for the next sweep to be resolved."
    )
    message: str | None = None
    fix: str | None = None


class OpportunityView(_Body):
    opportunity_id: str
    pipeline: str = Field(description="Pipeline id from the rules file.")
    stage: str | None = Field(description="The rules file's stage name (CRM spelling if unknown).")
    fields: dict[str, Any] = Field(description="Current canonical field values.")
    deleted: bool
    merged_into: str | None
    needs_resync: bool = Field(description="The CRM reported a gap in its change stream.")
    created_at: UtcDatetime | None
    stage_entered_at: UtcDatetime | None
    last_activity_at: UtcDatetime | None
    updated_at: UtcDatetime | None = Field(description="Latest event time seen.")
    close_date_pushes: int
    close_date_slip_days: int
    engaged_contacts: int
    next_sweep_at: UtcDatetime | None
    open_alerts: list[OpenAlert]
    served_by: str = Field(description="URL of the worker that owns the opportunity.")


class Health(_Body):
    status: Literal["ok"]


class Readiness(_Body):
    ready: bool


_NOT_BLANK = r"[^ \t\n\r\f\v]"
"""At least one character that is not ASCII white space: the same test in
Python and in the JSON Schema (ECMA) regex dialect, whose ideas of Unicode
white space differ."""

Actor = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_NOT_BLANK)]
MAX_SNOOZE_HOURS = 24 * 180


def _no_default(schema: dict[str, Any]) -> None:
    """An optional key that must not be null: absent, not ``null``, is the default."""
    schema.pop("default", None)


class SnoozeRequest(_Body):
    """Snooze an alert: until an expiry given as a moment or as hours from now
    (exactly one of the two). ``by`` is who asked, as the caller (a CRM, the
    Slack notifier) vouches for it: the API token authenticates the caller,
    not a person."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["until"]}, {"required": ["hours"]}]},
    )

    by: Actor = Field(description="Who snoozes: a CRM user id or an email.")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=_NOT_BLANK)]
    until: UtcDatetime | SkipJsonSchema[None] = Field(
        default=None, description="When the snooze expires.", json_schema_extra=_no_default,
    )
    hours: Annotated[float, Field(gt=0, le=MAX_SNOOZE_HOURS)] | SkipJsonSchema[None] = Field(
        default=None, description="Or: how long from now.", json_schema_extra=_no_default,
    )

    @field_validator("until", "hours", mode="before")
    @classmethod
    def _omitted_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("omit the key instead of sending null")
        return value

    @model_validator(mode="after")
    def _one_expiry(self) -> SnoozeRequest:
        if (self.until is None) == (self.hours is None):
            raise ValueError("give exactly one of until and hours")
        return self

    def expiry(self, now: datetime) -> datetime:
        if self.until is not None:
            return self.until
        assert self.hours is not None
        return now + timedelta(hours=self.hours)


class AckRequest(_Body):
    by: Actor = Field(description="Who acknowledges: a CRM user id or an email.")
