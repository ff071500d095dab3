"""Which CRM an alert belongs to, and the link to its record."""

from __future__ import annotations

from processor.notify.links import CrmLinks


def test_salesforce_from_event_id_or_id_shape() -> None:
    links = CrmLinks(salesforce_instance="acme")
    expected = "https://acme.lightning.force.com/lightning/r/Opportunity/006Ab0000001234AAA/view"
    for event in ("sf:tx:1:006Ab0000001234AAA", None):
        found = links.link("006Ab0000001234AAA", event)
        assert found is not None and found.url == expected and found.crm == "salesforce"
    assert links.infer("006Ab0000001234") == "salesforce"  # 15-character id


def test_hubspot_portal_comes_from_the_event_when_not_configured() -> None:
    found = CrmLinks().link("19926614599", "hs:5551:ev9:propertyChange:19926614599")
    assert found is not None
    assert found.url == "https://app.hubspot.com/contacts/5551/record/0-3/19926614599"
    assert CrmLinks(hubspot_portal="77").link("123", None).url.endswith("/77/record/0-3/123")  # type: ignore[union-attr]


def test_no_link_rather_than_a_broken_one() -> None:
    assert CrmLinks().link("006Ab0000001234AAA") is None  # no Salesforce instance
    assert CrmLinks().link("19926614599") is None  # no portal anywhere
    assert CrmLinks().link("deal-7") is None  # nothing recognizes it


def test_generic_template_and_forced_crm() -> None:
    links = CrmLinks(generic_template="https://crm.example.com/deals/{id}")
    assert links.link("deal 7/x").url == "https://crm.example.com/deals/deal%207%2Fx"  # type: ignore[union-attr]
    forced = CrmLinks(crm="generic", generic_template="https://pd.example/{id}")
    assert forced.link("006Ab0000001234AAA").url == "https://pd.example/006Ab0000001234AAA"  # type: ignore[union-attr]


def test_template_with_an_unknown_placeholder_gives_no_link() -> None:
    assert CrmLinks(generic_template="https://x/{tenant}/{id}").link("deal-1") is None
