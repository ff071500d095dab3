"""The Kafka transport the workers use: Faust's aiokafka transport whose
consumer hands changelog records straight to recovery
(:mod:`processor.stream.recovery`) and never commits past a message nobody
handled (:mod:`processor.stream.commits`)."""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver

from processor.stream.commits import GaplessCommits
from processor.stream.recovery import ChangelogConsumer


class Consumer(GaplessCommits, ChangelogConsumer):
    """Both overrides; they touch different methods."""


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer


def install(app: Any) -> None:
    """Makes ``app`` consume with :class:`Consumer`. The table manager is an
    app setting: ``TableManager=processor.stream.recovery.RecoveryTableManager``."""
    app.transport = Transport(app.conf.broker_consumer, app)
