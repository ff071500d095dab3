"""Field mapping: vendor field names onto canonical fields, and value coercion.

Defaults cover Salesforce's and HubSpot's standard fields and the usual
MEDDICC custom fields; the rules file may override or extend any of them
(``field_mapping:``), because every CRM org names its custom fields its own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from processor.core import fields as f

SALESFORCE_DEFAULTS: dict[str, str] = {
    "Name": f.NAME,
    "AccountId": "account_id",
    "StageName": f.STAGE,
    "Amount": f.AMOUNT,
    "CurrencyIsoCode": f.CURRENCY,
    "CloseDate": f.CLOSE_DATE,
    "OwnerId": f.OWNER_ID,
    "Owner_Manager_Id__c": f.MANAGER_ID,
    "Pipeline__c": f.PIPELINE,
    "ForecastCategoryName": f.FORECAST_CATEGORY,
    "NextStep": f.NEXT_STEP,
    "Next_Step_Date__c": f.NEXT_STEP_DATE,
    "Next_Meeting_Date__c": f.NEXT_MEETING_DATE,
    "LastActivityDate": f.LAST_ACTIVITY_DATE,
    "Probability": f.PROBABILITY,
    "Engaged_Contacts__c": f.CONTACT_COUNT,
    "Metrics__c": "metrics",
    "Economic_Buyer__c": "economic_buyer",
    "Decision_Criteria__c": "decision_criteria",
    "Decision_Process__c": "decision_process",
    "Paper_Process__c": "paper_process",
    "Identify_Pain__c": "identify_pain",
    "Champion__c": "champion",
    "Competition__c": "competition",
}

HUBSPOT_DEFAULTS: dict[str, str] = {
    "dealname": f.NAME,
    "dealstage": f.STAGE,
    "amount": f.AMOUNT,
    "deal_currency_code": f.CURRENCY,
    "closedate": f.CLOSE_DATE,
    "hubspot_owner_id": f.OWNER_ID,
    "owner_manager_id": f.MANAGER_ID,
    "pipeline": f.PIPELINE,
    "hs_manual_forecast_category": f.FORECAST_CATEGORY,
    "hs_next_step": f.NEXT_STEP,
    "next_step_date": f.NEXT_STEP_DATE,
    "notes_next_activity_date": f.NEXT_MEETING_DATE,
    "notes_last_updated": f.LAST_ACTIVITY_DATE,
    "hs_deal_stage_probability": f.PROBABILITY,
    "num_associated_contacts": f.CONTACT_COUNT,
    "meddicc_metrics": "metrics",
    "meddicc_economic_buyer": "economic_buyer",
    "meddicc_decision_criteria": "decision_criteria",
    "meddicc_decision_process": "decision_process",
    "meddicc_paper_process": "paper_process",
    "meddicc_identify_pain": "identify_pain",
    "meddicc_champion": "champion",
    "meddicc_competition": "competition",
}

GENERIC_DEFAULTS: dict[str, str] = {}
"""Generic events already use canonical names; entries here rename extras."""


class FieldMappings(BaseModel):
    """Vendor field -> canonical field, per source. Unmapped vendor fields are
    kept under their own name so that stage gates can require custom fields
    without a mapping entry."""

    model_config = ConfigDict(extra="forbid")

    salesforce: dict[str, str] = Field(default_factory=lambda: dict(SALESFORCE_DEFAULTS))
    hubspot: dict[str, str] = Field(default_factory=lambda: dict(HUBSPOT_DEFAULTS))
    generic: dict[str, str] = Field(default_factory=lambda: dict(GENERIC_DEFAULTS))
    bulk: dict[str, str] = Field(
        default_factory=dict,
        description="Column -> canonical; bulk exports also accept Salesforce and HubSpot "
        "field names and canonical names without an entry.",
    )

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Mapping[str, str]] | None) -> FieldMappings:
        mappings = cls()
        for source, extra in (overrides or {}).items():
            getattr(mappings, source).update(extra)
        return mappings


class CoercionError(ValueError):
    """A value could not be read as its canonical type; the message names the field."""


def to_iso_date(value: Any, field: str) -> str | None:
    """Accepts ISO dates, ISO datetimes and epoch milliseconds (HubSpot's date
    properties arrive as ms strings); returns ``YYYY-MM-DD``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC).date().isoformat()
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC).date().isoformat()
        if len(text) == 10:
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError:
                pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CoercionError(f"field {field!r}: {value!r} is not a date") from exc
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC)
        return parsed.date().isoformat()
    raise CoercionError(f"field {field!r}: {value!r} is not a date")


def to_float(value: Any, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CoercionError(f"field {field!r}: {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise CoercionError(f"field {field!r}: {value!r} is not a number") from exc


def to_int(value: Any, field: str) -> int | None:
    number = to_float(value, field)
    return None if number is None else int(number)


def coerce(field: str, value: Any) -> Any:
    """Normalizes one canonical field's value by its type; strings are stripped
    and empty strings become None, since CRMs send both for "no value"."""
    if field in f.DATE_FIELDS:
        return to_iso_date(value, field)
    if field in f.NUMBER_FIELDS:
        return to_float(value, field)
    if field in f.INT_FIELDS:
        return to_int(value, field)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def map_fields(
    raw: Mapping[str, Any], mapping: Mapping[str, str], skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Renames and coerces a vendor record's fields; ``skip`` drops envelope keys."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in skip:
            continue
        canonical = mapping.get(key, key)
        out[canonical] = coerce(canonical, value)
    return out
