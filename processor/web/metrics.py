"""Prometheus metrics of the HTTP API."""

from __future__ import annotations

from prometheus_client import Counter

REQUESTS = Counter(
    "hygiene_api_requests_total", "HTTP API requests answered, by route template and status",
    ["route", "status"],
)
STAGE_GATE_CHECKS = Counter(
    "hygiene_stage_gate_checks_total", "Stage-gate checks answered, by verdict",
    ["verdict", "stored_state"],
)
FORWARDED = Counter(
    "hygiene_api_forwarded_total", "Requests forwarded to the worker that owns the key",
    ["outcome"],
)
