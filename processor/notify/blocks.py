"""Block Kit messages a rep reads: what is wrong, on which deal, what it is
worth, and how to fix it, with a link to the record.

Pure: every function takes the records, the CRM links and the current time
and returns the message; nothing here talks to Slack. Texts respect Slack's
limits (header 150 characters, section 3000, 10 fields, 50 blocks) by
shortening, so a long fix text can never make Slack reject the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from processor.notify.links import CrmLink, CrmLinks
from schemas import Alert, Digest, QueueItem, Resolution
from schemas.digest import amounts_by_currency

Block = dict[str, Any]

SEVERITY_ICON = {
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:",
    "info": ":large_blue_circle:",
}
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
TEXT_LIMIT = 3000


@dataclass(frozen=True)
class Message:
    """``text`` is what a notification and a screen reader show; ``blocks``
    is what the channel shows."""

    text: str
    blocks: list[Block] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    """Slack message metadata: invisible to people, it names the record a
    message is about (alert id, rule) for anything that reads the channel."""

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text, "blocks": self.blocks}
        if self.metadata is not None:
            body["metadata"] = self.metadata
        return body


def _metadata(event_type: str, **payload: str | None) -> dict[str, Any]:
    return {"event_type": event_type,
            "event_payload": {k: v for k, v in payload.items() if v is not None}}


def _alert_metadata(event_type: str, alert: Alert) -> dict[str, Any]:
    return _metadata(event_type, alert_id=alert.alert_id, opportunity_id=alert.opportunity_id,
                     rule_id=alert.rule_id, owner_id=alert.owner_id)


# ---- formatting -----------------------------------------------------------------


def escape(text: str) -> str:
    """mrkdwn control characters; a deal named "R&D <pilot>" must show as such."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def money(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return "no amount"
    value = f"{amount:,.0f}" if abs(amount - round(amount)) < 0.005 else f"{amount:,.2f}"
    return f"{value} {currency}" if currency else value


def short_money(amount: float, currency: str | None) -> str:
    """1,234,567 -> 1.2M: for totals, where the exact figure is noise."""
    size = abs(amount)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if size >= limit:
            text = f"{amount / limit:,.1f}".removesuffix(".0") + suffix
            break
    else:
        text = f"{amount:,.0f}"
    return f"{text} {currency}" if currency else text


def day(value: date) -> str:
    return f"{value:%b} {value.day}, {value.year}"


def close_date_text(close: date | None, today: date) -> str:
    if close is None:
        return "not set"
    delta = (close - today).days
    if delta == 0:
        when = "today"
    elif delta > 0:
        when = f"in {delta} day{'s' if delta != 1 else ''}"
    else:
        when = f"{-delta} day{'s' if delta != -1 else ''} ago"
    return f"{day(close)} ({when})"


def deal_label(name: str | None, opportunity_id: str, link: CrmLink | None) -> str:
    label = escape(name or f"Opportunity {opportunity_id}")
    return f"<{link.url}|{label}>" if link else label


def _mrkdwn(text: str, limit: int = SECTION_LIMIT) -> Block:
    return {"type": "mrkdwn", "text": shorten(text, limit)}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": shorten(text, HEADER_LIMIT),
                                       "emoji": True}}


def _context(parts: Iterable[str]) -> Block:
    return {"type": "context", "elements": [_mrkdwn(" · ".join(p for p in parts if p))]}


def _fields(pairs: Iterable[tuple[str, str]]) -> Block:
    return {"type": "section",
            "fields": [_mrkdwn(f"*{label}*\n{value}", FIELD_LIMIT) for label, value in pairs]}


# ---- alerts ---------------------------------------------------------------------


def alert_message(
    alert: Alert, links: CrmLinks, now: datetime, mention: str | None = None
) -> Message:
    link = links.link(alert.opportunity_id, alert.source_event_id)
    deal = deal_label(alert.opportunity_name, alert.opportunity_id, link)
    icon = SEVERITY_ICON[alert.severity]
    lead = f"<@{mention}> " if mention else ""
    blocks = [
        _header(f"{icon} {alert.title}"),
        _section(f"{lead}*{deal}*\n{escape(alert.message)}"),
        _fields(_deal_facts(alert, now)),
        _section(f":wrench: *How to fix:* {escape(alert.fix)}"),
        _context(_alert_context(alert, link)),
    ]
    text = (f"{alert.severity.capitalize()}: {alert.title} on "
            f"{alert.opportunity_name or alert.opportunity_id} "
            f"({money(alert.amount, alert.currency)}). {alert.fix}")
    return Message(shorten(text, TEXT_LIMIT), blocks, _alert_metadata("hygiene_alert", alert))


def resolved_alert_message(
    alert: Alert, resolution: Resolution, links: CrmLinks, now: datetime
) -> Message:
    """The original message, edited once the problem is gone: what it was and
    why it closed, without the call to action."""
    link = links.link(alert.opportunity_id, alert.source_event_id)
    deal = deal_label(alert.opportunity_name, alert.opportunity_id, link)
    blocks = [
        _header(f":white_check_mark: Resolved: {alert.title}"),
        _section(f"*{deal}*\n~{escape(alert.message)}~"),
        _fields(_deal_facts(alert, now)),
        _context([f"Resolved {_stamp(resolution.resolved_at)}: {escape(resolution.reason)}",
                  *_alert_context(alert, link)]),
    ]
    text = (f"Resolved: {alert.title} on {alert.opportunity_name or alert.opportunity_id} "
            f"({resolution.reason})")
    return Message(shorten(text, TEXT_LIMIT), blocks,
                   _alert_metadata("hygiene_resolution", alert))


def resolution_reply(resolution: Resolution, alert: Alert, links: CrmLinks) -> Message:
    """A short follow-up: a thread reply under the alert, or with webhooks
    (which cannot edit) a message of its own that names the alert."""
    link = links.link(alert.opportunity_id, alert.source_event_id)
    deal = deal_label(alert.opportunity_name, alert.opportunity_id, link)
    text = (f":white_check_mark: *Resolved:* {escape(alert.title)} on *{deal}*: "
            f"{escape(resolution.reason)}.")
    blocks = [_section(text), _context([
        f"Raised {_stamp(alert.opened_at)}, resolved {_stamp(resolution.resolved_at)}",
        f"rule `{alert.rule_id}`",
    ])]
    plain = (f"Resolved: {alert.title} on {alert.opportunity_name or alert.opportunity_id}: "
             f"{resolution.reason}.")
    return Message(shorten(plain, TEXT_LIMIT), blocks,
                   _alert_metadata("hygiene_resolution", alert))


def _deal_facts(alert: Alert, now: datetime) -> list[tuple[str, str]]:
    return [
        ("Amount", money(alert.amount, alert.currency)),
        ("Stage", escape(alert.stage or "unknown")),
        ("Close date", close_date_text(alert.close_date, now.date())),
        ("Severity", f"{SEVERITY_ICON[alert.severity]} {alert.severity.capitalize()}"),
    ]


def _alert_context(alert: Alert, link: CrmLink | None) -> list[str]:
    return [
        f"<{link.url}|{link.label}>" if link else "",
        f"rule `{alert.rule_id}` ({escape(alert.ruleset_version)})",
        f"raised {_stamp(alert.opened_at)}",
        f"owner {escape(alert.owner_id)}" if alert.owner_id else "",
    ]


def _stamp(moment: datetime) -> str:
    return f"{day(moment.date())} {moment:%H:%M} UTC"


# ---- digests --------------------------------------------------------------------


def digest_message(
    digest: Digest, links: CrmLinks, now: datetime, *, top: int = 10, mention: str | None = None
) -> Message:
    """One message per owner: the totals, then the biggest deals to fix first.
    Issues the owner snoozed (still running at ``now``) are left out, and a
    deal left with none with them: counted in a line at the end instead."""
    items, snoozed = _unsnoozed(digest.items, now)
    ranked = sorted(items, key=lambda i: (i.amount is None, -(i.amount or 0.0)))
    shown, rest = ranked[:top], ranked[top:]
    totals = _totals(items)
    issue_count = sum(len(i.issues) for i in items)
    who = f"<@{mention}>" if mention else f"Owner {escape(digest.owner_id)}"
    metadata = _metadata("hygiene_digest", owner_id=digest.owner_id,
                         period_start=digest.period_start.isoformat())
    header = _header(f":clipboard: Weekly hygiene queue, week of {day(digest.period_start)}")
    parked = [_context([f":zzz: {_count(snoozed, 'snoozed issue')} not shown"])] if snoozed else []
    if not items:
        return Message(
            f"Weekly hygiene queue for {digest.owner_id}: nothing to fix.",
            [header, _section(f"{who}: nothing to fix this week. :tada:"), *parked], metadata,
        )
    summary = (f"{who}: *{_count(len(items), 'deal')}* to fix, "
               f"*{_count(issue_count, 'issue')}*, *{totals}* at stake. "
               f"Biggest first:")
    blocks: list[Block] = [header, _section(summary), {"type": "divider"}]
    blocks += [_digest_item(n, item, links, now) for n, item in enumerate(shown, start=1)]
    if rest:
        blocks.append(_context([f"…and {_count(len(rest), 'more deal')} "
                                f"({_totals(rest)}) in the queue"]))
    blocks += parked
    blocks.append(_context([f"Generated {_stamp(digest.generated_at)}",
                            f"rules {escape(digest.ruleset_version)}"]))
    text = (f"Weekly hygiene queue for {digest.owner_id}: "
            f"{_count(len(items), 'deal')}, "
            f"{_count(issue_count, 'issue')}, {totals} at stake.")
    return Message(shorten(text, TEXT_LIMIT), blocks, metadata)


def _unsnoozed(items: Iterable[QueueItem], now: datetime) -> tuple[list[QueueItem], int]:
    """The items with the issues whose snooze still runs taken out (an item
    left with none dropped), and how many issues that took out."""
    kept: list[QueueItem] = []
    dropped = 0
    for item in items:
        issues = [i for i in item.issues if i.snoozed_until is None or i.snoozed_until <= now]
        dropped += len(item.issues) - len(issues)
        if issues:
            kept.append(item if len(issues) == len(item.issues)
                        else item.model_copy(update={"issues": issues}))
    return kept, dropped


def _digest_item(n: int, item: QueueItem, links: CrmLinks, now: datetime) -> Block:
    link = links.link(item.opportunity_id)
    deal = deal_label(item.opportunity_name, item.opportunity_id, link)
    facts = [money(item.amount, item.currency), escape(item.stage or "unknown stage"),
             f"closes {close_date_text(item.close_date, now.date())}"]
    issues = "\n".join(f"{SEVERITY_ICON[i.severity]} *{escape(i.title)}*: {escape(i.fix)}"
                       for i in item.issues)
    return _section(f"*{n}. {deal}* · {' · '.join(facts)}\n{issues}")


def _totals(items: Iterable[QueueItem]) -> str:
    """Amounts summed per currency: adding euros to dollars would be a lie."""
    by_currency = amounts_by_currency(items)
    if not by_currency:
        return "no amount"
    ordered = sorted(by_currency.items(), key=lambda kv: -kv[1])
    return " + ".join(short_money(amount, currency) for currency, amount in ordered)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
