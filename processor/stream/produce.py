"""Producing into the stream's topics from the command line (``simulate
--to-broker``, ``publish``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from processor.settings import Settings
from processor.stream.kafka import aiokafka_options

Outgoing = tuple[str, bytes | None, bytes]
"""(topic, key, value)."""

WINDOW = 5000
"""Sends in flight before waiting for their acknowledgements: enough to keep
the producer's batches full, bounded so a slow broker cannot fill memory."""


async def produce(
    settings: Settings, messages: Iterable[Outgoing], console: Console | None = None
) -> int:
    """Sends every message in order, in windows of unawaited sends, and
    returns once every one is acknowledged (acks=all): when the command says
    it published, the broker holds it."""
    producer = AIOKafkaProducer(acks="all", linger_ms=10, max_batch_size=1_048_576,
                                **aiokafka_options(settings))
    await producer.start()
    count = 0
    pending: list[Any] = []
    try:
        with Progress(TextColumn("[bold]produce[/bold]"), BarColumn(),
                      TextColumn("{task.completed} messages"), console=console,
                      disable=console is None, transient=True) as progress:
            task = progress.add_task("", total=None)
            for topic, key, value in messages:
                pending.append(await producer.send(topic, value, key=key))
                count += 1
                if len(pending) >= WINDOW:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(task, completed=count)
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count
