"""The state agent takes what is queued for it together.

Under load its queue holds several internal messages per partition (ingest
routes faster than the engine applies). Handling them as one unit writes each
opportunity once per unit instead of once per message, and publishes each
owner-queue and rollup entry once: in the end-to-end benchmark 10.4% ->
12-14% of the plain loop (137-163 instead of 160-188 µs of CPU per input
message; see bench/README.md, "Session 4"). Nothing waits for a unit to
fill: when one message is queued, one is handled, so latency is what it
was.

A unit is a run of consecutive change batches of one partition (merged into
one batch, in offset order); a sweep tick, or a message that does not
decode, is a unit of its own. Acks still follow the handling of everything
in a unit, so a crash redoes at most the unit, as it redid a message.

On the native core, the next queued unit is applied (in the core's thread)
while the current one is published and stored: the two halves of the
agent's work overlap (``NativeStateProcessor.handle_changes``, ``then``);
and the changelog's acknowledgements are waited for once per round, before
its acks (``NativeStateProcessor.confirmed``), not once per unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

from processor.stream import messages, metrics
from processor.stream.failures import Origin, Publish, handle_or_dead_letter, retried
from processor.stream.native_state import NativeStateProcessor
from processor.stream.ownership import still_owns
from processor.stream.state import StateProcessor

log = logging.getLogger(__name__)

T = TypeVar("T")

Message = messages.ChangeBatch | messages.RawChanges | messages.SweepTick
Batch = messages.ChangeBatch | messages.RawChanges

MAX_MESSAGES = 32
"""Internal messages taken at once (a change batch carries up to about
2,000 changes). Back to back on the benchmark, 32 cost 132-144 µs of CPU
per input message against 151-172 for 16, for about 40 MiB more memory;
64 was no clearer a gain and used 580 MiB."""


async def drained(events: AsyncIterator[T], limit: int = MAX_MESSAGES) -> AsyncIterator[list[T]]:
    """Lists of the events already waiting (at least one, at most ``limit``).

    ``events`` is read by a task of its own into a queue of ``limit``, so what
    is waiting can be seen without blocking on a stream that has nothing
    more; an error of that reader is raised here."""
    queue: asyncio.Queue[T] = asyncio.Queue(maxsize=limit)

    async def pump() -> None:
        async for event in events:
            await queue.put(event)

    pumping = asyncio.ensure_future(pump())
    getter: asyncio.Future[T] | None = None
    try:
        while True:
            if queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, pumping}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    pumping.result()  # the reader's error, if it failed
                    return  # the stream ended
                first = getter.result()
                getter = None
            else:
                first = queue.get_nowait()
            batch = [first]
            while len(batch) < limit and not queue.empty():
                batch.append(queue.get_nowait())
            yield batch
    finally:
        for task in (getter, pumping):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


@dataclass
class Unit:
    """Events of one partition handled together. ``message`` is what they
    say: one change batch merging theirs, or a single event's sweep tick or
    batch; None for a single event that does not decode (it is handled on
    its own, and so dead-lettered on its own)."""

    partition: int
    events: list[Any]
    message: Message | None

    @property
    def offset(self) -> int:
        """The last event's offset: the version of what the unit publishes."""
        return int(self.events[-1].message.offset)


def units(
    events: list[Any], decode: Callable[[bytes], Message] = messages.decode
) -> list[Unit]:
    """Per partition, in arrival order (which is offset order); ``decode``
    is the processor's (the native one leaves change batches unread)."""
    by_partition: dict[int, list[Any]] = {}
    for event in events:
        by_partition.setdefault(event.message.partition, []).append(event)
    out: list[Unit] = []
    for partition, queued in by_partition.items():
        run: list[tuple[Any, Batch]] = []
        for event in queued:
            decoded: Message | None
            try:
                decoded = decode(event.value or b"")
            except Exception:  # dead-lettered when handled on its own
                decoded = None
            if isinstance(decoded, messages.ChangeBatch | messages.RawChanges):
                run.append((event, decoded))
                continue
            out.extend(_merged(partition, run))
            run = []
            out.append(Unit(partition, [event], decoded))
        out.extend(_merged(partition, run))
    return out


def _merged(partition: int, run: list[tuple[Any, Batch]]) -> list[Unit]:
    if not run:
        return []
    if len(run) == 1:
        event, batch = run[0]
        return [Unit(partition, [event], batch)]
    merged: Batch
    if all(isinstance(batch, messages.RawChanges) for _, batch in run):
        merged = messages.RawChanges(
            [m for _, batch in run if isinstance(batch, messages.RawChanges)
             for m in batch.messages])
    else:
        merged = messages.ChangeBatch(changes=[
            change for _, batch in run if isinstance(batch, messages.ChangeBatch)
            for change in batch.changes])
    return [Unit(partition, [event for event, _ in run], merged)]


def next_batch(queued: list[Unit], index: int) -> Batch | None:
    """The change batch handled after ``queued[index]``, if that is one:
    the native processor applies it while ``queued[index]`` is published and
    stored (``NativeStateProcessor.handle_changes``)."""
    following = queued[index + 1].message if index + 1 < len(queued) else None
    return following if isinstance(following, messages.ChangeBatch | messages.RawChanges) else None


async def run_state_agent(
    stream: Any,
    app: Any,
    processor: StateProcessor | NativeStateProcessor,
    table: MutableMapping[bytes, bytes],
    publish: Publish,
    dead_letter_topic: str,
) -> None:
    """The state agent's loop: what is queued, in units, each handled (or
    retried, or dead-lettered: ``processor.stream.failures``), then acked by
    hand (Faust's own ack sits in a ``finally``: a unit whose handling raised
    or was cancelled would be committed half done)."""
    manual = stream.noack()
    agent = "hygiene.state"

    def origin_of(event: Any) -> Origin:
        m = event.message
        return Origin(agent, m.topic, m.partition, m.offset, m.key, event.value or b"")

    def ours(topic: str, partition: int) -> bool:
        return not app.should_stop and still_owns(app, topic, partition)

    async def apply(message: Message, partition: int, offset: int, then: Batch | None) -> None:
        if isinstance(message, messages.SweepTick):
            await processor.handle_sweep(message, partition, table, publish, offset=offset)
        elif isinstance(processor, NativeStateProcessor):
            await processor.handle_changes(message, partition, table, publish, offset=offset,
                                           then=then)
        else:
            await processor.handle_changes(message, partition, table, publish, offset=offset)

    async def one(event: Any, message: Message | None, then: Batch | None = None) -> bool:
        origin = origin_of(event)

        async def attempt() -> None:
            decoded = message if message is not None else processor.decode(origin.value)
            await apply(decoded, origin.partition, origin.offset, then)

        return await handle_or_dead_letter(
            attempt, origin, publish=publish, dead_letter_topic=dead_letter_topic,
            still_assigned=lambda: ours(origin.topic, origin.partition), sleep=app.sleep)

    async def handle(unit: Unit, then: Batch | None) -> bool:
        if len(unit.events) == 1:
            return await one(unit.events[0], unit.message, then)
        merged = unit.message
        assert merged is not None
        first = origin_of(unit.events[0])
        what = f"{first.topic}[{unit.partition}]@{first.offset}-{unit.offset}"
        try:
            return await retried(
                lambda: apply(merged, unit.partition, unit.offset, then), agent, what,
                lambda: ours(first.topic, unit.partition), sleep=app.sleep)
        except Exception:
            # Which message is at fault is unknown: each alone, so only it is
            # dead-lettered (the others' outputs repeat under the same ids).
            log.exception("%s: handling %s together failed; one message at a time", agent,
                          what)
            for event in unit.events:
                if not await one(event, None):
                    return False
            return True

    async def handle_queued(events: list[Any]) -> None:
        moved: set[int] = set()
        handled: list[Any] = []
        queued = units(events, processor.decode)
        for index, unit in enumerate(queued):
            if unit.partition in moved:
                continue  # its earlier unit was left unacked: so is the rest
            metrics.STATE_UNIT_MESSAGES.observe(len(unit.events))
            if await handle(unit, next_batch(queued, index)):
                handled.extend(unit.events)
            else:
                moved.add(unit.partition)
        if handled and isinstance(processor, NativeStateProcessor):
            # Its states went to the changelog without waiting: the round is
            # acked once the changelog has them all.
            topic = handled[0].message.topic
            partitions = {event.message.partition for event in handled}
            if not await retried(processor.confirmed, agent, f"the changelog of {topic}",
                                 lambda: all(ours(topic, p) for p in partitions),
                                 sleep=app.sleep):
                return  # moved or stopping: whoever owns them does the round again
        for event in handled:
            await manual.ack(event)

    async for events in drained(manual.events()):
        await handle_queued(events)
