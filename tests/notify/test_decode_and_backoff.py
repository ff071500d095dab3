"""Reading the topics tolerantly, and the retry schedule."""

from __future__ import annotations

import random

import orjson
import pytest

from processor.notify.records import AlertNotice, DigestNotice, ResolutionNotice, decode_notice
from processor.notify.retry import Backoff, SlackFailure, parse_retry_after
from processor.sources.base import Reject

from .records import alert, digest, encode, item, resolution


def test_alert_delivery_defaults_to_realtime_and_policy_fields_are_read_tolerantly() -> None:
    plain = decode_notice(encode(alert(1)), digest_topic=False)
    assert isinstance(plain, AlertNotice) and plain.delivery == "realtime"
    marked = decode_notice(encode(alert(1), delivery="digest", delivery_reason="over budget"),
                           digest_topic=False)
    assert isinstance(marked, AlertNotice)
    assert (marked.delivery, marked.delivery_reason) == ("digest", "over budget")
    assert marked.alert == alert(1)
    null = decode_notice(encode(alert(1), delivery=None), digest_topic=False)
    assert isinstance(null, AlertNotice) and null.delivery == "realtime"


def test_resolutions_and_digests() -> None:
    assert isinstance(decode_notice(encode(resolution(alert(1))), digest_topic=False),
                      ResolutionNotice)
    assert isinstance(decode_notice(encode(digest([item(1, 10.0)])), digest_topic=True),
                      DigestNotice)


@pytest.mark.parametrize(("raw", "reason", "says"), [
    (b"{not json", "malformed_json", "not JSON"),
    (b"[1]", "schema_violation", "expected a JSON object"),
    (b'{"kind": "nudge"}', "schema_violation", "kind: expected"),
    (encode(alert(1), delivery="sms"), "schema_violation", "delivery: expected"),
    (orjson.dumps({"kind": "alert", "alert_id": "x"}), "schema_violation", "opportunity_id"),
    (None, "malformed_json", "not JSON"),
])
def test_undeliverable_records_are_rejected_with_their_bytes(
    raw: bytes | None, reason: str, says: str
) -> None:
    found = decode_notice(raw, digest_topic=False)
    assert isinstance(found, Reject)
    assert found.reason == reason and says in found.error and found.raw == (raw or b"")


def test_backoff_grows_with_full_jitter_and_is_capped() -> None:
    policy = Backoff(base=1.0, cap=8.0, max_attempts=10)
    rng = random.Random(3)
    for failed, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(failed, None, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # the whole range is used


def test_retry_after_is_a_floor() -> None:
    policy = Backoff(base=0.5, cap=8.0)
    rng = random.Random(1)
    delays = [policy.delay(1, 3.0, rng) for _ in range(100)]
    assert all(3.0 <= d <= 3.5 for d in delays)


def test_when_to_give_up() -> None:
    policy = Backoff(max_attempts=3, max_retry_after=60)
    server = SlackFailure("500", status=500, transient=True)
    assert policy.gives_up(server, 2) is None
    assert policy.gives_up(server, 3) == "gave up after 3 attempts"
    assert policy.gives_up(SlackFailure("404", status=404, transient=False), 1) == "permanent"
    slow = SlackFailure("429", status=429, retry_after=3600, transient=True)
    assert policy.gives_up(slow, 1) == "Retry-After 3600s exceeds 60s"
    assert [parse_retry_after(v) for v in ("2", " 1.5 ", "-1", "Wed, 21 Oct", None)] == [
        2.0, 1.5, None, None, None]
    assert (server.cause, slow.cause) == ("5xx", "429")
