"""ClickHouse DDL: the messages table, its aggregates, and versioned migrations.

Migrations are an ordered list; each has a number and statements that are idempotent on their
own (``IF NOT EXISTS``), and the applied numbers are recorded in ``schema_migrations`` so a
migration never runs twice. Label and kind columns are Enum8 numbered from 1, in the enum's
order, so an unknown value can never be stored as 0 unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.envelope import Kind, Role
from schemas.taxonomy import LABELS, PROBLEM_LABELS


def enum8(values: list[str]) -> str:
    members = ", ".join(f"'{v}' = {i}" for i, v in enumerate(values, start=1))
    return f"Enum8({members})"


LABEL_ENUM = enum8([label.value for label in LABELS])
KIND_ENUM = enum8([k.value for k in Kind])
ROLE_ENUM = enum8([r.value for r in Role])
GRAINS: dict[str, str] = {
    "minute": "toStartOfMinute",
    "hour": "toStartOfHour",
    "day": "toStartOfDay",
}

MESSAGE_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "kind",
    "brand",
    "author",
    "conversation_id",
    "turn_index",
    "role",
    "text",
    "language",
    "created_at",
    "ingested_at",
    "classified_at",
    "label",
    "problem",
    "scores",
    "model_version",
    "metadata",
    "treatment",
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def _messages(db: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.messages (
    id String,
    source LowCardinality(String),
    kind {KIND_ENUM},
    brand LowCardinality(String),
    author String,
    conversation_id String,
    turn_index Int32,
    role {ROLE_ENUM},
    text String,
    language LowCardinality(String),
    created_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    classified_at DateTime64(3, 'UTC'),
    label {LABEL_ENUM},
    problem UInt8,
    scores Map(LowCardinality(String), Float32),
    model_version LowCardinality(String),
    metadata String,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (brand, created_at, id)
SETTINGS non_replicated_deduplication_window = 10000
"""


def _aggregate(db: str, grain: str, bucket_fn: str) -> tuple[str, str]:
    table = f"""
CREATE TABLE IF NOT EXISTS {db}.counts_{grain} (
    bucket DateTime('UTC'),
    brand LowCardinality(String),
    label {LABEL_ENUM},
    source LowCardinality(String),
    kind {KIND_ENUM},
    messages UInt64
) ENGINE = SummingMergeTree(messages)
ORDER BY (brand, label, source, kind, bucket)
SETTINGS non_replicated_deduplication_window = 10000
"""
    view = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.counts_{grain}_mv TO {db}.counts_{grain} AS
SELECT {bucket_fn}(toDateTime(created_at, 'UTC')) AS bucket, brand, label, source, kind,
       count() AS messages
FROM {db}.messages
GROUP BY bucket, brand, label, source, kind
"""
    return table, view


def migrations(db: str) -> list[Migration]:
    """Every migration, in order, for database ``db``."""
    aggregates: list[str] = []
    for grain, fn in GRAINS.items():
        aggregates.extend(_aggregate(db, grain, fn))
    problem = ", ".join(f"'{label.value}'" for label in sorted(PROBLEM_LABELS))
    labels_table = f"""
CREATE TABLE IF NOT EXISTS {db}.labels (
    label {LABEL_ENUM}, family String, problem UInt8
) ENGINE = ReplacingMergeTree ORDER BY label
"""
    fill_labels = f"""
INSERT INTO {db}.labels SELECT label, family, problem FROM (
  SELECT arrayJoin([{", ".join(f"('{l.value}', '{l.family.value}')" for l in LABELS)}]) AS t,
         t.1 AS label, t.2 AS family, t.1 IN ({problem}) AS problem)
"""
    alerts = f"""
CREATE TABLE IF NOT EXISTS {db}.alerts (
    id String,
    brand LowCardinality(String),
    label {LABEL_ENUM},
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    messages UInt64,
    count UInt64,
    observed_share Float64,
    expected_share Float64,
    lift Float64,
    p_value Float64,
    test String,
    examples Array(String),
    created_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (brand, label, window_start, id)
"""
    author_table = f"""
CREATE TABLE IF NOT EXISTS {db}.author_labels (
    brand LowCardinality(String),
    author String,
    created_at DateTime64(3, 'UTC'),
    id String,
    label {LABEL_ENUM},
    conversation_id String,
    source LowCardinality(String),
    kind {KIND_ENUM}
) ENGINE = ReplacingMergeTree
ORDER BY (brand, author, created_at, id)
SETTINGS non_replicated_deduplication_window = 10000
"""
    author_view = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.author_labels_mv TO {db}.author_labels AS
SELECT brand, author, created_at, id, label, conversation_id, source, kind
FROM {db}.messages
WHERE author != '' AND role = 'customer'
"""
    # Exactly-once writes: the sink looks stored ids up before inserting (replays collapse) and
    # notes each batch's token first, so a batch cut short by a crash between the table's part
    # and its views' parts is re-sent whole with the same token at the next start.
    id_index = (
        f"ALTER TABLE {db}.messages ADD INDEX IF NOT EXISTS id_bloom id "
        "TYPE bloom_filter(0.001) GRANULARITY 1"
    )
    id_index_fill = f"ALTER TABLE {db}.messages MATERIALIZE INDEX id_bloom"
    sink_batches = f"""
CREATE TABLE IF NOT EXISTS {db}.sink_batches (
    token String,
    ids Array(String),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = MergeTree
ORDER BY written_at
TTL toDateTime(written_at) + INTERVAL 7 DAY
"""
    treatment_column = (
        f"ALTER TABLE {db}.messages ADD COLUMN IF NOT EXISTS treatment Nullable({LABEL_ENUM})"
    )
    conversations = f"""
CREATE TABLE IF NOT EXISTS {db}.conversations (
    conversation_id String,
    brand LowCardinality(String),
    customer String,
    customer_relationship {LABEL_ENUM},
    treatment Nullable({LABEL_ENUM}),
    mismatch UInt8,
    mismatch_kind LowCardinality(String),
    customer_labels Array({LABEL_ENUM}),
    treatments Array({LABEL_ENUM}),
    turns UInt32,
    started_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(turns)
ORDER BY (brand, conversation_id)
"""
    transitions = f"""
CREATE TABLE IF NOT EXISTS {db}.transitions (
    brand LowCardinality(String),
    author String,
    from_label {LABEL_ENUM},
    to_label {LABEL_ENUM},
    from_id String,
    to_id String,
    from_at DateTime64(3, 'UTC'),
    to_at DateTime64(3, 'UTC'),
    into_problem UInt8,
    computed_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (brand, author, to_at, to_id)
"""
    return [
        Migration(1, "messages table", (f"CREATE DATABASE IF NOT EXISTS {db}", _messages(db))),
        Migration(2, "counts by minute, hour and day", tuple(aggregates)),
        Migration(3, "label reference table", (labels_table, fill_labels)),
        Migration(4, "alerts table", (alerts,)),
        Migration(5, "per-author label timeline", (author_table, author_view)),
        Migration(6, "exactly-once sink", (id_index, id_index_fill, sink_batches)),
        Migration(
            7,
            "treatment, conversations, transitions",
            (treatment_column, conversations, transitions),
        ),
    ]


def migrations_table(db: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree ORDER BY version
"""


def retention_statements(db: str, retention_days: int, text_retention_days: int) -> list[str]:
    """ALTERs that set (or remove) the messages table's row TTL and raw-text TTL.

    Not versioned migrations: they follow the settings, so every ``migrate`` re-applies them.
    Aggregates are separate tables and keep their counts when old messages expire.
    """
    table = f"{db}.messages"
    rows = (
        f"ALTER TABLE {table} MODIFY TTL toDateTime(created_at) + INTERVAL {retention_days} DAY"
        if retention_days
        else f"ALTER TABLE {table} REMOVE TTL"
    )
    text = (
        f"ALTER TABLE {table} MODIFY COLUMN text String "
        f"TTL toDateTime(created_at) + INTERVAL {text_retention_days} DAY"
        if text_retention_days
        else f"ALTER TABLE {table} MODIFY COLUMN text REMOVE TTL"
    )
    return [rows, text]
