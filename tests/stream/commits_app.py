"""A Faust app on the workers' transport whose agent leaves chosen messages
unacked the first time it sees them, as the fetcher leaves a message it
drops in a rebalance. Run as a process by test_commits_integration.py;
configured by environment (``GAPS_*``)."""

from __future__ import annotations

import os
import sys
from typing import Any

import faust

from processor.stream import commits
from processor.stream.transport import install


def main() -> None:
    env = os.environ
    commits.HEAL_AFTER_SECONDS = float(env["GAPS_HEAL_AFTER"])
    app = faust.App(env["GAPS_APP_ID"], broker=f"kafka://{env['GAPS_BOOTSTRAP']}",
                    store="memory://", broker_commit_interval=0.3,
                    consumer_auto_offset_reset="earliest", web_enabled=False,
                    autodiscover=False)
    install(app)
    source = app.topic(env["GAPS_IN"], key_serializer="raw", value_serializer="raw")
    out = app.topic(env["GAPS_OUT"], key_serializer="raw", value_serializer="raw")
    drops = {(int(p), int(o)) for p, o in (x.split(":") for x in env["GAPS_DROP"].split(","))}

    @app.agent(source)
    async def handle(stream: Any) -> None:
        manual = stream.noack()
        async for event in manual.events():
            where = (event.message.partition, event.message.offset)
            if where in drops:
                drops.discard(where)  # left unacked, once
                continue
            await (await out.send(value=f"{where[0]}:{where[1]}".encode()))
            await manual.ack(event)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "info"]
    app.main()


if __name__ == "__main__":
    main()
