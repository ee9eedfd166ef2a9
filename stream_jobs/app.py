"""The faust-streaming app: the classify agent and the ClickHouse sink agent.

``classify`` takes raw envelopes in batches (``stream.take_events``), validates each (bad
ones go to the dead-letter topic with the reason), classifies the batch off the event loop,
and emits classified records keyed like their input. ``sink`` takes classified records in
larger batches and writes them to ClickHouse, retrying with backoff while the store fails;
events are acknowledged (and so their offsets committed) only after their batch is done.
Both agents report offset gaps: the local broker silently drops old data when a consumer
falls more than ~5 MiB per partition behind, and that must never pass unnoticed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import aiohttp
import faust
from pydantic import ValidationError

from models import Classifier, classify_envelopes
from schemas import ClassifiedMessage, DeadLetter, Envelope, Settings, Topics, parse_envelope
from schemas.envelope import describe_error
from stream_jobs.alert_delivery import deliver, parse_targets
from stream_jobs.alerts import Alert, AlertRule, evaluate, store_alerts
from stream_jobs.sink import ClickHouseSink, SinkBackpressure, SinkError
from stream_jobs.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Counters:
    """What the pipeline has done since start (served on ``/stats``)."""

    raw_in: int = 0
    classified_out: int = 0
    dead_letters: int = 0
    rows_written: int = 0
    sink_retries: int = 0
    offset_gaps: int = 0
    classify_batches: int = 0
    sink_batches: int = 0
    sink_seen: int = 0  # events the sink has finished with: written or dead-lettered
    alerts_raised: int = 0
    alert_delivery_failures: int = 0
    last_error: str | None = None
    gaps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GapDetector:
    """Remembers the last offset per partition and flags any jump forward."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.last: dict[tuple[str, int], int] = {}

    def check(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        previous = self.last.get(key)
        if previous is not None and offset > previous + 1:
            lost = offset - previous - 1
            note = f"{topic}[{partition}] offsets {previous + 1}..{offset - 1} ({lost}) missing"
            self.counters.offset_gaps += lost
            self.counters.gaps = [*self.counters.gaps[-19:], note]
            log.error("OFFSET GAP: %s: messages were lost before this worker read them", note)
        self.last[key] = offset


def classified_records(
    envelopes: Sequence[Envelope], classifier: Classifier
) -> list[ClassifiedMessage]:
    """Classify envelopes into the records the classify agent emits."""
    predictions = classify_envelopes(classifier, envelopes)
    return [
        ClassifiedMessage(
            **env.model_dump(), label=p.label, scores=p.scores, model_version=classifier.version
        )
        for env, p in zip(envelopes, predictions, strict=True)
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


def create_app(
    settings: Settings,
    broker: str,
    classifier: Classifier,
    sink: ClickHouseSink,
    alert_store: Store | None = None,
) -> tuple[faust.App, Counters]:
    """The faust app wired to a broker, a classifier and a sink."""
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
        producer_max_request_size=4 * 1024 * 1024,
    )
    counters = Counters()
    gaps = GapDetector(counters)

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

    async def wait_for_sink() -> None:
        # Backpressure for a single worker on the local broker: a sink that falls more than
        # ~5 MiB behind on a partition loses data there, so classifying waits for it.
        while settings.max_sink_lag and (
            counters.classified_out - counters.sink_seen > settings.max_sink_lag
        ):
            await asyncio.sleep(0.02)

    @app.agent(raw, name="classify")
    async def classify(stream: Any) -> None:  # faust.Stream; its stubs lack take_events
        async for events in stream.take_events(settings.classify_batch, settings.classify_window_s):
            envelopes, bad = split_events(events, parse_raw, gaps)
            counters.raw_in += len(events)
            if bad:
                await send_dead(bad)
            if not envelopes:
                continue
            await wait_for_sink()
            records = await classify_safely(envelopes)
            await publish(
                classified, ((r.key.encode(), r.model_dump_json().encode()) for r in records)
            )
            counters.classified_out += len(records)
            counters.classify_batches += 1

    async def write_with_retry(batch: list[ClassifiedMessage]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, sink.write, batch)
                return
            except SinkBackpressure as pressure:
                # Not acking the batch holds consumption here: the take buffer fills and the
                # consumer stops fetching, so memory stays bounded while the store recovers.
                counters.sink_retries += 1
                counters.last_error = f"sink: {pressure}"
                await asyncio.sleep(pressure.retry_after)

    @app.agent(classified, name="sink")
    async def sink_agent(stream: Any) -> None:
        async for events in stream.take_events(settings.sink_batch, settings.sink_window_s):
            batch, bad = split_events(events, parse_classified, gaps)
            try:
                if bad:
                    await send_dead(bad)
                await write_with_retry(batch)
            except SinkError as error:
                counters.last_error = f"sink: {error}"
                await send_dead(
                    [
                        DeadLetter.of("sink", m.source, str(error), m.model_dump(mode="json"))
                        for m in batch
                    ]
                )
            else:
                counters.rows_written += len(batch)
                counters.sink_batches += 1
            finally:
                counters.sink_seen += len(events)

    alerts_topic = topic(topics.alerts)
    rule = AlertRule(
        baseline_hours=settings.alert_baseline_hours,
        min_volume=settings.alert_min_volume,
        min_count=settings.alert_min_count,
        min_lift=settings.alert_min_lift,
        alpha=settings.alert_alpha,
        cooldown_hours=settings.alert_cooldown_hours,
    )
    targets = parse_targets(settings.alert_webhooks)

    # Alert passes get their own session where possible: sharing the sink's lock would stall
    # inserts, and a stalled sink falls behind the broker's retention.
    alerts_db = alert_store or sink.store

    def evaluate_and_store() -> list[Alert]:
        fresh = evaluate(alerts_db, rule)
        store_alerts(alerts_db, fresh)
        return fresh

    @app.timer(interval=settings.alert_interval_s)
    async def alert_pass() -> None:
        # Stored first, then announced: a crash in between loses a notification, never an alert.
        try:
            fresh = await asyncio.get_running_loop().run_in_executor(None, evaluate_and_store)
        except Exception as error:
            counters.last_error = f"alerts: {error}"
            log.exception("alert evaluation failed")
            return
        if not fresh:
            return
        await publish(
            alerts_topic, ((a.brand.encode(), json.dumps(a.as_json()).encode()) for a in fresh)
        )
        counters.alerts_raised += len(fresh)
        async with aiohttp.ClientSession() as session:
            for alert in fresh:
                for target in targets:
                    failure = await deliver(session, alert, target)
                    if failure is not None:
                        counters.alert_delivery_failures += 1
                        reason = f"webhook {target.url} refused the alert: {failure}"
                        await send_dead([DeadLetter.of("alert", "alerts", reason, alert.as_json())])

    return app, counters
