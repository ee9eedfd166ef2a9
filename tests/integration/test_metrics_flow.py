"""``GET /metrics`` of a real service: the counts match what went through broker and store."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas import Envelope
from stream_jobs.testing import LocalStack

pytestmark = pytest.mark.integration
T0 = datetime(2025, 6, 1, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack: LocalStack) -> Samples:
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def moved(samples: Samples, stage: str, direction: str) -> float:
    key = ("relradar_messages_total", (("direction", direction), ("stage", stage)))
    return samples.get(key, -1.0)


def lags(samples: Samples) -> dict[tuple[str, str], float]:
    found = {}
    for (name, labels), v in samples.items():
        if name == "relradar_consumer_lag":
            named = dict(labels)
            found[(named["topic"], named["partition"])] = v
    return found


def scrape_until(
    stack: LocalStack, done: Callable[[Samples], bool], timeout: float = 60
) -> Samples:
    """Scrape until ``done(samples)`` holds: the counters move just after the rows land, and
    the lag only after the next offset commit and lag timer tick."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(stack)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.5)


def test_metrics_count_every_published_message_and_the_lag_drains(tmp_path: Path) -> None:
    n = 300
    envelopes = [
        Envelope(
            id=f"metrics:{i}", source="metrics-test", kind="social_post", brand="MetricsBrand",
            text=f"@MetricsBrand where is my order #{i}?", created_at=T0 + timedelta(minutes=i),
        )
        for i in range(n)
    ]  # fmt: skip
    with LocalStack(tmp_path, classifier="lexicon") as stack:
        stack.publish(envelopes)
        assert stack.wait_for_rows(n) == n
        samples = scrape_until(stack, lambda s: moved(s, "sink", "out") >= n)
        assert moved(samples, "classify", "in") == n
        assert moved(samples, "classify", "out") == n
        assert moved(samples, "sink", "in") == n
        assert moved(samples, "sink", "out") == n
        assert samples[("relradar_replays_skipped_total", ())] == 0
        assert samples[("relradar_dead_letters_total", (("stage", "classify"),))] == 0
        assert samples[("relradar_classify_batch_seconds_count", ())] > 0
        assert samples[("relradar_classify_message_seconds_count", ())] == n
        assert samples[("relradar_batch_size_sum", (("stage", "sink"),))] == n
        assert samples[("relradar_broker_up", ())] == 1
        build = [k for k in samples if k[0] == "relradar_build_info"]
        assert len(build) == 1 and ("classifier", "lexicon") in build[0][1]

        partitions = stack.settings.partitions
        samples = scrape_until(
            stack,
            lambda s: len(lags(s)) == 2 * partitions and not any(lags(s).values()),
        )
        lag = lags(samples)
        topics = stack.topics
        assert {topic for topic, _ in lag} == {topics.raw, topics.classified}
        assert len(lag) == 2 * partitions, lag
        assert all(v == 0 for v in lag.values()), lag
