"""Helpers for the stream's integration tests: waiting on conditions, reading
and writing topics, worker subprocesses, isolated topic sets, the replay
oracle and the records the stream publishes.

Nothing here mocks the product: workers are real ``hygiene worker``
processes on the real broker, and every wait polls a condition against a
deadline (``wait_for``) instead of sleeping a guessed amount.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from unittest import mock

import orjson
from aiokafka import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import GroupCoordinatorNotAvailableError  # type: ignore[import-untyped, unused-ignore]
from aiokafka.protocol.group import (  # type: ignore[import-untyped, unused-ignore]
    MemberAssignment,
)
from pydantic import TypeAdapter

from processor.replay.runner import Replay, ReplayResult
from processor.rules.config import RuleSet
from processor.settings import Settings
from processor.simulate import Simulation
from processor.stream.topics import changelog_topic, create_topics
from schemas import Alert, DeadLetter, OpportunityState, Resolution, StageHistoryRecord

PARTITIONS = 4
T = TypeVar("T")

# ---- waiting -------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    explain: Callable[[], str] | None = None,
) -> T:
    """Polls ``predicate`` until it returns something truthy, which is
    returned; raises TimeoutError naming ``what`` (and ``explain()``, e.g. a
    worker's log tail) when the deadline passes first."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise TimeoutError(f"{what}: not within {timeout:.0f}s{detail}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- Kafka ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rec:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int


class Kafka:
    """Synchronous access to the broker for the tests, on one event loop
    that lives as long as the test session (clients are reused)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._runner = asyncio.Runner()
        self._producer: Any = None
        self._consumer: Any = None
        self._admin: Any = None

    def close(self) -> None:
        async def stop() -> None:
            if self._producer is not None:
                await self._producer.stop()
            if self._consumer is not None:
                await self._consumer.stop()
            if self._admin is not None:
                await self._admin.close()

        self._runner.run(stop())
        self._runner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run(self, coro: Any) -> Any:
        return self._runner.run(asyncio.wait_for(coro, timeout=60))

    async def _get_producer(self) -> Any:
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                linger_ms=5, max_request_size=4 * 1_048_576,
            )
            await self._producer.start()
        return self._producer

    async def _get_consumer(self) -> Any:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                auto_offset_reset="earliest", fetch_max_bytes=16 * 1_048_576,
            )
            await self._consumer.start()
        return self._consumer

    async def _get_admin(self) -> Any:
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await self._admin.start()
        return self._admin

    # ---- writing ----------------------------------------------------------
    def produce(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> list[Sent]:
        """Sends (key, value) pairs in order and returns once all are acknowledged."""

        async def send() -> list[Sent]:
            producer = await self._get_producer()
            pending = [await producer.send(topic, value, key=key) for key, value in messages]
            metadata = await asyncio.gather(*pending)
            return [Sent(m.partition, m.offset) for m in metadata]

        result: list[Sent] = self.run(send())
        return result

    def produce_to(
        self, topic: str, records: Iterable[tuple[int, bytes, bytes | None]]
    ) -> list[Sent]:
        """Sends (partition, key, value) records in order, a None value as a
        tombstone, and returns once all are acknowledged."""

        async def send() -> list[Sent]:
            producer = await self._get_producer()
            pending = [await producer.send(topic, value, key=key, partition=partition)
                       for partition, key, value in records]
            metadata = await asyncio.gather(*pending)
            return [Sent(m.partition, m.offset) for m in metadata]

        result: list[Sent] = self.run(send())
        return result

    # ---- reading ----------------------------------------------------------
    def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def end_offsets(self, topic: str) -> dict[int, int]:
        async def ends() -> dict[int, int]:
            consumer = await self._get_consumer()
            found = await consumer.end_offsets(self.partitions(topic))
            return {tp.partition: offset for tp, offset in found.items()}

        result: dict[int, int] = self.run(ends())
        return result

    def count(self, topic: str) -> int:
        """Records in a topic (nothing here is ever compacted or deleted)."""
        return sum(self.end_offsets(topic).values())

    def read(self, topic: str) -> list[Rec]:
        """Every record of ``topic`` up to its end offsets at the time of the
        call, ordered by (partition, offset)."""

        async def read_all() -> list[Rec]:
            consumer = await self._get_consumer()
            tps = self.partitions(topic)
            ends = await consumer.end_offsets(tps)
            wanted = {tp: end for tp, end in ends.items() if end > 0}
            records: list[Rec] = []
            if not wanted:
                return records
            consumer.assign(list(wanted))
            await consumer.seek_to_beginning(*wanted)
            remaining = set(wanted)
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for tp, batch in batches.items():
                    records.extend(
                        Rec(topic, tp.partition, r.offset, r.key, r.value)
                        for r in batch if r.offset < wanted[tp]
                    )
                for tp in list(remaining):
                    if await consumer.position(tp) >= wanted[tp]:
                        remaining.discard(tp)
            consumer.assign([])
            records.sort(key=lambda r: (r.partition, r.offset))
            return records

        result: list[Rec] = self.run(read_all())
        return result

    def read_until(
        self,
        topic: str,
        condition: Callable[[list[Rec]], bool],
        timeout: float,
        what: str,
        explain: Callable[[], str] | None = None,
    ) -> list[Rec]:
        """Reads ``topic`` again and again until ``condition`` holds for its records."""
        seen: list[list[Rec]] = []

        def check() -> bool:
            records = self.read(topic)
            seen[:] = [records]
            return condition(records)

        wait_for(check, timeout, what, interval=0.2, explain=explain)
        return seen[0]

    # ---- groups and topics ----------------------------------------------
    def committed(self, group: str, topic: str) -> dict[int, int]:
        async def offsets() -> dict[int, int]:
            admin = await self._get_admin()
            try:
                found = await admin.list_consumer_group_offsets(group)
            except GroupCoordinatorNotAvailableError:
                return {}  # a fresh broker's offsets topic is still being made
            return {tp.partition: meta.offset for tp, meta in found.items()
                    if tp.topic == topic and meta.offset >= 0}

        result: dict[int, int] = self.run(offsets())
        return result

    def caught_up(self, group: str, topic: str) -> bool:
        """The group has committed everything the topic holds."""
        ends = self.end_offsets(topic)
        committed = self.committed(group, topic)
        return all(committed.get(p, 0) >= end for p, end in ends.items())

    def assignment(self, group: str, topic: str) -> dict[str, set[int]]:
        """Member id -> partitions of ``topic`` assigned to it (empty while
        the group rebalances or has no members)."""

        async def describe() -> dict[str, set[int]]:
            admin = await self._get_admin()
            response = (await admin.describe_consumer_groups([group]))[0]
            members: dict[str, set[int]] = {}
            for (error_code, group_id, state, _protocol_type, _protocol,
                 group_members, *_rest) in response.groups:
                if error_code != 0 or group_id != group or state != "Stable":
                    return {}
                for member_id, *_ids, _client, _host, _metadata, raw in group_members:
                    partitions: set[int] = set()
                    if raw:
                        decoded = MemberAssignment.decode(raw)
                        for name, numbers in decoded.assignment:
                            if name == topic:
                                partitions.update(numbers)
                    members[member_id] = partitions
            return members

        result: dict[str, set[int]] = self.run(describe())
        return result

    def set_topic_config(self, topic: str, config: Mapping[str, str]) -> None:
        """Replaces the topic's configuration overrides with ``config``
        (Kafka's AlterConfigs: unnamed keys go back to the broker default)."""
        from aiokafka.admin.config_resource import (  # type: ignore[import-untyped, unused-ignore]
            ConfigResource,
            ConfigResourceType,
        )

        async def alter() -> None:
            admin = await self._get_admin()
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, dict(config))])

        self.run(alter())

    def topics_ready(self, names: Sequence[str]) -> bool:
        async def describe() -> bool:
            admin = await self._get_admin()
            described = await admin.describe_topics(list(names))
            return len(described) == len(names) and all(
                t["error_code"] == 0 and len(t["partitions"]) > 0
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            )

        result: bool = self.run(describe())
        return result


# ---- an isolated set of topics and groups -----------------------------------------

_TOPIC_ENV = {
    "inputs": "INPUTS",
    "changes": "CHANGES",
    "alerts": "ALERTS",
    "digests": "DIGESTS",
    "stage_history": "STAGE_HISTORY",
    "rollups": "ROLLUPS",
    "rollup_rows": "ROLLUP_ROWS",
    "overrides": "OVERRIDES",
    "override_log": "OVERRIDE_LOG",
    "commands": "COMMANDS",
    "dead_letter": "DEAD_LETTER",
    "owner_queues": "OWNER_QUEUES",
    "rollup_members": "ROLLUP_MEMBERS",
}


@dataclass
class Stream:
    """One application's world: its app id (consumer groups, changelog) and
    every topic name, all unique to one test."""

    bootstrap: str
    app_id: str
    names: dict[str, str]
    settings_env: dict[str, str] = field(default_factory=dict)
    """Further HYGIENE_* settings every worker of this stream gets."""

    @classmethod
    def unique(cls, bootstrap: str, label: str, **settings: str) -> Stream:
        suffix = uuid.uuid4().hex[:10]
        app_id = f"t-{label}-{suffix}"
        names = {role: f"{app_id}.{role.replace('_', '-')}" for role in _TOPIC_ENV}
        return cls(bootstrap, app_id, names, dict(settings))

    def env(self) -> dict[str, str]:
        env = {
            "HYGIENE_KAFKA_BOOTSTRAP": self.bootstrap,
            "HYGIENE_APP_ID": self.app_id,
            "HYGIENE_PARTITIONS": str(PARTITIONS),
            "HYGIENE_STORE": "memory://",
            "HYGIENE_WEB_HOST": "127.0.0.1",
            "HYGIENE_SWEEP_INTERVAL_SECONDS": "3600",
            # Off unless a test turns it on: the replay oracle has no policy.
            "HYGIENE_ALERT_POLICY": "false",
        }
        env.update({f"HYGIENE_TOPIC_{_TOPIC_ENV[role]}": name for role, name in self.names.items()})
        env.update(self.settings_env)
        return env

    def settings(self) -> Settings:
        """Settings as a worker of this stream reads them (``Settings.topics``
        reads the environment when asked, so use it inside ``environment``)."""
        return Settings()

    @contextlib.contextmanager
    def environment(self) -> Iterator[None]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HYGIENE_")}
        with mock.patch.dict(os.environ, {**clean, **self.env()}, clear=True):
            yield

    def create_topics(self, kafka: Kafka) -> None:
        with self.environment():
            settings = self.settings()
            created = asyncio.run(create_topics(settings))
            names = [spec.name for spec, _ in created]
        assert len(names) == len(set(names)) == len(_TOPIC_ENV) + 3  # + changelogs
        wait_for(lambda: kafka.topics_ready(names), 30, f"topics of {self.app_id} have leaders")

    @property
    def input(self) -> str:
        return self.names["inputs"]

    @property
    def changes(self) -> str:
        return self.names["changes"]

    @property
    def alerts(self) -> str:
        return self.names["alerts"]

    @property
    def history(self) -> str:
        return self.names["stage_history"]

    @property
    def dead_letter(self) -> str:
        return self.names["dead_letter"]

    @property
    def changelog(self) -> str:
        with self.environment():
            return changelog_topic(self.settings())

    @property
    def ingest_group(self) -> str:
        return f"{self.app_id}-ingest"

    def drained(self, kafka: Kafka) -> bool:
        """Every input message was routed (ingest committed its input) and
        every change batch or sweep was applied and its outputs acknowledged
        (the state agent committed the changes topic)."""
        return kafka.caught_up(self.ingest_group, self.input) and kafka.caught_up(
            self.app_id, self.changes
        )


# ---- worker processes ----------------------------------------------------------


DRAIN_TIMEOUT = 90.0


def drain(stream: Stream, kafka: Kafka, *workers: WorkerProcess,
          timeout: float = DRAIN_TIMEOUT) -> None:
    """Waits until every input is routed and every change applied, with its
    outputs acknowledged (both consumer groups committed their topics' ends)."""
    wait_for(lambda: stream.drained(kafka), timeout, f"{stream.app_id} drained",
             interval=0.25, explain=lambda: "\n".join(w.log_tail() for w in workers))



class WorkerProcess:
    """``python -m processor.cli worker`` with an explicit environment
    (another ``hygiene`` command by overriding ``command``)."""

    command: tuple[str, ...] = ("worker", "--loglevel", "info")

    def __init__(self, name: str, stream: Stream, directory: Path, **settings: str) -> None:
        self.name = name
        self.stream = stream
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / f"{name}.log"
        self.extra = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("HYGIENE_")}
        data_dir = self.directory / f"{self.name}-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        return {
            **base,
            **self.stream.env(),
            "HYGIENE_WEB_PORT": str(self.port),
            "HYGIENE_DATA_DIR": str(data_dir),
            **self.extra,
        }

    def start(self) -> Self:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "processor.cli", *self.command],
                env=self.env(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def readyz(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                status: int = r.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return None

    def wait_ready(self, timeout: float = 60) -> Self:
        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"worker {self.name} exited:\n{self.log_tail()}")
            return self.readyz() == 200

        wait_for(ready, timeout, f"worker {self.name} /readyz", interval=0.1,
                 explain=self.log_tail)
        return self

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for a clean exit."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        return self._signal(signal.SIGKILL, 10)

    def _signal(self, signum: int, timeout: float) -> int:
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.name} still running {timeout:.0f}s after signal {signum}:\n"
                f"{self.log_tail()}"
            ) from None

    def cleanup(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` on this process's /metrics whose
        labels include ``labels`` (counters are named with ``_total``)."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name == name
                   and all(sample.labels.get(k) == v for k, v in labels.items()))

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"({self.name}: no log)"
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stacks(self, timeout: float = 5.0) -> str:
        """What every asyncio task of the worker waits on: mode's worker logs
        them on SIGUSR1. For failures where a worker stalls."""
        if self.proc is None or self.proc.poll() is not None:
            return f"({self.name}: not running)"
        before = len(self.log_text())
        self.proc.send_signal(signal.SIGUSR1)
        sizes = [before]

        def dumped() -> bool:  # grown, then no longer growing
            sizes.append(len(self.log_text()))
            return sizes[-1] > before and sizes[-1] == sizes[-2]

        try:
            wait_for(dumped, timeout, f"{self.name} logs its tasks", interval=0.3)
        except TimeoutError:
            return f"({self.name}: no task dump within {timeout:.0f}s)"
        return f"--- {self.name} tasks ---\n" + self.log_text()[before:]


# ---- inputs --------------------------------------------------------------------


def keyed(sim: Simulation) -> list[tuple[bytes | None, bytes]]:
    """The simulation's deliveries as Kafka messages keyed by opportunity id."""
    return [(key.encode(), payload) for key, payload in zip(sim.keys, sim.events, strict=True)]


def bulk_messages(
    sim: Simulation, start: datetime, days: int, every_days: int = 6
) -> list[tuple[bytes | None, bytes]]:
    """Bulk-export row messages (``{"export_id", "exported_at", "row"}``) made
    from a generic-format simulation: every ``every_days`` an export holds one
    row per opportunity that changed since the previous export, with all its
    fields as of then, its last activity date and its modification time."""
    fields: dict[str, dict[str, Any]] = {}
    modified: dict[str, str] = {}
    activity: dict[str, str] = {}
    changed: set[str] = set()
    out: list[tuple[bytes | None, bytes]] = []
    cut = start + timedelta(days=every_days)
    exports = 0

    def export(at: datetime) -> None:
        nonlocal exports
        exports += 1
        for opp in sorted(changed):
            row: dict[str, Any] = {
                "opportunity_id": f"bulk-{opp}",
                "updated_at": modified[opp],
                **fields[opp],
            }
            if opp in activity:
                row["last_activity_date"] = activity[opp]
            message = {"export_id": f"exp-{exports}", "exported_at": at.isoformat(), "row": row}
            out.append((row["opportunity_id"].encode(), orjson.dumps(message)))
        changed.clear()

    for payload in sim.events:
        event = orjson.loads(payload)
        occurred = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        while occurred >= cut:
            export(cut)
            cut += timedelta(days=every_days)
        opp = event["opportunity_id"]
        if event["op"] == "activity":
            activity[opp] = occurred.date().isoformat()
        elif event["op"] == "upsert":
            current = fields.setdefault(opp, {})
            for name, value in event["fields"].items():
                if value is None:
                    current.pop(name, None)
                else:
                    current[name] = value
            modified[opp] = max(modified.get(opp, ""), event["occurred_at"])
        else:
            continue
        if opp in fields:
            changed.add(opp)
    export(start + timedelta(days=days))
    return out


# ---- the oracle and the outputs -----------------------------------------------------

_ALERT_RECORD: TypeAdapter[Alert | Resolution] = TypeAdapter(Alert | Resolution)


def replay(rules: RuleSet, messages: Sequence[tuple[bytes | None, bytes]]) -> ReplayResult:
    """The offline path over the same messages in the same order, without the
    final sweep: what the stream must publish when it does not sweep."""
    runner = Replay(rules, received_at=datetime.now(UTC))
    for number, (_key, raw) in enumerate(messages):
        runner.feed(raw, "oracle", number)
    return runner.result


def history_records(records: Iterable[Rec]) -> list[StageHistoryRecord]:
    return [StageHistoryRecord.model_validate_json(r.value) for r in records]


def alert_records(records: Iterable[Rec]) -> list[Alert | Resolution]:
    return [_ALERT_RECORD.validate_json(r.value) for r in records]


def dead_letters(records: Iterable[Rec]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(r.value) for r in records]


def dump(record: Any) -> dict[str, Any]:
    result: dict[str, Any] = record.model_dump(mode="json")
    return result


def last_by_id(history: Iterable[StageHistoryRecord]) -> dict[str, dict[str, Any]]:
    """Record id -> the last version published (what a keyed upsert keeps)."""
    return {h.record_id: dump(h) for h in history}


def versions_by_id(history: Iterable[StageHistoryRecord]) -> dict[str, list[dict[str, Any]]]:
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in history:
        versions[h.record_id].append(dump(h))
    return dict(versions)


def alerts_by_id(records: Iterable[Alert | Resolution]) -> dict[str, dict[str, Any]]:
    """Alert id -> the alert (kind "alert" only)."""
    return {a.alert_id: dump(a) for a in records if a.kind == "alert"}


def resolved_ids(records: Iterable[Alert | Resolution]) -> set[str]:
    return {a.alert_id for a in records if a.kind == "resolution"}


NOTICE_RULES = frozenset({"stage_skipped", "stage_regressed"})
"""One-off notices: raised, never opened or resolved."""


def open_rules(records: Iterable[Alert | Resolution]) -> dict[str, set[str]]:
    """Opportunity -> rules with an alert published and not resolved."""
    opened: dict[str, tuple[str, str]] = {}
    resolved: set[str] = set()
    for a in records:
        if a.kind == "alert" and a.rule_id not in NOTICE_RULES:
            opened[a.alert_id] = (a.opportunity_id, a.rule_id)
        elif a.kind == "resolution":
            resolved.add(a.alert_id)
    found: dict[str, set[str]] = defaultdict(set)
    for alert_id, (opp, rule) in opened.items():
        if alert_id not in resolved:
            found[opp].add(rule)
    return dict(found)


def final_states(records: Iterable[Rec]) -> dict[str, OpportunityState]:
    """The table as its changelog holds it: the last value per key."""
    states: dict[str, OpportunityState] = {}
    for r in records:
        assert r.key is not None
        if r.value:
            states[r.key.decode()] = OpportunityState.model_validate_json(r.value)
        else:
            states.pop(r.key.decode(), None)
    return states


def comparable(state: OpportunityState) -> dict[str, Any]:
    """A state as data: its JSON form, except that the field stamps stay a
    mapping (the JSON groups fields by stamp in insertion order), without the
    sweep schedule that only the stream keeps (``next_due_ms``)."""
    data = state.model_dump(mode="json", exclude={"stamps", "next_due_ms"})
    return {**data, "stamps": dict(state.stamps)}


def diff(left: Mapping[str, Any], right: Mapping[str, Any], limit: int = 5) -> str:
    """A short account of how two mappings differ, for assertion messages."""
    only_left = sorted(set(left) - set(right))
    only_right = sorted(set(right) - set(left))
    changed = sorted(k for k in set(left) & set(right) if left[k] != right[k])
    lines = [f"only in stream ({len(only_left)}): {only_left[:limit]}",
             f"only in oracle ({len(only_right)}): {only_right[:limit]}",
             f"different ({len(changed)}):"]
    lines += [f"  {k}: stream={left[k]!r}\n  {' ' * len(k)}  oracle={right[k]!r}"
              for k in changed[:limit]]
    return "\n".join(lines)


def assert_same_as_replay(
    kafka: Kafka, stream: Stream, oracle: ReplayResult
) -> tuple[list[StageHistoryRecord], list[Alert | Resolution]]:
    """The stream published what the replay of the same inputs does: the
    latest version of every stage-history record, and every alert and
    resolution. Returns what it read, for further checks."""
    history = history_records(kafka.read(stream.history))
    alerts = alert_records(kafka.read(stream.alerts))
    assert last_by_id(history) == last_by_id(oracle.history)
    stream_alerts, oracle_alerts = alerts_by_id(alerts), alerts_by_id(oracle.alerts)
    assert stream_alerts == oracle_alerts, diff(stream_alerts, oracle_alerts)
    return history, alerts
