"""Field mapping: vendor field names onto canonical fields, and value coercion.

Defaults cover Salesforce's and HubSpot's standard fields and the usual
MEDDICC custom fields; the rules file may override or extend any of them
(``field_mapping:``), because every CRM org names its custom fields its own way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any, Final

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

CANONICAL_FIELDS: Final = frozenset(
    {
        f.NAME, f.ACCOUNT_NAME, f.STAGE, f.AMOUNT, f.CURRENCY, f.CLOSE_DATE, f.OWNER_ID,
        f.MANAGER_ID, f.PIPELINE, f.FORECAST_CATEGORY, f.NEXT_STEP, f.NEXT_STEP_DATE,
        f.NEXT_MEETING_DATE, f.LAST_ACTIVITY_DATE, f.CONTACT_COUNT, f.PROBABILITY, f.CRM_URL,
        *f.MEDDICC,
    }
)
"""The product's own field names, accepted as bulk-export columns without an entry."""

SALESFORCE_SYSTEM_FIELDS: Final = frozenset(
    {
        "ChangeEventHeader", "Id", "ReplayId", "_ObjectType", "_EventType", "IsDeleted",
        "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp",
        "LastReferencedDate", "LastViewedDate",
    }
)
"""Envelope and audit fields: never opportunity values, even when a mapping
names them, because they change on every save and would make every event look
like a field change (Kafka Connect adds ``Id``, ``ReplayId``, ``_ObjectType``)."""

HUBSPOT_SYSTEM_PROPERTIES: Final = frozenset(
    {
        "hs_object_id", "hs_lastmodifieddate", "createdate", "hs_createdate",
        "hs_updated_by_user_id", "hs_created_by_user_id", "hs_all_owner_ids",
    }
)
"""HubSpot's counterparts of ``SALESFORCE_SYSTEM_FIELDS``."""

BULK_ID_COLUMNS: Final = ("Id", "hs_object_id", "opportunity_id", "id")
"""Where a bulk-export row names its opportunity, in order of preference."""

BULK_MODIFIED_COLUMNS: Final = (
    "SystemModstamp", "LastModifiedDate", "hs_lastmodifieddate", "updated_at", "updatedAt",
)
"""Where a row says when it last changed; that, not the export time, is its event time."""

BULK_DELETED_COLUMNS: Final = ("IsDeleted", "is_deleted", "archived")

BULK_CONTROL_COLUMNS: Final = (
    frozenset(BULK_ID_COLUMNS)
    | frozenset(BULK_MODIFIED_COLUMNS)
    | frozenset(BULK_DELETED_COLUMNS)
    | SALESFORCE_SYSTEM_FIELDS
    | HUBSPOT_SYSTEM_PROPERTIES
)
"""Columns that steer a row (which opportunity, when, deleted) and so are never fields."""


def canonical_names(mappings: FieldMappings) -> frozenset[str]:
    """Every name a canonical field can have: the built-in ones and whatever
    a mapping maps onto (custom fields such as ``account_id``)."""
    names = set(CANONICAL_FIELDS)
    for mapping in (mappings.salesforce, mappings.hubspot, mappings.generic, mappings.bulk):
        names.update(mapping.values())
    return frozenset(names)


class FieldMappings(BaseModel):
    """Vendor field -> canonical field, per source.

    For the vendor sources (Salesforce, HubSpot, bulk exports) the mapping is
    also the allow-list: a vendor field without an entry is dropped, because a
    CDC stream or an export carries dozens of fields no rule reads and every
    one kept would cost state and changelog bytes on every event. A stage gate
    that requires a custom field needs an entry (which may map the field onto
    its own name). Generic events already speak canonical names, so there an
    unmapped field is kept under its own name.

    Treat an instance as immutable once decoding has started: lookups derived
    from it (``bulk_columns``) are computed once and cached.
    """

    model_config = ConfigDict(extra="forbid")

    salesforce: dict[str, str] = Field(default_factory=lambda: dict(SALESFORCE_DEFAULTS))
    hubspot: dict[str, str] = Field(default_factory=lambda: dict(HUBSPOT_DEFAULTS))
    generic: dict[str, str] = Field(default_factory=lambda: dict(GENERIC_DEFAULTS))
    bulk: dict[str, str] = Field(
        default_factory=dict,
        description="Column -> canonical; bulk exports also accept Salesforce and HubSpot "
        "field names and canonical names without an entry.",
    )

    @cached_property
    def bulk_columns(self) -> dict[str, str]:
        """Column -> canonical field for bulk exports, merged once because an
        export row is looked up column by column. Precedence: ``bulk`` entries,
        then Salesforce, then HubSpot names, then canonical names as they are."""
        lookup = {name: name for name in canonical_names(self)}
        lookup.update(self.hubspot)
        lookup.update(self.salesforce)
        lookup.update(self.bulk)
        return lookup

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Mapping[str, str]] | None) -> FieldMappings:
        mappings = cls()
        for source, extra in (overrides or {}).items():
            getattr(mappings, source).update(extra)
        return mappings


class CoercionError(ValueError):
    """A value could not be read as its canonical type; the message names the field."""


EPOCH_DAYS_LIMIT: Final = 100_000
"""Numeric dates below this are days since 1970-01-01, not milliseconds: Salesforce's
Pub/Sub API and Kafka Connect's ``Date`` type send days, HubSpot sends ms. As
milliseconds such a number would fall in the first 100 s of 1970, which no CRM
date does, and 100,000 days reaches the year 2243."""

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _epoch_to_iso_date(number: float, value: Any, field: str) -> str:
    try:
        if -EPOCH_DAYS_LIMIT < number < EPOCH_DAYS_LIMIT:
            return date.fromordinal(_EPOCH_ORDINAL + int(number)).isoformat()
        return datetime.fromtimestamp(number / 1000, tz=UTC).date().isoformat()
    except (OverflowError, OSError, ValueError) as exc:
        raise CoercionError(f"field {field!r}: {value!r} is not a date") from exc


def to_iso_date(value: Any, field: str) -> str | None:
    """Accepts ISO dates, ISO datetimes, epoch milliseconds (HubSpot's date
    properties arrive as ms strings) and epoch days (``EPOCH_DAYS_LIMIT``);
    returns ``YYYY-MM-DD``. Text is tried first: it is by far the common case."""
    kind = type(value)
    if kind is str:
        return _text_to_iso_date(value, field)
    if kind is int or kind is float:
        return _epoch_to_iso_date(value, value, field)
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):  # a str subclass
        return _text_to_iso_date(value, field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch_to_iso_date(value, value, field)
    raise CoercionError(f"field {field!r}: {value!r} is not a date")


def _text_to_iso_date(value: str, field: str) -> str | None:
    text = value.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            date.fromisoformat(text)  # validates; the text is already the ISO form
        except ValueError:
            pass
        else:
            return text
    if not text:
        return None
    if text.isdigit():
        return _epoch_to_iso_date(int(text), value, field)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CoercionError(f"field {field!r}: {value!r} is not a date") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.date().isoformat()


def to_float(value: Any, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise CoercionError(f"field {field!r}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise CoercionError(f"field {field!r}: {value!r} is not a number") from exc
    if not math.isfinite(number):
        # float() reads "nan" and "inf"; no amount or probability is either.
        raise CoercionError(f"field {field!r}: {value!r} is not a number")
    return number


def to_int(value: Any, field: str) -> int | None:
    number = to_float(value, field)
    return None if number is None else int(number)


_COERCERS: Final[dict[str, Callable[[Any, str], Any]]] = {
    **dict.fromkeys(f.DATE_FIELDS, to_iso_date),
    **dict.fromkeys(f.NUMBER_FIELDS, to_float),
    **dict.fromkeys(f.INT_FIELDS, to_int),
}
"""Canonical field -> its coercer, looked up once per value instead of testing
three sets, because this runs for every field of every event."""


def coerce(field: str, value: Any) -> Any:
    """Normalizes one canonical field's value by its type; strings are stripped
    and empty strings become None, since CRMs send both for "no value"."""
    coercer = _COERCERS.get(field)
    if coercer is not None:
        return coercer(value, field)
    if isinstance(value, str):
        return value.strip() or None
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


SCALAR_TYPES: Final = frozenset({str, int, float, bool})


def map_values(
    raw: Mapping[str, Any],
    mapping: Mapping[str, str],
    skip: frozenset[str] = frozenset(),
    *,
    keep_unmapped: bool = False,
    none_is_null: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """Renames, filters and coerces a vendor record's values in one pass and
    splits them into (set fields, cleared field names), because every source
    needs both and "" and None both mean "cleared" in CRMs.

    Unmapped keys are dropped unless ``keep_unmapped`` (see ``FieldMappings``);
    ``skip`` drops system keys even when mapped. ``none_is_null=False`` drops
    None values instead of clearing them: Salesforce's Pub/Sub API sends every
    unchanged field of an update as null, so there only ``nulledFields`` says
    what was cleared. Raises ``CoercionError`` naming the vendor key.
    """
    values: dict[str, Any] = {}
    nulled: list[str] = []
    lookup = mapping.get
    coercer_of = _COERCERS.get
    for key, value in raw.items():
        canonical = lookup(key)
        if canonical is None:
            if not keep_unmapped:
                continue
            canonical = key
        if key in skip:
            continue
        if value is None:
            if none_is_null:
                nulled.append(canonical)
            continue
        kind = type(value)
        if kind not in SCALAR_TYPES:
            raise CoercionError(f"field {key!r}: expected a single value, got {kind.__name__}")
        coercer = coercer_of(canonical)
        if coercer is not None:
            try:  # free in 3.11 unless raised
                value = coercer(value, canonical)
            except CoercionError as exc:
                if key == canonical:
                    raise
                raise CoercionError(f"{key!r}: {exc}") from None
        elif kind is str:
            value = value.strip() or None
        if value is None:
            nulled.append(canonical)
        else:
            values[canonical] = value
    return values, nulled
