"""Prometheus metrics: the registry's series, consumer lag, ``GET /metrics`` and their docs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from stream_jobs.app import Counters, GapDetector, forget_on_revoke
from stream_jobs.metrics import Metrics, app_version, consumer_lag
from stream_jobs.web import make_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """What ``consumer_lag`` reads of a faust consumer."""

    def __init__(
        self,
        assigned: set[TP],
        ends: dict[TP, int],
        committed: dict[TP, int | None],
        earliest: dict[TP, int],
        ends_fail: bool = False,
    ) -> None:
        self.assigned, self.ends, self.earliest = assigned, ends, earliest
        self._committed_offset = committed
        self.ends_fail = ends_fail
        self.earliest_asked: list[TP] = []

    def assignment(self) -> set[TP]:
        return self.assigned

    async def highwaters(self, *tps: TP) -> Mapping[TP, int]:
        if self.ends_fail:
            raise RuntimeError("broker away")
        return {tp: self.ends[tp] for tp in tps}

    def highwater(self, tp: TP) -> int | None:
        return self.ends.get(tp)

    async def earliest_offsets(self, *tps: TP) -> Mapping[TP, int]:
        self.earliest_asked.extend(tps)
        return {tp: self.earliest[tp] for tp in tps}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_observations_give_the_expected_series() -> None:
    m = Metrics(process=False)
    m.moved("classify", "in", 10)
    m.moved("classify", "out", 8)
    m.moved("sink", "in", 8)
    m.moved("sink", "out", 7)
    m.dead_lettered(["classify", "classify", "sink"])
    m.replays_skipped.inc(1)
    m.classified(0.2, 4)
    m.batch_size.labels("classify").observe(10)
    m.sink_retries.labels("write").inc()
    m.store_failures.labels("write").inc()
    m.broker_up.set(0)
    m.alerts_raised.inc(2)
    m.set_build("lexicon-v1", "lexicon")

    assert value(m, "relradar_messages_total", stage="classify", direction="in") == 10
    assert value(m, "relradar_messages_total", stage="classify", direction="out") == 8
    assert value(m, "relradar_messages_total", stage="sink", direction="out") == 7
    assert value(m, "relradar_dead_letters_total", stage="classify") == 2
    assert value(m, "relradar_dead_letters_total", stage="sink") == 1
    assert value(m, "relradar_replays_skipped_total") == 1
    assert value(m, "relradar_classify_batch_seconds_count") == 1
    assert value(m, "relradar_classify_batch_seconds_sum") == pytest.approx(0.2)
    # Per message: the batch's time split over its four messages, one observation each.
    assert value(m, "relradar_classify_message_seconds_count") == 4
    assert value(m, "relradar_classify_message_seconds_sum") == pytest.approx(0.2)
    assert value(m, "relradar_classify_message_seconds_bucket", le="0.025") == 0
    assert value(m, "relradar_classify_message_seconds_bucket", le="0.05") == 4
    assert value(m, "relradar_batch_size_count", stage="classify") == 1
    assert value(m, "relradar_batch_size_count", stage="sink") == 0  # exists from the start
    assert value(m, "relradar_sink_retries_total", operation="write") == 1
    assert value(m, "relradar_sink_retries_total", operation="repair") == 0
    assert value(m, "relradar_store_failures_total", operation="write") == 1
    assert value(m, "relradar_broker_up") == 0
    assert value(m, "relradar_alerts_raised_total") == 2
    build = {"version": app_version(), "model_version": "lexicon-v1", "classifier": "lexicon"}
    assert value(m, "relradar_build_info", **build) == 1
    m.set_build("minilm-v2", "default")  # one build at a time
    assert value(m, "relradar_build_info", **build) is None


def test_registries_are_separate() -> None:
    one, two = Metrics(process=False), Metrics(process=False)
    one.moved("sink", "in", 5)
    assert value(one, "relradar_messages_total", stage="sink", direction="in") == 5
    assert value(two, "relradar_messages_total", stage="sink", direction="in") == 0


def test_gap_detector_counts_offsets_still_missing_after_the_grace_time() -> None:
    m, counters = Metrics(process=False), Counters()
    gaps = GapDetector(counters, m, grace_s=0.0)
    for offset in (0, 1, 5, 6, 10):
        gaps.check("relradar.raw", 0, offset)
    gaps.check("relradar.classified", 1, 3)
    assert counters.offset_gaps == 0  # not yet: they may still come
    assert gaps.confirm(lambda topic, partition: True) == 6
    assert counters.offset_gaps == 6
    assert value(m, "relradar_offset_gaps_total", topic="relradar.raw") == 6
    assert value(m, "relradar_offset_gaps_total", topic="relradar.classified") is None
    assert gaps.confirm(lambda topic, partition: True) == 0  # counted once


def test_gap_detector_strikes_off_offsets_that_arrive_late_or_moved_away() -> None:
    counters = Counters()
    gaps = GapDetector(counters, grace_s=0.0)
    for offset in (170, 171, 172, 174, 175, 173, 176, 180):  # 173 read again after a re-seek
        gaps.check("relradar.raw", 3, offset)
    gaps.check("relradar.raw", 5, 10)
    gaps.check("relradar.raw", 5, 20)  # 11..19 missing, but partition 5 has moved away
    assert gaps.confirm(lambda topic, partition: partition == 3) == 3  # 177..179 only
    assert counters.gaps == ["relradar.raw[3] offsets 177..179 (3) missing"]
    waiting = GapDetector(Counters(), grace_s=3600.0)  # within the grace time: nothing counted
    waiting.check("relradar.raw", 0, 1)
    waiting.check("relradar.raw", 0, 4)
    assert waiting.confirm(lambda topic, partition: True) == 0 and waiting.missing


def test_lag_is_end_minus_committed_or_minus_earliest_before_any_commit() -> None:
    raw0, raw1, cls0 = TP("raw", 0), TP("raw", 1), TP("classified", 0)
    changelog = TP("app-conversations-changelog", 0)
    consumer = FakeConsumer(
        assigned={raw0, raw1, cls0, changelog},
        ends={raw0: 100, raw1: 40, cls0: 7, changelog: 500},
        committed={raw0: 90, raw1: None, cls0: 7},
        earliest={raw1: 10, changelog: 0},
    )
    lags = asyncio.run(consumer_lag(consumer, {"raw", "classified"}))
    assert lags == {("raw", 0): 10, ("raw", 1): 30, ("classified", 0): 0}
    assert consumer.earliest_asked == [raw1]

    consumer.ends_fail = True  # the client's last fetched high watermarks instead
    consumer.ends[raw0] = 95
    assert asyncio.run(consumer_lag(consumer, {"raw"}))[("raw", 0)] == 5


def test_lag_series_follow_the_assignment() -> None:
    m = Metrics(process=False)
    m.set_lag({("raw", 0): 3, ("raw", 1): 0})
    assert value(m, "relradar_consumer_lag", topic="raw", partition="0") == 3
    m.set_lag({("raw", 1): 2})  # partition 0 moved to another worker
    assert value(m, "relradar_consumer_lag", topic="raw", partition="0") is None
    assert value(m, "relradar_consumer_lag", topic="raw", partition="1") == 2


def scrape(m: Metrics, token: str | None, headers: dict[str, str]) -> tuple[int, str, str]:
    async def run() -> tuple[int, str, str]:
        app = make_app(None, None, None, dict, token, metrics=m.exposition)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/metrics", headers=headers)
            return response.status, response.headers["Content-Type"], await response.text()

    return asyncio.run(run())


def test_metrics_route_serves_the_registry_in_text_format_behind_the_token() -> None:
    m = Metrics()
    m.moved("classify", "in", 300)
    m.classified(1.5, 300)
    m.set_lag({("relradar.raw", 2): 0})

    status, _, _ = scrape(m, "s3cret", {})
    assert status == 401
    status, content_type, text = scrape(m, "s3cret", {"Authorization": "Bearer s3cret"})
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert families["relradar_messages"].type == "counter"
    key = ("relradar_messages_total", (("direction", "in"), ("stage", "classify")))
    assert samples[key] == 300
    assert samples[("relradar_classify_message_seconds_count", ())] == 300
    lag = ("relradar_consumer_lag", (("partition", "2"), ("topic", "relradar.raw")))
    assert samples[lag] == 0
    assert "process_resident_memory_bytes" in families

    status, content_type, text = scrape(m, None, {"Accept": "application/openmetrics-text"})
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


def test_no_metrics_route_unless_given() -> None:
    async def run() -> int:
        app = make_app(None, None, None, dict, None)
        async with TestClient(TestServer(app)) as client:
            return (await client.get("/metrics")).status

    assert asyncio.run(run()) == 404


def wire_names(m: Metrics) -> set[str]:
    """The names a reader sees on ``/metrics``: counters with their ``_total``."""
    return {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in m.registry.collect()
    }


def documented() -> set[str]:
    return set(re.findall(r"^\| `([a-z_*]+)` \|", DOC.read_text(), re.M))


def undocumented(m: Metrics) -> list[str]:
    docs = documented()
    return sorted(
        n
        for n in wire_names(m)
        if n not in docs and not (n.startswith("process_") and "process_*" in docs)
    )


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    m = Metrics()
    m.set_build("v", "lexicon")
    m.set_lag({("raw", 0): 1})
    m.moved("conversations", "in", 1)
    assert {"relradar_messages_total", "process_cpu_seconds_total"} <= wire_names(m)
    missing = undocumented(m)
    assert not missing, f"document these in docs/metrics.md: {missing}"
    ours = wire_names(m)
    stale = sorted(n for n in documented() if n.startswith("relradar_") and n not in ours)
    assert not stale, f"docs/metrics.md names metrics that do not exist: {stale}"


def test_the_docs_check_notices_a_series_without_a_row() -> None:
    m = Metrics(process=False)
    Counter("relradar_undocumented", "x", registry=m.registry)
    assert undocumented(m) == ["relradar_undocumented_total"]


def test_a_rebalance_makes_the_gap_detector_start_afresh_on_what_it_took() -> None:
    # A partition taken and later given back resumes far ahead (others read the offsets
    # between): without forgetting, that jump would count as lost after the grace time.
    app = faust.App("forget-test", broker="kafka://127.0.0.1:1", store="memory://")
    gaps = GapDetector(Counters(), grace_s=0.0)
    forget_on_revoke(app, gaps)
    gaps.check("relradar.raw", 0, 300)
    gaps.check("relradar.raw", 1, 50)
    asyncio.run(app.on_partitions_revoked.send({TP("relradar.raw", 0)}))
    gaps.check("relradar.raw", 0, 800)
    assert gaps.confirm(lambda topic, partition: True) == 0
    assert gaps.last == {("relradar.raw", 0): 800, ("relradar.raw", 1): 50}
