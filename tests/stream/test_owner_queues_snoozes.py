"""Snooze marks when Redis cannot answer: the digest goes out unmarked."""

from __future__ import annotations

import asyncio
import socket

import pytest
from prometheus_client import REGISTRY

from processor.alerts.actions import AlertActions
from processor.settings import Settings
from processor.stream.owner_queues import SnoozeMarks


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_redis_unreachable_leaves_issues_unmarked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYGIENE_REDIS_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    marks = SnoozeMarks(AlertActions.from_settings(Settings()))
    name = "hygiene_queue_snooze_lookups_failed_total"
    before = REGISTRY.get_sample_value(name) or 0.0

    async def look() -> object:
        try:
            return await marks.lookup([("006A", "next_step_missing")])
        finally:
            await marks.actions.client.aclose()

    assert asyncio.run(look()) == {}
    assert REGISTRY.get_sample_value(name) == before + 1
