"""Faster table recovery from the changelog, on Faust's own recovery machinery.

Why: recovering 1,000,000 opportunities took ~170 s (issue 3 asks for 60 s),
and the time was not Kafka or the store but Faust's per-record plumbing
(py-spy, bench/README.md "Recovery from the changelog"):

- the fetcher hands every changelog record to the conductor inside
  ``Service.wait_first(callback(message), suspend_flow.wait())``, which makes
  four asyncio tasks per record;
- ``Recovery._slurp_changelogs`` takes each record off the changelog queue
  with its own ``asyncio.wait_for(queue.get())`` (one more task), formats two
  debug f-strings, and after every record recomputes the remaining offsets of
  every partition (``need_recovery``, ``standby_remaining_total``).

Two narrow overrides remove that, keeping Faust's semantics:

- :class:`ChangelogConsumer` (installed with ``processor.stream.transport``): a changelog
  record fetched while flow is open and the changelog queue has room is
  decoded by its channel and put on ``app.tables.changelog_queue`` directly,
  as the conductor would, without the per-record tasks. Anything else (flow
  suspended for a rebalance, a full queue, a decode error, other topics) goes
  the usual way, through the fetcher's ``wait_first`` and the conductor.
- :class:`BulkRecovery` (installed with :class:`RecoveryTableManager`, the
  ``TableManager`` app setting): ``_slurp_changelogs`` drains every event
  already queued in one go and checks whether recovery is done once per
  drained batch. Per event it does what Faust does: the offset check against
  the active/standby offsets, ``table.on_changelog_event``, and the buffered
  ``table.apply_changelog_batch`` every ``recovery_buffer_size`` events.

Everything else is Faust's: highwaters, offsets, seeks, standbys, the
``Recovery`` state machine, ``on_recovery_completed``, RocksDB's persisted
offsets (a restart still reads only the changelog tail).

Targets faust-streaming 0.15.x (pyproject pins >=0.15.2,<0.16); written
against 0.15.3's ``faust/tables/recovery.py`` and
``faust/transport/consumer.py``. Re-check both overrides on an upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from time import monotonic
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, EventT, Message
from faust.types.tables import CollectionT
from faust.utils.tracing import finish_span
from mode import Service, get_logger

from processor.stream.watchdog import StallWatch
from processor.stream.watchdog import check as check_stall

logger = get_logger(__name__)

#: How many changelog records the consumer hands over before it lets the
#: event loop run (the recovery task drains them in between).
HAND_OVER_YIELD_EVERY = 500


class BulkRecovery(Recovery):
    """Faust's ``Recovery`` with a changelog loop that drains in bulk, and a
    watch for a recovery that stops making progress (``processor.stream.watchdog``)."""

    stall_watch: StallWatch | None = None

    @Service.timer(2.0)
    async def _watch_for_stall(self) -> None:
        if self.stall_watch is not None:
            await check_stall(self.app, self.stall_watch, monotonic())

    @Service.task
    async def _slurp_changelogs(self) -> None:
        changelog_queue = self.tables.changelog_queue
        timeout_count = 0
        while not self.should_stop:
            try:
                self.signal_recovery_end.clear()
                if changelog_queue.empty():
                    try:
                        first: EventT[Any] = await asyncio.wait_for(
                            changelog_queue.get(), timeout=5.0
                        )
                    except TimeoutError:
                        timeout_count += 1
                        if self.should_stop:
                            return
                        await self._maybe_signal_recovery_end(True, timeout_count)
                        continue
                    events = [first]
                else:
                    events = []
                timeout_count = 0
                while True:
                    try:
                        events.append(changelog_queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                await self._apply_events(events)
                await self._maybe_signal_recovery_end(False, 0)
                if (
                    not (self._standbys_span is None and self.tables.standbys_ready)
                    and not self.standby_remaining_total()
                ):
                    logger.debug("Completed standby partition fetch")
                    if self._standbys_span:
                        finish_span(self._standbys_span)
                        self._standbys_span = None
                    self.tables.on_standbys_ready()
            except Exception as ex:
                logger.warning(f"Error in recovery {ex}")

    async def _apply_events(self, events: list[EventT[Any]]) -> None:
        """Faust's per-event step of ``_slurp_changelogs``, for each event in
        turn. An event of a partition neither active nor standby (revoked
        while queued) is skipped, where Faust would log it and apply it to
        the previous event's table."""
        active_tps, standby_tps = self.active_tps, self.standby_tps
        tp_to_table, buffers, buffer_sizes = self.tp_to_table, self.buffers, self.buffer_sizes
        now = monotonic()
        actives = 0
        for event in events:
            try:
                message = event.message
                tp: TP = message.tp
                offset = message.offset
                active = tp in active_tps
                if not active and tp not in standby_tps:
                    logger.warning(f"recovery unknown topic {tp} offset {offset}")
                    continue
                table = tp_to_table[tp]
                offsets = self.active_offsets if active else self.standby_offsets
                bufsize = buffer_sizes.get(tp)
                if bufsize is None:
                    bufsize = buffer_sizes[tp] = (
                        table.recovery_buffer_size if active else table.standby_buffer_size
                    )
                    if not active:  # as in Faust: a standby's first event only
                        self._standby_events_received_at[tp] = now
                if active:
                    self._active_events_received_at[tp] = now
                seen_offset = offsets.get(tp, None)
                if seen_offset is None or offset > seen_offset:
                    offsets[tp] = offset
                    buf = buffers[table]
                    buf.append(event)
                    await table.on_changelog_event(event)
                    if len(buf) >= bufsize:
                        table.apply_changelog_batch(buf)
                        buf.clear()
                        self._last_flush_at = now
                    actives += active
            except Exception as ex:
                logger.warning(f"Error in recovery {ex}")
        if actives:
            self._record_processing_time(actives)

    def _record_processing_time(self, count: int) -> None:
        """Keeps Faust's estimate of the time remaining: one sample per
        active event, the batch's time spread evenly over its events."""
        now_after = monotonic()
        last = getattr(self, "_last_active_event_processed_at", None)
        if last is not None:
            samples = self._processing_times
            samples.extend([(now_after - last) / count] * count)
            excess = len(samples) - self.num_samples_required_for_estimate
            for _ in range(max(excess, 0)):
                samples.popleft()
        self._last_active_event_processed_at = now_after

    async def _maybe_signal_recovery_end(self, timeout: bool, timeout_count: int) -> None:
        """Faust's closure of the same name in ``_slurp_changelogs``, except
        that the end of a partition is looked for whether or not this app
        uses transactions: a changelog another producer wrote to in a
        transaction ends in a commit marker, an offset no record will ever
        fill, and Faust (checking only in its own transaction mode) waited
        for it forever, /readyz stuck at 503 (test_recovery_integration)."""
        if timeout and timeout_count > 1:
            await self._detect_aborted_tx()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            logger.debug("Setting recovery end")
            self.signal_recovery_end.set()

    async def _detect_aborted_tx(self) -> None:
        """Faust's closure of the same name in ``_slurp_changelogs``: once
        nothing has come for two waits and the consumer stands at or past a
        partition's highwater, whatever lies between is markers (committed
        or aborted transactions), and the partition is done."""
        offsets = self.active_offsets
        for tp, highwater in self.active_highwaters.items():
            if highwater is not None and offsets[tp] is not None and offsets[tp] < highwater:
                position = await self.app.consumer.position(tp)
                if position is not None and position >= highwater:
                    logger.info(f"Aborted tx until highwater for {tp}")
                    offsets[tp] = highwater


class RecoveryTableManager(TableManager):
    """Faust's table manager, recovering with :class:`BulkRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BulkRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class ChangelogConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, handing changelog records straight to the
    changelog queue (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pressure_callbacks: dict[TP, tuple[Callable[[], None], Callable[[], None]]] = {}

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        tables: Any = self.app.tables  # Any: the manager's private maps
        changelogs: dict[str, CollectionT] = tables._changelogs
        channels: dict[CollectionT, Any] = tables._channels
        queue = tables.changelog_queue
        flow_control = self.app.flow_control
        read_offset = self._read_offset
        handed = 0
        async for tp, message in super().getmany(timeout):
            table = changelogs.get(tp.topic)
            channel = channels.get(table) if table is not None else None
            if channel is None or not (self.flow_active and flow_control.is_active()):
                yield tp, message
                continue
            last = read_offset[tp]
            if last is not None and message.offset < last:
                continue  # already read: the fetcher drops these too
            try:
                event = await channel.decode(message, propagate=True)
            except Exception:
                yield tp, message  # the conductor reports decode errors
                continue
            if queue.full() or not (self.flow_active and flow_control.is_active()):
                yield tp, message  # the fetcher waits for room or drops it
                continue
            message.incref(1)
            high, drop = self._pressure(tp)
            queue.put_nowait_enhanced(event, on_pressure_high=high, on_pressure_drop=drop)
            read_offset[tp] = message.offset
            handed += 1
            if handed % HAND_OVER_YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def _pressure(self, tp: TP) -> tuple[Callable[[], None], Callable[[], None]]:
        """The conductor's pressure callbacks for ``tp``, one pair per
        partition (the queue tracks pending drops by callback identity)."""
        pair = self._pressure_callbacks.get(tp)
        if pair is not None:
            return pair
        on_topic_buffer_full = self.app.sensors.on_topic_buffer_full

        def high() -> None:
            on_topic_buffer_full(tp)
            self.on_buffer_full(tp)

        def drop() -> None:
            self.on_buffer_drop(tp)

        pair = self._pressure_callbacks[tp] = (high, drop)
        return pair
