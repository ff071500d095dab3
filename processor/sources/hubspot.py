"""HubSpot webhooks for deals (``deal.*`` subscriptions, and the newer
``object.*`` ones for object type ``0-3``). HubSpot posts a JSON array of
events; ``detect`` splits arrays, so this module sees one event at a time.

Event ids: HubSpot documents ``eventId`` as "not guaranteed to be unique", and
the event id is the dedup key, so a collision would silently drop a real
change. The id therefore adds the portal, the subscription type, the object
and (for property changes) the property: everything a redelivery repeats and
two different events do not share.

A property change for a property no mapping names, an association other
than deal-to-contact, or a removed association is understood but irrelevant:
it yields no change and is counted as ignored (``DecodeResult.ignored``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, NotRequired

from typing_extensions import TypedDict

from processor.sources.base import (
    STRICT,
    Envelope,
    InputError,
    NonEmpty,
    OptionalVendorId,
    VendorId,
    build_change,
    require,
    utc_from_ms,
    values_of,
    violation,
)
from processor.sources.mapping import HUBSPOT_SYSTEM_PROPERTIES, FieldMappings
from schemas.change import ChangeOp, OpportunityChange

SOURCE: Final = "hubspot"
DEAL_OBJECT_TYPE: Final = "0-3"
"""``objectTypeId`` of deals in ``object.*`` subscriptions."""


class DealEvent(TypedDict):
    """The keys this source reads; which of the optional ones an event needs
    depends on its subscription type and is checked by its handler."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    eventId: VendorId
    portalId: VendorId
    occurredAt: int
    subscriptionType: NonEmpty
    objectId: NotRequired[VendorId]
    propertyName: NotRequired[NonEmpty]
    propertyValue: NotRequired[str | int | float | bool | None]
    primaryObjectId: NotRequired[VendorId]
    mergedObjectIds: NotRequired[list[VendorId]]
    newObjectId: NotRequired[OptionalVendorId]
    fromObjectId: NotRequired[VendorId]
    toObjectId: NotRequired[VendorId]
    associationType: NotRequired[NonEmpty]
    associationRemoved: NotRequired[bool]


_EVENT: Final = Envelope(DealEvent)
Handler = Callable[[DealEvent, str, datetime, FieldMappings], list[OpportunityChange]]


def is_hubspot(obj: dict[str, Any]) -> bool:
    return "subscriptionType" in obj


def normalize(event: dict[str, Any], mappings: FieldMappings) -> list[OpportunityChange]:
    action = _deal_action(event)
    valid = _EVENT.check(event)
    handler = _HANDLERS.get(action)
    if handler is None:
        kind = valid["subscriptionType"]
        raise violation("subscriptionType", f"{kind!r} is not a deal event this source reads")
    prefix = f"hs:{valid['portalId']}:{valid['eventId']}:{action}"
    return handler(valid, prefix, utc_from_ms(valid["occurredAt"], "occurredAt"), mappings)


def _deal_action(event: dict[str, Any]) -> str:
    """The action of a deal subscription; other objects are unsupported
    entities rather than schema violations, since the payload is fine."""
    subscription = event.get("subscriptionType")
    if type(subscription) is not str:
        return ""  # the envelope check names the problem
    kind, _, action = subscription.partition(".")
    if kind == "deal":
        return action
    object_type = event.get("objectTypeId")
    if kind == "object" and object_type == DEAL_OBJECT_TYPE and action != "associationChange":
        return action
    what = f"object type {object_type!r}" if kind == "object" else kind
    raise InputError(
        "unsupported_entity",
        f"subscriptionType: {subscription!r} is about {what}, not deals (deal.*, or object.* "
        f"with objectTypeId {DEAL_OBJECT_TYPE!r} except associationChange)",
    )


def _need(event: DealEvent, key: str) -> Any:
    return require(event, key, event["subscriptionType"])


def _property(event: DealEvent, mappings: FieldMappings) -> tuple[dict[str, Any], list[str]]:
    """The one property an event carries, mapped; ({}, []) when unmapped."""
    name = _need(event, "propertyName")
    if "propertyValue" not in event:
        raise violation("propertyValue", f"missing for property {name!r}")
    return values_of(
        {name: event["propertyValue"]},
        mappings.hubspot,
        HUBSPOT_SYSTEM_PROPERTIES,
        where="propertyValue",
    )


def _property_change(
    event: DealEvent, prefix: str, at: datetime, mappings: FieldMappings
) -> list[OpportunityChange]:
    deal: str = _need(event, "objectId")
    fields, nulled = _property(event, mappings)
    if not fields and not nulled:
        return []
    return [
        build_change(
            event_id=f"{prefix}:{deal}:{event['propertyName']}",
            source=SOURCE,
            opportunity_id=deal,
            occurred_at=at,
            op="upsert",
            fields=fields,
            nulled_fields=nulled,
        )
    ]


def _lifecycle(op: ChangeOp) -> Handler:
    """Creation, deletion, restore; a creation may carry one property."""

    def handle(
        event: DealEvent, prefix: str, at: datetime, mappings: FieldMappings
    ) -> list[OpportunityChange]:
        deal: str = _need(event, "objectId")
        fields: dict[str, Any] = {}
        nulled: list[str] = []
        if op == "upsert" and "propertyName" in event:
            fields, nulled = _property(event, mappings)
        return [
            build_change(
                event_id=f"{prefix}:{deal}",
                source=SOURCE,
                opportunity_id=deal,
                occurred_at=at,
                op=op,
                fields=fields,
                nulled_fields=nulled,
            )
        ]

    return handle


def _merge(
    event: DealEvent, prefix: str, at: datetime, mappings: FieldMappings
) -> list[OpportunityChange]:
    """Every deal that stops existing on its own becomes a merge into the
    survivor. HubSpot's deal merge creates a new deal (``newObjectId``), so the
    primary is retired too when it is not the survivor."""
    primary: str = _need(event, "primaryObjectId")
    merged: list[str] = _need(event, "mergedObjectIds")
    survivor = event.get("newObjectId") or primary
    retired = list(dict.fromkeys(i for i in (primary, *merged) if i != survivor))
    return [
        build_change(
            event_id=f"{prefix}:{deal}",
            source=SOURCE,
            opportunity_id=deal,
            occurred_at=at,
            op="merge",
            merged_into=survivor,
        )
        for deal in retired
    ]


def _association(
    event: DealEvent, prefix: str, at: datetime, mappings: FieldMappings
) -> list[OpportunityChange]:
    """A contact associated with a deal is an engaged contact (the
    single-threaded rule counts them); removals are ignored because the state
    keeps the set of contacts ever engaged."""
    kind = _need(event, "associationType")
    if event.get("associationRemoved", False):
        return []
    if kind == "DEAL_TO_CONTACT":
        deal_key, contact_key = "fromObjectId", "toObjectId"
    elif kind == "CONTACT_TO_DEAL":
        deal_key, contact_key = "toObjectId", "fromObjectId"
    else:
        return []
    deal: str = _need(event, deal_key)
    contact: str = _need(event, contact_key)
    return [
        build_change(
            event_id=f"{prefix}:{deal}:{contact}",
            source=SOURCE,
            opportunity_id=deal,
            occurred_at=at,
            op="upsert",
            contact_ids=[contact],
        )
    ]


_HANDLERS: Final[dict[str, Handler]] = {
    "creation": _lifecycle("upsert"),
    "deletion": _lifecycle("delete"),
    "restore": _lifecycle("restore"),
    "propertyChange": _property_change,
    "merge": _merge,
    "associationChange": _association,
}
