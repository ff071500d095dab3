"""Shared configuration for every published record.

Records are frozen-by-convention value objects that cross a boundary (Kafka,
HTTP, files). They forbid unknown keys so that a producer typo fails loudly
at the edge instead of silently losing data in the warehouse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def _as_utc(value: datetime) -> datetime:
    # Naive datetimes are ambiguous across CRM regions; we treat them as UTC
    # rather than as the worker's local time so results never depend on the host.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    return int(_as_utc(value).timestamp() * 1000)
