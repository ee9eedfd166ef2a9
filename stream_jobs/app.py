"""The faust-streaming app: the classify agent and the ClickHouse sink agent.

``classify`` takes raw envelopes in batches (``stream.take_events``), validates each (bad
ones go to the dead-letter topic with the reason), classifies the batch off the event loop
while it takes the next (``InFlight``), and emits classified records keyed like their input.
``sink`` takes classified records in larger batches and writes them to ClickHouse, retrying
with backoff while the store fails. Events are acknowledged (and so their offsets committed)
only after their batch is done. Both agents report offset gaps: the local broker silently
drops old data when a consumer falls more than ~5 MiB per partition behind, and that must
never pass unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import aiohttp
import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from pydantic import ValidationError

from ingest.redact import Redactor
from models import Classifier, classify_envelopes
from models.classifier import ClassifierError, treat_envelopes
from schemas import ClassifiedMessage, DeadLetter, Envelope, Settings, Topics, parse_envelope
from schemas.envelope import describe_error
from stream_jobs.alert_delivery import deliver, parse_targets
from stream_jobs.alerts import Alert, AlertRule, evaluate, store_alerts
from stream_jobs.conversation_agent import add_conversation_agent
from stream_jobs.gather import Gather, GatherPolicy, Upstream
from stream_jobs.inflight import InFlight
from stream_jobs.metrics import Metrics
from stream_jobs.remote_sink import Sink
from stream_jobs.sink import SinkBackpressure, SinkError, WriteResult
from stream_jobs.store import Store, StoreError
from stream_jobs.transition_alerts import evaluate_transitions

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Counters:
    """What the pipeline has done since start (served on ``/stats``)."""

    raw_in: int = 0
    classified_out: int = 0
    dead_letters: int = 0
    rows_written: int = 0
    replays_skipped: int = 0  # messages already stored (crash replays, re-sent input)
    batches_repaired: int = 0
    sink_retries: int = 0
    offset_gaps: int = 0
    classify_batches: int = 0
    sink_batches: int = 0
    conversations_updated: int = 0
    sink_seen: int = 0  # events the sink has finished with: written or dead-lettered
    broker_up: bool = True
    broker_outages: int = 0
    alerts_raised: int = 0
    alert_delivery_failures: int = 0
    last_error: str | None = None
    gaps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GapDetector:
    """Remembers the last offset read per partition and reports offsets skipped for good.

    A jump forward leaves offsets missing. Usually they come soon after: a rebalance can cut
    a message off its delivery, and the consumer then reads the partition again from it
    (``kafka_fixes.commit_only_processed``). So missing offsets wait ``grace_s``; those that
    arrive are struck off, and those still missing then, on a partition this worker still
    holds (``confirm``), are counted and logged as lost: the local broker drops old data when
    a consumer falls ~5 MiB behind. A partition that moved away takes its missing offsets
    with it, since its next owner reads from the committed offset, which never passes an
    unfinished message.
    """

    def __init__(
        self,
        counters: Counters,
        metrics: Metrics | None = None,
        grace_s: float = 90.0,
        quiet: bool = False,  # a second reader of offsets another detector reports on
    ) -> None:
        self.counters, self.metrics, self.grace_s, self.quiet = counters, metrics, grace_s, quiet
        self.last: dict[tuple[str, int], int] = {}
        # Per partition: [first, end) ranges of missing offsets, and when each went missing.
        self.missing: dict[tuple[str, int], list[tuple[int, int, float]]] = {}

    def check(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        if key in self.missing:
            self._arrived(key, offset)
        previous = self.last.get(key)
        if previous is not None and offset > previous + 1:
            self.missing.setdefault(key, []).append((previous + 1, offset, time.monotonic()))
            if not self.quiet:
                log.warning(
                    "%s[%d] offsets %d..%d skipped: lost unless they come within %.0f s",
                    topic, partition, previous + 1, offset - 1, self.grace_s,
                )  # fmt: skip
        # The highest offset read: a partition read again after a seek back is no jump.
        self.last[key] = offset if previous is None else max(previous, offset)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Start afresh on partitions a rebalance took (its seek moves where reading resumes)."""
        for key in partitions:
            self.last.pop(key, None)
            self.missing.pop(key, None)

    def confirm(self, held: Callable[[str, int], bool]) -> int:
        """Count as lost the offsets missing longer than ``grace_s`` on partitions ``held``."""
        now, lost_now = time.monotonic(), 0
        for key, ranges in list(self.missing.items()):
            if not held(*key):
                del self.missing[key]  # its next owner reads them
                continue
            due = [r for r in ranges if now - r[2] >= self.grace_s]
            self.missing[key] = [r for r in ranges if now - r[2] < self.grace_s]
            for first, end, _ in due:
                lost_now += self._lost(key, first, end)
            if not self.missing[key]:
                del self.missing[key]
        return lost_now

    def _arrived(self, key: tuple[str, int], offset: int) -> None:
        ranges = []
        for first, end, since in self.missing[key]:
            if first <= offset < end:
                ranges += [(a, b, since) for a, b in ((first, offset), (offset + 1, end)) if a < b]
            else:
                ranges.append((first, end, since))
        if ranges:
            self.missing[key] = ranges
        else:
            del self.missing[key]

    def _lost(self, key: tuple[str, int], first: int, end: int) -> int:
        topic, partition = key
        lost = end - first
        note = f"{topic}[{partition}] offsets {first}..{end - 1} ({lost}) missing"
        self.counters.offset_gaps += lost
        if self.metrics is not None:
            self.metrics.offset_gaps.labels(topic).inc(lost)
        self.counters.gaps = [*self.counters.gaps[-19:], note]
        if not self.quiet:
            log.error("OFFSET GAP: %s: messages were lost before this worker read them", note)
        return lost


def forget_on_revoke(app: faust.App, *detectors: GapDetector) -> None:
    """Have ``detectors`` start afresh on the partitions each rebalance takes from ``app``."""

    def forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        for detector in detectors:
            detector.forget((tp.topic, tp.partition) for tp in revoked)

    app.on_partitions_revoked.connect(forget_revoked)


def classified_records(
    envelopes: Sequence[Envelope], classifier: Classifier
) -> list[ClassifiedMessage]:
    """Classify envelopes into the records the classify agent emits."""
    predictions = classify_envelopes(classifier, envelopes)
    try:
        treatments = treat_envelopes(classifier, envelopes)  # agent turns only; None otherwise
    except ClassifierError as error:
        # A model without a treatment head still classifies customers; agent turns go
        # without a treatment (and so without a mismatch verdict) rather than dead-lettered.
        log.warning("no treatment for agent turns: %s", error)
        treatments = [None] * len(envelopes)
    return [
        ClassifiedMessage(
            **env.model_dump(),
            label=p.label,
            scores=p.scores,
            model_version=classifier.version,
            treatment=t.label if t is not None else None,
        )
        for env, p, t in zip(envelopes, predictions, treatments, strict=True)
    ]


def parse_classified(value: bytes, location: str) -> ClassifiedMessage | DeadLetter:
    """A classified record from the classified topic, or a dead letter saying why not."""
    try:
        return ClassifiedMessage.model_validate_json(value)
    except (ValidationError, ValueError) as error:
        reason = describe_error(error) if isinstance(error, ValidationError) else str(error)
        return DeadLetter.of("sink", "classified", reason, value, location)


def parse_raw(value: bytes, location: str) -> Envelope | DeadLetter:
    return parse_envelope(value, stage="classify", location=location)


def split_events(
    events: Sequence[Any],
    parse: Callable[[bytes, str], T | DeadLetter],
    gaps: GapDetector,
) -> tuple[list[T], list[DeadLetter]]:
    """Parse a batch of events: the good records, and the bad ones as dead letters."""
    good: list[T] = []
    bad: list[DeadLetter] = []
    for event in events:
        msg = event.message
        gaps.check(msg.topic, msg.partition, msg.offset)
        record = parse(msg.value or b"", f"{msg.topic}[{msg.partition}]@{msg.offset}")
        if isinstance(record, DeadLetter):
            bad.append(record)
        else:
            good.append(record)
    return good, bad


async def broker_reachable(bootstrap: str, timeout: float = 2.0) -> bool:
    """Whether any bootstrap server accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        except (OSError, ValueError, TimeoutError):
            continue
        writer.close()
        return True
    return False


def create_app(
    settings: Settings,
    broker: str,
    classifier: Classifier,
    sink: Sink,
    alert_store: Store | None = None,
    metrics: Metrics | None = None,
) -> tuple[faust.App, Counters]:
    """The faust app wired to a broker, a classifier and a sink (``metrics``: where it reports
    for ``/metrics``; a fresh registry when not given)."""
    topics = Topics(settings.topic_prefix)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{b}" for b in broker.split(",")],
        store="memory://",
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        # A killed worker holds its partitions until its session expires: keep that short.
        broker_session_timeout=settings.session_timeout_s,
        # At a rebalance faust otherwise waits, without a time limit, for every event it has
        # handed out to be acked; once an agent held a batch through it, the worker missed the
        # rejoin and sat out of the group (seen in the scale-out test). Every stage here is
        # idempotent (the sink collapses replays, conversation turns are kept by index), so
        # unfinished events are simply read again by the partition's next owner.
        stream_wait_empty=False,
        producer_max_request_size=4 * 1024 * 1024,
    )
    counters = Counters()
    metrics = metrics or Metrics()
    metrics.set_build(classifier.version, settings.classifier)
    metrics.watch_lag(app, {topics.raw, topics.classified})
    gaps = GapDetector(counters, metrics)
    upstream = Upstream()
    sink_policy = GatherPolicy(
        settings.sink_batch, settings.sink_window_s, settings.sink_backlog_window_s
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    raw, classified, dead = topic(topics.raw), topic(topics.classified), topic(topics.deadletter)

    async def publish(target: faust.TopicT, messages: Iterable[tuple[bytes, bytes]]) -> None:
        """Send (key, value) pairs and wait until the broker has every one of them."""
        futures = [await target.send(key=key, value=value) for key, value in messages]
        await asyncio.gather(*futures)

    async def send_dead(records: Sequence[DeadLetter]) -> None:
        await publish(dead, ((r.source.encode(), r.to_bytes()) for r in records))
        counters.dead_letters += len(records)
        metrics.dead_lettered(r.stage for r in records)

    async def classify_safely(envelopes: list[Envelope]) -> list[ClassifiedMessage]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, classified_records, envelopes, classifier)
        except Exception as error:
            log.exception("classifying a batch failed; retrying one by one")
            counters.last_error = f"classify: {error}"
            done: list[ClassifiedMessage] = []
            for env in envelopes:
                try:
                    done.extend(
                        await loop.run_in_executor(None, classified_records, [env], classifier)
                    )
                except Exception as one:
                    await send_dead(
                        [
                            DeadLetter.of(
                                "classify",
                                env.source,
                                f"classifier: {one}",
                                env.model_dump(mode="json"),
                            )
                        ]
                    )
            return done

    async def wait_for_sink(inflight: InFlight) -> None:
        # Backpressure for a single worker on the local broker: a sink that falls more than
        # ~5 MiB behind on a partition loses data there, so classifying waits for it. Batches
        # still being classified count as behind already.
        while settings.max_sink_lag and (
            counters.classified_out + inflight.items - counters.sink_seen > settings.max_sink_lag
        ):
            await asyncio.sleep(0.02)

    async def classify_and_publish(
        envelopes: list[Envelope], inflight: InFlight, overlap: bool
    ) -> None:
        # Under a backlog a batch's model step may start while the last one finishes: its
        # tokenizing and the last one's serial tail (treatment, records) then run beside the
        # model sessions instead of leaving a core idle (+3 to +4 points of throughput here).
        # Without one, steps run one at a time: two at once slow each other, and latency is
        # what counts when there is headroom.
        async with contextlib.nullcontext() if overlap else inflight.model:
            started = time.perf_counter()  # the classifier's time, not the wait for the lock
            records = await classify_safely(envelopes)
            metrics.classified(time.perf_counter() - started, len(envelopes))
        async with inflight.publishing:
            await publish(
                classified, ((r.key.encode(), r.model_dump_json().encode()) for r in records)
            )
        counters.classified_out += len(records)
        counters.classify_batches += 1
        upstream.published_at = time.monotonic()
        metrics.moved("classify", "out", len(records))

    @app.agent(raw, name="classify")
    async def classify(stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        # Third parties write to the raw topic too: their records are redacted here.
        redactor = Redactor.from_settings(settings)
        inflight = InFlight(settings.classify_in_flight)
        upstream.pending = lambda: inflight.items
        upstream.seen = upstream.taken = 0  # a restarted agent's take buffer started empty

        def seen(value: T) -> T:
            upstream.seen += 1
            return value

        stream.add_processor(seen)  # runs before the take buffer's: counts what is waiting
        try:
            async for events in stream.take_events(
                settings.classify_batch, settings.classify_window_s
            ):
                envelopes, bad = split_events(events, parse_raw, gaps)
                envelopes, bad = redactor.envelopes(envelopes), redactor.dead_letters(bad)
                counters.raw_in += len(events)
                upstream.full = len(events) >= settings.classify_batch
                metrics.moved("classify", "in", len(events))
                metrics.batch_size.labels("classify").observe(len(events))
                if bad:
                    await send_dead(bad)
                if not envelopes:
                    upstream.taken += len(events)
                    continue
                await wait_for_sink(inflight)
                # Counted taken only now: submit counts them pending before it first waits,
                # so the writers never see an idle stage with a batch about to be classified.
                upstream.taken += len(events)
                await inflight.submit(
                    events,
                    functools.partial(classify_and_publish, envelopes, inflight, upstream.full),
                )
        finally:
            inflight.cancel()

    async def write_with_retry(batch: list[ClassifiedMessage]) -> WriteResult:
        loop = asyncio.get_running_loop()
        while True:
            try:
                with metrics.sink_write_seconds.time():
                    return await loop.run_in_executor(None, sink.write, batch)
            except SinkBackpressure as pressure:
                # Not acking the batch holds consumption here: the take buffer fills and the
                # consumer stops fetching, so memory stays bounded while the store recovers.
                counters.sink_retries += 1
                counters.last_error = f"sink: {pressure}"
                metrics.sink_retries.labels("write").inc()
                metrics.store_failures.labels("write").inc()
                await asyncio.sleep(pressure.retry_after)

    async def repair_with_retry() -> None:
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            try:
                counters.batches_repaired += await loop.run_in_executor(None, sink.repair)
                return
            except StoreError as error:
                counters.sink_retries += 1
                counters.last_error = f"sink repair: {error}"
                metrics.sink_retries.labels("repair").inc()
                metrics.store_failures.labels("repair").inc()
                log.warning("sink repair failed (%s); retry in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def write_gathered(events: list[Any]) -> None:
        batch, bad = split_events(events, parse_classified, gaps)
        try:
            if bad:
                await send_dead(bad)
            result = await write_with_retry(batch)
            if result.conflicts:
                await send_dead(
                    [
                        DeadLetter.of("sink", m.source, reason, m.model_dump(mode="json"))
                        for m, reason in result.conflicts
                    ]
                )
        except SinkError as error:
            counters.last_error = f"sink: {error}"
            metrics.sink_errors.inc()
            await send_dead(
                [
                    DeadLetter.of("sink", m.source, str(error), m.model_dump(mode="json"))
                    for m in batch
                ]
            )
        else:
            counters.rows_written += result.written
            counters.replays_skipped += result.replays
            counters.sink_batches += 1
            metrics.moved("sink", "out", result.written)
            metrics.replays_skipped.inc(result.replays)
        finally:
            counters.sink_seen += len(events)
            metrics.moved("sink", "in", len(events))
            metrics.batch_size.labels("sink").observe(len(events))

    @app.agent(classified, name="sink")
    async def sink_agent(stream: Any) -> None:
        # Before anything new is written, finish what a crash may have cut short.
        await repair_with_retry()
        gather = Gather(sink_policy, write_gathered, upstream)
        try:
            async for events in stream.take_events(sink_policy.max_rows, sink_policy.take_within_s):
                await gather.add(events)
        finally:
            gather.cancel()

    @app.timer(interval=5.0)
    async def broker_check() -> None:
        # The Kafka clients retry on their own; this only makes an outage visible on /health.
        up = await broker_reachable(broker)
        if counters.broker_up and not up:
            counters.broker_outages += 1
            metrics.broker_outages.inc()
            counters.last_error = f"broker {broker} unreachable"
            log.error("broker %s unreachable; the worker keeps retrying", broker)
        elif up and not counters.broker_up:
            log.warning("broker %s reachable again", broker)
        counters.broker_up = up
        metrics.broker_up.set(int(up))
        gaps.confirm(holds)
        conversation_gaps.confirm(holds)

    def holds(topic: str, partition: int) -> bool:
        try:
            return TP(topic, partition) in app.consumer.assignment()
        except ConsumerNotStarted:
            return False

    # A detector of its own: the sink's already saw these offsets.
    conversation_gaps = GapDetector(Counters(), quiet=True)

    forget_on_revoke(app, gaps, conversation_gaps)

    def parse_conversation_events(
        events: Sequence[Any],
    ) -> tuple[list[ClassifiedMessage], list[DeadLetter]]:
        metrics.moved("conversations", "in", len(events))
        return split_events(events, parse_classified, conversation_gaps)

    add_conversation_agent(
        app,
        settings,
        classified,
        sink,
        parse_conversation_events,
        counters,
        sink_policy,
        upstream,
        on_written=lambda n: metrics.moved("conversations", "out", n),
    )

    alerts_topic = topic(topics.alerts)
    rule = AlertRule(
        baseline_hours=settings.alert_baseline_hours,
        min_volume=settings.alert_min_volume,
        min_count=settings.alert_min_count,
        min_lift=settings.alert_min_lift,
        alpha=settings.alert_alpha,
        cooldown_hours=settings.alert_cooldown_hours,
    )
    targets = parse_targets(settings.alert_webhooks.get_secret_value())

    # Alert passes get their own session: sharing the sink's lock would stall inserts, and a
    # stalled sink falls behind the broker's retention. A worker given none (it writes through
    # another service's store) runs no alert timer: the store's owner evaluates alerts, once.
    def evaluate_and_store() -> list[Alert]:
        assert alert_store is not None  # the timer is registered only with one
        fresh = evaluate(alert_store, rule) + evaluate_transitions(alert_store, rule)
        store_alerts(alert_store, fresh)
        return fresh

    async def alert_pass() -> None:
        # Stored first, then announced: a crash in between loses a notification, never an alert.
        try:
            fresh = await asyncio.get_running_loop().run_in_executor(None, evaluate_and_store)
        except Exception as error:
            counters.last_error = f"alerts: {error}"
            metrics.store_failures.labels("alerts").inc()
            log.exception("alert evaluation failed")
            return
        if not fresh:
            return
        await publish(
            alerts_topic, ((a.brand.encode(), json.dumps(a.as_json()).encode()) for a in fresh)
        )
        counters.alerts_raised += len(fresh)
        metrics.alerts_raised.inc(len(fresh))
        async with aiohttp.ClientSession() as session:
            for alert in fresh:
                for target in targets:
                    failure = await deliver(session, alert, target)
                    if failure is not None:
                        counters.alert_delivery_failures += 1
                        metrics.alert_delivery_failures.inc()
                        reason = f"webhook {target.safe_name} refused the alert: {failure}"
                        await send_dead([DeadLetter.of("alert", "alerts", reason, alert.as_json())])

    if alert_store is not None:
        app.timer(interval=settings.alert_interval_s)(alert_pass)

    return app, counters
