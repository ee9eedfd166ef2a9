"""The ClickHouse sink: classified messages written in batches, exactly once.

``ClickHouseSink.write(batch)`` stores every message of a batch whose id is not stored yet, and
only those: ids are looked up first, so a batch replayed after a crash (offsets are committed
only after the write) or a message classified twice collapses to one row. Each batch's ids are
noted in ``sink_batches`` before the insert; ``repair()``, run at start, completes the counts
and the author timeline for the keys of the latest noted batches, which a crash between the
table's part and its views' parts may have left short. A failing write raises
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
from schemas.ddl import GRAINS
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
        """Complete the aggregates of the latest noted batches; returns the rows added.

        A crash between the table's part and its views' parts leaves the views short. For the
        keys the latest noted batches touched, each count table is compared with what the
        stored messages say and the missing counts are added (and the author timeline gets its
        missing rows). Re-sending the batch with its token would not do: the table's
        deduplication log is not guaranteed to survive a SIGKILL, and then the re-send doubles
        rows (seen in the fault tests). Run before the worker writes anything new.
        """
        db = self.store.database
        noted = self.store.rows(
            f"SELECT token, any(ids) AS ids FROM {db}.sink_batches GROUP BY token "
            "ORDER BY max(written_at) DESC LIMIT {n:UInt32}",
            {"n": batches},
        )
        ids = sorted({i for batch in noted for i in batch["ids"]})
        if not ids:
            return 0
        added = 0
        keys = "bucket, brand, label, source, kind"
        for grain, fn in GRAINS.items():
            bucket = f"{fn}(toDateTime(created_at, 'UTC'))"
            touched = (
                f"SELECT {bucket} AS bucket, brand, label, source, kind FROM {db}.messages "
                "WHERE id IN {ids:Array(String)}"
            )
            missing = self.store.rows(
                f"SELECT {keys}, m.c - a.s AS missing FROM ("
                f"SELECT {bucket} AS bucket, brand, label, source, kind, count() AS c "
                f"FROM {db}.messages WHERE ({keys}) IN ({touched}) GROUP BY {keys}) AS m "
                f"LEFT JOIN (SELECT {keys}, sum(messages) AS s FROM {db}.counts_{grain} "
                f"WHERE ({keys}) IN ({touched}) GROUP BY {keys}) AS a USING ({keys}) "
                "WHERE m.c != a.s",
                {"ids": ids},
            )
            fixes = [[r[k] for k in keys.split(", ")] + [r["missing"]] for r in missing
                     if r["missing"] > 0]  # fmt: skip
            if len(fixes) != len(missing):
                log.error("counts_%s holds more than the stored messages for some keys", grain)
            if fixes:
                self.store.insert(f"counts_{grain}", fixes, [*keys.split(", "), "messages"])
                added += sum(int(f[-1]) for f in fixes)
        timeline = f"SELECT count() AS n FROM {db}.author_labels"
        before = int(self.store.rows(timeline)[0]["n"])
        self.store.rows(
            f"INSERT INTO {db}.author_labels SELECT brand, author, created_at, id, label, "
            f"conversation_id, source, kind FROM {db}.messages WHERE id IN {{ids:Array(String)}} "
            "AND author != '' AND role = 'customer' AND id NOT IN "
            f"(SELECT id FROM {db}.author_labels WHERE id IN {{ids:Array(String)}})",
            {"ids": ids},
        )
        added += int(self.store.rows(timeline)[0]["n"]) - before
        found = self.store.rows(
            f"SELECT DISTINCT brand, author FROM {db}.messages WHERE id IN {{ids:Array(String)}} "
            "AND role = 'customer' AND author != ''",
            {"ids": ids},
        )
        update_transitions(self.store, {(r["brand"], r["author"]) for r in found})
        return added


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
