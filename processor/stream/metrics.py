"""Prometheus metrics of the stream (served on /metrics by the workers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INPUT_MESSAGES = Counter("hygiene_input_messages_total", "CRM input messages read")
IGNORED_EVENTS = Counter(
    "hygiene_input_events_ignored_total",
    "CRM events understood and deliberately turned into no change (a HubSpot "
    "property nobody maps, a deal-to-company association, a deleted task)",
)
CHANGES_APPLIED = Counter("hygiene_changes_applied_total", "Normalized changes applied")
DEAD_LETTERS = Counter(
    "hygiene_dead_letters_total", "Inputs sent to the dead-letter topic", ["reason"]
)
ALERTS = Counter("hygiene_alerts_total", "Alerts published", ["rule"])
RESOLUTIONS = Counter("hygiene_resolutions_total", "Resolutions published", ["rule"])
STAGE_HISTORY = Counter("hygiene_stage_history_total", "Stage-history records published")
COMMANDS = Counter("hygiene_close_out_commands_total", "Close-out recommendations published")
SWEEPS = Counter("hygiene_sweeps_total", "Sweeps of one partition's opportunities")
OPPORTUNITIES = Gauge("hygiene_opportunities", "Opportunities held by this worker (active)")
QUEUE_UPDATES = Counter(
    "hygiene_queue_updates_total",
    "Owner-queue entry updates stored (stale or repeated ones are not)",
)
SNOOZE_LOOKUPS_FAILED = Counter(
    "hygiene_queue_snooze_lookups_failed_total",
    "Digest runs or queue reads whose snoozes Redis could not tell (issues left unmarked)",
)
DIGESTS = Counter("hygiene_digests_total", "Weekly digests published")
DIGEST_RUNS = Counter(
    "hygiene_digest_runs_total", "Digest runs of one owner-queue partition", ["outcome"]
)
DIGEST_CHECKS = Counter(
    "hygiene_digest_checks_total",
    "Owner-queue partitions checked by the digest timer: run asked for, or already done",
    ["outcome"],
)
ROLLUP_UPDATES = Counter(
    "hygiene_rollup_updates_total",
    "Manager-rollup entry updates stored (stale or repeated ones are not)",
)
ROLLUPS = Counter("hygiene_rollups_total", "Manager rollup records published")
OVERRIDES = Counter(
    "hygiene_overrides_total",
    "Forecast overrides: accepted, duplicate, or the refusal code", ["outcome"],
)
HANDLING_RETRIES = Counter(
    "hygiene_handling_retries_total",
    "Messages whose handling failed on the broker or network and was retried in place",
    ["agent", "error"],
)
STATE_UNIT_MESSAGES = Histogram(
    "hygiene_state_unit_messages",
    "Internal messages the state agent handled together as one unit",
    buckets=(1, 2, 4, 8, 16),
)
COMMIT_HOLES = Counter(
    "hygiene_commit_holes_total",
    "Partitions whose commit held at offsets never handled (dropped in a rebalance) "
    "and that were read again from there",
    ["topic"],
)
