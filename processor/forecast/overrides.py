"""Manager overrides: which are refused and why, and the ledger record of
each accepted one.

Refusals (the code starts the dead-letter record's ``error``):

- ``malformed_json``: the bytes are not JSON;
- ``missing_reason``: no ``reason``, or only whitespace;
- ``invalid_override``: anything else the request schema refuses (a period
  that is not like FY2027-Q1, a category that is not one of the five, a
  negative amount, an amount without a currency...);
- ``unknown_manager``: no rollup bucket of that manager exists, i.e. none of
  the opportunities that currently count in a rollup has that manager (and
  no override of theirs stands anywhere);
- ``unknown_period``: the manager has buckets, but none for that period (no
  current opportunity of theirs closes in it and no override of theirs
  stands there);
- ``nothing_to_withdraw``: a withdrawal (``amount: null``) where no override
  stands.

The first three are decided from the request alone, where it enters the
system; the others need the manager's buckets, so they are decided on the
manager's partition, in order with the rollup's own updates.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import ValidationError

from processor.forecast.book import Book
from schemas import ms_to_datetime
from schemas.deadletter import DeadLetterReason
from schemas.forecast import OverrideLogRecord, OverrideRequest, OverrideView

RefusalCode = Literal["malformed_json", "missing_reason", "invalid_override",
                      "unknown_manager", "unknown_period", "nothing_to_withdraw"]


class OverrideRefused(Exception):
    """``str()`` is the dead-letter ``error``: the code, then what to fix."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: RefusalCode = code
        self.message = message

    @property
    def reason(self) -> DeadLetterReason:
        return "malformed_json" if self.code == "malformed_json" else "invalid_override"


def parse_override(raw: bytes) -> OverrideRequest:
    """The request in ``raw``, or OverrideRefused saying why not."""
    return validate_override(load_json(raw))


def load_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OverrideRefused("malformed_json", f"not JSON: {exc}") from None


def validate_override(data: object) -> OverrideRequest:
    if not isinstance(data, dict):
        raise OverrideRefused("invalid_override", "an override is a JSON object")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise OverrideRefused("missing_reason",
                              "an override must say why: 'reason' is missing or blank")
    try:
        request = OverrideRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()[:5])
        raise OverrideRefused("invalid_override", problems) from None
    if request.amount is not None and request.currency is None:
        raise OverrideRefused("invalid_override", "currency: required with an amount")
    return request


def view_of(request: OverrideRequest) -> OverrideView:
    assert request.amount is not None and request.currency is not None
    return OverrideView(override_id=request.override_id, amount=request.amount,
                        currency=request.currency, reason=request.reason,
                        submitted_by=request.submitted_by, submitted_at=request.submitted_at)


def decide(book: Book, request: OverrideRequest, accepted_ms: int) -> OverrideLogRecord:
    """The ledger record of ``request`` against the manager's buckets as they
    stand, or OverrideRefused. Changes nothing: the caller applies
    ``book.set_override`` once the record is safely published."""
    manager, period, category = request.manager_id, request.period, request.category
    bucket = book.bucket(manager, period)
    if bucket is None:
        if not book.has_manager(manager):
            raise OverrideRefused(
                "unknown_manager",
                f"no rollup exists for manager {manager!r}: no current opportunity with a "
                "close date and a forecast category has that manager")
        raise OverrideRefused(
            "unknown_period",
            f"manager {manager!r} has no rollup for {period}: none of their current "
            "opportunities closes in it")
    previous = bucket.overrides.get(category)
    if request.amount is None:
        if previous is None:
            raise OverrideRefused("nothing_to_withdraw",
                                  f"no override of {category} in {period} stands")
        currency = previous.currency
    else:
        assert request.currency is not None
        currency = request.currency
    system = bucket.system_amount(category, currency)
    return OverrideLogRecord(
        override_id=request.override_id, manager_id=manager, period=period, category=category,
        submitted_by=request.submitted_by, submitted_at=request.submitted_at,
        accepted_at=ms_to_datetime(accepted_ms), reason=request.reason,
        action="set" if request.amount is not None else "withdrawn",
        currency=currency,
        value_before=previous.amount if previous is not None else system,
        value_before_currency=previous.currency if previous is not None else currency,
        value_before_source="override" if previous is not None else "system",
        value_after=request.amount if request.amount is not None else system,
        value_after_source="override" if request.amount is not None else "system",
        system_total=system,
        system_totals=bucket.totals(category, ("open", "won", "lost")),
        previous_override=previous,
    )
