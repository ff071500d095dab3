"""The notifier as a process, and reading what it left behind."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]

from tests.stream.support import Kafka, Stream, WorkerProcess


class NotifierProcess(WorkerProcess):
    """``hygiene notify slack``; its Prometheus metrics on ``self.port``."""

    command = ("notify", "slack", "--loglevel", "info")

    def env(self) -> dict[str, str]:
        return {**super().env(), "HYGIENE_SLACK_METRICS_PORT": str(self.port),
                "HYGIENE_SLACK_METRICS_HOST": "127.0.0.1"}


def group_of(stream: Stream) -> str:
    return f"{stream.app_id}-notify-slack"


def caught_up(kafka: Kafka, stream: Stream, group: str | None = None) -> bool:
    """The notifier's group committed everything on both of its topics (not
    yet, while a fresh broker still has no coordinator for the group)."""
    name = group or group_of(stream)
    try:
        return (kafka.caught_up(name, stream.alerts)
                and kafka.caught_up(name, stream.names["digests"]))
    except KafkaError:
        return False


def explain(notifier: NotifierProcess, kafka: Kafka, stream: Stream,
            group: str | None = None) -> Callable[[], str]:
    """For a timed-out wait: the notifier's log and where its group stands."""
    name = group or group_of(stream)

    def describe() -> str:
        try:
            where = {topic: (kafka.committed(name, topic), kafka.end_offsets(topic))
                     for topic in (stream.alerts, stream.names["digests"])}
        except KafkaError as exc:
            where = {"error": str(exc)}  # type: ignore[dict-item]
        return f"{notifier.log_tail()}\ncommitted, end offsets: {where}"

    return describe
