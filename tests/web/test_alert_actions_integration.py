"""Snooze and acknowledge through the HTTP API of a real worker running the
alert policy on a real Redis, after real alerts went through the broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ..stream.support import Kafka, Stream, WorkerProcess, alert_records, wait_for
from .test_api_integration import AUTH, TOKEN, call, conforms, event, post_json

pytestmark = pytest.mark.integration


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_snooze_and_ack_are_recorded_and_served(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    with Kafka(kafka_bootstrap) as kafka:
        stream = Stream.unique(kafka_bootstrap, "web-alerts")
        stream.create_topics(kafka)
        worker = WorkerProcess(
            "w", stream, tmp_path, HYGIENE_API_TOKEN=TOKEN, HYGIENE_ALERT_POLICY="true",
            HYGIENE_REDIS_URL=redis_url,
            HYGIENE_ALERT_POLICY_PREFIX=f"t-web-{uuid.uuid4().hex[:8]}:",
            HYGIENE_ALERT_MIN_SEVERITY="info", HYGIENE_ALERT_DAILY_BUDGET="1000",
        )
        try:
            worker.start().wait_ready(90)
            kafka.produce(stream.input, [
                event(f"alerted-{n}", 0, stage="Discovery", amount=250000.0,
                      identify_pain="tbd") for n in range(3)])
            wait_for(lambda: stream.drained(kafka), 90, "events applied",
                     explain=worker.log_tail)
            alerts = [a for a in alert_records(kafka.read(stream.alerts)) if a.kind == "alert"]
            assert len(alerts) >= 3
            first, second = alerts[0].alert_id, alerts[1].alert_id

            status = call(worker.port, "GET", f"/v1/alerts/{first}", headers=AUTH)
            assert status.status == 200, status.body
            assert status.json()["opportunity_id"] == alerts[0].opportunity_id
            assert status.json()["snoozed_by"] is None

            before = datetime.now(UTC)
            snoozed = post_json(worker.port, f"/v1/alerts/{first}/snooze",
                                {"by": "005REP", "reason": "customer on leave", "hours": 48})
            assert snoozed.status == 200, snoozed.body
            body: dict[str, Any] = snoozed.json()
            assert (body["snoozed_by"], body["snooze_reason"]) == ("005REP", "customer on leave")
            until = _when(body["snoozed_until"])
            assert before + timedelta(hours=48) <= until + timedelta(seconds=1)
            assert until <= datetime.now(UTC) + timedelta(hours=48)
            assert [a["action"] for a in body["actions"]] == ["snooze"]

            # The owner's queue still lists the snoozed issue, marked until
            # the snooze ends (the Slack digest leaves it out until then).
            def marks() -> dict[str, str | None]:
                reply = call(worker.port, "GET", "/v1/queues/u-7", headers=AUTH)
                if reply.status != 200:
                    return {}
                return {i["alert_id"]: i.get("snoozed_until")
                        for item in reply.json()["items"] for i in item["issues"]}

            def both_queued() -> dict[str, str | None] | None:
                found = marks()
                return found if first in found and second in found else None

            queued = wait_for(both_queued, 60, "the alerts are in the owner's queue",
                              explain=worker.log_tail)
            assert queued[first] is not None
            assert abs((_when(queued[first]) - until).total_seconds()) < 2
            assert queued[second] is None

            past = post_json(worker.port, f"/v1/alerts/{first}/snooze",
                             {"by": "005REP", "reason": "x", "until": "2020-01-01T00:00:00Z"})
            assert (past.status, past.json()["error"]) == (422, "invalid_action")

            acked = post_json(worker.port, f"/v1/alerts/{second}/ack", {"by": "005REP"})
            assert acked.status == 200, acked.body
            again = post_json(worker.port, f"/v1/alerts/{second}/ack", {"by": "005MGR"})
            assert again.json()["acknowledged_by"] == "005REP"
            assert [a["by"] for a in again.json()["actions"]] == ["005REP", "005MGR"]
            served = call(worker.port, "GET", f"/v1/alerts/{second}", headers=AUTH).json()
            assert served == again.json()

            for method, path, data in (("GET", "/v1/alerts/al_nope", None),
                                       ("POST", "/v1/alerts/al_nope/ack", {"by": "x"}),
                                       ("POST", "/v1/alerts/al_nope/snooze",
                                        {"by": "x", "reason": "r", "hours": 1})):
                reply = (call(worker.port, method, path, headers=AUTH) if data is None
                         else post_json(worker.port, path, data))
                assert (reply.status, reply.json()["error"]) == (404, "not_found"), path
            assert post_json(worker.port, f"/v1/alerts/{first}/ack", {"by": "x"},
                             headers={}).status == 401
            assert post_json(worker.port, f"/v1/alerts/{first}/ack", {}).status == 400
            conforms(f"http://127.0.0.1:{worker.port}",
                     {"getAlertStatus", "snoozeAlert", "ackAlert"})
        finally:
            worker.cleanup()
