"""Problem-relationship alerts: a rise of a problem label's share over the brand's own baseline.

For every brand, problem label and complete hour of event time, the hour's count ``x`` of that
label among the brand's ``n`` messages is tested against the brand's share of the label over
the trailing baseline (default 7 days before the hour): a one-sided exact binomial test,
P(X >= x | n, p0). An alert needs ``n >= min_volume``, ``x >= min_count``, a lift
``(x/n) / p0 >= min_lift`` and ``p < alpha``; a cooldown (in event time) keeps one incident to
one alert. The baseline share is smoothed toward ``prior_share`` so a brand with a quiet
history does not alert on its first few problem messages. Event time, not wall time, so a
replay of old data alerts exactly as the live stream did. Alert ids are a hash of brand, label
and window, so re-evaluating a window never produces a second alert.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import PROBLEM_LABELS
from stream_jobs.store import Store

PROBLEMS = sorted(label.value for label in PROBLEM_LABELS)


@dataclass(frozen=True)
class AlertRule:
    baseline_hours: int = 168
    lookback_hours: int = 72
    min_volume: int = 20
    min_count: int = 5
    min_lift: float = 2.0
    alpha: float = 0.001
    cooldown_hours: int = 24
    prior_share: float = 0.05
    prior_weight: float = 50.0

    def __post_init__(self) -> None:
        if not (0 < self.alpha < 1 and self.min_volume > 0 and self.baseline_hours > 0):
            raise ValueError("alert rule: alpha in (0,1), min_volume and baseline_hours > 0")


@dataclass(frozen=True)
class Alert:
    id: str
    brand: str
    label: str
    window_start: datetime
    window_end: datetime
    messages: int
    count: int
    observed_share: float
    expected_share: float
    lift: float
    p_value: float
    test: str
    examples: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("window_start", "window_end", "created_at"):
            data[key] = data[key].isoformat()
        return data


def binomial_upper_tail(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), summed in log space (exact, no dependency)."""
    if x <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * log_p
        + (n - k) * log_q
        for k in range(x, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def alert_id(brand: str, label: str, window_start: datetime) -> str:
    key = f"{brand}\x00{label}\x00{window_start.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def detect(
    hourly: dict[tuple[str, datetime], int],
    problems: dict[tuple[str, str, datetime], int],
    windows: list[datetime] | dict[str, list[datetime]],
    rule: AlertRule,
    previous: dict[tuple[str, str], list[datetime]],
) -> list[Alert]:
    """Alerts for the given hour windows (pure: counts in, alerts out).

    ``hourly``: messages per (brand, hour); ``problems``: per (brand, label, hour);
    ``windows``: the hours to test, for every brand or per brand; ``previous``: window starts
    of earlier alerts per (brand, label), for the cooldown.
    """
    brands = sorted({brand for brand, _ in hourly})
    if not isinstance(windows, dict):
        windows = {brand: list(windows) for brand in brands}
    todo = {(brand, w) for brand, hours in windows.items() for w in hours}
    fired: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for key, starts in previous.items():
        fired[key].extend(starts)
    hour = timedelta(hours=1)
    alerts: list[Alert] = []
    for window in sorted({w for _, w in todo}):
        baseline_hours = [window - hour * k for k in range(1, rule.baseline_hours + 1)]
        for brand in brands:
            if (brand, window) not in todo:
                continue
            n = hourly.get((brand, window), 0)
            if n < rule.min_volume:
                continue
            base_n = sum(hourly.get((brand, h), 0) for h in baseline_hours)
            for label in PROBLEMS:
                x = problems.get((brand, label, window), 0)
                if x < rule.min_count:
                    continue
                base_x = sum(problems.get((brand, label, h), 0) for h in baseline_hours)
                expected = (base_x + rule.prior_share * rule.prior_weight) / (
                    base_n + rule.prior_weight
                )
                observed = x / n
                lift = observed / expected
                cooling = [
                    s for s in fired[(brand, label)] if window - s < hour * rule.cooldown_hours
                ]
                if lift < rule.min_lift or cooling:
                    continue
                p_value = binomial_upper_tail(x, n, expected)
                if p_value >= rule.alpha:
                    continue
                fired[(brand, label)].append(window)
                alerts.append(
                    Alert(
                        id=alert_id(brand, label, window),
                        brand=brand,
                        label=label,
                        window_start=window,
                        window_end=window + hour,
                        messages=n,
                        count=x,
                        observed_share=round(observed, 4),
                        expected_share=round(expected, 4),
                        lift=round(lift, 2),
                        p_value=p_value,
                        test="one-sided exact binomial vs trailing baseline share",
                    )
                )
    return alerts


def complete_hours(
    hourly: dict[tuple[str, datetime], int], newest: dict[str, datetime], rule: AlertRule
) -> dict[str, list[datetime]]:
    """Per brand, the hours to test: within the lookback of its newest hour, which may still
    be filling and so is left out."""
    hour = timedelta(hours=1)
    windows: dict[str, list[datetime]] = {}
    for brand, bucket in hourly:
        if newest[brand] - hour * rule.lookback_hours <= bucket < newest[brand]:
            windows.setdefault(brand, []).append(bucket)
    return windows


def evaluate(store: Store, rule: AlertRule) -> list[Alert]:
    """New alerts for each brand's complete hours within ``lookback_hours`` of its newest.

    Every brand has its own event-time frontier (its newest hour), so one brand's backfill or
    an old dataset replayed beside a live one is evaluated on its own clock.
    """
    db = store.database
    span = rule.lookback_hours + rule.baseline_hours
    hourly: dict[tuple[str, datetime], int] = {}
    problems: dict[tuple[str, str, datetime], int] = {}
    newest: dict[str, datetime] = {}
    for row in store.rows(
        f"SELECT c.brand AS brand, c.bucket AS bucket, toString(c.label) AS label, "
        f"sum(c.messages) AS n, any(f.newest) AS newest FROM {db}.counts_hour AS c "
        f"INNER JOIN (SELECT brand, max(bucket) AS newest FROM {db}.counts_hour GROUP BY brand) "
        "AS f ON c.brand = f.brand "
        "WHERE c.bucket >= f.newest - toIntervalHour({span:UInt32}) "
        "GROUP BY brand, bucket, label",
        {"span": span},
    ):
        key = (row["brand"], row["bucket"])
        hourly[key] = hourly.get(key, 0) + int(row["n"])
        newest[row["brand"]] = row["newest"]
        if row["label"] in PROBLEMS:
            problems[(row["brand"], row["label"], row["bucket"])] = int(row["n"])
    hour = timedelta(hours=1)
    windows = complete_hours(hourly, newest, rule)
    if not windows:
        return []
    earliest = min(min(hours) for hours in windows.values()) - hour * rule.cooldown_hours
    previous: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    known: set[str] = set()
    for row in store.rows(
        f"SELECT id, brand, toString(label) AS label, window_start FROM {db}.alerts FINAL "
        "WHERE window_start >= {since:DateTime}",
        {"since": earliest.replace(tzinfo=None)},
    ):
        previous[(row["brand"], row["label"])].append(row["window_start"])
        known.add(row["id"])
    fresh = [a for a in detect(hourly, problems, windows, rule, previous) if a.id not in known]
    return [with_examples(store, alert) for alert in fresh]


def with_examples(store: Store, alert: Alert, limit: int = 3) -> Alert:
    rows = store.rows(
        f"SELECT text FROM {store.database}.messages WHERE brand = {{brand:String}} "
        "AND label = {label:String} AND created_at >= {start:DateTime} "
        "AND created_at < {end:DateTime} ORDER BY scores[{label:String}] DESC LIMIT {limit:UInt32}",
        {"brand": alert.brand, "label": alert.label, "limit": limit,
         "start": alert.window_start.replace(tzinfo=None),
         "end": alert.window_end.replace(tzinfo=None)},
    )  # fmt: skip
    return Alert(**{**asdict(alert), "examples": [str(r["text"])[:500] for r in rows]})


ALERT_COLUMNS = (
    "id", "brand", "label", "window_start", "window_end", "messages", "count",
    "observed_share", "expected_share", "lift", "p_value", "test", "examples", "created_at",
)  # fmt: skip


def store_alerts(store: Store, alerts: list[Alert]) -> None:
    rows = [[getattr(a, c) for c in ALERT_COLUMNS] for a in alerts]
    if rows:
        store.insert("alerts", rows, ALERT_COLUMNS)
