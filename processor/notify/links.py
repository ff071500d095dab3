"""Links from a message to the opportunity in its CRM.

An alert does not say which CRM it came from, so the CRM is inferred, in
this order:

1. the ``crm`` setting, when it is not ``auto`` (one CRM per deployment);
2. the alert's ``source_event_id``: the Salesforce decoder writes ``sf:...``
   and the HubSpot decoder ``hs:<portal id>:...`` (which also gives the
   portal when none is configured);
3. the shape of the opportunity id: 15 or 18 alphanumeric characters starting
   with ``006`` (Salesforce's Opportunity key prefix) is Salesforce, digits
   only is HubSpot;
4. otherwise the generic template, if one is configured.

A template whose placeholders cannot all be filled (Salesforce without an
instance, HubSpot without a portal) gives no link rather than a broken one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from processor.notify.settings import Crm, SlackSettings

_SALESFORCE_ID = re.compile(r"^006[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
_HUBSPOT_ID = re.compile(r"^[0-9]+$")
_HUBSPOT_EVENT = re.compile(r"^hs:([0-9]+):")

CRM_LABELS: dict[Crm, str] = {"salesforce": "Salesforce", "hubspot": "HubSpot", "generic": "CRM"}


@dataclass(frozen=True)
class CrmLink:
    crm: Crm
    url: str

    @property
    def label(self) -> str:
        return f"Open in {CRM_LABELS[self.crm]}"


@dataclass(frozen=True)
class CrmLinks:
    crm: str = "auto"
    salesforce_template: str = SlackSettings.model_fields["salesforce_url_template"].default
    salesforce_instance: str | None = None
    hubspot_template: str = SlackSettings.model_fields["hubspot_url_template"].default
    hubspot_portal: str | None = None
    generic_template: str | None = None

    @classmethod
    def from_settings(cls, settings: SlackSettings) -> CrmLinks:
        return cls(
            crm=settings.crm,
            salesforce_template=settings.salesforce_url_template,
            salesforce_instance=settings.salesforce_instance,
            hubspot_template=settings.hubspot_url_template,
            hubspot_portal=settings.hubspot_portal,
            generic_template=settings.generic_url_template,
        )

    def infer(self, opportunity_id: str, source_event_id: str | None = None) -> Crm | None:
        if self.crm in ("salesforce", "hubspot", "generic"):
            return self.crm  # type: ignore[return-value]
        event = source_event_id or ""
        if event.startswith("sf:"):
            return "salesforce"
        if event.startswith("hs:"):
            return "hubspot"
        if _SALESFORCE_ID.match(opportunity_id):
            return "salesforce"
        if _HUBSPOT_ID.match(opportunity_id):
            return "hubspot"
        return "generic" if self.generic_template else None

    def link(self, opportunity_id: str, source_event_id: str | None = None) -> CrmLink | None:
        crm = self.infer(opportunity_id, source_event_id)
        if crm is None:
            return None
        values = {"id": quote(opportunity_id, safe="")}
        if crm == "salesforce":
            template: str | None = self.salesforce_template
            if self.salesforce_instance:
                values["instance"] = quote(self.salesforce_instance, safe="")
        elif crm == "hubspot":
            template = self.hubspot_template
            portal = self.hubspot_portal or _portal_of(source_event_id)
            if portal:
                values["portal"] = quote(portal, safe="")
        else:
            template = self.generic_template
        if not template:
            return None
        try:
            return CrmLink(crm, template.format_map(values))
        except (KeyError, IndexError, ValueError):
            return None


def _portal_of(source_event_id: str | None) -> str | None:
    found = _HUBSPOT_EVENT.match(source_event_id or "")
    return found.group(1) if found else None
