"""The native state agent applies the next queued unit while the current one
is published and stored (``NativeStateProcessor.handle_changes(then=...)``).
That must never show: the same records and stored states as the Python
processor handling the units one after the other, whatever happens to the
unit applied ahead (used, never asked for, or left behind by a failure or a
revocation)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from processor.stream import messages
from processor.stream.native_state import NativeStateProcessor
from tests.builders import HEALTHY_DISCOVERY, change
from tests.native.test_core_parity import RULES, traffic
from tests.stream.test_native_state import (
    Unit,
    handle,
    processors,
    same_states,
    schedule,
)
from tests.stream.test_state_processor import Recorder, Table

pytest.importorskip("processor.hygiene_core")

Then = messages.RawChanges | None


def raw_of(unit: Unit) -> messages.RawChanges | messages.SweepTick:
    if isinstance(unit, messages.SweepTick):
        return unit
    return messages.RawChanges([messages.encode_changes(batch) for batch in unit])


def reference(units: list[tuple[int, Unit]]) -> tuple[list[Recorder], dict[bytes, bytes]]:
    """The Python processor, one unit after the other."""
    python, _ = processors(RULES["default"])
    table: dict[bytes, bytes] = {}
    sent = [Recorder([]) for _ in units]

    async def scenario() -> None:
        for offset, (partition, unit) in enumerate(units):
            await handle(python, partition, unit, table, sent[offset], offset)

    asyncio.run(scenario())
    return sent, table


async def handle_ahead(native: NativeStateProcessor, partition: int,
                       unit: messages.RawChanges | messages.SweepTick, then: Then,
                       table: Any, publish: Recorder, offset: int) -> None:
    if isinstance(unit, messages.SweepTick):
        await native.handle_sweep(unit, partition, table, publish, offset=offset)
    else:
        await native.handle_changes(unit, partition, table, publish, offset=offset, then=then)


def the_units() -> list[tuple[int, Unit]]:
    return schedule(traffic(RULES["default"], 7, "mixed", 120), 30, 2, 4)


def following(raws: list[messages.RawChanges | messages.SweepTick], index: int,
              step: int = 1) -> Then:
    later = raws[index + step] if index + step < len(raws) else None
    return later if isinstance(later, messages.RawChanges) else None


@pytest.mark.parametrize("step", [1, 2], ids=["the next unit", "a unit never asked for next"])
def test_units_applied_ahead_publish_and_store_what_one_at_a_time_does(step: int) -> None:
    """step 2: each unit names the one after next, so every unit applied
    ahead is undone unused (and sweeps come between units)."""
    units = the_units()
    expected, expected_table = reference(units)
    _, native = processors(RULES["default"])
    raws = [raw_of(unit) for _, unit in units]
    table: dict[bytes, bytes] = {}
    sent = [Recorder([]) for _ in units]

    async def scenario() -> None:
        for offset, (partition, _) in enumerate(units):
            await handle_ahead(native, partition, raws[offset], following(raws, offset, step),
                               table, sent[offset], offset)

    asyncio.run(scenario())
    assert any(isinstance(raw, messages.SweepTick) for raw in raws)
    for offset, (got, want) in enumerate(zip(sent, expected, strict=True)):
        assert got.published == want.published, f"unit {offset}"
    assert same_states(table, expected_table)
    assert native._ahead is None


def test_a_unit_that_fails_while_the_next_is_applied_ahead_is_redone_from_the_table() -> None:
    units = [(p, u) for p, u in the_units() if not isinstance(u, messages.SweepTick)][:6]
    expected, expected_table = reference(units)
    _, native = processors(RULES["default"])
    raws = [raw_of(unit) for _, unit in units]
    log: list[tuple[str, Any]] = []
    table = Table(log)
    sent = [Recorder(log) for _ in units]
    failing = 2

    async def scenario() -> None:
        for offset, (partition, _) in enumerate(units):
            then = following(raws, offset)
            if offset == failing:
                with pytest.raises(ConnectionError):
                    await handle_ahead(native, partition, raws[offset], then, table,
                                       Recorder(log, fail=True), offset)
                # Nothing of the failed unit or of the one applied ahead stays.
                assert native._clear_pending or len(native.core) == 0
            await handle_ahead(native, partition, raws[offset], then, table,
                               sent[offset], offset)

    asyncio.run(scenario())
    for offset, (got, want) in enumerate(zip(sent, expected, strict=True)):
        assert got.published == want.published, f"unit {offset}"
    assert same_states(dict(table), expected_table)


def test_a_revocation_with_a_unit_applied_ahead_changes_no_result() -> None:
    first = messages.RawChanges([messages.encode_changes(
        [change(0, opp=f"006R{n}", **HEALTHY_DISCOVERY) for n in range(4)])])
    second = messages.RawChanges([messages.encode_changes(
        [change(1, opp=f"006R{n}", stage="Solution") for n in range(4)])])
    table: dict[bytes, bytes] = {}
    _, native = processors(RULES["default"])
    sent = Recorder([])

    async def scenario() -> None:
        await native.handle_changes(first, 0, table, Recorder([]), then=second)
        await native.offload.idle()  # applied ahead already, not asked for yet
        native.forget()  # the partitions were revoked (and given back)
        await native.handle_changes(second, 0, table, sent)

    asyncio.run(scenario())
    python, _ = processors(RULES["default"])
    reference_table: dict[bytes, bytes] = {}
    expected = Recorder([])
    asyncio.run(python.handle_changes(messages.as_change_batch(first), 0, reference_table,
                                      Recorder([])))
    asyncio.run(python.handle_changes(messages.as_change_batch(second), 0, reference_table,
                                      expected))
    assert sent.published == expected.published
    assert any(topic == "t.owner-queues" for topic, _, _ in sent.published)
    assert same_states(table, reference_table)
    assert len(native.core) == 4 and not native._clear_pending


def test_inline_the_next_unit_is_not_applied_ahead() -> None:
    _, threaded = processors(RULES["default"])
    inline = NativeStateProcessor(RULES["default"], threaded.topics, 3, threaded=False)
    one = messages.RawChanges([messages.encode_changes([change(0, opp="006I",
                                                               **HEALTHY_DISCOVERY)])])
    two = messages.RawChanges([messages.encode_changes([change(1, opp="006I",
                                                               stage="Solution")])])
    asyncio.run(inline.handle_changes(one, 0, {}, Recorder([]), then=two))
    assert inline._ahead is None


class FlakyChangelog:
    """A ``Persist`` over a dict whose changelog refuses the sends of the
    units named in ``refuse`` (by their order), and notes what was sent."""

    def __init__(self, refuse: set[int]) -> None:
        self.refuse = refuse
        self.sent: list[dict[bytes, bytes | None]] = []

    async def __call__(self, table: Any, writes: Any, partition: int) -> asyncio.Future[None]:
        for key, value in writes.items():
            table[key] = value
        number = len(self.sent)
        self.sent.append(dict(writes))
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if number in self.refuse:
            answer.set_exception(ConnectionError("changelog unavailable"))
        else:
            answer.set_result(None)
        return answer


def test_a_refused_changelog_send_is_sent_again_with_the_newest_states() -> None:
    """The agent goes on before the changelog answers; ``confirmed`` says
    whether everything stored so far is in it, and sends again what was
    refused, each key with what the table holds now (never an older state
    after a newer one)."""
    changelog = FlakyChangelog(refuse={0})
    native = NativeStateProcessor(RULES["default"], processors(RULES["default"])[1].topics, 3,
                                  persist=changelog)
    table: dict[bytes, bytes] = {}
    first = messages.RawChanges([messages.encode_changes(
        [change(0, opp="006C", **HEALTHY_DISCOVERY), change(0, opp="006D", **HEALTHY_DISCOVERY)])])
    second = messages.RawChanges([messages.encode_changes([change(1, opp="006C",
                                                                  stage="Solution")])])

    async def scenario() -> None:
        await native.handle_changes(first, 0, table, Recorder([]))
        await native.handle_changes(second, 0, table, Recorder([]))
        with pytest.raises(ConnectionError):
            await native.confirmed()
        await native.confirmed()  # sends the refused keys again, and they are taken
        await native.confirmed()  # nothing left to send

    asyncio.run(scenario())
    assert [sorted(sent) for sent in changelog.sent] == [[b"006C", b"006D"], [b"006C"],
                                                         [b"006C", b"006D"]]
    # 006C went again as it is after the second unit, not as the first left it.
    assert changelog.sent[2][b"006C"] == changelog.sent[1][b"006C"] == table[b"006C"]
    assert changelog.sent[2][b"006D"] == changelog.sent[0][b"006D"]


def test_a_resend_refused_on_the_spot_is_tried_again() -> None:
    """The resend itself can fail before any answer (the producer refuses
    the send): every refused key stays to be sent again."""
    changelog = FlakyChangelog(refuse={0})
    native = NativeStateProcessor(RULES["default"], processors(RULES["default"])[1].topics, 3,
                                  persist=changelog)
    table: dict[bytes, bytes] = {}
    one = messages.RawChanges([messages.encode_changes([change(0, opp="006E",
                                                               **HEALTHY_DISCOVERY)])])

    async def refusing(table: Any, writes: Any, partition: int) -> asyncio.Future[None]:
        raise ConnectionError("producer closed")

    async def scenario() -> None:
        await native.handle_changes(one, 0, table, Recorder([]))
        with pytest.raises(ConnectionError):
            await native.confirmed()
        native.persist = refusing
        with pytest.raises(ConnectionError, match="producer closed"):
            await native.confirmed()
        native.persist = changelog
        await native.confirmed()

    asyncio.run(scenario())
    assert [sorted(sent) for sent in changelog.sent] == [[b"006E"], [b"006E"]]
