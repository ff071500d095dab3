"""What a rep reads: the rendered Block Kit messages."""

from __future__ import annotations

import json
from typing import Any

from processor.notify.blocks import (
    alert_message,
    digest_message,
    escape,
    money,
    resolution_reply,
    resolved_alert_message,
    short_money,
)
from processor.notify.links import CrmLinks

from .records import NOW, alert, digest, item, resolution

LINKS = CrmLinks(salesforce_instance="acme", hubspot_portal="4242")


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every text a person sees, in order."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return "\n".join(found)


def test_alert_says_what_is_wrong_on_which_deal_and_how_to_fix_it() -> None:
    a = alert(7)
    message = alert_message(a, LINKS, NOW)
    shown = texts(message.blocks)
    assert message.blocks[0]["type"] == "header"
    assert ":red_circle: Big deal, single-threaded" in shown
    url = "https://acme.lightning.force.com/lightning/r/Opportunity/006Ab0000000007/view"
    assert f"<{url}|Globex renewal 7>" in shown
    assert a.message in shown
    assert "125,007 USD" in shown
    assert "Negotiation" in shown
    assert "Nov 28, 2026 (in 12 days)" in shown
    assert "How to fix:* Get a second stakeholder involved" in shown
    assert "Open in Salesforce" in shown
    assert "High" in shown
    # The notification text stands alone (phones, screen readers).
    assert message.text.startswith("High: Big deal, single-threaded on Globex renewal 7")
    assert "125,007 USD" in message.text


def test_alert_escapes_crm_text_and_mentions_the_owner() -> None:
    a = alert(1, opportunity_name="R&D <pilot>", message="Amount < 0 & no stage")
    shown = texts(alert_message(a, LINKS, NOW, mention="U04ABC").blocks)
    assert "R&amp;D &lt;pilot&gt;" in shown
    assert "Amount &lt; 0 &amp; no stage" in shown
    assert "<@U04ABC>" in shown


def test_alert_without_amount_or_close_date_or_link_still_reads() -> None:
    a = alert(1, amount=None, currency=None, close_date=None, stage=None,
              opportunity_id="opp-x", source_event_id=None, opportunity_name=None)
    message = alert_message(a, LINKS, NOW)
    shown = texts(message.blocks)
    assert "no amount" in shown
    assert "not set" in shown
    assert "*Opportunity opp-x*" in shown
    assert "Open in" not in shown


def test_long_texts_are_shortened_to_slack_limits() -> None:
    a = alert(1, title="T" * 400, fix="F" * 5000)
    message = alert_message(a, LINKS, NOW)
    assert len(message.blocks[0]["text"]["text"]) <= 150
    for block in message.blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    assert len(message.text) <= 3000


def test_resolution_edit_and_reply() -> None:
    a = alert(3)
    r = resolution(a, "closed as Closed Won")
    edited = texts(resolved_alert_message(a, r, LINKS, NOW).blocks)
    assert ":white_check_mark: Resolved: Big deal, single-threaded" in edited
    assert "closed as Closed Won" in edited
    assert "How to fix" not in edited
    reply = resolution_reply(r, a, LINKS)
    assert "Resolved:* Big deal, single-threaded on *<https://acme.lightning" in reply.blocks[0][
        "text"]["text"]
    assert reply.text == ("Resolved: Big deal, single-threaded on Globex renewal 3: "
                          "closed as Closed Won.")


def test_digest_lists_the_biggest_deals_first_with_totals_per_currency() -> None:
    items = [item(1, 5_000.0), item(2, None), item(3, 900_000.0, issues=2),
             item(4, 40_000.0, "EUR"), item(5, 70_000.0)]
    message = digest_message(digest(items), LINKS, NOW, top=3)
    shown = texts(message.blocks)
    order = [shown.index(f"Deal {n}>") for n in (3, 5, 4)]
    assert order == sorted(order)
    assert "Deal 1>" not in shown and "Deal 2>" not in shown
    assert "…and 2 more deals (5K USD) in the queue" in shown
    assert "*5 deals* to fix, *6 issues*, *975K USD + 40K EUR* at stake" in shown
    assert "<https://app.hubspot.com/contacts/4242/record/0-3/1003|Deal 3>" in shown
    assert "Add a dated next step (1)." in shown
    assert "Weekly hygiene queue, week of Nov 16, 2026" in shown
    assert message.text == ("Weekly hygiene queue for 005OWNER1: 5 deals, 6 issues, "
                            "975K USD + 40K EUR at stake.")
    assert len(message.blocks) <= 50
    json.dumps(message.payload())  # plain JSON, nothing Slack could not take


def test_a_digest_leaves_out_what_the_owner_snoozed_until_the_snooze_ends() -> None:
    from datetime import timedelta

    def snoozed(it: Any, k: int, until: Any) -> Any:
        issues = list(it.issues)
        issues[k] = issues[k].model_copy(update={"snoozed_until": until})
        return it.model_copy(update={"issues": issues})

    later, earlier = NOW + timedelta(days=2), NOW - timedelta(hours=1)
    items = [snoozed(item(1, 5_000.0), 0, later),                  # its only issue: parked
             snoozed(item(2, 9_000.0, issues=2), 1, later),        # one of two parked
             snoozed(item(3, 7_000.0), 0, earlier)]                # the snooze ran out
    shown = texts(digest_message(digest(items), LINKS, NOW).blocks)
    assert "Deal 1>" not in shown
    assert "Deal 2>" in shown and "Add a dated next step (0)." in shown
    assert "Add a dated next step (1)." not in shown
    assert "Deal 3>" in shown
    assert "*2 deals* to fix, *2 issues*, *16K USD* at stake" in shown
    assert "2 snoozed issues not shown" in shown
    everything = texts(digest_message(digest([items[0]]), LINKS, NOW).blocks)
    assert "nothing to fix" in everything and "1 snoozed issue not shown" in everything


def test_empty_digest_says_so() -> None:
    message = digest_message(digest([]), LINKS, NOW)
    assert "nothing to fix" in texts(message.blocks)


def test_number_formats() -> None:
    assert money(259000.0, "USD") == "259,000 USD"
    assert money(1234.5, "EUR") == "1,234.50 EUR"
    assert money(None, "USD") == "no amount"
    assert short_money(1_250_000, "USD") == "1.2M USD"
    assert short_money(3_000_000, None) == "3M"
    assert short_money(999, "GBP") == "999 GBP"
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"
