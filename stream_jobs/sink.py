"""The ClickHouse sink: classified messages written in batches, exactly once.

``ClickHouseSink.write(batch)`` stores every message of a batch whose id is not stored yet, and
only those: ids are looked up first, so a batch replayed after a crash (offsets are committed
only after the write) or a message classified twice collapses to one row. Each insert carries
a deduplication token from its ids, noted in ``sink_batches`` before the insert; ``repair()``
re-sends the latest noted batches whole with their tokens, which ClickHouse skips in the table
but completes in any materialized view a crash cut short (a view's block is deduplicated by
its own token too), so the aggregates stay exact as well. A failing write raises
``SinkBackpressure`` with a ``retry_after``; labels are validated first because an unknown
Enum value would be stored as 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import LABELS, MESSAGE_COLUMNS, ClassifiedMessage, Label, Role
from stream_jobs.conversations import ConversationSummary
from stream_jobs.store import Store, StoreError
from stream_jobs.trajectories import update_transitions

log = logging.getLogger(__name__)
_VALID_LABELS = {label.value for label in LABELS}
REPAIR_BATCHES = 32  # batches re-sent at start: more than workers times batches in flight


class SinkError(Exception):
    """A batch could not be written and retrying will not help (bad data)."""


class SinkBackpressure(Exception):
    """The store is failing or slow; retry the same batch after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class WriteResult:
    """What one ``write`` did: rows stored, replays skipped, and id conflicts to dead-letter."""

    written: int = 0
    replays: int = 0
    conflicts: list[tuple[ClassifiedMessage, str]] = field(default_factory=list)


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
        m.treatment.value if m.treatment is not None else None,
    ]


def dedup_token(ids: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for i in ids:
        digest.update(i.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class SinkFaults:
    """Faults a drill injects into the sink's writes: failing for a while, or slow."""

    fail_for_s: float = 0.0
    delay_s: float = 0.0


class ClickHouseSink:
    """Writes batches of classified messages to the ``messages`` table."""

    def __init__(
        self,
        store: Store,
        base_retry: float = 0.5,
        max_retry: float = 30.0,
        faults: SinkFaults | None = None,
    ) -> None:
        self.store = store
        self.base_retry = base_retry
        self.max_retry = max_retry
        self.failures = 0
        self.rows_written = 0
        self.faults = faults or SinkFaults()
        self._fail_until = time.monotonic() + self.faults.fail_for_s

    def _injected_faults(self) -> None:
        if self.faults.delay_s:
            time.sleep(self.faults.delay_s)
        if time.monotonic() < self._fail_until:
            raise StoreError("drill: injected ClickHouse write failure", 0, "CHAOS_DRILL")

    def write(self, batch: Sequence[ClassifiedMessage]) -> WriteResult:
        """Store the batch's new messages; raises ``SinkBackpressure`` while the store fails."""
        result = WriteResult()
        if not batch:
            return result
        try:
            self._injected_faults()
            fresh = self._new_messages(batch, result)
            if fresh:
                self._insert(fresh)
        except StoreError as error:
            self.failures += 1
            retry_after = min(self.max_retry, self.base_retry * 2 ** min(self.failures - 1, 10))
            log.warning("sink write failed (%s); retry in %.1fs", error, retry_after)
            raise SinkBackpressure(str(error), retry_after) from error
        self.failures = 0
        result.written = len(fresh)
        self.rows_written += len(fresh)
        return result

    def _new_messages(
        self, batch: Sequence[ClassifiedMessage], result: WriteResult
    ) -> list[ClassifiedMessage]:
        first: dict[str, ClassifiedMessage] = {}
        for m in batch:
            seen = first.setdefault(m.id, m)
            if seen is not m:
                self._note_repeat(m, seen.text, result)
        stored = self._stored_texts(list(first.values()))
        fresh = []
        for m in first.values():
            if m.id in stored:
                self._note_repeat(m, stored[m.id], result)
            else:
                fresh.append(m)
        return fresh

    @staticmethod
    def _note_repeat(m: ClassifiedMessage, stored_text: str, result: WriteResult) -> None:
        # The same message again is a replay (crash recovery, a re-sent file): skipped. The same
        # id with other text is a producer's bug, and must not vanish silently.
        if m.text == stored_text:
            result.replays += 1
        else:
            reason = f"duplicate id {m.id!r}: already stored with a different text"
            result.conflicts.append((m, reason))

    def _stored_texts(self, batch: Sequence[ClassifiedMessage]) -> dict[str, str]:
        """Ids of the batch already stored, with their text (the key bounds keep it a lookup)."""
        lo = min(m.created_at for m in batch)
        hi = max(m.created_at for m in batch)
        rows = self.store.rows(
            f"SELECT id, text FROM {self.store.database}.messages "
            "WHERE brand IN {brands:Array(String)} AND created_at >= {lo:DateTime64(3, 'UTC')} "
            "AND created_at <= {hi:DateTime64(3, 'UTC')} AND id IN {ids:Array(String)}",
            {
                "brands": sorted({m.brand for m in batch}),
                "lo": lo,
                "hi": hi,
                "ids": [m.id for m in batch],
            },
        )
        return {r["id"]: r["text"] for r in rows}

    def _insert(self, batch: Sequence[ClassifiedMessage]) -> None:
        rows = [to_row(m) for m in batch]
        ids = [m.id for m in batch]
        token = dedup_token(ids)
        self.store.insert("sink_batches", [[token, ids]], ["token", "ids"])
        self._insert_rows(rows, token)
        update_transitions(self.store, customers(batch))

    def _insert_rows(self, rows: Sequence[Sequence[Any]], token: str) -> None:
        self.store.insert(
            "messages",
            rows,
            MESSAGE_COLUMNS,
            settings={
                "insert_deduplication_token": token,
                "deduplicate_blocks_in_dependent_materialized_views": 1,
            },
        )

    def write_conversations(self, summaries: Sequence[ConversationSummary]) -> None:
        try:
            write_conversations(self.store, summaries)
        except StoreError as error:
            raise SinkBackpressure(str(error), self.base_retry) from error

    def repair(self, batches: int = REPAIR_BATCHES) -> int:
        """Re-send the latest noted batches with their tokens; returns how many were whole.

        A batch whose rows are stored is inserted again as it was: the table skips it, and a
        view that missed it (a crash between the table's part and the view's) gets it now.
        A batch with no stored rows never reached the table; its messages come back from the
        topic, whose offsets were not committed.
        """
        db = self.store.database
        noted = self.store.rows(
            f"SELECT token, any(ids) AS ids FROM {db}.sink_batches GROUP BY token "
            "ORDER BY max(written_at) DESC LIMIT {n:UInt32}",
            {"n": batches},
        )
        columns = ", ".join(MESSAGE_COLUMNS)
        resent = 0
        for batch in noted:
            ids: list[str] = list(batch["ids"])
            found = self.store.rows(
                f"SELECT {columns} FROM {db}.messages WHERE id IN {{ids:Array(String)}}",
                {"ids": ids},
            )
            if not found:
                continue
            if len(found) != len(ids):
                log.error(
                    "batch %s: %d of %d rows stored", batch["token"][:12], len(found), len(ids)
                )
                continue
            order = {i: n for n, i in enumerate(ids)}
            found.sort(key=lambda r: order[r["id"]])
            self._insert_rows([[r[c] for c in MESSAGE_COLUMNS] for r in found], batch["token"])
            update_transitions(
                self.store, {(r["brand"], r["author"]) for r in found if r["role"] == "customer"}
            )
            resent += 1
        return resent


def customers(batch: Sequence[ClassifiedMessage]) -> set[tuple[str, str]]:
    """The (brand, author) customers whose trajectory this batch extends."""
    return {
        (m.brand, m.author)
        for m in batch
        if m.author and m.role is Role.customer and m.label is not Label.none
    }


CONVERSATION_COLUMNS = (
    "conversation_id", "brand", "customer", "customer_relationship", "treatment", "mismatch",
    "mismatch_kind", "customer_labels", "treatments", "turns", "started_at", "updated_at",
)  # fmt: skip


def write_conversations(store: Store, summaries: Sequence[ConversationSummary]) -> None:
    """Store conversation summaries; the newest (most turns) per conversation wins."""
    rows = [
        [
            s.conversation_id,
            s.brand,
            s.customer,
            s.customer_relationship.value,
            s.treatment.value if s.treatment else None,
            int(s.mismatch),
            s.mismatch_kind or "",
            [label.value for label in s.customer_labels],
            [t.value for t in s.treatments],
            s.turns,
            s.started_at,
            s.updated_at,
        ]
        for s in summaries
    ]
    if rows:
        store.insert("conversations", rows, CONVERSATION_COLUMNS)


def label_counts(store: Store) -> dict[tuple[str, Label], int]:
    """Rows per (brand, label) in the messages table (for checks and tests)."""
    rows = store.rows(
        f"SELECT brand, toString(label) AS label, count() AS n FROM {store.database}.messages "
        "GROUP BY brand, label"
    )
    return {(r["brand"], Label(r["label"])): int(r["n"]) for r in rows}
