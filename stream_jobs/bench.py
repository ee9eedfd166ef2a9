"""``relradar bench query``: brand x label x day over many stored rows, from the aggregates.

It migrates a throwaway database in a temporary embedded store, loads N synthetic classified
rows with one server-side ``INSERT ... SELECT FROM numbers(N)`` (the materialized views fill
the aggregates as in production), then times the analysts' brand x label x day query from
``counts_day`` and, as the baseline in the same process, the same answer computed from the
raw ``messages`` table. It reports load rate, both latencies (median of several runs) and the
ratio, and checks that both answers agree.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from schemas import LABELS, Settings
from stream_jobs.store import Store

AGGREGATE_QUERY = """
SELECT brand, label, bucket AS day, sum(messages) AS n
FROM {db}.counts_day
WHERE brand = 'brand-7' AND bucket >= '2026-01-01' AND bucket < '2026-04-01'
GROUP BY brand, label, day ORDER BY day, label"""

RAW_QUERY = """
SELECT brand, label, toStartOfDay(created_at) AS day, count() AS n
FROM {db}.messages
WHERE brand = 'brand-7' AND created_at >= '2026-01-01' AND created_at < '2026-04-01'
GROUP BY brand, label, day ORDER BY day, label"""


def load_rows(store: Store, rows: int, batch: int = 2_000_000) -> float:
    labels = ", ".join(f"'{label.value}'" for label in LABELS)
    began = time.perf_counter()
    for start in range(0, rows, batch):
        count = min(batch, rows - start)
        store.command(f"""
INSERT INTO {store.database}.messages
  (id, source, kind, brand, author, conversation_id, turn_index, role, text, language,
   created_at, ingested_at, classified_at, label, problem, scores, model_version, metadata)
SELECT concat('b', toString(number)), 'bench', 'social_post',
       concat('brand-', toString(number % 50)), concat('u', toString(number % 100000)), '', -1,
       'customer', 'synthetic', '',
       toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(number % 7776000),
       now64(3), now64(3), [{labels}][1 + (intHash32(number) % {len(LABELS)})],
       0, map(), 'bench', '{{}}'
FROM numbers({start}, {count})""")
    return time.perf_counter() - began


def timed(store: Store, sql: str, repeat: int) -> tuple[float, list[dict[str, Any]]]:
    rows = store.rows(sql)  # warm: the first run also reads the files into the page cache
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        rows = store.rows(sql)
        times.append(time.perf_counter() - began)
    return statistics.median(times), rows


def bench_query(
    rows: int = 10_000_000, repeat: int = 7, data_dir: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        store = Store.open(Settings(data_dir=Path(tmp), database="bench"))
        store.migrate()
        load_seconds = load_rows(store, rows)
        [stored] = store.rows("SELECT count() AS n FROM bench.messages")
        [parts] = store.rows(
            "SELECT count() AS n FROM system.parts WHERE database = 'bench' "
            "AND table = 'counts_day' AND active"
        )
        aggregate_s, aggregate_rows = timed(store, AGGREGATE_QUERY.format(db="bench"), repeat)
        raw_s, raw_rows = timed(store, RAW_QUERY.format(db="bench"), repeat)
        store.close()
    same = [(r["label"], r["day"], r["n"]) for r in aggregate_rows] == [
        (r["label"], r["day"], r["n"]) for r in raw_rows
    ]
    return {
        "rows": int(stored["n"]),
        "load_seconds": round(load_seconds, 2),
        "load_rows_per_s": round(rows / load_seconds),
        "counts_day_parts": int(parts["n"]),
        "result_rows": len(aggregate_rows),
        "aggregate_query_ms": round(aggregate_s * 1000, 1),
        "raw_query_ms": round(raw_s * 1000, 1),
        "ratio": round(raw_s / aggregate_s, 1),
        "answers_agree": same,
    }
