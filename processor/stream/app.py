"""The Faust application: topics, the opportunities table, the state agent,
the sweep timer, the ingest loop; its HTTP API is processor.web."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from processor.alerts.actions import AlertActions
from processor.alerts.shell import AlertPolicy
from processor.core.engine import Engine
from processor.rules.config import RuleSet, load_rules
from processor.settings import Settings
from processor.sources.mapping import FieldMappings
from processor.stream import messages
from processor.stream.batches import BatchSender, aiokafka_producer
from processor.stream.changelog import write_through_changelog
from processor.stream.draining import run_state_agent
from processor.stream.ingest import Ingest
from processor.stream.kafka import faust_credentials
from processor.stream.native_state import NativeStateProcessor
from processor.stream.offload import Offload, hand_over_sooner
from processor.stream.owner_queues import OwnerQueueService
from processor.stream.ownership import active_partitions
from processor.stream.recovery import BulkRecovery, RecoveryTableManager
from processor.stream.regroup import Regrouping
from processor.stream.rollups import RollupService
from processor.stream.state import StateProcessor, Topics
from processor.stream.topics import TABLE_NAME
from processor.stream.transport import install as install_transport
from processor.stream.watchdog import StallWatch
from processor.web.cluster import advertised_url
from processor.web.views import register

log = logging.getLogger(__name__)


class Worker:
    """Everything one worker process runs, wired to one Faust app."""

    def __init__(self, settings: Settings, rules: RuleSet | None = None) -> None:
        self.settings = settings
        self.rules = rules or load_rules(settings.rules_file)
        if settings.native_threads:
            hand_over_sooner(settings.gil_switch_ms)
        topics = settings.topics
        self.app = app = faust.App(
            settings.app_id,
            broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
            broker_credentials=faust_credentials(settings),
            store=settings.store,
            datadir=str(settings.data_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            topic_allow_declare=True,
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_bind=settings.web_host,
            # Every send on this producer (outputs, changelog records) is
            # awaited before the batch is acked, so lingering only idles the
            # state agent: 5 ms left the worker waiting 20-30% of the time.
            producer_linger_ms=0,
            producer_max_batch_size=1_048_576,
            # Dead letters carry their original (base64): up to
            # schemas.deadletter.DEAD_LETTER_TOPIC_BYTES, over Faust's 1 MB.
            producer_max_request_size=16 * 1_048_576,
            producer_acks=-1,
            broker_commit_interval=1.0,
            consumer_auto_offset_reset="earliest",
            # Faust fetches 1 MiB per partition by default, which leaves
            # changelog recovery idle most of the time (bench: 2.3x faster).
            consumer_max_fetch_size=16 * 1_048_576,
            autodiscover=False,
            web_enabled=True,
            # The API is ours (processor.web): Faust's own pages would serve
            # table contents and cluster topology to anyone, unauthenticated.
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            canonical_url=advertised_url(settings),
            table_standby_replicas=0,
            # Recovery without Faust's per-record tasks (processor.stream.recovery).
            TableManager=RecoveryTableManager,
        )
        # Fast changelog recovery, commits that never pass a dropped message.
        install_transport(app)
        self.changes_topic = app.topic(
            topics.changes, key_serializer="raw", value_serializer="raw",
            partitions=settings.partitions,
        )
        self.table = app.Table(
            TABLE_NAME, default=None, partitions=settings.partitions,
            key_type=bytes, value_type=bytes,
        )
        # States are stored as the JSON bytes the engine's models write; raw
        # codecs keep Faust from encoding them a second time.
        self.table.key_serializer = "raw"  # type: ignore[attr-defined]
        self.table.value_serializer = "raw"  # type: ignore[attr-defined]
        # Outputs and changelog records go out as whole record batches.
        # Batches built in a thread of their own with native threads on.
        self.sender = BatchSender(
            lambda: aiokafka_producer(app), lz4=settings.compression == "lz4",
            offload=Offload("hygiene-batches") if settings.native_threads else None)
        self.persist = write_through_changelog(self.sender)
        # Snooze, ack and status for the API; snooze marks for the queues.
        self.actions = AlertActions.from_settings(settings) if settings.alert_policy else None
        self.owner_queues = OwnerQueueService(app, settings, self.rules.version, self.actions)
        self.rollups = RollupService(app, settings)
        engine = Engine(self.rules)
        outputs = Topics(topics.alerts, topics.stage_history, topics.commands,
                         topics.dead_letter)
        regroupings: list[Regrouping] = [self.owner_queues.regrouping(engine),
                                         self.rollups.regrouping(self.rules)]
        self.processor: StateProcessor | NativeStateProcessor
        if settings.native_core:
            self.processor = NativeStateProcessor(
                self.rules, outputs, settings.partitions, regroupings=regroupings,
                policy=_alert_policy(settings), persist=self.persist,
                threaded=settings.native_threads)
        else:
            self.processor = StateProcessor(
                engine, outputs, settings.partitions, regroupings=regroupings,
                policy=_alert_policy(settings), persist=self.persist)
        self.mappings = FieldMappings.with_overrides(dict(self.rules.field_mapping.items()))
        self.ingest = Ingest(settings, self.mappings)
        self._wire()

    # ---- wiring -----------------------------------------------------------
    def _wire(self) -> None:
        app, processor, table, sender = self.app, self.processor, self.table, self.sender

        async def publish(records: list[tuple[str, bytes | None, bytes]]) -> None:
            await sender.publish(records)

        @app.agent(self.changes_topic, name="hygiene.state")
        async def state_agent(stream: Any) -> None:
            # What is queued, handled in units, acked by hand once handled
            # (processor.stream.draining; failures: processor.stream.failures).
            native = isinstance(processor, NativeStateProcessor)
            log.info("state agent: the %s rules engine (HYGIENE_NATIVE_CORE=%s)",
                     "native" if native else "Python", str(native).lower())
            await run_state_agent(stream, app, processor, table, publish,
                                  self.settings.topics.dead_letter)

        self.owner_queues.wire(publish, self.persist)
        self.rollups.wire(publish, self.persist)

        @app.timer(self.settings.sweep_interval_seconds)  # type: ignore[untyped-decorator]
        async def sweep() -> None:
            await self.request_sweeps(int(time.time() * 1000))

        @app.task  # type: ignore[untyped-decorator]
        async def ingest() -> None:
            await self.ingest.run()

        if self.settings.recovery_stall_seconds > 0:
            # On the recovery itself: app timers start only once it is done.
            recovery: BulkRecovery = app.tables.recovery  # type: ignore[attr-defined]
            recovery.stall_watch = StallWatch(self.settings.recovery_stall_seconds)

        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_rebalance_complete.connect(self._hold_flow_until_seeked)  # type: ignore[arg-type]

        self.api = register(self)

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.processor.forget()

    async def _hold_flow_until_seeked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """Works around faust-streaming#596. After recovery Faust resumes the
        stream partitions and seeks them to the committed offsets while its
        fetcher runs with flow open, then resumes flow control, which clears
        the agent queues: batches fetched in between were dropped unhandled,
        never fetched again and never acked (commits stuck, states missing
        their changes until the next restart). Closing the flow here (this
        signal comes first in that sequence) makes the fetcher wait instead;
        Faust's own resume right after opens it again."""
        self.app.flow_control.suspend()

    async def request_sweeps(self, now_ms: int) -> int:
        """Asks the owner of each partition this worker actively owns to sweep
        it. Standbys are skipped, and nothing is asked mid-rebalance or
        recovery: the new owner sweeps on its next tick."""
        partitions = active_partitions(self.app, self.changes_topic.get_topic_name())
        for partition in partitions:
            await self.changes_topic.send(value=messages.encode_sweep(now_ms),
                                          partition=partition)
        return len(partitions)


def _alert_policy(settings: Settings) -> AlertPolicy | None:
    if not settings.alert_policy:
        return None
    log.info("alert policy on: Redis %s, prefix %r", settings.redis_url.split("@")[-1],
             settings.alert_policy_prefix)
    return AlertPolicy.from_settings(settings)


def create_worker(settings: Settings | None = None) -> Worker:
    return Worker(settings or Settings())
