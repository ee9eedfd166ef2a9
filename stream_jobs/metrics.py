"""Prometheus metrics of the stream worker, served on ``GET /metrics``.

``Metrics`` holds every series in its own ``CollectorRegistry`` rather than the process-global
one, so that several apps in one process (tests, the CLI) never collide. The faust app updates
it where it already counts on ``Counters`` (messages in and out per stage, dead letters,
replays, offset gaps, sink retries and errors, store failures, broker state, alerts) and times
classify batches and ClickHouse writes. Consumer lag is measured by a timer
(``watch_lag``): for every assigned partition, the broker's end offset (one ListOffsets
request per tick) minus the offset the group committed, or minus the partition's earliest
offset while nothing is committed yet (where a restart would begin reading).
docs/metrics.md documents every series; a test fails when one is missing there.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from importlib import metadata
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0
STAGES = ("classify", "sink")  # stages whose series exist from the start, at zero
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
MESSAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def app_version() -> str:
    try:
        return metadata.version("relradar")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """Every series the worker exports, registered in one registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None, process: bool = True) -> None:
        r = self.registry = registry or CollectorRegistry()
        if process:
            # CPU, memory and open files of this process: what a restart loop or a leak shows.
            ProcessCollector(registry=r)
        self.messages = Counter(
            "relradar_messages",
            "Messages a stage took in or passed on.",
            ["stage", "direction"],
            registry=r,
        )
        self.dead_letters = Counter(
            "relradar_dead_letters", "Records sent to the dead-letter topic.", ["stage"], registry=r
        )
        self.replays_skipped = Counter(
            "relradar_replays_skipped", "Messages the sink found already stored.", registry=r
        )
        self.offset_gaps = Counter(
            "relradar_offset_gaps",
            "Offsets missing between consecutive reads (lost messages).",
            ["topic"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "relradar_consumer_lag",
            "End offset minus committed offset per assigned partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.classify_batch_seconds = Histogram(
            "relradar_classify_batch_seconds",
            "Time to classify one batch.",
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.classify_message_seconds = Histogram(
            "relradar_classify_message_seconds",
            "Classify time per message (a batch's time over its size).",
            buckets=MESSAGE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "relradar_batch_size",
            "Events per batch a stage took.",
            ["stage"],
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.sink_write_seconds = Histogram(
            "relradar_sink_write_seconds",
            "Time of one ClickHouse write attempt.",
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.sink_errors = Counter(
            "relradar_sink_errors",
            "Batches the sink could not write and dead-lettered.",
            registry=r,
        )
        self.sink_retries = Counter(
            "relradar_sink_retries",
            "Sink writes or repairs retried after a store failure.",
            ["operation"],
            registry=r,
        )
        self.store_failures = Counter(
            "relradar_store_failures", "ClickHouse calls that failed.", ["operation"], registry=r
        )
        self.broker_up = Gauge(
            "relradar_broker_up", "1 while the broker accepts connections.", registry=r
        )
        self.broker_outages = Counter(
            "relradar_broker_outages", "Times the broker became unreachable.", registry=r
        )
        self.alerts_raised = Counter("relradar_alerts_raised", "Alerts raised.", registry=r)
        self.alert_delivery_failures = Counter(
            "relradar_alert_delivery_failures", "Alert webhook deliveries refused.", registry=r
        )
        self.build_info = Gauge(
            "relradar_build_info",
            "Always 1; the labels say what runs.",
            ["version", "model_version", "classifier"],
            registry=r,
        )
        self.broker_up.set(1)
        for stage in STAGES:
            self.messages.labels(stage, "in")
            self.messages.labels(stage, "out")
            self.dead_letters.labels(stage)
            self.batch_size.labels(stage)
        for operation in ("write", "repair"):
            self.sink_retries.labels(operation)
        self._lag_series: set[tuple[str, str]] = set()

    def moved(self, stage: str, direction: str, n: int) -> None:
        """Count ``n`` messages into (``in``) or out of (``out``) a stage."""
        self.messages.labels(stage, direction).inc(n)

    def dead_lettered(self, stages: Iterable[str]) -> None:
        for stage in stages:
            self.dead_letters.labels(stage).inc()

    def classified(self, seconds: float, size: int) -> None:
        """One classify batch of ``size`` messages took ``seconds``."""
        self.classify_batch_seconds.observe(seconds)
        if size:
            per_message = seconds / size
            for _ in range(size):
                self.classify_message_seconds.observe(per_message)

    def set_build(self, model_version: str, classifier: str) -> None:
        self.build_info.clear()
        self.build_info.labels(app_version(), model_version, classifier).set(1)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the scraper asked for (``Accept``), and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of every partition given; partitions no longer assigned are dropped."""
        series = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for gone in self._lag_series - series.keys():
            self.consumer_lag.remove(*gone)
        for labels, lag in series.items():
            self.consumer_lag.labels(*labels).set(lag)
        self._lag_series = set(series)

    async def update_lag(self, consumer: Any, topics: Collection[str]) -> None:
        """Measure the lag of a faust consumer's assigned partitions of ``topics``."""
        self.set_lag(await consumer_lag(consumer, topics))

    def watch_lag(
        self, app: faust.App, topics: Collection[str], interval: float = LAG_INTERVAL_S
    ) -> None:
        """Keep ``relradar_consumer_lag`` current for ``topics`` from a timer of ``app``
        (tables' changelogs are left out: faust never commits offsets on them)."""

        async def consumer_lag_timer() -> None:
            try:
                await self.update_lag(app.consumer, topics)
            except Exception as error:  # the consumer may be between rebalances
                log.warning("consumer lag not measured: %s", error)

        app.timer(interval=interval, name="consumer_lag")(consumer_lag_timer)


async def consumer_lag(consumer: Any, topics: Collection[str]) -> dict[tuple[str, int], int]:
    """End offset minus committed offset for each partition of ``topics`` a faust consumer
    is assigned.

    faust keeps what it committed (the next offset to read) in ``_committed_offset``; a
    partition with nothing committed yet counts from its earliest offset, where a restart
    would start reading (``auto_offset_reset=earliest``).
    """
    assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
    if not assigned:
        return {}
    try:
        ends: Mapping[Any, int | None] = await consumer.highwaters(*assigned)
    except Exception as error:
        # The last fetch's high watermarks, held by the client: no request to the broker.
        log.info("end offsets unavailable (%s); using the fetched high watermarks", error)
        ends = {tp: consumer.highwater(tp) for tp in assigned}
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    fresh = [tp for tp in assigned if not committed.get(tp)]
    starts: Mapping[Any, int] = await consumer.earliest_offsets(*fresh) if fresh else {}
    lags: dict[tuple[str, int], int] = {}
    for tp in assigned:
        end = ends.get(tp)
        if end is None:
            continue
        done = committed.get(tp) or starts.get(tp) or 0
        lags[(tp.topic, tp.partition)] = max(0, end - done)
    return lags
