"""Settings: every knob of the product, read from ``RELRADAR_*`` environment variables.

Settings are read once, at the edge (the CLI), and passed down as a frozen object; no module
below the CLI reads the environment. Leaving ``broker`` or ``clickhouse_url`` unset selects the
embedded defaults (the local Kafka-protocol broker, in-process ClickHouse). Every field is
documented in ``docs/settings.md``; a test fails when one is not.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # Errors never echo the input: a mistyped secret must not end up in a traceback.
    model_config = SettingsConfigDict(
        env_prefix="RELRADAR_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(Path(".relradar"), description="Embedded data and runtime files.")
    broker: str | None = Field(
        None, description="Kafka bootstrap servers (host:port,...); unset starts a local broker."
    )
    topic_prefix: str = Field("relradar", description="Prefix of every topic name.")
    partitions: int = Field(4, ge=1, description="Partitions of the product's topics.")
    clickhouse_url: str | None = Field(
        None, description="ClickHouse server URL (http[s]://host:port); unset is embedded."
    )
    clickhouse_user: str = Field("default", description="ClickHouse user (server mode).")
    clickhouse_password: SecretStr = Field(
        SecretStr(""), description="ClickHouse password (server mode)."
    )
    database: str = Field("relradar", description="ClickHouse database name.")
    http_host: str = Field("127.0.0.1", description="Address the service's HTTP endpoint binds.")
    http_port: int = Field(8123, ge=0, le=65535, description="Port of the HTTP endpoint.")
    api_token: SecretStr | None = Field(
        None, description="Bearer token the HTTP endpoint requires, when set."
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted (413 above)."
    )
    max_push_items: int = Field(10_000, ge=1, description="Most envelopes in one push request.")
    rate_limit_per_s: float = Field(
        100.0, ge=0, description="HTTP requests per second per client, sustained (0: no limit)."
    )
    rate_limit_burst: int = Field(500, ge=1, description="HTTP requests a client may burst.")
    redact_pii: bool = Field(True, description="Replace e-mails, phones, cards, IBANs in text.")
    redact_handles: bool = Field(
        False, description="Replace people's @handles too (the brand's own handle stays)."
    )
    redact_keep_handles: str = Field(
        "", description="Comma-separated @handles never replaced (brands' other accounts)."
    )
    author_key: SecretStr | None = Field(
        None, description="Key of the keyed hash that pseudonymises authors, when set."
    )
    classifier: str = Field(
        "default", description="'default' (shipped model), 'lexicon', or a model directory."
    )
    classify_batch: int = Field(256, ge=1, description="Messages per classify batch.")
    classify_window_s: float = Field(0.25, gt=0, description="Longest wait to fill a batch.")
    classify_in_flight: int = Field(
        2,
        ge=1,
        le=8,
        description="Classify batches in flight: the next is taken while the last is published, "
        "and under a backlog classified beside its tail (1: one at a time).",
    )
    sink_batch: int = Field(5000, ge=1, description="Rows per ClickHouse insert, at most.")
    sink_window_s: float = Field(0.5, gt=0, description="Longest wait to fill an insert.")
    sink_backlog_window_s: float = Field(
        2.0,
        gt=0,
        description="Longest wait to fill an insert while the classifier has a backlog (its "
        "batches come full): fewer inserts leave more CPU to the model.",
    )
    max_sink_lag: int = Field(
        0, ge=0, description="Pause classifying while this many await this worker's sink (0: off)."
    )
    retention_days: int = Field(
        0, ge=0, description="Delete classified messages older than this (0: keep forever)."
    )
    text_retention_days: int = Field(
        0, ge=0, description="Blank the raw text of older messages, keep their labels (0: never)."
    )
    alert_interval_s: float = Field(60.0, gt=0, description="Seconds between alert evaluations.")
    alert_webhooks: SecretStr = Field(
        SecretStr(""),
        description="Comma-separated webhook URLs; prefix slack+ for Slack's format (secret).",
    )
    alert_min_volume: int = Field(20, ge=1, description="Brand messages an hour needs to alert.")
    alert_min_count: int = Field(5, ge=1, description="Problem messages an hour needs to alert.")
    alert_min_lift: float = Field(2.0, gt=0, description="Observed/expected share to alert.")
    alert_alpha: float = Field(0.001, gt=0, lt=1, description="p-value threshold of the test.")
    alert_baseline_hours: int = Field(168, ge=1, description="Trailing baseline, in hours.")
    alert_cooldown_hours: int = Field(24, ge=0, description="Quiet time after an alert.")
    app_id: str = Field("relradar", description="Consumer-group id of the stream workers.")
    store_service: str | None = Field(
        None, description="URL of the relradar service holding the store; unset opens it here."
    )
    fetch_wait_ms: int = Field(
        100, ge=1, le=10_000, description="Longest a worker's fetch waits for new data (ms)."
    )
    session_timeout_s: float = Field(
        10.0, ge=1, description="Seconds before a silent worker's partitions go to the others."
    )
    chaos_sink_fail_s: float = Field(
        0.0, ge=0, description="Drills only: ClickHouse writes fail for this long after start."
    )
    chaos_sink_delay_s: float = Field(
        0.0, ge=0, description="Drills only: every ClickHouse write waits this long first."
    )
    sql_max_seconds: int = Field(
        60, ge=1, description="Analysts' SQL: a query running longer is stopped."
    )
    sql_max_memory_bytes: int = Field(
        4 * 1024**3, ge=1 << 20, description="Analysts' SQL: memory one query may use."
    )
    log_level: str = Field("warn", description="Log level: debug, info, warn, error.")

    @field_validator("store_service")
    @classmethod
    def _store_service_is_http(cls, value: str | None) -> str | None:
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("store_service must be an http(s):// URL of a relradar service")
        return value.rstrip("/") if value else value

    @field_validator("clickhouse_url")
    @classmethod
    def _no_password_in_url(cls, value: str | None) -> str | None:
        # The URL is printed and logged; the password belongs in its own secret setting.
        text = value or ""
        # Not urlsplit alone: a '#' or '/' in an unencoded password ends its authority early.
        userinfo = text.partition("://")[2].rpartition("@")[0]
        if ":" in userinfo or urlsplit(text).password or "password=" in text.lower():
            raise ValueError(
                "put the password in RELRADAR_CLICKHOUSE_PASSWORD, not in the URL (it is logged)"
            )
        return value
