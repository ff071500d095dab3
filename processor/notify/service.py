"""The notifier process: Kafka in, Slack out, offsets committed behind it.

Records of one partition are delivered in order (a resolution never
overtakes its alert, both are keyed by opportunity id); partitions of a
fetch are delivered side by side. A partition's offset is committed only up
to the records that were delivered, deliberately skipped or dead-lettered,
and only after each of them was: a record still being retried when the
notifier stops, or when it crashes, is read again on restart, and the Redis
record of posted messages keeps that from posting twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from aiokafka import (  # type: ignore[import-untyped, unused-ignore]
    AIOKafkaConsumer,
    AIOKafkaProducer,
    TopicPartition,
)
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    CommitFailedError,
    IllegalStateError,
)

from processor.notify import metrics
from processor.notify.deliver import Delivery, DeliveryFailed, Stopped
from processor.notify.links import CrmLinks
from processor.notify.posted import PostedStore
from processor.notify.records import decode_notice
from processor.notify.retry import Backoff
from processor.notify.routing import Routing, load_routing, single_route
from processor.notify.settings import (
    SINGLE_WEBHOOK_ENV,
    SlackSettings,
    webhook_env_name,
    webhook_url,
)
from processor.notify.slack import Transport, WebApiTransport, WebhookTransport, close_quietly
from processor.settings import Settings
from processor.sources.base import Reject
from processor.stream.kafka import aiokafka_options
from schemas import DeadLetter, DeadLetterReason

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The notifier cannot start as configured; the message says what to set."""


def load_routes(slack: SlackSettings) -> Routing:
    if slack.routes_file is None:
        return single_route(slack.channel)
    return load_routing(slack.routes_file)


def make_transport(slack: SlackSettings, routing: Routing,
                   environ: Mapping[str, str]) -> Transport:
    """Web API with a bot token, else one incoming webhook per route; every
    route must have its destination before anything is consumed."""
    if slack.bot_token is not None:
        missing = [name for name, route in routing.routes.items() if not route.channel]
        if missing:
            raise ConfigError("Web API mode needs a channel for every route; missing for: "
                              + ", ".join(missing)
                              + (" (set HYGIENE_SLACK_CHANNEL or use a routing file)"
                                 if slack.routes_file is None else ""))
        return WebApiTransport(slack.bot_token, slack.api_url,
                               {name: r.channel for name, r in routing.routes.items()},
                               slack.timeout_seconds)
    default = routing.default_route
    urls = {name: webhook_url(name, environ, is_default=name == default)
            for name in routing.routes}
    missing = [webhook_env_name(name) + (f" (or {SINGLE_WEBHOOK_ENV})" if name == default else "")
               for name, url in urls.items() if url is None]
    if missing:
        raise ConfigError("no Slack destination: set " + ", ".join(missing)
                          + " (incoming webhook URLs) or HYGIENE_SLACK_BOT_TOKEN")
    return WebhookTransport({name: url for name, url in urls.items() if url is not None},
                            slack.timeout_seconds)


class SlackNotifier:
    def __init__(self, settings: Settings, slack: SlackSettings, routing: Routing,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.slack = slack
        self.routing = routing
        self.environ = os.environ if environ is None else environ
        self.topics = settings.topics
        self.group_id = slack.group_id or f"{settings.app_id}-notify-slack"
        self._stopping = asyncio.Event()
        self.commit_interval = 1.0
        self._committed: dict[Any, int] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise Stopped

    async def run(self) -> None:
        transport = make_transport(self.slack, self.routing, self.environ)
        password = self.settings.redis_password
        client = aioredis.Redis.from_url(
            self.settings.redis_url,
            password=password.get_secret_value() if password else None,
            socket_timeout=5, socket_connect_timeout=5,
        )
        store = PostedStore(client, self.slack.redis_prefix,
                            int(self.slack.posted_ttl_days * 86_400))
        slack = self.slack
        delivery = Delivery(
            transport=transport, store=store, routing=self.routing,
            links=CrmLinks.from_settings(slack),
            backoff=Backoff(slack.backoff_base_seconds, slack.backoff_max_seconds,
                            slack.max_attempts, slack.max_retry_after_seconds),
            sleep=self._sleep, now=lambda: datetime.now(UTC),
            on_resolution=slack.on_resolution, digest_top=slack.digest_top,
        )
        options = aiokafka_options(self.settings)
        consumer = AIOKafkaConsumer(
            self.topics.alerts, self.topics.digests,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A Retry-After or Slack outage can hold a fetch for minutes; the
            # group must not evict us for it (the heartbeat runs meanwhile).
            max_poll_interval_ms=3_600_000,
            **options,
        )
        producer = AIOKafkaProducer(acks="all", enable_idempotence=True,
                                    max_request_size=16 * 1_048_576, **options)
        try:
            await producer.start()
            await consumer.start()
            while not self._stopping.is_set():
                fetched = await consumer.getmany(timeout_ms=300, max_records=100)
                if not fetched:
                    continue
                done: dict[Any, int] = {}
                limit = asyncio.Semaphore(slack.concurrency)
                batch = asyncio.gather(*(
                    self._partition(tp, records, done, delivery, producer, limit)
                    for tp, records in fetched.items()
                ))
                # While one partition waits out a Retry-After, what the others
                # delivered is committed, so a crash re-reads little. Whether
                # the batch had finished is read before committing, so the
                # last commit covers every record of it.
                finished = False
                while not finished:
                    await asyncio.wait([batch], timeout=self.commit_interval)
                    finished = batch.done()
                    await self._commit(consumer, done)
                batch.result()
        finally:
            await consumer.stop()
            await producer.stop()
            await close_quietly(transport)
            await client.aclose()

    async def _partition(self, tp: Any, records: list[Any], done: dict[Any, int],
                         delivery: Delivery, producer: Any, limit: asyncio.Semaphore) -> None:
        async with limit:
            for record in records:
                if self._stopping.is_set():
                    return
                try:
                    await self._one(tp, record, delivery, producer)
                except Stopped:
                    return
                done[tp] = record.offset + 1

    async def _one(self, tp: Any, record: Any, delivery: Delivery, producer: Any) -> None:
        notice = decode_notice(record.value, digest_topic=tp.topic == self.topics.digests)
        if isinstance(notice, Reject):
            await self._dead_letter(producer, tp, record, notice.reason, notice.error)
            return
        try:
            await delivery.handle(notice)
        except DeliveryFailed as exc:
            await self._dead_letter(producer, tp, record, "delivery_failed", str(exc))
        except Stopped:
            raise
        except Exception as exc:  # a bug on one record must not stop the others
            log.exception("notifying %s:%d@%d failed", tp.topic, tp.partition, record.offset)
            await self._dead_letter(producer, tp, record, "processing_error",
                                    f"{type(exc).__name__}: {exc}")

    async def _dead_letter(self, producer: Any, tp: Any, record: Any,
                           reason: DeadLetterReason, error: str) -> None:
        letter = DeadLetter.of(reason, error, source=tp.topic, original=record.value or b"",
                               received_at=datetime.now(UTC), key=record.key,
                               partition=tp.partition, offset=record.offset)
        # Waiting for the ack is what makes committing past this record safe.
        await (await producer.send(self.topics.dead_letter, letter.model_dump_json().encode(),
                                   key=record.key))
        metrics.DEAD_LETTERS.labels(reason).inc()
        log.warning("dead-lettered %s:%d@%d (%s): %s", tp.topic, tp.partition, record.offset,
                    reason, error)

    async def _commit(self, consumer: Any, done: dict[Any, int]) -> None:
        """Commits each partition up to its last finished record, if that moved."""
        progress = {TopicPartition(tp.topic, tp.partition): offset for tp, offset in done.items()
                    if self._committed.get(tp) != offset}
        if not progress:
            return
        try:
            await consumer.commit(progress)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance moved the partitions: their new owner reads these
            # records again and finds them in Redis as posted.
            log.warning("offsets not committed, records will be read again: %s", exc)
            return
        self._committed.update(progress)
