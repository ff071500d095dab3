"""Fixtures for the stream's integration tests: one broker client for the
session, and per test its own topics, consumer groups and worker processes."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from processor.rules import RuleSet, default_rules

from .support import Kafka, Stream, WorkerProcess

NewStream = Callable[..., Stream]
NewWorker = Callable[..., WorkerProcess]


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return default_rules()


@pytest.fixture(scope="session")
def kafka(kafka_bootstrap: str) -> Iterator[Kafka]:
    with Kafka(kafka_bootstrap) as client:
        yield client


@pytest.fixture
def new_stream(kafka: Kafka, request: pytest.FixtureRequest) -> NewStream:
    """``new_stream(**HYGIENE_settings)``: a fresh app id and topic set, created."""
    node = request.node
    label = node.originalname.removeprefix("test_")[:12].strip("_")
    callspec = getattr(node, "callspec", None)
    if callspec is not None:
        label += "-" + callspec.id
    label = "".join(c if c.isalnum() else "-" for c in label)

    def make(**settings: str) -> Stream:
        stream = Stream.unique(kafka.bootstrap, label, **settings)
        stream.create_topics(kafka)
        return stream

    return make


@pytest.fixture
def new_worker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NewWorker]:
    """``new_worker(name, stream, **HYGIENE_settings)``: a worker process, not
    yet started; every one still running at the end of the test is stopped.
    Their logs are printed when the test failed."""
    workers: list[WorkerProcess] = []

    def make(name: str, stream: Stream, **settings: str) -> WorkerProcess:
        worker = WorkerProcess(name, stream, tmp_path, **settings)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.cleanup()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for worker in workers:
            print(worker.log_tail(120))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
