"""``processor.stream.failures`` on its own: which failures are retried in
place, which are dead-lettered, and when a retry stops (the partition moved)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)

from processor.stream import metrics
from processor.stream.failures import (
    FALLBACK_KEPT_BYTES,
    MAX_DELAY,
    Origin,
    handle_or_dead_letter,
)
from schemas import DeadLetter

ORIGIN = Origin("hygiene.state", "hygiene.changes", 2, 41, b"opp-1", b'{"kind": "nonsense"}')
Sent = list[tuple[str, bytes | None, bytes]]


class Attempts:
    """An attempt that fails with each of ``failures`` in turn, then works."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def run(
    attempt: Callable[[], Awaitable[None]],
    *,
    publish_failures: list[BaseException] | None = None,
    assigned: Callable[[], bool] = lambda: True,
) -> tuple[bool, Sent, list[float], int]:
    sent: Sent = []
    slept: list[float] = []
    forgotten = 0
    failures = list(publish_failures or [])

    async def publish(records: Sent) -> None:
        if failures:
            raise failures.pop(0)
        sent.extend(records)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def forget() -> None:
        nonlocal forgotten
        forgotten += 1

    done = asyncio.run(handle_or_dead_letter(
        attempt, ORIGIN, publish=publish, dead_letter_topic="hygiene.dead-letter",
        still_assigned=assigned, on_failure=forget, sleep=sleep))
    return done, sent, slept, forgotten


def retries(error: str) -> float:
    value: float = metrics.HANDLING_RETRIES.labels(agent="hygiene.state", error=error)._value.get()
    return value


def test_a_write_the_broker_refuses_is_retried_with_backoff_until_it_goes_through() -> None:
    before = retries("MessageSizeTooLargeError")
    attempt = Attempts(*[MessageSizeTooLargeError()] * 9, KafkaTimeoutError(), OSError("reset"))
    done, sent, slept, forgotten = run(attempt)
    assert done and attempt.calls == 12
    assert sent == []  # nothing dead-lettered: the message was fine
    assert slept == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert max(slept) == MAX_DELAY
    assert forgotten == 11  # derived state dropped before every re-run
    assert retries("MessageSizeTooLargeError") == before + 9


def test_a_message_that_cannot_be_handled_is_dead_lettered_with_its_bytes() -> None:
    done, sent, slept, forgotten = run(Attempts(ValueError("no discriminator 'nonsense'")))
    assert done and slept == [] and forgotten == 1
    [(topic, key, value)] = sent
    assert (topic, key) == ("hygiene.dead-letter", b"opp-1")
    letter = DeadLetter.model_validate_json(value)
    assert letter.reason == "processing_error"
    assert letter.original_value() == ORIGIN.value
    assert (letter.source, letter.partition, letter.offset) == ("hygiene.changes", 2, 41)
    assert letter.error == "hygiene.state: ValueError: no discriminator 'nonsense'"


def test_a_dead_letter_the_broker_refuses_is_retried_too() -> None:
    done, sent, slept, _ = run(Attempts(KeyError("bug")),
                               publish_failures=[KafkaTimeoutError(), KafkaTimeoutError()])
    assert done and slept == [0.5, 1.0] and len(sent) == 1


def test_a_retry_stops_once_the_partition_moved_and_the_message_stays_unacked() -> None:
    # Asked after each failure and again after each wait (a stop or a
    # rebalance may come while it sleeps): the fourth answer is "moved".
    answers = iter([True, True, True, False])
    attempt = Attempts(*[KafkaTimeoutError()] * 5)
    done, sent, slept, _ = run(attempt, assigned=lambda: next(answers))
    assert not done and sent == []
    assert attempt.calls == 2 and slept == [0.5, 1.0]


def test_cancellation_is_not_a_failure() -> None:
    with pytest.raises(asyncio.CancelledError):
        run(Attempts(asyncio.CancelledError()))


def test_a_dead_letter_too_large_for_its_topic_is_sent_again_with_less_of_its_original(
) -> None:
    big = Origin("hygiene.state", "hygiene.changes", 0, 7, None, b"x" * (FALLBACK_KEPT_BYTES * 2))
    sent: Sent = []
    refusals = [MessageSizeTooLargeError()]

    async def publish(records: Sent) -> None:
        if refusals:
            raise refusals.pop()
        sent.extend(records)

    done = asyncio.run(handle_or_dead_letter(
        Attempts(ValueError("bad")), big, publish=publish, dead_letter_topic="dlq",
        still_assigned=lambda: True))
    assert done
    [(_, _, value)] = sent
    letter = DeadLetter.model_validate_json(value)
    assert letter.truncated and letter.original_size == len(big.value)
    assert letter.original_value() == big.value[:FALLBACK_KEPT_BYTES]


def test_a_packed_internal_message_is_dead_lettered_as_its_json() -> None:
    from processor.stream.failures import dead_letter
    from processor.stream.messages import PACKED_MARKER, unpacked

    json = b'{"kind":"changes","changes":[' + b'{"opportunity_id":"006A"},' * 40 + b'{}]}'
    from processor.hygiene_decode import pack

    packed = pack(json)
    assert packed.startswith(PACKED_MARKER)
    origin = Origin("hygiene.state", "hygiene.changes", 0, 3, b"006A", packed)
    letter = dead_letter(origin, ValueError("bad"))
    assert letter.original_value() == unpacked(packed) == json
    plain = Origin("hygiene.state", "hygiene.changes", 0, 3, b"006A", json)
    assert dead_letter(plain, ValueError("bad")).original_value() == json
