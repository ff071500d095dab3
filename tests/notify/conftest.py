"""Fixtures for the notifier's integration tests: the broker client, a
local Slack server, and per test its own topics, group and Redis prefix."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.stream.conftest import pytest_runtest_makereport  # noqa: F401 (rep_call for logs)
from tests.stream.support import Kafka, Stream

from .slack_server import SlackServer, slack_server
from .support import NotifierProcess

NewNotifier = Callable[..., NotifierProcess]


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap: str) -> Iterator[Kafka]:
    with Kafka(kafka_bootstrap) as client:
        yield client


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with slack_server() as server:
        yield server


@pytest.fixture
def stream(kafka: Kafka, request: pytest.FixtureRequest) -> Stream:
    label = request.node.name.removeprefix("test_")[:12].strip("_").replace("_", "-")
    created = Stream.unique(kafka.bootstrap, label)
    created.create_topics(kafka)
    return created


@pytest.fixture
def new_notifier(tmp_path: Path, stream: Stream, redis_url: str,
                 request: pytest.FixtureRequest) -> Iterator[NewNotifier]:
    """``new_notifier(name, **HYGIENE_settings)``: a ``hygiene notify slack``
    process on this test's topics, Redis prefix and (unless overridden)
    consumer group; stopped at the end, its log printed when the test failed."""
    prefix = f"t:{uuid.uuid4().hex[:10]}:"
    made: list[NotifierProcess] = []

    def make(name: str, **settings: str) -> NotifierProcess:
        env = {"HYGIENE_REDIS_URL": redis_url, "HYGIENE_SLACK_REDIS_PREFIX": prefix, **settings}
        notifier = NotifierProcess(name, stream, tmp_path, **env)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.cleanup()
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        for notifier in made:
            print(notifier.log_tail(150))
