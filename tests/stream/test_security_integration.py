"""Workers and commands on a broker that demands SASL over TLS, with every
mechanism the product speaks: the security settings run against a real
broker, not only parsed.

The broker (``LocalKafka(secured=True)``) keeps a plaintext listener too,
which this test's own client uses to feed and read topics; the product's
processes get only the SASL_SSL address.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.devstack import security
from processor.devstack.kafka import LocalKafka
from processor.rules import RuleSet
from processor.simulate import simulate

from .support import (
    Kafka,
    Stream,
    WorkerProcess,
    assert_same_as_replay,
    drain,
    keyed,
    replay,
    wait_for,
)
from .token_server import CLIENT_ID, CLIENT_SECRET, TokenServer, token_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalKafka]:
    kafka = LocalKafka(secured=True)
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="module")
def plain(broker: LocalKafka) -> Iterator[Kafka]:
    with Kafka(broker.bootstrap_servers) as client:
        yield client


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[TokenServer]:
    with token_server() as server:
        yield server


def secured_env(broker: LocalKafka, mechanism: str, idp: TokenServer | None = None,
                **overrides: str) -> dict[str, str]:
    assert broker.tls is not None
    env = {
        "HYGIENE_KAFKA_BOOTSTRAP": broker.secured_bootstrap_servers,
        "HYGIENE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "HYGIENE_KAFKA_SSL_CAFILE": str(broker.tls.ca_file),
        "HYGIENE_KAFKA_SASL_MECHANISM": mechanism,
    }
    if mechanism == "OAUTHBEARER":
        assert idp is not None
        env.update({"HYGIENE_KAFKA_SASL_OAUTH_ENDPOINT_URL": idp.url,
                    "HYGIENE_KAFKA_SASL_OAUTH_CLIENT_ID": CLIENT_ID,
                    "HYGIENE_KAFKA_SASL_OAUTH_CLIENT_SECRET": CLIENT_SECRET})
    else:
        env.update({"HYGIENE_KAFKA_SASL_USERNAME": security.USER,
                    "HYGIENE_KAFKA_SASL_PASSWORD": security.PASSWORDS[mechanism]})
    env.update(overrides)
    return env


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "OAUTHBEARER"])
def test_a_worker_on_a_sasl_ssl_listener_gives_the_replays_outputs(
    mechanism: str, broker: LocalKafka, plain: Kafka, identity_provider: TokenServer,
    rules: RuleSet, tmp_path: Path,
) -> None:
    fetched_before = len(identity_provider.issued)
    stream = Stream.unique(broker.bootstrap_servers, f"sec-{mechanism.lower()}",
                           **secured_env(broker, mechanism, identity_provider))
    stream.create_topics(plain)  # `hygiene topics create`'s code, over SASL_SSL
    worker = WorkerProcess("worker", stream, tmp_path).start()
    try:
        worker.wait_ready()
        sim = simulate(opportunities=15, days=30, seed=3, fmt="mixed",
                       start=datetime(2026, 5, 4, tzinfo=UTC), rules=rules)
        messages = keyed(sim)
        plain.produce(stream.input, messages)
        drain(stream, plain, worker)
        history, _ = assert_same_as_replay(plain, stream, replay(rules, messages))
        assert history
    finally:
        worker.cleanup()
    if mechanism == "OAUTHBEARER":
        assert len(identity_provider.issued) > fetched_before


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_publish_authenticates_with_a_password(
    mechanism: str, broker: LocalKafka, plain: Kafka, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"a": 1}\n{"b": 2}\n')
    stream = Stream.unique(broker.bootstrap_servers, f"pub-{mechanism.lower()}",
                           **secured_env(broker, mechanism))
    stream.create_topics(plain)
    with stream.environment():
        result = CliRunner().invoke(main, ["publish", str(events)])
    assert result.exit_code == 0, result.output
    assert [r.value for r in plain.read(stream.input)] == [b'{"a": 1}', b'{"b": 2}']


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "OAUTHBEARER"])
def test_a_worker_with_wrong_credentials_says_why_and_never_gets_ready(
    mechanism: str, broker: LocalKafka, plain: Kafka, identity_provider: TokenServer,
    tmp_path: Path,
) -> None:
    wrong = ({"HYGIENE_KAFKA_SASL_OAUTH_CLIENT_SECRET": "wrong"} if mechanism == "OAUTHBEARER"
             else {"HYGIENE_KAFKA_SASL_PASSWORD": "wrong"})
    good = Stream.unique(broker.bootstrap_servers, f"bad-{mechanism.lower()}",
                         **secured_env(broker, mechanism, identity_provider))
    good.create_topics(plain)
    worker = WorkerProcess("worker", good, tmp_path, **wrong).start()
    expected = "invalid_client" if mechanism == "OAUTHBEARER" else "invalid credentials"
    try:
        wait_for(lambda: expected in worker.log_text(), 60,
                 f"the worker logs {expected!r}", explain=worker.log_tail)
        assert worker.readyz() != 200
    finally:
        worker.cleanup()
