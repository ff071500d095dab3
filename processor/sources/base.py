"""What every source normalizer shares: the error and result types, envelope
validation, the fast construction of ``OpportunityChange`` and value helpers.

Decoding is on the hot path (about 100k events/s through the whole core on
one core), which shapes two choices:

- Vendor envelopes are validated by pydantic against ``TypedDict`` schemas
  (``Envelope``): pydantic-core checks them in Rust, about twice as fast as the
  same checks written in Python, and its error locations name the bad key.
  Only the keys a normalizer reads are declared; the rest are not copied.
- The record is then built without a second validation (``build_change``),
  which is safe because the envelope check and the value helpers have already
  established every type that validation would check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Generic, TypeVar

from pydantic import (
    ConfigDict,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from processor.sources.mapping import CoercionError, FieldMappings, map_values
from schemas.change import ChangeOp, OpportunityChange
from schemas.deadletter import DeadLetterReason

NonEmpty = Annotated[str, StringConstraints(min_length=1)]

STRICT: Final = ConfigDict(strict=True)
"""For envelope schemas: no silent "123" -> 123 coercion of vendor keys."""


class InputError(Exception):
    """An input that cannot become a change; ``str()`` names the offending key
    so that the dead-letter record says what to fix."""

    def __init__(self, reason: DeadLetterReason, message: str) -> None:
        super().__init__(message)
        self.reason: DeadLetterReason = reason


def violation(where: str, problem: str) -> InputError:
    """A schema violation at a key path, worded the same way by every source."""
    return InputError("schema_violation", f"{where}: {problem}")


@dataclass(slots=True)
class Reject:
    """An input to dead-letter: the reason, a message naming the key, and the
    bytes to re-drive once the cause is fixed."""

    reason: DeadLetterReason
    error: str
    raw: bytes


@dataclass(slots=True)
class DecodeResult:
    """What one message decoded into.

    ``ignored`` counts events that were understood and deliberately produce no
    change (a HubSpot property nobody maps, a deal-to-company association, a
    deleted task): counted rather than dead-lettered because they are not
    errors, and counted rather than dropped so that nothing vanishes unseen.
    """

    changes: list[OpportunityChange] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ignored: int = 0


Normalizer = Callable[[dict[str, Any], FieldMappings], list[OpportunityChange]]
"""One vendor event in, its changes out (empty: understood and ignored).
Raises ``InputError`` for anything that must be dead-lettered."""

T = TypeVar("T")


class Envelope(Generic[T]):
    """A vendor envelope schema (a ``TypedDict``) and its validator, which
    turns pydantic's errors into one schema violation naming every bad key."""

    __slots__ = ("_validate",)

    def __init__(self, schema: type[T]) -> None:
        self._validate: Callable[[Any], T] = TypeAdapter(schema).validate_python

    def check(self, obj: Any) -> T:
        try:
            return self._validate(obj)
        except ValidationError as exc:
            raise InputError("schema_violation", describe(exc)) from None


def describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = _key_path(error["loc"])
        message = error["msg"]
        if error["type"] == "value_error":  # our own validator's words say it all
            message = message.removeprefix("Value error, ")
        elif error["type"] != "missing":
            message += f", got {_describe(error['input'])}"
        problems.append(f"{where or '(event)'}: {message}")
    return "; ".join(problems)


def _key_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as the key path a person would write."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            path += " (the key)"
        elif part.replace("_", "").isalnum():
            path += f".{part}"
        else:
            path += f"[{part!r}]"
    return path.lstrip(".")


_ALL_FIELDS: Final = frozenset(OpportunityChange.model_fields)


def build_change(
    *,
    event_id: str,
    source: str,
    opportunity_id: str,
    occurred_at: datetime,
    op: ChangeOp,
    sequence: int = 0,
    fields: dict[str, Any] | None = None,
    nulled_fields: list[str] | None = None,
    full: bool = False,
    contact_ids: list[str] | None = None,
    merged_into: str | None = None,
    gap_type: str | None = None,
) -> OpportunityChange:
    """Builds the record without validating it again, at about a third of the
    cost of ``OpportunityChange(...)`` (``model_construct`` is slower still).

    Callers guarantee what validation would: non-empty string ids
    (``VendorId``, ``as_id``) and an aware UTC ``occurred_at`` (``utc_from_ms``,
    ``read_timestamp``).
    ``tests/sources`` checks that the result equals a validated record.
    """
    change = _new(OpportunityChange)
    _set(
        change,
        "__dict__",
        {
            "event_id": event_id,
            "source": source,
            "opportunity_id": opportunity_id,
            "occurred_at": occurred_at,
            "sequence": sequence,
            "op": op,
            "fields": {} if fields is None else fields,
            "nulled_fields": [] if nulled_fields is None else nulled_fields,
            "full": full,
            "contact_ids": [] if contact_ids is None else contact_ids,
            "merged_into": merged_into,
            "gap_type": gap_type,
        },
    )
    _set(change, "__pydantic_fields_set__", set(_ALL_FIELDS))
    _set(change, "__pydantic_extra__", None)
    _set(change, "__pydantic_private__", None)
    return change


_new = OpportunityChange.__new__
_set = object.__setattr__


# ---- values -----------------------------------------------------------------

def as_id(value: Any, where: str) -> str:
    """Vendor ids as the non-empty strings the records use."""
    try:
        return _vendor_id(value)
    except ValueError as exc:
        raise violation(where, str(exc)) from None


def require(event: Mapping[str, Any], key: str, needed_for: str) -> Any:
    """A key the envelope schema declares optional (an event type's own keys)
    that this event's type needs."""
    value = event.get(key)
    if value is None:
        raise violation(key, f"required for {needed_for}")
    return value


def utc_from_ms(ms: int, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise violation(where, f"{ms!r} is not a valid epoch-milliseconds time") from None


def read_timestamp(value: Any) -> datetime:
    """An event time from ISO-8601 text or epoch milliseconds (number or digit
    string), because exports mix both. Naive times are taken as UTC, as
    ``schemas._base`` does, so results never depend on the host. Raises
    ValueError saying what is wrong with the value."""
    kind = type(value)
    if kind is str and value.strip().isdigit():
        value, kind = int(value), int
    if kind is int:
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{value!r} is not a valid epoch-milliseconds time") from None
    if kind is datetime:
        moment: datetime = value
    elif kind is str:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    else:
        raise ValueError(f"expected an ISO-8601 timestamp, got {_describe(value)}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_timestamp(value: Any, where: str) -> datetime:
    """``read_timestamp`` for a value at a key path."""
    try:
        return read_timestamp(value)
    except ValueError as exc:
        raise violation(where, str(exc)) from None


def _vendor_id(value: Any) -> str:
    kind = type(value)
    if (kind is str and value.strip()) or kind is int:
        return str(value).strip()
    raise ValueError(f"expected an id (string or integer), got {_describe(value)}")


def _optional_vendor_id(value: Any) -> str | None:
    return None if value is None else _vendor_id(value)


VendorId = Annotated[str, PlainValidator(_vendor_id)]
"""An identifier that may arrive as a number (HubSpot) or a string, as the
non-empty string the records use."""

OptionalVendorId = Annotated[str | None, PlainValidator(_optional_vendor_id)]

Timestamp = Annotated[datetime, PlainValidator(read_timestamp)]
"""ISO-8601 text or epoch milliseconds, as an aware UTC datetime (``read_timestamp``)."""


def values_of(
    raw: Mapping[str, Any],
    mapping: Mapping[str, str],
    skip: frozenset[str] = frozenset(),
    *,
    where: str = "",
    keep_unmapped: bool = False,
    none_is_null: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """``mapping.map_values`` with a coercion failure turned into a schema
    violation at the key path, so every source dead-letters bad values alike."""
    try:
        return map_values(
            raw, mapping, skip, keep_unmapped=keep_unmapped, none_is_null=none_is_null
        )
    except CoercionError as exc:
        raise InputError("schema_violation", f"{where}: {exc}" if where else str(exc)) from None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
