"""Alerts on customers moving into problem relationships (trajectory transitions).

For every brand and complete hour of event time, the hour's transitions (consecutive labels
of one customer, ``transitions``) are counted, and among them those that enter a problem label
from a non-problem one. The same exact binomial test as the share alerts (``alerts.detect``)
compares an hour's entries into each problem label with the brand's trailing baseline, with a
smaller volume floor (transitions are rarer than messages). The alerts land in the same table
and go out through the same delivery, marked by their ``test``; their ids differ from share
alerts of the same brand, label and hour.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, replace
from datetime import datetime

from stream_jobs.alerts import Alert, AlertRule, alert_id, complete_hours, detect
from stream_jobs.store import Store

TRANSITION_TEST = (
    "customer transitions into a problem label: one-sided exact binomial vs trailing baseline"
)


def evaluate_transitions(store: Store, rule: AlertRule) -> list[Alert]:
    db = store.database
    span = rule.lookback_hours + rule.baseline_hours
    hourly: dict[tuple[str, datetime], int] = defaultdict(int)
    entries: dict[tuple[str, str, datetime], int] = {}
    newest: dict[str, datetime] = {}
    for row in store.rows(
        "SELECT t.brand AS brand, toStartOfHour(t.to_at) AS bucket, "
        "toString(t.to_label) AS label, count() AS n, countIf(t.into_problem = 1) AS x, "
        "any(f.newest) AS newest "
        f"FROM (SELECT * FROM {db}.transitions FINAL) AS t INNER JOIN "
        f"(SELECT brand, toStartOfHour(max(to_at)) AS newest FROM {db}.transitions GROUP BY brand) "
        "AS f ON t.brand = f.brand WHERE t.to_at >= f.newest - toIntervalHour({span:UInt32}) "
        "GROUP BY brand, bucket, label",
        {"span": span},
    ):
        bucket = row["bucket"]
        hourly[(row["brand"], bucket)] += int(row["n"])
        newest[row["brand"]] = row["newest"]
        if int(row["x"]):
            entries[(row["brand"], row["label"], bucket)] = int(row["x"])
    windows = complete_hours(hourly, newest, rule)
    if not windows:
        return []
    previous: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    known: set[str] = set()
    for row in store.rows(
        f"SELECT id, brand, toString(label) AS label, window_start FROM {db}.alerts FINAL "
        "WHERE test = {test:String}",
        {"test": TRANSITION_TEST},
    ):
        previous[(row["brand"], row["label"])].append(row["window_start"])
        known.add(row["id"])
    floor = replace(rule, min_volume=max(1, rule.min_count))
    alerts = []
    for a in detect(dict(hourly), entries, windows, floor, previous):
        marked = replace(a, id=alert_id(a.brand, f"transition:{a.label}", a.window_start),
                         test=TRANSITION_TEST)  # fmt: skip
        if marked.id not in known:
            alerts.append(with_transition_examples(store, marked))
    return alerts


def with_transition_examples(store: Store, alert: Alert, limit: int = 3) -> Alert:
    rows = store.rows(
        f"SELECT concat(toString(t.from_label), ' -> ', toString(t.to_label), ': ', m.text) AS e "
        f"FROM (SELECT * FROM {store.database}.transitions FINAL WHERE brand = {{brand:String}} "
        "AND to_label = {label:String} AND into_problem = 1 AND to_at >= {start:DateTime} "
        f"AND to_at < {{end:DateTime}}) AS t INNER JOIN {store.database}.messages AS m "
        "ON m.id = t.to_id LIMIT {limit:UInt32}",
        {"brand": alert.brand, "label": alert.label, "limit": limit,
         "start": alert.window_start.replace(tzinfo=None),
         "end": alert.window_end.replace(tzinfo=None)},
    )  # fmt: skip
    return Alert(**{**asdict(alert), "examples": [str(r["e"])[:500] for r in rows]})
