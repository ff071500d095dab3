"""Every topic the product uses, with its partitions and cleanup policy.

``hygiene topics create`` makes them before any worker starts: a topic that
Faust or the broker auto-creates with one partition next to a changelog with
many crashes the agent (PartitionsMismatch), and outputs keyed for upserts
want compaction from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import TopicAlreadyExistsError  # type: ignore[import-untyped, unused-ignore]

from processor.settings import Settings
from processor.stream.kafka import aiokafka_options
from schemas.deadletter import DEAD_LETTER_TOPIC_BYTES

TABLE_NAME = "opportunities"
OWNER_QUEUE_TABLE = "owner-queues"
ROLLUP_TABLE = "manager-rollups"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compact: bool
    purpose: str
    max_message_bytes: int | None = None
    """None: the broker's default (1 MB unless its operator changed it)."""

    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": "compact"} if self.compact else {}
        if self.max_message_bytes is not None:
            config["max.message.bytes"] = str(self.max_message_bytes)
        return config


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{TABLE_NAME}-changelog"


def owner_queue_changelog(settings: Settings) -> str:
    return f"{settings.app_id}-{OWNER_QUEUE_TABLE}-changelog"


def rollup_changelog(settings: Settings) -> str:
    return f"{settings.app_id}-{ROLLUP_TABLE}-changelog"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    n = settings.partitions
    specs = [TopicSpec(name, n, False, "CRM input") for name in t.inputs]
    specs += [
        TopicSpec(t.changes, n, False, "normalized changes by opportunity (internal)"),
        TopicSpec(changelog_topic(settings), n, True, "opportunity state changelog (internal)"),
        TopicSpec(t.owner_queues, n, False, "hygiene-queue entries by owner (internal)"),
        TopicSpec(owner_queue_changelog(settings), n, True,
                  "owner hygiene-queue changelog (internal)"),
        TopicSpec(t.rollup_members, n, False, "rollup entries and overrides by manager (internal)"),
        TopicSpec(rollup_changelog(settings), n, True, "manager rollup changelog (internal)"),
        TopicSpec(t.alerts, n, False, "alerts and resolutions"),
        TopicSpec(t.digests, n, True, "weekly hygiene queues, one per owner"),
        TopicSpec(t.stage_history, n, False, "stage history for the warehouse"),
        # Not compacted: keyed by manager, one record per (manager, period),
        # so compaction would keep only a manager's latest period.
        TopicSpec(t.rollups, n, False, "manager forecast rollups"),
        TopicSpec(t.rollup_rows, n, False, "manager forecast rollups as flat rows"),
        TopicSpec(t.overrides, n, False, "manager overrides (input)"),
        TopicSpec(t.override_log, n, False, "accepted overrides"),
        TopicSpec(t.commands, n, False, "close-out recommendations"),
        TopicSpec(t.dead_letter, n, False, "inputs that could not be processed",
                  DEAD_LETTER_TOPIC_BYTES),
    ]
    return specs


async def create_topics(settings: Settings) -> list[tuple[TopicSpec, bool]]:
    """Creates what is missing; returns each spec with whether it was created."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        results: list[tuple[TopicSpec, bool]] = []
        for spec in topic_specs(settings):
            if spec.name in existing:
                results.append((spec, False))
                continue
            config = spec.config()
            try:
                await admin.create_topics([NewTopic(
                    name=spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=settings.replication_factor,
                    topic_configs=config,
                )])
                results.append((spec, True))
            except TopicAlreadyExistsError:
                results.append((spec, False))
        return results
    finally:
        await admin.close()
