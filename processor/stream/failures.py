"""What an agent does when handling one message fails.

Two kinds of failure, two answers:

- The broker refused or could not take a write (any ``KafkaError``, a
  timeout, a lost connection): the message is fine, the infrastructure is
  not. Handling is retried in place, with backoff, until it succeeds or the
  partition moves to another worker. Every handler here is safe to re-run
  (outputs carry deterministic ids, table writes are held until persisted,
  in-memory derivations are dropped first), and no other answer loses
  nothing: a message left unacked stalls the partition's commits (Faust
  commits only up to the first unacked offset) until a restart reads all
  that followed again, and a dead-lettered one would drop its changes from
  the state.
- Anything else (an internal message that does not decode, a bug): a re-run
  would fail the same way forever, so the message goes to the dead-letter
  topic with its bytes and the error, is acked, and the stream goes on.

Both are logged and counted (``hygiene_handling_retries_total``,
``hygiene_dead_letters_total``), so a stalled partition is visible before
its lag is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]

from processor.stream import messages, metrics
from processor.stream.ownership import still_owns
from schemas import DeadLetter
from schemas.deadletter import ORIGINAL_KEPT_BYTES

log = logging.getLogger(__name__)

Publish = Callable[[list[tuple[str, bytes | None, bytes]]], Awaitable[None]]

TRANSIENT: tuple[type[BaseException], ...] = (KafkaError, OSError, TimeoutError)
"""Failures of the broker or the network, not of the message."""

FIRST_DELAY = 0.5
MAX_DELAY = 30.0


@dataclass(frozen=True)
class Origin:
    """Where the message being handled came from."""

    agent: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


async def handle_or_dead_letter(
    attempt: Callable[[], Awaitable[None]],
    origin: Origin,
    *,
    publish: Publish,
    dead_letter_topic: str,
    still_assigned: Callable[[], bool],
    on_failure: Callable[[], None] = lambda: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Runs ``attempt`` until it succeeds (True: ack the message), or
    dead-letters the message (True), or gives up because ``still_assigned()``
    went false (False: do not ack; the partition's new owner reads it).
    ``on_failure`` runs after every failed attempt, before anything else:
    the handler's chance to drop what it derived in memory."""
    try:
        return await retried(attempt, origin.agent, _where(origin), still_assigned,
                             on_failure, sleep)
    except Exception as exc:  # the message itself: re-running cannot help
        on_failure()
        log.exception("%s: dead-lettering %s[%d]@%d", origin.agent, origin.topic,
                      origin.partition, origin.offset)
        error = exc

        async def send(value: bytes) -> None:
            await publish([(dead_letter_topic, origin.key, value)])

        async def send_letter() -> None:
            await send_dead_letter(send, lambda keep: dead_letter(origin, error, keep))

        # A dead letter the broker cannot take yet is retried like any write;
        # anything else failing here is a bug of ours and stops the agent.
        sent = await retried(send_letter, origin.agent, "its dead letter for " + _where(origin),
                             still_assigned, lambda: None, sleep)
        if sent:
            metrics.DEAD_LETTERS.labels(reason="processing_error").inc()
        return sent


async def retried(
    attempt: Callable[[], Awaitable[None]],
    agent: str,
    what: str,
    still_assigned: Callable[[], bool],
    on_failure: Callable[[], None] = lambda: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """``attempt`` again after each transient failure, with backoff; other
    exceptions propagate. False: the partition moved (or the worker is
    stopping), stop trying and leave the work unacknowledged."""
    delay = FIRST_DELAY
    while True:
        try:
            await attempt()
            return True
        except TRANSIENT as exc:
            on_failure()
            if not still_assigned():
                log.warning("%s: left %s unacked after %s: the partition moved or the worker "
                            "is stopping", agent, what, _describe(exc))
                return False
            metrics.HANDLING_RETRIES.labels(agent=agent, error=type(exc).__name__).inc()
            log.error("%s: handling %s failed (%s); retrying in %.1f s",
                      agent, what, _describe(exc), delay)
            await sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
            if not still_assigned():  # e.g. the worker began to stop while we waited
                return False


def _where(origin: Origin) -> str:
    return f"{origin.topic}[{origin.partition}]@{origin.offset}"


def dead_letter(origin: Origin, exc: BaseException, keep: int = ORIGINAL_KEPT_BYTES) -> DeadLetter:
    return DeadLetter.of(
        "processing_error", f"{origin.agent}: {_describe(exc)}"[:2000], source=origin.topic,
        original=messages.readable(origin.value), received_at=datetime.now(UTC), key=origin.key,
        partition=origin.partition, offset=origin.offset, keep=keep)


FALLBACK_KEPT_BYTES = 64 * 1024
"""What a dead letter keeps of its original when the dead-letter topic
refused the whole (a topic made by hand, at the broker's 1 MB default)."""


async def send_dead_letter(
    send: Callable[[bytes], Awaitable[None]], build: Callable[[int], DeadLetter]
) -> None:
    """Sends ``build(ORIGINAL_KEPT_BYTES)``; if the broker refuses it as too
    large, sends ``build(FALLBACK_KEPT_BYTES)`` (``truncated``, with
    ``original_size``) instead: a dead letter that can never be written
    would stall the partition it is meant to keep flowing."""
    from aiokafka.errors import MessageSizeTooLargeError  # type: ignore[import-untyped, unused-ignore]

    letter = build(ORIGINAL_KEPT_BYTES)
    try:
        await send(letter.model_dump_json().encode())
    except MessageSizeTooLargeError:
        if not letter.original_size or letter.original_size <= FALLBACK_KEPT_BYTES:
            raise
        log.warning("the dead-letter topic refused %d bytes of %s[%s]@%s; sending its first "
                    "%d bytes (give the topic max.message.bytes of 8 MiB, as `hygiene topics "
                    "create` does)", letter.original_size, letter.source, letter.partition,
                    letter.offset, FALLBACK_KEPT_BYTES)
        await send(build(FALLBACK_KEPT_BYTES).model_dump_json().encode())


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_acked(
    stream: Any,
    app: Any,
    handle: Callable[[Origin], Awaitable[None]],
    *,
    agent: str,
    publish: Publish,
    dead_letter_topic: str,
    forget: Callable[[], None] = lambda: None,
) -> None:
    """An agent's loop: each message handled (retried or dead-lettered as
    above), then acked by hand. Faust's own ack sits in a ``finally``, so a
    message whose handling raised or was cancelled (SIGTERM, rebalance)
    would be committed half done; unacked, it is read again instead."""
    manual = stream.noack()
    async for event in manual.events():
        m = event.message
        origin = Origin(agent, m.topic, m.partition, m.offset, m.key, event.value or b"")

        async def attempt(origin: Origin = origin) -> None:
            await handle(origin)

        def ours(origin: Origin = origin) -> bool:
            return not app.should_stop and still_owns(app, origin.topic, origin.partition)

        # app.sleep wakes when the worker stops: a retry never holds a
        # shutdown; the unacked message is read again after the restart.
        if await handle_or_dead_letter(
                attempt, origin, publish=publish, dead_letter_topic=dead_letter_topic,
                still_assigned=ours, on_failure=forget, sleep=app.sleep):
            await manual.ack(event)
