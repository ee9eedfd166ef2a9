"""``relradar bench pipeline``: real messages through the whole path, against the classifier alone.

It starts the embedded defaults as an operator would (``LocalStack``: the local broker and the
service as their own processes, the shipped classifier unless told otherwise), then:

1. warm-up: a few hundred messages, waited for, so that start-up (partition assignment, the
   model's first-run allocations) is not counted;
2. sustained: N real messages (the shipped datasets, re-identified for this run) published as
   fast as the producer goes; throughput is N over the time from the first send to the moment
   a SQL query first sees all N rows (also reported from the first rows' arrival on, which
   leaves out the time the pipeline takes to fill);
3. classifier only: the same N messages classified in this process by
   ``Classifier.from_pretrained(spec)``, in batches of the service's ``classify_batch``, while
   the service idles: the classify agent's whole model step (relationship of customer turns,
   treatment of agent turns), and the relationship ``predict`` alone;
4. half rate: N more messages paced at half the sustained rate, for latency under headroom.

Latency is measured per message as the time it became visible to a SQL query minus the time
it was handed to the producer. Every sink insert stamps its rows with ``inserted_at``
(``now64(3)``, one value per insert); a poller watches the service's written-rows counter
(``/stats``, no query) every ``poll_s`` and, whenever it moved (and at least once a second),
asks SQL for the ``inserted_at`` values of the run's rows, noting when each value first shows
up. A row's visibility time is that moment: late by at most one poll interval plus the query,
never early except by the few ms between a query's start and its snapshot. The counter only
decides when to ask: querying the store ten times a second would itself take a share of the
two cores the pipeline is measured on. ``inserted_at - sent`` is also
reported: a lower bound, short of visibility by the insert and its materialized views. Both
clocks are this machine's. Nothing here asserts a speed: the figures are printed as measured.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest import Publisher
from models import Classifier, classify_envelopes
from schemas import Envelope, Topics
from stream_jobs.app import classified_records
from stream_jobs.chaos import Sql, drill_envelopes, http_sql
from stream_jobs.testing import LocalStack

DATABASE = "relradar"
REPORTED_SETTINGS = ("partitions", "classify_batch", "classify_window_s", "classify_in_flight",
                     "sink_batch", "sink_window_s", "sink_backlog_window_s",
                     "max_sink_lag")  # fmt: skip


class BenchError(Exception):
    """The run could not be measured (rows never arrived, the service failed)."""


class VisibilityPoller(threading.Thread):
    """When each insert of a source first became visible to a query (``inserted_at`` ms)."""

    def __init__(
        self,
        sql: Sql,
        source: str,
        expect: int,
        poll_s: float,
        timeout: float,
        written: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.sql, self.source, self.expect = sql, source, expect
        self.poll_s, self.timeout = poll_s, timeout
        self.written = written  # a cheap probe: the rows the service says it wrote
        self.first_seen: dict[int, float] = {}
        self.count = 0
        self.queries = 0
        self.done_at: float | None = None
        self.first_rows: tuple[float, int] | None = None  # (when, how many) rows first showed

    def _should_ask(self, last: tuple[int, float]) -> tuple[bool, int]:
        if self.written is None:
            return True, 0
        try:
            now = self.written()
        except OSError:
            return False, last[0]
        return now != last[0] or time.monotonic() - last[1] >= 1.0, now

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        query = (
            "SELECT toUnixTimestamp64Milli(inserted_at) AS b, count() AS n "
            f"FROM {DATABASE}.messages WHERE source = '{self.source}' GROUP BY b"
        )
        last = (-1, 0.0)  # (counter, monotonic time) at the last query
        while time.monotonic() < deadline:
            ask, counter = self._should_ask(last)
            if not ask:
                time.sleep(self.poll_s)
                continue
            asked = time.time()
            try:
                rows = self.sql(query)
            except OSError:
                time.sleep(self.poll_s)
                continue
            self.queries += 1
            last = (counter, time.monotonic())
            for row in rows:
                self.first_seen.setdefault(int(row["b"]), asked)
            self.count = sum(int(row["n"]) for row in rows)
            if self.count and self.first_rows is None:
                self.first_rows = (asked, self.count)
            if self.count >= self.expect:
                self.done_at = asked
                return
            time.sleep(self.poll_s)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def run_phase(
    stack: LocalStack,
    envelopes: list[Envelope],
    rate: float | None,
    poll_s: float = 0.05,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Send ``envelopes`` (at ``rate``/s, or flat out) and measure until all are queryable."""
    assert stack.broker is not None
    sql = http_sql(stack.url)
    source = envelopes[0].source
    before = stack.get("/stats")
    assert stack.service is not None
    pids = {"service": stack.service.pid, "broker": stack.broker.process.pid}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    written = lambda: int(stack.get("/stats")["rows_written"])  # noqa: E731
    poller = VisibilityPoller(sql, source, len(envelopes), poll_s, timeout, written)
    sent_at: dict[str, float] = {}
    with Publisher(stack.broker.address, Topics()) as publisher:
        poller.start()
        first = time.time()
        for i, envelope in enumerate(envelopes):
            if rate:
                ahead = first + i / rate - time.time()
                if ahead > 0.002:
                    time.sleep(ahead)
            sent_at[envelope.id] = time.time()
            publisher.publish(envelope)
        publisher.flush()
        sent = time.time()
    poller.join()
    if poller.done_at is None:
        raise BenchError(
            f"{poller.count} of {len(envelopes)} rows queryable after {timeout:.0f}s: "
            f"{stack.log_tail(1500)}"
        )
    rows = sql(
        f"SELECT id, toUnixTimestamp64Milli(inserted_at) AS b FROM {DATABASE}.messages "
        f"WHERE source = '{source}'"
    )
    visible = [poller.first_seen[int(r["b"])] - sent_at[r["id"]] for r in rows]
    inserted = [int(r["b"]) / 1000 - sent_at[r["id"]] for r in rows]
    after = settled_stats(stack, before, len(envelopes))
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}

    def moved(key: str) -> int:
        return int(after[key]) - int(before[key])

    def mean(total: str, count: str) -> float:
        return round(moved(total) / max(1, moved(count)), 1)

    seconds = poller.done_at - first
    began, shown = poller.first_rows or (first, 0)
    steady = (len(envelopes) - shown) / max(poller.done_at - began, 1e-9)
    return {
        "messages": len(envelopes),
        "target_rate": round(rate, 1) if rate else None,
        "send_msgs_per_s": round(len(envelopes) / max(sent - first, 1e-9), 1),
        "seconds": round(seconds, 2),
        "msgs_per_s": round(len(envelopes) / seconds, 1),
        "steady_msgs_per_s": round(steady, 1),
        "p50_latency_s": round(percentile(visible, 50), 3),
        "p90_latency_s": round(percentile(visible, 90), 3),
        "p99_latency_s": round(percentile(visible, 99), 3),
        "max_latency_s": round(max(visible), 3),
        "p50_inserted_s": round(percentile(inserted, 50), 3),
        "p99_inserted_s": round(percentile(inserted, 99), 3),
        "inserts_seen": len({int(r["b"]) for r in rows}),
        "visibility_queries": poller.queries,
        # CPU the processes used while the phase ran, and how many cores that kept busy.
        "cpu_ms_per_msg": {k: round(1000 * v / len(envelopes), 2) for k, v in cpu.items()},
        "service_cores_busy": round(cpu["service"] / seconds, 2),
        "service": {
            "classify_batches": moved("classify_batches"),
            "mean_classify_batch": mean("classified_out", "classify_batches"),
            "sink_batches": moved("sink_batches"),
            "mean_sink_batch": mean("rows_written", "sink_batches"),
            "offset_gaps": moved("offset_gaps"),
            "dead_letters": moved("dead_letters"),
        },
    }  # fmt: skip


def settled_stats(stack: LocalStack, before: dict[str, Any], rows: int) -> dict[str, Any]:
    """The service's counters once its sink has counted the rows a query already sees."""
    deadline = time.monotonic() + 10
    after: dict[str, Any] = stack.get("/stats")
    while after["rows_written"] - before["rows_written"] < rows and time.monotonic() < deadline:
        time.sleep(0.1)
        after = stack.get("/stats")
    return after


def classifier_only(spec: str, envelopes: list[Envelope], batch: int) -> dict[str, Any]:
    """The same messages through the classifier alone, in the service's batch size.

    Two figures: the classify agent's whole model step (``classified_records``, the function
    the agent runs: the relationship of customer turns, and the treatment of agent turns when
    the model has a treatment head), and ``predict`` on the relationship alone.
    """
    classifier = Classifier.from_pretrained(spec)
    classified_records(envelopes[:64], classifier)  # first-run allocations are not throughput

    def timed(step: Callable[[list[Envelope]], object]) -> tuple[float, float]:
        began, cpu_began = time.perf_counter(), time.process_time()
        for start in range(0, len(envelopes), batch):
            step(envelopes[start : start + batch])
        return time.perf_counter() - began, time.process_time() - cpu_began

    seconds, cpu = timed(lambda chunk: classified_records(chunk, classifier))
    relationship_s, _ = timed(lambda chunk: classify_envelopes(classifier, chunk))
    return {
        "classifier": classifier.version,
        "batch": batch,
        "seconds": round(seconds, 2),
        "msgs_per_s": round(len(envelopes) / seconds, 1),
        "cpu_ms_per_msg": round(1000 * cpu / len(envelopes), 2),
        "cores_busy": round(cpu / seconds, 2),
        "relationship_only_msgs_per_s": round(len(envelopes) / relationship_s, 1),
    }


def bench_pipeline(
    root: Path,
    messages: int = 5000,
    classifier: str = "default",
    classify_batch: int = 256,
    service_settings: dict[str, str] | None = None,
    warmup: int = 300,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the four steps (see the module docstring) and return every figure."""
    say = progress or (lambda _: None)
    run = uuid.uuid4().hex[:6]
    sizes = {"warm": warmup, "full": messages, "half": messages}
    batches = {name: list(drill_envelopes(f"bench{name}-{run}", n)) for name, n in sizes.items()}
    load = os.getloadavg()
    say(f"starting the broker and the service (classifier {classifier!r}) in {root}")
    with LocalStack(root, classifier=classifier, **(service_settings or {})) as stack:
        say(f"warm-up: {warmup} messages")
        run_phase(stack, batches["warm"], None)
        say(f"sustained: {messages} messages, flat out")
        full = run_phase(stack, batches["full"], None)
        say("classifier only, in this process")
        alone = classifier_only(classifier, batches["full"], classify_batch)
        half_rate = full["msgs_per_s"] / 2
        say(f"half rate: {messages} messages at {half_rate:.0f}/s")
        half = run_phase(stack, batches["half"], half_rate)
        effective = stack.settings
    return {
        "messages": messages,
        "classifier": alone["classifier"],
        "msgs_per_s": full["msgs_per_s"],
        "classifier_only_msgs_per_s": alone["msgs_per_s"],
        "ratio": round(full["msgs_per_s"] / alone["msgs_per_s"], 3),
        "relationship_only_msgs_per_s": alone["relationship_only_msgs_per_s"],
        "p50_latency_s": full["p50_latency_s"],
        "p99_latency_s": full["p99_latency_s"],
        "half_rate": {**half, "p99_target_s": 2.0, "meets_target": half["p99_latency_s"] <= 2.0},
        "sustained": full,
        "classifier_only": alone,
        "cores": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load],
        "settings": {key: getattr(effective, key) for key in REPORTED_SETTINGS},
    }


def text_report(result: dict[str, Any]) -> str:
    """The figures as a readable table."""
    full, half, alone = result["sustained"], result["half_rate"], result["classifier_only"]
    rows = [
        ("", "sustained", "half rate"),
        ("messages", full["messages"], half["messages"]),
        ("offered rate (msg/s)", f"{full['send_msgs_per_s']} (flat out)", half["target_rate"]),
        ("end-to-end (msg/s)", full["msgs_per_s"], half["msgs_per_s"]),
        ("from first row on (msg/s)", full["steady_msgs_per_s"], half["steady_msgs_per_s"]),
        ("latency p50 (s)", full["p50_latency_s"], half["p50_latency_s"]),
        ("latency p90 (s)", full["p90_latency_s"], half["p90_latency_s"]),
        ("latency p99 (s)", full["p99_latency_s"], half["p99_latency_s"]),
        ("latency max (s)", full["max_latency_s"], half["max_latency_s"]),
        ("inserted_at p50/p99 (s)", f"{full['p50_inserted_s']}/{full['p99_inserted_s']}",
         f"{half['p50_inserted_s']}/{half['p99_inserted_s']}"),
        ("mean classify batch", full["service"]["mean_classify_batch"],
         half["service"]["mean_classify_batch"]),
        ("mean sink batch", full["service"]["mean_sink_batch"], half["service"]["mean_sink_batch"]),
        ("offset gaps", full["service"]["offset_gaps"], half["service"]["offset_gaps"]),
        ("service CPU ms/msg", full["cpu_ms_per_msg"]["service"],
         half["cpu_ms_per_msg"]["service"]),
        ("broker CPU ms/msg", full["cpu_ms_per_msg"]["broker"], half["cpu_ms_per_msg"]["broker"]),
        ("service cores busy", full["service_cores_busy"], half["service_cores_busy"]),
    ]  # fmt: skip
    width = max(len(str(r[0])) for r in rows) + 2
    lines = [f"{a!s:<{width}}{b!s:>22}{c!s:>16}" for a, b, c in rows]
    verdict = "meets" if half["meets_target"] else "misses"
    lines += [
        "",
        f"classifier only ({alone['classifier']}, batch {alone['batch']}, this process): "
        f"{alone['msgs_per_s']} msg/s, {alone['cpu_ms_per_msg']} CPU ms/msg, "
        f"{alone['cores_busy']} cores busy (relationship predict alone: "
        f"{alone['relationship_only_msgs_per_s']} msg/s)",
        f"pipeline / classifier only: {result['ratio']:.0%}",
        f"half-rate p99 {half['p99_latency_s']} s {verdict} the 2 s target",
        f"{result['cores']} cores, load average at start {result['load_average_at_start']}, "
        f"settings {result['settings']}",
    ]
    return "\n".join(lines)
