"""Runtime configuration from the environment (prefix ``HYGIENE_``).

Secrets (SASL and Redis passwords, the API token) are only ever read from the
environment, never from files in the repository, and are held as SecretStr
so they never appear in logs or reprs.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from processor.rules.config import DEFAULT_RULES_PATH


class Topics(BaseSettings):
    """Topic names; every one can be renamed (``HYGIENE_TOPIC_ALERTS=...``)."""

    model_config = SettingsConfigDict(env_prefix="HYGIENE_TOPIC_", extra="ignore")

    inputs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["crm.events"],
        description="Input topics (comma-separated); every supported format is detected "
        "per message, so one topic may carry several CRMs.",
    )
    changes: str = Field(
        default="hygiene.changes",
        description="Internal: normalized changes keyed by opportunity id.",
    )
    alerts: str = "hygiene.alerts"
    digests: str = "hygiene.digests"
    stage_history: str = "forecast.stage-history"
    rollups: str = "forecast.rollups"
    rollup_rows: str = Field(
        default="forecast.rollup-rows",
        description="The rollups cut into one flat row per (manager, period, category, "
        "currency), for warehouse sinks.",
    )
    overrides: str = "forecast.overrides"
    override_log: str = "forecast.override-log"
    commands: str = "crm.commands"
    dead_letter: str = "hygiene.dead-letter"
    owner_queues: str = Field(
        default="hygiene.owner-queues",
        description="Internal: each opportunity's hygiene-queue entry, keyed by owner id.",
    )
    rollup_members: str = Field(
        default="forecast.rollup-members",
        description="Internal: each opportunity's rollup entry and the overrides, keyed by "
        "manager id.",
    )

    @field_validator("inputs", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYGIENE_", extra="ignore")

    # Kafka
    kafka_bootstrap: str = Field(default="localhost:9092", description="host:port[,host:port]")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = (
        "PLAIN"
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_oauth_endpoint_url: str | None = Field(
        default=None,
        description="OAUTHBEARER: the identity provider's token endpoint, asked for "
        "client-credentials tokens.",
    )
    kafka_sasl_oauth_client_id: str | None = None
    kafka_sasl_oauth_client_secret: SecretStr | None = None
    kafka_sasl_oauth_scope: str | None = Field(
        default=None, description="OAUTHBEARER: the scope to ask for (space-separated), if any."
    )
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_keyfile_password: SecretStr | None = None

    # Application
    app_id: str = Field(default="revops-hygiene", description="Consumer group and table prefix.")
    store: Literal["memory://", "rocksdb://"] = "memory://"
    data_dir: Path = Field(default=Path("./hygiene-data"), description="RocksDB and worker state.")
    partitions: int = Field(default=8, gt=0, description="Partitions of internal topics/tables.")
    replication_factor: int = Field(default=1, gt=0)
    rules_file: Path = Field(default=DEFAULT_RULES_PATH, description="The rules YAML file.")
    max_message_bytes: int = Field(
        default=1_048_576, gt=0, description="Larger inputs go to the dead-letter topic."
    )
    sweep_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often time-driven rules are re-evaluated."
    )
    recovery_stall_seconds: float = Field(
        default=180.0, ge=0,
        description="A table recovery that makes no progress this long makes the worker log "
        "its tasks and exit non-zero, for its supervisor to restart it (0: wait forever).",
    )
    native_core: bool = Field(
        default=True,
        description="Run the state agent on the native rules engine (processor.hygiene_core); "
        "false: the Python engine. Both store the same states, so a worker can switch.",
    )
    native_threads: bool = Field(
        default=True,
        description="Run the native calls (ingest's decoding, the native core's apply) in "
        "threads beside the event loop, where they use a second core; false: on the loop.",
    )
    pack_changes: bool = Field(
        default=True,
        description="Ingest compresses the hygiene.changes messages it routes (LZ4, in its "
        "decoding thread; about 5x smaller), so the broker stores and the worker reads back "
        "that much less of what is a copy of the input. Workers older than this setting "
        "cannot read packed messages: set false until every worker of the group has it.",
    )
    compression: Literal["lz4", "none"] = Field(
        default="lz4",
        description="How the worker compresses the record batches it writes (outputs and "
        "table changelogs). The batches are built and compressed natively, off the event loop's "
        "GIL; LZ4 makes them about 4x smaller for the broker to take in and store. Every Kafka "
        "client reads LZ4 by itself (Python's aiokafka with cramjam installed).",
    )
    gil_switch_ms: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="With native_threads: how long the event loop may hold the GIL while a "
        "native call's thread waits for it (Python's switch interval; Python's default is 5). "
        "The core's thread needs it briefly at the start and end of each call, and the state "
        "agent waits for that call: 1 ms measured 7% more events/s than 5 on the benchmark.",
    )

    # Weekly hygiene digests
    digest_weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        default="mon", description="Day of the week the digests go out."
    )
    digest_time: time = Field(
        default=time(8, 0), description="Local time the digests go out (HH:MM[:SS])."
    )
    digest_timezone: str = Field(
        default="UTC", description="IANA time zone of the digest schedule, e.g. Europe/Paris."
    )
    digest_check_seconds: float = Field(
        default=30.0, gt=0, description="How often a worker checks whether a digest run is due."
    )
    queue_tombstone_days: int = Field(
        default=14, gt=0,
        description="Days a removed queue entry is remembered (guards against stale updates; "
        "its owner gets an empty digest meanwhile).",
    )

    # Forecast rollups
    fiscal_year_start_month: int = Field(
        default=1, ge=1, le=12,
        description="First month of the fiscal year (1 = January). A fiscal year is named "
        "by the calendar year it ends in: with 2, February 2026 - January 2027 is FY2027.",
    )
    rollup_publish_seconds: float = Field(
        default=10.0, gt=0,
        description="At most one rollup record per manager and period per interval: "
        "changed buckets are published together every this many seconds.",
    )
    rollup_tombstone_days: int = Field(
        default=14, gt=0,
        description="Days a rollup slot removal is remembered (guards against stale updates).",
    )

    # HTTP
    web_host: str = "0.0.0.0"
    web_port: int = Field(default=6066, gt=0, lt=65536)
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token for everything but health and metrics."
    )
    api_max_body_bytes: int = Field(
        default=65_536, gt=0, description="Larger request bodies are refused with 413."
    )
    web_advertised_url: str | None = Field(
        default=None,
        description="How the other workers reach this one's HTTP API (requests for an "
        "opportunity another worker owns are forwarded there); default "
        "http://<web host, or the host name when bound to all interfaces>:<web port>.",
    )
    api_forward_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a forwarded request may take."
    )

    # Redis
    redis_url: str = "redis://localhost:6379/0"
    redis_password: SecretStr | None = None
    redis_socket_timeout_seconds: float = Field(
        default=0.5, gt=0,
        description="Connect and read timeout of every Redis call: a dead Redis must not "
        "hold a batch of alerts for longer than this.",
    )

    # Alert policy (processor/alerts/policy.py); its state lives in Redis.
    alert_policy: bool = Field(
        default=True,
        description="Pass alerts through the Redis alert policy (dedup window, daily budget, "
        "thresholds, snoozes) before publishing. Off: every alert is published realtime, "
        "and snooze and acknowledge are unavailable.",
    )
    alert_policy_prefix: str = Field(
        default="hygiene:policy:", description="Prefix of every Redis key of the alert policy."
    )
    alert_dedup_window_seconds: float = Field(
        default=86_400.0, gt=0,
        description="An open alert for the same opportunity and rule is not published again "
        "within this window (also absorbs alerts a restarted worker publishes again).",
    )
    alert_daily_budget: int = Field(
        default=20, ge=0,
        description="Real-time alerts per owner per day; the rest go to the digest only.",
    )
    alert_budget_timezone: str = Field(
        default="UTC", description="IANA time zone in which an owner's budget day starts."
    )
    alert_min_severity: Literal["info", "low", "medium", "high"] = Field(
        default="low", description="Alerts below this severity go to the digest only."
    )
    alert_min_amount: float = Field(
        default=0.0, ge=0,
        description="Alerts on deals below this amount go to the digest only (an unknown "
        "amount is never below it).",
    )
    alert_record_retention_days: float = Field(
        default=120.0, gt=0,
        description="How long Redis keeps an alert's status (delivery, snooze, ack).",
    )
    alert_policy_backoff_max_seconds: float = Field(
        default=30.0, gt=0,
        description="Longest wait between two attempts to reach an unreachable Redis.",
    )

    @field_validator("digest_timezone", "alert_budget_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _oauth_complete(self) -> Self:
        if (self.kafka_sasl_mechanism == "OAUTHBEARER"
                and self.kafka_security_protocol.startswith("SASL")):
            missing = [f"HYGIENE_{name.upper()}" for name in (
                "kafka_sasl_oauth_endpoint_url", "kafka_sasl_oauth_client_id",
                "kafka_sasl_oauth_client_secret") if not getattr(self, name)]
            if missing:
                raise ValueError(f"HYGIENE_KAFKA_SASL_MECHANISM=OAUTHBEARER needs "
                                 f"{', '.join(missing)}")
        return self

    @property
    def topics(self) -> Topics:
        return Topics()
