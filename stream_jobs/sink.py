"""The ClickHouse sink: classified messages written in batches, idempotently.

``ClickHouseSink.write(batch)`` inserts a batch as one block with a deduplication token made
from the batch's ids, so re-writing the same batch after a failure or a crash does not double
rows (nor the materialized views' counts, which see the same deduplicated block). A failing
write raises ``SinkBackpressure`` with a ``retry_after`` the caller waits before retrying;
labels are validated before insert because an unknown Enum value would be stored as 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from schemas import LABELS, MESSAGE_COLUMNS, ClassifiedMessage, Label
from stream_jobs.store import Store, StoreError

log = logging.getLogger(__name__)
_VALID_LABELS = {label.value for label in LABELS}


class SinkError(Exception):
    """A batch could not be written and retrying will not help (bad data)."""


class SinkBackpressure(Exception):
    """The store is failing or slow; retry the same batch after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def to_row(m: ClassifiedMessage) -> list[Any]:
    if m.label.value not in _VALID_LABELS:
        raise SinkError(f"message {m.id}: unknown label {m.label!r}")
    return [
        m.id,
        m.source,
        m.kind.value,
        m.brand,
        m.author or "",
        m.conversation_id or "",
        -1 if m.turn_index is None else m.turn_index,
        m.role.value,
        m.text,
        m.language or "",
        m.created_at,
        m.ingested_at,
        m.classified_at,
        m.label.value,
        int(m.label.is_problem),
        {label.value: float(score) for label, score in m.scores.items()},
        m.model_version,
        json.dumps(m.metadata, ensure_ascii=False),
    ]


def dedup_token(batch: Sequence[ClassifiedMessage]) -> str:
    digest = hashlib.sha256()
    for m in batch:
        digest.update(m.id.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class ClickHouseSink:
    """Writes batches of classified messages to the ``messages`` table."""

    def __init__(self, store: Store, base_retry: float = 0.5, max_retry: float = 30.0) -> None:
        self.store = store
        self.base_retry = base_retry
        self.max_retry = max_retry
        self.failures = 0
        self.rows_written = 0

    def write(self, batch: Sequence[ClassifiedMessage]) -> None:
        if not batch:
            return
        rows = [to_row(m) for m in batch]
        try:
            self.store.insert(
                "messages",
                rows,
                MESSAGE_COLUMNS,
                settings={
                    "insert_deduplication_token": dedup_token(batch),
                    "deduplicate_blocks_in_dependent_materialized_views": 1,
                },
            )
        except StoreError as error:
            self.failures += 1
            retry_after = min(self.max_retry, self.base_retry * 2 ** min(self.failures - 1, 10))
            log.warning("sink write failed (%s); retry in %.1fs", error, retry_after)
            raise SinkBackpressure(str(error), retry_after) from error
        self.failures = 0
        self.rows_written += len(rows)


def label_counts(store: Store) -> dict[tuple[str, Label], int]:
    """Rows per (brand, label) in the messages table (for checks and tests)."""
    rows = store.rows(
        f"SELECT brand, toString(label) AS label, count() AS n FROM {store.database}.messages "
        "GROUP BY brand, label"
    )
    return {(r["brand"], Label(r["label"])): int(r["n"]) for r in rows}
