"""Vendor spellings of canonical changes: Salesforce CDC, HubSpot webhooks and
generic (Pipedrive-style) change events.

Field names come from inverting the processor's own field mappings (with the
rules file's overrides), so whatever the normalizers read back is exactly
what the story said; a canonical field a vendor mapping does not name is not
rendered for that vendor, as the vendor normalizers would drop it anyway.
Every id and counter is derived from the deal's index and the change's
position in its story, never from a shared counter, so that deals can be
rendered in any interleaving and still produce the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from typing import Any, Final, Protocol

import orjson

from processor.core import fields as f
from processor.rules.config import Pipeline, RuleSet
from processor.sources.mapping import FieldMappings

from .story import EPOCH_ORDINAL, Change, DealStory, VendorFormat, ordinal_of

VENDOR_FORMATS: Final[tuple[VendorFormat, ...]] = ("salesforce", "hubspot", "generic")

_PER_DEAL: Final = 1 << 16
"""Room for per-deal counters (changes x parts) in ids derived from the deal index."""


# ---- ids ----------------------------------------------------------------------


class Ids(Protocol):
    """A vendor's id space: the n-th opportunity, user, contact, account."""

    def opportunity(self, n: int) -> str: ...
    def user(self, n: int) -> str: ...
    def contact(self, n: int) -> str: ...
    def account(self, n: int) -> str: ...


_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_SCRAMBLE: Final = 2_654_435_761
"""Odd and not a multiple of 31, so coprime with 62**k: scrambling by it is a
bijection, which keeps ids unique while making them look issued, not counted."""


_PAIRS: Final = [a + b for a in _BASE62 for b in _BASE62]
_CAPS: Final = str.maketrans({c: "1" if "A" <= c <= "Z" else "0" for c in _BASE62})


def salesforce_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce id: key prefix, pod, a scrambled counter and
    the real case-safe checksum suffix (which tools verify)."""
    number = (n * _SCRAMBLE) % 62**10
    pairs = []
    for _ in range(5):
        number, rest = divmod(number, 3844)
        pairs.append(_PAIRS[rest])
    body = prefix + "8d" + "".join(reversed(pairs))
    caps = body.translate(_CAPS)
    return body + "".join(
        _SUFFIX_CHARS[int(caps[i : i + 5][::-1], 2)] for i in (0, 5, 10)
    )


class SalesforceIds:
    def opportunity(self, n: int) -> str:
        return salesforce_id("006", n)

    def user(self, n: int) -> str:
        return salesforce_id("005", n)

    def contact(self, n: int) -> str:
        return salesforce_id("003", n)

    def account(self, n: int) -> str:
        return salesforce_id("001", n)


def _scrambled(base: int, n: int, modulus: int) -> str:
    return str(base + (n * _SCRAMBLE) % modulus)


class HubSpotIds:
    """Numeric ids the way a HubSpot portal issues them (10-11 digit deals)."""

    def opportunity(self, n: int) -> str:
        return _scrambled(14_000_000_000, n, 9_999_999_967)

    def user(self, n: int) -> str:
        return _scrambled(51_000_000, n, 8_999_999)

    def contact(self, n: int) -> str:
        return _scrambled(101_000_000_000, n, 99_999_999_977)

    def account(self, n: int) -> str:
        return _scrambled(9_000_000_000, n, 999_999_937)


class PipedriveIds:
    """Small sequential integers, as Pipedrive issues them."""

    def opportunity(self, n: int) -> str:
        return str(10_000 + n)

    def user(self, n: int) -> str:
        return str(12_000_000 + n)

    def contact(self, n: int) -> str:
        return str(500_000 + n)

    def account(self, n: int) -> str:
        return str(70_000 + n)


def ids_for(fmt: VendorFormat) -> Ids:
    if fmt == "salesforce":
        return SalesforceIds()
    if fmt == "hubspot":
        return HubSpotIds()
    return PipedriveIds()


# ---- shared helpers -----------------------------------------------------------


class Renderer(Protocol):
    def render(self, deal: DealStory, seq: int, change: Change) -> list[bytes]:
        """The messages one canonical change becomes (usually one)."""
        ...


def _inverse(mapping: Mapping[str, str]) -> dict[str, str]:
    """canonical -> vendor name; the first vendor name wins when several map
    onto one canonical field."""
    out: dict[str, str] = {}
    for vendor, canonical in mapping.items():
        out.setdefault(canonical, vendor)
    return out


def _mappings(rules: RuleSet) -> FieldMappings:
    return FieldMappings.with_overrides({str(k): v for k, v in rules.field_mapping.items()})


def _pipeline_value(pipeline: Pipeline, rules: RuleSet, *, lower: bool) -> str:
    """The spelling a vendor uses for a pipeline: the first ``match`` value
    in the vendor's style (HubSpot: lowercase ids; others: labels) that
    resolves back to the pipeline, else its id."""
    for value in pipeline.match:
        styled = (value == value.lower() and " " not in value) == lower
        if styled and rules.pipeline_for(value).id == pipeline.id:
            return value
    return pipeline.id


def _hubspot_style(alias: str) -> bool:
    """HubSpot stage ids are lowercase words run together (``contractsent``)."""
    return alias.isalnum() and alias.islower()


def _ms(moment: float) -> int:
    return round(moment * 1000)


@lru_cache(maxsize=4096)
def _day_prefix(days: int) -> str:
    return date.fromordinal(EPOCH_ORDINAL + days).isoformat() + "T"


def _iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, as CRMs write them (``...T12:00:00.000Z``);
    by arithmetic, because it is written for every event."""
    days, rest = divmod(ms, 86_400_000)
    seconds, milli = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{_day_prefix(days)}{hours:02d}:{minutes:02d}:{seconds:02d}.{milli:03d}Z"


_MASK128: Final = (1 << 128) - 1


def _key(deal: int, seq: int, part: int = 0) -> str:
    """32 hex digits that look random and are unique per (deal, change, part):
    each step is injective for counters below 2**16 (odd multipliers are
    bijections modulo 2**128)."""
    x = ((deal * 0x9E3779B97F4A7C15 + seq) * 0x1_0000 + part) * 0xBF58476D1CE4E5B9 & _MASK128
    return f"{x * 0x94D049BB133111EB & _MASK128:032x}"


# ---- Salesforce ---------------------------------------------------------------

_ORIGINS: Final = (
    "com/salesforce/api/soap/58.0;client=SfdcInternalAPI/",
    "com/salesforce/api/soap/58.0;client=SfdcInternalAPI/",
    "com/salesforce/api/rest/58.0;client=Outreach",
    "com/salesforce/api/soap/58.0;client=Gong",
)
_SF_DROP: Final = frozenset({f.ACCOUNT_NAME})
"""Salesforce carries the account as ``AccountId``, never its name."""


class SalesforceRenderer:
    """``OpportunityChangeEvent`` for deal edits; ``TaskChangeEvent`` (calls,
    emails) and ``EventChangeEvent`` (meetings) for touches, one per contact,
    because an activity names a single ``WhoId``."""

    def __init__(self, rules: RuleSet) -> None:
        mappings = _mappings(rules)
        self._names = _inverse(mappings.salesforce)
        self._pipelines: dict[str, str | None] = {}
        self._aliases: dict[tuple[str, str], str] = {}
        for pipeline in rules.pipelines:
            value = None if pipeline.default else _pipeline_value(pipeline, rules, lower=False)
            self._pipelines[pipeline.id] = value
            for stage in pipeline.stages:
                org = [a for a in stage.aliases if not _hubspot_style(a)]
                if org:
                    self._aliases[(pipeline.id, stage.name)] = org[0]

    def _stage(self, deal: DealStory, name: str) -> str:
        """Mostly the canonical name; a fifth of the orgs keep Salesforce's
        older labels (``Qualification``, ``Negotiation/Review``)."""
        if deal.flavor % 5 == 0:
            return self._aliases.get((deal.pipeline.id, name), name)
        return name

    def render(self, deal: DealStory, seq: int, change: Change) -> list[bytes]:
        ms = _ms(change.at)
        if change.op == "activity":
            return [
                self._activity(deal, seq, part, change, contact, ms)
                for part, contact in enumerate(change.contact_ids)
            ]
        body: dict[str, Any] = {}
        if change.op == "delete":
            kind = "DELETE"
        else:
            kind = "CREATE" if change.op == "create" else "UPDATE"
            body = self._fields(deal, change.fields)
        changed = [] if kind != "UPDATE" else [*body, "LastModifiedDate"]
        header = self._header("Opportunity", deal, seq, 0, kind, ms, changed)
        event: dict[str, Any] = {"ChangeEventHeader": header}
        event.update(body)
        stamp = _iso_ms(ms)
        if kind == "CREATE":
            event["CreatedDate"] = stamp
            event["CreatedById"] = deal.owner_id
        if kind != "DELETE":
            event["LastModifiedDate"] = stamp
        return [orjson.dumps(event)]

    def _header(
        self,
        entity: str,
        deal: DealStory,
        seq: int,
        part: int,
        kind: str,
        ms: int,
        changed: list[str],
        record_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            "entityName": entity,
            "recordIds": [record_id or deal.opportunity_id],
            "changeType": kind,
            "changeOrigin": _ORIGINS[(deal.flavor + seq) % len(_ORIGINS)],
            "transactionKey": _dashed(_key(deal.index, seq, part)),
            "sequenceNumber": 1,
            "commitTimestamp": ms,
            "commitNumber": ms * 1000 + (deal.index * 7 + seq + part) % 1000,
            "commitUser": deal.owner_id,
            "changedFields": changed,
            "nulledFields": [],
            "diffFields": [],
        }

    def _fields(self, deal: DealStory, values: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            vendor = self._names.get(name)
            if vendor is None or name in _SF_DROP:
                continue
            if name == f.STAGE:
                value = self._stage(deal, value)
            elif name == f.PIPELINE:
                value = self._pipelines[value]
                if value is None:
                    continue
            out[vendor] = value
        return out

    def _activity(
        self, deal: DealStory, seq: int, part: int, change: Change, contact: str, ms: int
    ) -> bytes:
        meeting = change.kind == "meeting"
        entity, prefix = ("Event", "00U") if meeting else ("Task", "00T")
        record = salesforce_id(prefix, deal.index * _PER_DEAL + seq * 8 + part)
        stamp = _iso_ms(ms)
        day = stamp[:10]
        event: dict[str, Any] = {
            "ChangeEventHeader": self._header(entity, deal, seq, part + 1, "CREATE", ms, [],
                                              record),
            "WhatId": deal.opportunity_id,
            "WhoId": contact,
            "Subject": change.subject,
            "ActivityDate": day,
            "OwnerId": deal.owner_id,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
        }
        if meeting:
            event.update(StartDateTime=stamp, EndDateTime=_iso_ms(ms + 1_800_000),
                         DurationInMinutes=30, Type="Meeting")
        else:
            subtype = "Call" if change.kind == "call" else "Email"
            event.update(Status="Completed", Priority="Normal", TaskSubtype=subtype, Type=subtype)
        return orjson.dumps(event)


def _dashed(hex32: str) -> str:
    """A transaction key looks like a UUID."""
    h = hex32
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# ---- HubSpot ------------------------------------------------------------------

PORTAL_ID: Final = 2_418_231
APP_ID: Final = 364_011
_SUBSCRIPTIONS: Final = {
    "deal.creation": 1_101_001,
    "deal.propertyChange": 1_101_002,
    "deal.deletion": 1_101_003,
    "deal.associationChange": 1_101_005,
}
_HS_CATEGORIES: Final = {
    "Pipeline": "PIPELINE", "Best Case": "BEST_CASE", "Commit": "COMMIT", "Closed": "CLOSED",
    "Omitted": "OMIT",
}
_HS_DATE_FIELDS: Final = frozenset(f.DATE_FIELDS)
_HS_CALCULATED: Final = frozenset({f.PROBABILITY, f.CONTACT_COUNT, f.LAST_ACTIVITY_DATE})
"""Properties HubSpot computes itself; their changes say ``CALCULATED``."""
_HS_LAST: Final = {f.STAGE: 1, f.FORECAST_CATEGORY: 2, f.PROBABILITY: 3}
"""Order of properties in a batch: everything else, then the stage, then
what follows from it. A processor evaluating each event then sees a stage's
gate fields before the stage, and the stage before a category that only that
stage allows (HubSpot itself sends a batch in no particular order)."""
_HS_DROP: Final = frozenset({f.ACCOUNT_NAME, "account_id"})
"""A deal's company is an association, not a deal property."""


class HubSpotRenderer:
    """A webhook batch per save: one ``deal.propertyChange`` per property (all
    values strings, dates as epoch ms at midnight UTC), ordered by
    ``_HS_LAST``. A touch is ``notes_last_updated`` plus a ``DEAL_TO_CONTACT``
    association per contact that joins; a creation associates its first
    contacts."""

    def __init__(self, rules: RuleSet) -> None:
        mappings = _mappings(rules)
        self._names = _inverse(mappings.hubspot)
        self._pipelines = {p.id: _pipeline_value(p, rules, lower=True) for p in rules.pipelines}
        self._stages: dict[tuple[str, str], str] = {}
        for pipeline in rules.pipelines:
            for stage in pipeline.stages:
                ids = [a for a in stage.aliases if _hubspot_style(a)]
                self._stages[(pipeline.id, stage.name)] = ids[0] if ids else stage.name
        self._categories = {
            canonical: spelled
            for canonical, spelled in _HS_CATEGORIES.items()
            if rules.standard_category(spelled) == canonical
        }

    def render(self, deal: DealStory, seq: int, change: Change) -> list[bytes]:
        batch = _Batch(deal, seq, _ms(change.at))
        if change.op == "delete":
            batch.add("deal.deletion", "CRM_UI", changeFlag="DELETED")
        elif change.op == "activity":
            self._associate(batch, change.new_contacts)
            self._property(batch, f.LAST_ACTIVITY_DATE, str(batch.ms))
        else:
            if change.op == "create":
                batch.add("deal.creation", "CRM_UI", changeFlag="CREATED")
                self._associate(batch, change.new_contacts)
            ordered = sorted(change.fields.items(), key=lambda item: _HS_LAST.get(item[0], 0))
            for name, value in ordered:
                if name in self._names and name not in _HS_DROP:
                    self._property(batch, name, self._value(deal, name, value))
        return [orjson.dumps(batch.events)]

    @staticmethod
    def _associate(batch: _Batch, contacts: tuple[str, ...]) -> None:
        for contact in contacts:
            batch.add(
                "deal.associationChange",
                "CRM_UI",
                associationType="DEAL_TO_CONTACT",
                fromObjectId=batch.deal_id,
                toObjectId=int(contact),
                associationRemoved=False,
                isPrimaryAssociation=False,
            )

    def _property(self, batch: _Batch, name: str, value: str) -> None:
        source = "CALCULATED" if name in _HS_CALCULATED else "CRM_UI"
        batch.add("deal.propertyChange", source, propertyName=self._names[name],
                  propertyValue=value)

    def _value(self, deal: DealStory, name: str, value: Any) -> str:
        if name == f.STAGE:
            return self._stages[(deal.pipeline.id, value)]
        if name == f.PIPELINE:
            return self._pipelines[value]
        if name == f.FORECAST_CATEGORY:
            return self._categories.get(value, str(value))
        if name == f.PROBABILITY:
            return _number(value / 100)
        if name in _HS_DATE_FIELDS and isinstance(value, str):
            return str((ordinal_of(value) - EPOCH_ORDINAL) * 86_400_000)
        if isinstance(value, float | int):
            return _number(value)
        return str(value)


class _Batch:
    """The events of one webhook request, numbered from the deal and change so
    that ids are stable whatever else is rendered in between."""

    def __init__(self, deal: DealStory, seq: int, ms: int) -> None:
        self.deal_id = int(deal.opportunity_id)
        self.ms = ms
        self.user = f"userId:{deal.owner_id}"
        self.next_id = deal.index * _PER_DEAL * 4 + seq * 64
        self.events: list[dict[str, Any]] = []
        self._heads: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, kind: str, source: str, **extra: Any) -> None:
        head = self._heads.get((kind, source))
        if head is None:
            head = self._heads[(kind, source)] = self._head(kind, source)
        event = {"eventId": self.next_id, **head, **extra}
        self.events.append(event)
        self.next_id += 1

    def _head(self, kind: str, source: str) -> dict[str, Any]:
        """What every event of one kind in this batch repeats."""
        head: dict[str, Any] = {
            "subscriptionId": _SUBSCRIPTIONS[kind],
            "portalId": PORTAL_ID,
            "appId": APP_ID,
            "occurredAt": self.ms,
            "subscriptionType": kind,
            "attemptNumber": 0,
        }
        if kind != "deal.associationChange":
            head["objectId"] = self.deal_id
        head["changeSource"] = source
        if source == "CRM_UI":
            head["sourceId"] = self.user
        return head


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ---- generic ------------------------------------------------------------------

GENERIC_SOURCE: Final = "pipedrive"
_GENERIC_DROP: Final = frozenset({"account_id"})


class GenericRenderer:
    """The generic change event a small connector would write for Pipedrive:
    canonical field names, ISO-8601 times."""

    def __init__(self, rules: RuleSet) -> None:
        self._pipelines = {p.id: _pipeline_value(p, rules, lower=False) for p in rules.pipelines}

    def render(self, deal: DealStory, seq: int, change: Change) -> list[bytes]:
        event: dict[str, Any] = {
            "source": GENERIC_SOURCE,
            "event_id": f"pd-{_key(deal.index, seq)[:20]}",
            "opportunity_id": deal.opportunity_id,
            "occurred_at": _iso_ms(_ms(change.at)),
        }
        if change.op == "activity":
            event["op"] = "activity"
            event["contact_ids"] = list(change.contact_ids)
            event["fields"] = {}
        elif change.op == "delete":
            event["op"] = "delete"
            event["fields"] = {}
        else:
            event["op"] = "upsert"
            event["fields"] = {
                name: self._pipelines[value] if name == f.PIPELINE else value
                for name, value in change.fields.items()
                if name not in _GENERIC_DROP
            }
            if change.op == "create":
                event["full"] = True
                event["contact_ids"] = list(change.contact_ids)
        return [orjson.dumps(event)]


def renderer_for(fmt: VendorFormat, rules: RuleSet) -> Renderer:
    if fmt == "salesforce":
        return SalesforceRenderer(rules)
    if fmt == "hubspot":
        return HubSpotRenderer(rules)
    return GenericRenderer(rules)
