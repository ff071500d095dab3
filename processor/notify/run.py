"""Starting the Slack notifier from the command line: configuration errors
as one readable line, SIGTERM and Ctrl-C as a clean stop that commits what
was delivered."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from prometheus_client import start_http_server
from pydantic import ValidationError
from rich.console import Console

from processor.notify.routing import RoutingError
from processor.notify.service import ConfigError, SlackNotifier, load_routes, make_transport
from processor.notify.settings import SlackSettings
from processor.settings import Settings


def run_slack_notifier(routes_file: Path | None, loglevel: str, console: Console) -> int:
    logging.basicConfig(level=loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
        slack = SlackSettings()
        if routes_file is not None:
            slack = slack.model_copy(update={"routes_file": routes_file})
        routing = load_routes(slack)
    except (ValidationError, RoutingError) as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return 2
    notifier = SlackNotifier(settings, slack, routing)
    try:
        asyncio.run(_check_then_run(notifier))
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return 2
    return 0


async def _check_then_run(notifier: SlackNotifier) -> None:
    transport = make_transport(notifier.slack, notifier.routing, notifier.environ)
    await transport.close()
    slack = notifier.slack
    if slack.metrics_port:
        start_http_server(slack.metrics_port, slack.metrics_host)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, notifier.stop)
    mode = "web api" if slack.bot_token else "incoming webhooks"
    logging.getLogger("processor.notify").info(
        "slack notifier (%s) on %s, %s as group %s; routes: %s", mode,
        notifier.topics.alerts, notifier.topics.digests, notifier.group_id,
        ", ".join(notifier.routing.routes))
    await notifier.run()
