"""``hygiene notify slack`` end to end: the real broker, a real Redis, the
notifier as a process, and a local Slack server answering 429 and 5xx on cue.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from schemas import DeadLetter
from tests.stream.support import Kafka, Stream, wait_for

from .conftest import NewNotifier
from .records import alert, digest, encode, item, resolution
from .slack_server import Answer, SlackServer, rate_limited, server_error
from .support import caught_up, explain, group_of

pytestmark = pytest.mark.integration

ROUTES = """
default_route: revops
routes:
  revops: {channel: C0REVOPS}
  emea: {channel: C0EMEA, owners: ["005EMEA"], managers: ["005MGR_EMEA"]}
"""
FAST_RETRIES = {
    "HYGIENE_SLACK_BACKOFF_BASE_SECONDS": "0.05",
    "HYGIENE_SLACK_BACKOFF_MAX_SECONDS": "0.2",
    "HYGIENE_SLACK_SALESFORCE_INSTANCE": "acme",
}


def routes_file(tmp_path: Path) -> str:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    return str(path)


def webhooks(slack: SlackServer, tmp_path: Path) -> dict[str, str]:
    return {
        "HYGIENE_SLACK_ROUTES_FILE": routes_file(tmp_path),
        "HYGIENE_SLACK_WEBHOOK_REVOPS": f"{slack.base}/hooks/revops",
        "HYGIENE_SLACK_WEBHOOK_EMEA": f"{slack.base}/hooks/emea",
        **FAST_RETRIES,
    }


def key(opportunity_id: str) -> bytes:
    return opportunity_id.encode()


def successful_posts(slack: SlackServer) -> Counter[tuple[str | None, str | None, str]]:
    """(event type, record, path) -> how many times Slack accepted it."""
    return Counter((*r.event, r.path) for r in slack.received() if r.ok)


def shown(request_body: dict[str, object]) -> str:
    return orjson.dumps(request_body.get("blocks")).decode()


def test_webhooks_retry_route_skip_dead_letter_and_post_each_message_once(
    kafka: Kafka, stream: Stream, slack: SlackServer, new_notifier: NewNotifier,
    tmp_path: Path,
) -> None:
    a1, a2, a3, a4, a5 = (alert(n) for n in range(1, 6))
    a1 = alert(1, owner_id="005EMEA")
    slack.cue("hygiene_alert", a1.alert_id, rate_limited(1), server_error())
    slack.cue("hygiene_alert", a4.alert_id,
              Answer(404, {"Content-Type": "text/html"}, b"no_service"))
    slack.cue("hygiene_alert", a5.alert_id, *[server_error()] * 4)
    garbage = b'{"kind": "alert", oops'
    kafka.produce(stream.alerts, [
        (key(a1.opportunity_id), encode(a1)),
        (key(a2.opportunity_id), encode(a2, delivery="digest", delivery_reason="over budget")),
        (key(a3.opportunity_id), encode(a3)),
        (key(a4.opportunity_id), encode(a4, delivery="realtime", delivery_reason=None)),
        (key(a5.opportunity_id), encode(a5)),
        (b"k-garbage", garbage),
        (key(a1.opportunity_id), encode(resolution(a1))),
        (key(a2.opportunity_id), encode(resolution(a2))),
    ])
    queue = digest([item(1, 30_000.0), item(2, 250_000.0, issues=2)], owner="005EMEA")
    # A rep routed by nobody but their manager: their digest goes where
    # their team's alerts go.
    team_queue = digest([item(3, 5_000.0)], owner="005NEWREP").model_copy(
        update={"manager_id": "005MGR_EMEA"})
    kafka.produce(stream.names["digests"], [(b"005EMEA", encode(queue)),
                                            (b"005NEWREP", encode(team_queue))])

    notifier = new_notifier("n1", **webhooks(slack, tmp_path),
                            HYGIENE_SLACK_MAX_ATTEMPTS="4").start()
    wait_for(lambda: caught_up(kafka, stream), 90, "notifier committed both topics",
             explain=explain(notifier, kafka, stream))

    # The alert: 429 with Retry-After 1, then 500, then accepted; the wait
    # after the 429 was the server's second, not the 0.05 s backoff.
    tries = slack.about("hygiene_alert", a1.alert_id)
    assert [r.status for r in tries] == [429, 500, 200]
    assert all(r.path == "/hooks/emea" for r in tries)
    assert tries[1].at - tries[0].at >= 0.95
    body = tries[2].json
    blocks = shown(body)
    for expected in ("Big deal, single-threaded", "Globex renewal 1", "125,001 USD",
                     "Negotiation", "Nov 28, 2026", "Get a second stakeholder involved",
                     "https://acme.lightning.force.com/lightning/r/Opportunity/"
                     "006Ab0000000001/view", "High"):
        assert expected in blocks, expected
    assert body["text"].startswith("High: Big deal, single-threaded on Globex renewal 1")

    # Routed by owner; the digest-only alert and its resolution never shown.
    assert [r.path for r in slack.about("hygiene_alert", a3.alert_id)] == ["/hooks/revops"]
    assert slack.about("hygiene_alert", a2.alert_id) == []
    assert slack.about("hygiene_resolution", a2.alert_id) == []

    # The resolution follows its alert, in the same place.
    (resolved,) = slack.about("hygiene_resolution", a1.alert_id)
    assert resolved.ok and resolved.path == "/hooks/emea" and resolved.at > tries[2].at
    assert "Resolved" in resolved.json["text"] and "condition cleared" in resolved.json["text"]

    # One message per owner for the digest, biggest deal first.
    (queued,) = slack.about("hygiene_digest", "005EMEA")
    assert queued.ok and queued.path == "/hooks/emea"
    listing = shown(queued.json)
    assert listing.index("Deal 2") < listing.index("Deal 1")
    assert "280K USD" in listing
    (team,) = slack.about("hygiene_digest", "005NEWREP")
    assert team.ok and team.path == "/hooks/emea"

    # A 404 is not retried; four 500s exhaust the attempts: both dead-lettered
    # with the original bytes, as is the record that is not JSON.
    assert [r.status for r in slack.about("hygiene_alert", a4.alert_id)] == [404]
    assert [r.status for r in slack.about("hygiene_alert", a5.alert_id)] == [500] * 4
    letters = {(DeadLetter.model_validate_json(r.value).original_value(), r.key):
               DeadLetter.model_validate_json(r.value) for r in kafka.read(stream.dead_letter)}
    assert len(letters) == 3
    by_value = {value: letter for (value, _), letter in letters.items()}
    assert by_value[encode(a4, delivery="realtime", delivery_reason=None)].reason == \
        "delivery_failed"
    assert "404" in by_value[encode(a4, delivery="realtime", delivery_reason=None)].error
    assert "gave up after 4 attempts" in by_value[encode(a5)].error
    assert by_value[garbage].reason == "malformed_json"
    assert (garbage, b"k-garbage") in letters
    assert all(letter.source == stream.alerts for letter in letters.values())

    # Nothing lost, nothing twice.
    assert successful_posts(slack) == Counter({
        ("hygiene_alert", a1.alert_id, "/hooks/emea"): 1,
        ("hygiene_alert", a3.alert_id, "/hooks/revops"): 1,
        ("hygiene_resolution", a1.alert_id, "/hooks/emea"): 1,
        ("hygiene_digest", "005EMEA", "/hooks/emea"): 1,
        ("hygiene_digest", "005NEWREP", "/hooks/emea"): 1,
    })

    metric = notifier.metric
    assert metric("hygiene_notify_retried_total", cause="429") == 1
    assert metric("hygiene_notify_retried_total", cause="5xx") == 1 + 3
    assert metric("hygiene_notify_delivered_total", kind="alert", rule="single_threaded") == 2
    assert metric("hygiene_notify_delivered_total", kind="resolution") == 1
    assert metric("hygiene_notify_delivered_total", kind="digest") == 2
    assert metric("hygiene_notify_failed_total", kind="alert", cause="5xx") == 1
    assert metric("hygiene_notify_failed_total", kind="alert", cause="404") == 1
    assert metric("hygiene_notify_skipped_total", reason="digest_delivery") == 1
    assert metric("hygiene_notify_skipped_total", reason="alert_not_posted") == 1
    assert metric("hygiene_notify_dead_letters_total") == 3
    assert notifier.stop() == 0


def test_offsets_wait_for_delivery_and_a_crash_reposts_nothing(
    kafka: Kafka, stream: Stream, slack: SlackServer, new_notifier: NewNotifier,
    tmp_path: Path,
) -> None:
    stuck_deal = "006Ab0000099999"
    before, stuck, after = (alert(n, opportunity_id=stuck_deal) for n in (10, 11, 12))
    others = [alert(n) for n in range(20, 28)]
    slack.cue("hygiene_alert", stuck.alert_id, *[server_error()] * 100_000)
    sent = kafka.produce(stream.alerts, [(key(stuck_deal), encode(a))
                                         for a in (before, stuck, after)])
    partition, stuck_offset = sent[1].partition, sent[1].offset
    elsewhere = kafka.produce(stream.alerts, [(key(a.opportunity_id), encode(a)) for a in others])
    free = {s.partition for s in elsewhere} - {partition}
    assert free, "some alerts must sit on another partition than the stuck one"
    env = {**webhooks(slack, tmp_path), "HYGIENE_SLACK_MAX_ATTEMPTS": "1000000"}

    first = new_notifier("first", **env).start()
    group = group_of(stream)

    def others_committed() -> bool:
        ends = kafka.end_offsets(stream.alerts)
        committed = kafka.committed(group, stream.alerts)
        return all(committed.get(p, 0) >= ends[p] for p in free)

    wait_for(lambda: len(slack.about("hygiene_alert", stuck.alert_id)) >= 5
             and others_committed(), 90, "the stuck alert retried while the rest committed",
             explain=explain(first, kafka, stream))
    # The record being retried, and everything behind it, stay uncommitted.
    assert kafka.committed(group, stream.alerts).get(partition, 0) <= stuck_offset
    assert slack.about("hygiene_alert", after.alert_id) == []
    assert [r.status for r in slack.about("hygiene_alert", before.alert_id)] == [200]

    first.kill()  # a crash in the middle of the retries
    slack.clear_cues()
    second = new_notifier("second", **env).start()
    wait_for(lambda: caught_up(kafka, stream), 90, "restarted notifier caught up",
             explain=explain(second, kafka, stream))

    expected = Counter({("hygiene_alert", a.alert_id, "/hooks/revops"): 1
                        for a in (before, stuck, after, *others)})
    assert successful_posts(slack) == expected
    order = [r.event[1] for r in slack.delivered() if r.event[1] in
             (before.alert_id, stuck.alert_id, after.alert_id)]
    assert order == [before.alert_id, stuck.alert_id, after.alert_id]
    assert kafka.read(stream.dead_letter) == []
    assert second.stop() == 0


def test_web_api_edits_and_threads_the_original_across_restarts_and_instances(
    kafka: Kafka, stream: Stream, slack: SlackServer, new_notifier: NewNotifier,
    tmp_path: Path,
) -> None:
    c1, c2 = alert(31, owner_id="005EMEA"), alert(32)
    slack.cue("hygiene_alert", c2.alert_id, rate_limited(1), path="/api/chat.postMessage")
    # One key, so one partition: the Retry-After wait then overlaps the
    # periodic commit, the timing that once left the last record uncommitted.
    kafka.produce(stream.alerts, [(key(c1.opportunity_id), encode(c)) for c in (c1, c2)])
    env = {
        "HYGIENE_SLACK_ROUTES_FILE": routes_file(tmp_path),
        "HYGIENE_SLACK_BOT_TOKEN": "xoxb-test-token",
        "HYGIENE_SLACK_API_URL": f"{slack.base}/api/",
        **FAST_RETRIES,
    }
    first = new_notifier("first", **env).start()
    wait_for(lambda: caught_up(kafka, stream), 90, "alerts posted",
             explain=explain(first, kafka, stream))
    (posted,) = slack.about("hygiene_alert", c1.alert_id)
    assert posted.path == "/api/chat.postMessage"
    assert posted.headers["authorization"] == "Bearer xoxb-test-token"
    assert posted.json["channel"] == "C0EMEA"
    assert "Globex renewal 31" in shown(posted.json)
    ts = posted.answer_json["ts"]
    retried = slack.about("hygiene_alert", c2.alert_id)
    assert [(r.status, r.json["channel"]) for r in retried] == [(429, "C0REVOPS"),
                                                                 (200, "C0REVOPS")]
    assert retried[1].at - retried[0].at >= 0.95
    assert first.stop() == 0

    # The resolution arrives while no notifier runs; the next one finds the
    # original message in Redis.
    kafka.produce(stream.alerts, [(key(c1.opportunity_id),
                                   encode(resolution(c1, "closed as Closed Won")))])
    second = new_notifier("second", **env).start()
    wait_for(lambda: caught_up(kafka, stream), 90, "resolution delivered",
             explain=explain(second, kafka, stream))
    (update,) = [r for r in slack.about("hygiene_resolution", c1.alert_id)
                 if r.path == "/api/chat.update"]
    assert (update.json["channel"], update.json["ts"]) == ("C0EMEA", ts)
    assert "Resolved: Big deal, single-threaded" in shown(update.json)
    assert "closed as Closed Won" in shown(update.json)
    (reply,) = [r for r in slack.about("hygiene_resolution", c1.alert_id)
                if r.path == "/api/chat.postMessage"]
    assert (reply.json["channel"], reply.json["thread_ts"]) == ("C0EMEA", ts)
    assert "closed as Closed Won" in reply.json["text"]
    assert update.ok and reply.ok
    assert second.stop() == 0

    # Another instance reading the same records (a different group here, so
    # it reads everything) shares the record of what was posted: it posts
    # nothing again.
    seen = len(slack.received())
    other = new_notifier("other", **env, HYGIENE_SLACK_GROUP_ID=f"{group_of(stream)}-b").start()
    wait_for(lambda: caught_up(kafka, stream, f"{group_of(stream)}-b"), 90,
             "second group caught up", explain=explain(other, kafka, stream))
    assert len(slack.received()) == seen
    assert other.metric("hygiene_notify_skipped_total", reason="already_posted") == 2
    assert other.metric("hygiene_notify_skipped_total", reason="already_resolved") == 1
    assert other.stop() == 0
