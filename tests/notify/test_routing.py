"""Routing alerts and digests to team destinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.notify.routing import RoutingError, load_routing, single_route
from processor.notify.settings import webhook_env_name, webhook_url

ROUTES = """
default_route: revops
routes:
  revops: {channel: C0REVOPS}
  emea-sales:
    channel: C0EMEA
    owners: ["005PINNED"]
    managers: ["005MGR_EMEA"]
  na-sales:
    managers: ["005MGR_NA"]
mentions:
  "005PINNED": U0PINNED
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def test_owner_wins_over_manager_then_manager_then_default(tmp_path: Path) -> None:
    routing = load_routing(write(tmp_path, ROUTES))
    assert routing.route_for("005PINNED", "005MGR_NA") == "emea-sales"
    assert routing.route_for("005SOMEONE", "005MGR_NA") == "na-sales"
    assert routing.route_for("005SOMEONE", "005MGR_EMEA") == "emea-sales"
    assert routing.route_for("005SOMEONE", None) == "revops"
    assert routing.route_for(None, None) == "revops"
    assert routing.mention("005PINNED") == "U0PINNED"
    assert routing.mention("005SOMEONE") is None


def test_default_route_exists_even_when_not_listed(tmp_path: Path) -> None:
    routing = load_routing(write(tmp_path, "default_route: all\nroutes: {}\n"))
    assert list(routing.routes) == ["all"]
    assert single_route("C1").routes["default"].channel == "C1"


@pytest.mark.parametrize(("text", "problem"), [
    ("routes:\n  a: {owners: [x]}\n  b: {owners: [x]}\n",
     "owner 'x' is listed in routes 'a' and 'b'"),
    ("routes:\n  'bad name': {}\n", "routes.bad name"),
    ("routes:\n  a: {webhook: 'https://hooks'}\n", "routes.a.webhook: Extra inputs"),
    ("routes: [1, 2\n", "not valid YAML"),
])
def test_bad_routing_files_are_explained(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(RoutingError) as caught:
        load_routing(write(tmp_path, text))
    assert problem in str(caught.value)
    assert str(tmp_path / "routes.yaml") in str(caught.value)


def test_webhook_urls_are_secrets_from_the_environment() -> None:
    assert webhook_env_name("emea-sales") == "HYGIENE_SLACK_WEBHOOK_EMEA_SALES"
    env = {"HYGIENE_SLACK_WEBHOOK_EMEA_SALES": "https://example.invalid/T/B/x"}
    found = webhook_url("emea-sales", env)
    assert found is not None and "example.invalid" not in repr(found)
    assert found.get_secret_value() == "https://example.invalid/T/B/x"
    assert webhook_url("na", env) is None
