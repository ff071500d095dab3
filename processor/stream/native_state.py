"""The state agent's work on the native engine (``processor.hygiene_core``).

Does what ``processor.stream.state.StateProcessor`` does, with the same
published records, stored bytes and regroup messages (``tests/stream``
holds the two equal), at a fraction of the cost: a unit's messages go to
the core as the bytes that came off the topic, in one call, and its records
come back as the JSON that is published; no change becomes a Python object.

States live in the core, loaded from the table (``table.get``) when it does
not hold them, and written back in their stored form (``state_to_json``,
with ``next_due_ms``), so the table stays what the Python engine, the HTTP
API and recovery read. As in the Python processor, outputs are published
and acknowledged before states are written, and a unit that fails drops
what the core holds for its keys, so the core never holds what the table
does not. The changelog's acknowledgements are not waited for per unit but
once per round of the agent, before it acks its input (``confirmed``).

Regroupings need each touched opportunity's membership before and after:
the core returns a light form (fields, open alerts, merge, latest event)
from which membership is computed; the whole stored state is parsed only to
render an entry whose membership changed. Memberships are remembered per
key beside the core's states.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from pydantic import Field, TypeAdapter

from processor.rules.config import RuleSet
from processor.rules.export import native_rules
from processor.stream import messages, metrics
from processor.stream.changelog import Persist, write_mapping
from processor.stream.messages import ChangeBatch, RawChanges, SweepTick
from processor.stream.offload import Offload
from processor.stream.regroup import Membership, Outbox, Payload, Regrouping
from processor.stream.routing import Partitioner
from processor.stream.state import (
    PartitionIndex,
    Publish,
    StateProcessor,
    Topics,
    processing_dead_letter,
    publish_decided,
)
from processor.stream.store_items import partitioned_items
from schemas import AlertRecord, OpportunityState
from schemas.state import state_from_json, unpack

if TYPE_CHECKING:
    from processor.alerts.shell import AlertPolicy
    from processor.hygiene_core import Unit, UnitState

log = logging.getLogger(__name__)

Out = list[tuple[str, bytes | None, bytes]]

_ALERT, _HISTORY, _COMMAND = 0, 1, 2
_LOADED = 1
_ALERTS: TypeAdapter[AlertRecord] = TypeAdapter(
    Annotated[AlertRecord, Field(discriminator="kind")])


_BLANK = OpportunityState(opportunity_id="")


@dataclass(slots=True)
class LightState:
    """What memberships read of a state (``regroup.Membered``), from the
    core's light form (``shell::light``): never stored or evaluated, so
    not an ``OpportunityState`` (copying a blank one per key was a
    twentieth of the event loop's time)."""

    opportunity_id: str
    fields: dict[str, Any]
    open_alerts: dict[str, int]
    merged_into: str | None = None


def light_state(opportunity_id: bytes, light: bytes) -> LightState:
    data = orjson.loads(light)
    return LightState(opportunity_id.decode(), data["fields"], data["open_alerts"],
                      data.get("merged_into"))


class NativeStateProcessor:
    CACHE_LIMIT = StateProcessor.CACHE_LIMIT

    def __init__(
        self,
        rules: RuleSet,
        topics: Topics,
        partitions: int,
        regroupings: Sequence[Regrouping] = (),
        policy: AlertPolicy | None = None,
        persist: Persist = write_mapping,
        *,
        threaded: bool = True,
    ) -> None:
        from processor.hygiene_core import Core

        self.core = Core(native_rules(rules))
        # Light forms hold only what memberships read: a change to anything
        # else (activities, next steps, MEDDICC fields) then costs none.
        self.core.set_light_fields(sorted({name for r in regroupings for name in r.fields_read}))
        self.topics = topics
        self.regroupings = regroupings
        self.policy = policy
        self.persist = persist
        self.index = PartitionIndex(Partitioner(partitions))
        self.memberships: dict[bytes, tuple[bytes, list[Membership | None]]] = {}
        """Per key the core holds: its light form and memberships as last
        stored (compared, so an unchanged light form costs no membership)."""
        self.offload = Offload("hygiene-core", threaded=threaded)
        self._ahead: _Ahead | None = None
        self._clear_pending = False
        """The core is to be cleared, once no call uses it (a revoke or a
        failed unit while a call ran in the offload thread)."""
        self._unconfirmed: list[_Unconfirmed] = []
        """States stored whose changelog records are not acknowledged yet."""
        self._resend: list[_Unconfirmed] = []

    async def confirmed(self) -> None:
        """Returns once the changelog holds every state stored so far: the
        agent acks its input only then, so a crash never commits past a
        state the changelog lacks. If a send failed it raises, and the next
        call sends those keys again first, each with what the table holds
        now (the newest, so a resent older state can never land after a
        newer one)."""
        if self._resend:
            for entry in self._resend:
                writes = {key: entry.table.get(key) for key in entry.keys}
                self._unconfirmed.append(_Unconfirmed(
                    await self.persist(entry.table, writes, entry.partition), entry.table,
                    entry.keys, entry.partition))
            # Only now: a send refused on the spot leaves every key to resend.
            self._resend = []
        pending, self._unconfirmed = self._unconfirmed, []
        results = await asyncio.gather(*(entry.sent for entry in pending), return_exceptions=True)
        failed = [entry for entry, result in zip(pending, results, strict=True)
                  if isinstance(result, BaseException)]
        if failed:
            self._resend = failed
            error = next(r for r in results if isinstance(r, BaseException))
            raise error

    def _in_use(self) -> bool:
        """A core call runs in the offload thread, or a unit was applied
        ahead and is not handled yet: the core holds states the table does
        not, and must not be called (it would refuse) or cleared yet."""
        return self.offload.busy or self._ahead is not None

    def forget(self) -> None:
        """Partitions were revoked: what we know may be stale elsewhere.
        While a unit is being applied, its result stands (as for a unit
        being published), and the core is cleared as soon as it is done;
        a unit applied ahead and not handled yet is applied again."""
        self.index.forget()
        self.memberships.clear()
        if self._in_use():
            self._clear_pending = True
        else:
            self.core.clear()

    @staticmethod
    def decode(raw: bytes) -> RawChanges | SweepTick:
        """How the state agent reads a ``hygiene.changes`` message for this
        processor: change batches stay bytes, for the core to read."""
        return messages.decode_raw(raw)

    def _bound(self) -> None:
        # As the Python processor's cache: cleared whole when full.
        if len(self.core) >= self.CACHE_LIMIT:
            self.core.clear()
            self.memberships.clear()

    def _drop(self, keys: list[bytes]) -> None:
        """Forgets what a failed unit did (the table holds the states
        before it); with a call in use of the core, everything."""
        for key in keys:
            self.memberships.pop(key, None)
        if self._in_use():
            self._clear_pending = True
        else:
            self.core.drop_states([key.decode() for key in keys])

    async def _free(self) -> None:
        """Makes the core free to call: a unit applied ahead and not asked
        for is waited out and undone, a pending clear done."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            await asyncio.wait([ahead.unit])
            if ahead.unit.cancelled():
                self._clear_pending = True  # what it did is unknown
            elif ahead.unit.exception() is None and not self._clear_pending:
                self.core.drop_states([state[0].decode() for state in ahead.unit.result()[1]])
            # (On an error the core dropped what the call touched itself.)
        await self.offload.idle()
        if self._clear_pending:
            self._clear_pending = False
            self.core.clear()

    async def _applied(
        self, batch: ChangeBatch | RawChanges, table: MutableMapping[bytes, bytes]
    ) -> Unit:
        ahead = self._ahead
        if ahead is not None and ahead.batch is batch and not self._clear_pending:
            self._ahead = None
            call = ahead.unit  # its error is this unit's
        else:
            await self._free()
            self._bound()
            # On an error the core drops what this call touched itself.
            call = self.offload.submit(self.core.apply_messages, _raw(batch), 0, table.get)
        try:
            return await call
        except asyncio.CancelledError:
            # The call may run on: the states it leaves go once it is done.
            self._clear_pending = True
            raise

    async def handle_changes(
        self,
        batch: ChangeBatch | RawChanges,
        partition: int,
        table: MutableMapping[bytes, bytes],
        publish: Publish,
        *,
        offset: int = 0,
        then: ChangeBatch | RawChanges | None = None,
    ) -> None:
        """``offset``: the batch's position in its partition, the version of
        the regrouped entries it produces (see ``processor.stream.regroup``).
        ``then``: the batch the agent handles next, when it is already
        queued: the core applies it in its thread while this one is
        published and stored, so the two overlap. Each unit still publishes
        before it stores, and stores in order: a crash still redoes at most
        the unacked units, from the states the table holds."""
        try:
            unit = await self._applied(batch, table)
            if then is not None and self.offload.threaded:
                # The core holds this unit's states already: `then` applies
                # on top of them, as it would after this unit is stored.
                self._ahead = _Ahead(then, self.offload.submit(
                    self.core.apply_messages, _raw(then), 0, table.get))
            metrics.CHANGES_APPLIED.inc(unit[3])
            await self._handle(unit, partition, table, publish, offset=offset, now_ms=0)
        finally:
            if self._clear_pending and not self._in_use():
                self._clear_pending = False
                self.core.clear()

    async def handle_sweep(
        self,
        tick: SweepTick,
        partition: int,
        table: MutableMapping[bytes, bytes],
        publish: Publish,
        *,
        offset: int = 0,
    ) -> None:
        now = tick.at_ms
        await self._free()
        index = self.index.for_partition(partition, lambda: partitioned_items(table))
        due = [key.decode() for key, at in index.items() if at is not None and at <= now]
        self._bound()
        unit = self.core.sweep_keys(due, now, table.get)
        metrics.SWEEPS.inc()
        await self._handle(unit, partition, table, publish, offset=offset, now_ms=now)

    async def _handle(
        self,
        unit: Unit,
        partition: int,
        table: MutableMapping[bytes, bytes],
        publish: Publish,
        *,
        offset: int,
        now_ms: int,
    ) -> None:
        records, states, rejects, _ = unit
        try:
            out: Out = []
            held = self._collect(records, out)
            for key, raw, why in rejects:
                out.append(self._dead_letter(key, raw, why, partition))
            if self.regroupings:
                out.extend(self._regroup(states, table, offset, now_ms))
            await self._finish(out, held, states, partition, table, publish)
        except BaseException:
            self._drop([state[0] for state in states])
            raise

    def _collect(self, records: list[tuple[int, bytes, bytes]], out: Out) -> list[AlertRecord]:
        """Appends the records to ``out`` in order; alerts are held back
        instead (validated into models) when a policy decides them."""
        topics = self.topics
        held: list[AlertRecord] = []
        history = commands = 0
        for kind, key, value in records:
            if kind == _ALERT:
                if self.policy is not None:
                    held.append(_ALERTS.validate_json(value))
                else:
                    alert = orjson.loads(value)
                    self._alert_out(key, value, alert["kind"], alert["rule_id"], out)
            elif kind == _HISTORY:
                out.append((topics.stage_history, key, value))
                history += 1
            else:
                out.append((topics.commands, key, value))
                commands += 1
        # Most units have few; a counter increment takes a lock.
        if history:
            metrics.STAGE_HISTORY.inc(history)
        if commands:
            metrics.COMMANDS.inc(commands)
        return held

    def _alert_out(self, key: bytes, value: bytes, kind: str, rule_id: str, out: Out) -> None:
        out.append((self.topics.alerts, key, value))
        counter = metrics.ALERTS if kind == "alert" else metrics.RESOLUTIONS
        counter.labels(rule=rule_id).inc()

    def _regroup(
        self,
        states: list[UnitState],
        table: MutableMapping[bytes, bytes],
        offset: int,
        now_ms: int,
    ) -> list[tuple[str, bytes, bytes]]:
        """The regroup messages of the unit; memberships of the touched
        states are computed from their light forms (only when one differs
        from the one remembered) and kept for the next unit."""
        outbox = Outbox(self.regroupings, offset)
        regroupings = self.regroupings
        remembered = self.memberships
        for key, stored, light, origin, _, loaded, high_water_ms in states:
            held = remembered.get(key)
            if held is not None:
                old_light, before = held
            elif origin == _LOADED and loaded is not None:
                old_light = loaded
                before = [r.membership(light_state(key, loaded)) for r in regroupings]
            else:
                # A new opportunity (not stored: nothing) or, should the two
                # ever part, a state the core holds without a remembered
                # membership: computed from the table, not yet written.
                old_light = b""
                raw = table.get(key)
                full = None if raw is None else state_from_json(raw)
                before = [None if full is None else r.membership(full) for r in regroupings]
            if light == old_light:
                after = before
            else:
                state = light_state(key, light)
                after = [r.membership(state) for r in regroupings]
                if after != before:
                    at_ms = max(now_ms, high_water_ms)
                    outbox.record(key.decode(), before, after, at_ms,
                                  _renderer(stored, state, at_ms))
            remembered[key] = (light, after)
        return outbox.messages()

    async def _finish(
        self,
        out: Out,
        held: list[AlertRecord],
        states: list[UnitState],
        partition: int,
        table: MutableMapping[bytes, bytes],
        publish: Publish,
    ) -> None:
        """As ``StateProcessor._finish``: publishes (held alerts as the
        policy decides), waits for the acks, then stores the states; the
        changelog's answer is waited for by ``confirmed``, so the next unit
        goes on meanwhile."""
        await publish_decided(
            self.policy, held, out, publish,
            lambda record: self._alert_out(record.opportunity_id.encode(),
                                           record.model_dump_json().encode(), record.kind,
                                           record.rule_id, out))
        writes = {key: stored for key, stored, *_ in states}
        self._unconfirmed.append(
            _Unconfirmed(await self.persist(table, writes, partition), table, list(writes),
                         partition))
        index = self.index
        for key, _, _, _, due, *_ in states:
            index.set(partition, key, due)

    def _dead_letter(
        self, key: bytes | None, raw: bytes, why: str, partition: int
    ) -> tuple[str, bytes | None, bytes]:
        """A change the core could not read, or failed on (the rest of the
        unit went on), as ``StateProcessor._dead_letter`` sends it."""
        log.error("native core rejected a change of %r: %s", key, why)
        return processing_dead_letter(self.topics.dead_letter, key, raw, why[:2000], partition)


@dataclass
class _Unconfirmed:
    """States stored and sent to the changelog, not acknowledged yet."""

    sent: Awaitable[None]
    table: MutableMapping[bytes, bytes]
    keys: list[bytes]
    partition: int


@dataclass
class _Ahead:
    """A unit the core applies (or applied) before the agent asked."""

    batch: ChangeBatch | RawChanges
    unit: asyncio.Future[Unit]


def _raw(batch: ChangeBatch | RawChanges) -> list[bytes]:
    return batch.messages if isinstance(batch, RawChanges) else [
        messages.encode_changes(batch.changes)]


def whole_state(stored: bytes) -> OpportunityState:
    """The core's stored form as a state, without validation (the core
    wrote it; ``state_from_json`` validates at 3-4 times the cost)."""
    data = unpack(orjson.loads(stored))
    return _BLANK.model_copy(update=data)


def _renderer(
    stored: bytes, light: LightState, at_ms: int
) -> Callable[[Regrouping, Membership], Payload | None]:
    """Renders from the light state where the regrouping can, else from
    the whole state, parsed once and only if asked."""
    parsed: list[OpportunityState] = []

    def render(regrouping: Regrouping, membership: Membership) -> Payload | None:
        if regrouping.renders_from_light:
            return regrouping.render(light, at_ms, membership)
        if not parsed:
            parsed.append(whole_state(stored))
        return regrouping.render(parsed[0], at_ms, membership)

    return render
