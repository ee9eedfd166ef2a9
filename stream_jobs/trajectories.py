"""Trajectories: each customer's relationship labels over time, and the transitions between.

A customer's trajectory at a brand is the sequence of their non-``none`` labels in event
time (``author_labels``). ``update_transitions`` recomputes, in ClickHouse, every consecutive
pair of a given set of customers and writes it to ``transitions`` (a ReplacingMergeTree keyed
by the later message), so a replayed batch or a message arriving late (which changes its
successor's predecessor) leaves exactly one, correct transition per message. ``none`` is left
out: a message without a relationship signal says nothing about a change of relationship.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas import PROBLEM_LABELS
from stream_jobs.store import Store

_PROBLEMS = ", ".join(f"'{label.value}'" for label in sorted(PROBLEM_LABELS))


def transitions_sql(db: str) -> str:
    return f"""
INSERT INTO {db}.transitions
    (brand, author, from_label, to_label, from_id, to_id, from_at, to_at, into_problem)
SELECT brand, author, from_label, label, from_id, id, from_at, created_at,
       label IN ({_PROBLEMS}) AND from_label NOT IN ({_PROBLEMS})
FROM (
    SELECT brand, author, id, label, created_at,
           lagInFrame(label) OVER w AS from_label,
           lagInFrame(id) OVER w AS from_id,
           lagInFrame(created_at) OVER w AS from_at,
           row_number() OVER w AS n
    FROM {db}.author_labels FINAL
    WHERE brand IN {{brands:Array(String)}} AND author IN {{authors:Array(String)}}
      AND has({{keys:Array(String)}}, concat(brand, '\\x00', author)) AND label != 'none'
    WINDOW w AS (PARTITION BY brand, author ORDER BY created_at, id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
)
WHERE n > 1
"""


def update_transitions(store: Store, customers: Iterable[tuple[str, str]]) -> None:
    """Recompute the transitions of these (brand, author) customers."""
    pairs = sorted(set(customers))
    if not pairs:
        return
    store.rows(
        transitions_sql(store.database),
        {
            "brands": sorted({b for b, _ in pairs}),
            "authors": sorted({a for _, a in pairs}),
            "keys": [f"{b}\x00{a}" for b, a in pairs],
        },
    )
