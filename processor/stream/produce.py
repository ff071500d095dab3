"""Producing simulated traffic into an input topic (``simulate --to-broker``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from processor.settings import Settings
from processor.simulate import Delivery
from processor.stream.kafka import aiokafka_options


async def produce_deliveries(
    settings: Settings, topic: str, deliveries: Iterable[Delivery], console: Console | None = None
) -> int:
    """Sends each delivery keyed by its opportunity id, in windows of
    unawaited sends, and returns once every message is acknowledged."""
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
            for delivery in deliveries:
                pending.append(await producer.send(topic, delivery.payload,
                                                   key=delivery.key.encode()))
                count += 1
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(task, completed=count)
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count
