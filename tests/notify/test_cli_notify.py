"""``hygiene notify slack`` refuses a configuration it cannot deliver with,
in one line and before it consumes anything."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.notify.routing import load_routing, single_route
from processor.notify.service import ConfigError, make_transport
from processor.notify.settings import SlackSettings

ROUTES = "default_route: revops\nroutes:\n  emea: {owners: [a]}\n"


def run(monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> tuple[int, str]:
    for name in [n for n in os.environ if n.startswith("HYGIENE_SLACK_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["notify", "slack", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_missing_webhooks_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    code, output = run(monkeypatch, "--routes", str(routes),
                       HYGIENE_SLACK_WEBHOOK_EMEA="http://127.0.0.1:9/x")
    assert code == 2
    assert "HYGIENE_SLACK_WEBHOOK_REVOPS (or HYGIENE_SLACK_WEBHOOK_URL)" in output
    assert "EMEA" not in output
    assert "Traceback" not in output


def test_a_bad_routing_file_is_explained(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  a: {owner: [x]}\n")
    code, output = run(monkeypatch, HYGIENE_SLACK_ROUTES_FILE=str(routes))
    assert code == 2
    assert "routes.a.owner: Extra inputs are not permitted" in output


def test_web_api_mode_needs_a_channel_per_route(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    slack = SlackSettings(bot_token="xoxb-1", routes_file=routes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="missing for: emea, revops"):
        make_transport(slack, load_routing(routes), {})
    with pytest.raises(ConfigError, match="HYGIENE_SLACK_CHANNEL"):
        make_transport(SlackSettings(bot_token="xoxb-1"), single_route(), {})  # type: ignore[arg-type]


def test_the_single_webhook_variable_serves_the_default_route() -> None:
    async def build() -> bool:
        transport = make_transport(SlackSettings(), single_route(),
                                   {"HYGIENE_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"})
        await transport.close()
        return transport.can_edit

    assert asyncio.run(build()) is False  # webhooks, not the Web API
