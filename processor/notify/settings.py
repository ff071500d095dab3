"""Configuration of the Slack notifier (prefix ``HYGIENE_SLACK_``).

Kept apart from the worker's Settings because only the notifier reads it.
Webhook URLs and the bot token are secrets: they come only from the
environment. Webhook URLs are one variable per route
(``HYGIENE_SLACK_WEBHOOK_<ROUTE>``, or ``HYGIENE_SLACK_WEBHOOK_URL`` for the
default route) because route names are chosen by the operator in the routing
file, so the set of variables is not fixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

WEBHOOK_ENV_PREFIX = "HYGIENE_SLACK_WEBHOOK_"

Crm = Literal["salesforce", "hubspot", "generic"]


def webhook_env_name(route: str) -> str:
    """``emea-sales`` -> ``HYGIENE_SLACK_WEBHOOK_EMEA_SALES``."""
    return WEBHOOK_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", route).upper()


SINGLE_WEBHOOK_ENV = "HYGIENE_SLACK_WEBHOOK_URL"
"""The default route's webhook when no per-route variable is set: with no
routing file, one variable is all a deployment needs (docker-compose uses it)."""


def webhook_url(route: str, environ: Mapping[str, str], *,
                is_default: bool = False) -> SecretStr | None:
    value = environ.get(webhook_env_name(route), "").strip()
    if not value and is_default:
        value = environ.get(SINGLE_WEBHOOK_ENV, "").strip()
    return SecretStr(value) if value else None


class SlackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYGIENE_SLACK_", extra="ignore")

    routes_file: Path | None = Field(
        default=None,
        description="Routing YAML (owners and managers -> routes); without it everything "
        "goes to the route 'default'.",
    )
    channel: str | None = Field(
        default=None, description="Web API mode without a routing file: the channel to post to."
    )
    bot_token: SecretStr | None = Field(
        default=None,
        description="With a bot token the Web API is used (chat.postMessage, chat.update, "
        "threads) instead of incoming webhooks.",
    )
    api_url: str = Field(
        default="https://slack.com/api/", description="Web API base URL (tests: a local server)."
    )
    on_resolution: Literal["update", "thread", "both"] = Field(
        default="both",
        description="Web API mode: on a resolution, edit the original message, reply in its "
        "thread, or both. Webhook mode always posts a short follow-up.",
    )
    group_id: str | None = Field(
        default=None, description="Consumer group (default: <HYGIENE_APP_ID>-notify-slack)."
    )
    redis_prefix: str = Field(
        default="hygiene:slack:", description="Prefix of the Redis keys of posted messages."
    )
    posted_ttl_days: float = Field(
        default=120.0, gt=0,
        description="How long a posted alert is remembered (for its resolution and to never "
        "post it twice).",
    )

    # Delivery
    timeout_seconds: float = Field(default=10.0, gt=0, description="One HTTP request.")
    max_attempts: int = Field(
        default=6, ge=1, description="Attempts per message before it goes to the dead letters."
    )
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=60.0, gt=0)
    max_retry_after_seconds: float = Field(
        default=900.0, gt=0,
        description="A Retry-After longer than this counts as a permanent failure rather than "
        "stalling the partition for longer.",
    )
    concurrency: int = Field(
        default=4, ge=1, description="Partitions delivered at the same time."
    )

    # Rendering
    digest_top: int = Field(default=10, ge=1, le=40, description="Deals listed in a digest.")
    crm: Literal["auto", "salesforce", "hubspot", "generic"] = Field(
        default="auto",
        description="Which CRM the opportunity ids belong to; 'auto' infers it per alert.",
    )
    salesforce_url_template: str = (
        "https://{instance}.lightning.force.com/lightning/r/Opportunity/{id}/view"
    )
    salesforce_instance: str | None = Field(default=None, description="e.g. acme (My Domain)")
    hubspot_url_template: str = "https://app.hubspot.com/contacts/{portal}/record/0-3/{id}"
    hubspot_portal: str | None = Field(
        default=None, description="HubSpot portal (hub) id; else taken from the event id."
    )
    generic_url_template: str | None = Field(
        default=None, description="Link for other CRMs, e.g. https://crm.example.com/deals/{id}"
    )

    # Operations
    metrics_port: int = Field(
        default=0, ge=0, lt=65536, description="Serve Prometheus /metrics here (0: off)."
    )
    metrics_host: str = "0.0.0.0"
