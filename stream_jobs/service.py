"""The always-on service: broker (if none is configured), store, worker, HTTP endpoint.

``run_service`` composes the parts on one machine: it starts the local broker as a child
process when no broker address is set, opens and migrates the ClickHouse store, loads the
classifier, and runs the faust worker with the HTTP endpoint inside it. With ``demo`` it also
replays the shipped real datasets through the pipeline. It records where it listens in
``<data_dir>/runtime.json`` so other commands (``relradar sql``, ``relradar replay``) find it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiohttp import web
from faust.exceptions import ConsumerNotStarted

from ingest import Publisher, Redactor, read_preset, replay
from ingest.replay import Record, by_time
from models import Classifier
from schemas import DeadLetter, Envelope, Settings, Topics
from stream_jobs import broker as local_broker
from stream_jobs.app import create_app
from stream_jobs.kafka_fixes import (
    commit_only_processed,
    fetch_wait,
    tolerate_late_sync,
    wait_for_broker,
)
from stream_jobs.logs import logging_config
from stream_jobs.metrics import Metrics
from stream_jobs.remote_sink import MAX_REQUEST_BYTES, RemoteSink, SerialSink, Sink
from stream_jobs.sink import ClickHouseSink, SinkFaults
from stream_jobs.store import Store
from stream_jobs.web import WebLimits, make_app

log = logging.getLogger(__name__)
DEMO_PRESETS = ("airline", "twcs", "ibm")


@dataclass(frozen=True)
class Runtime:
    """Where a running service listens (written to ``runtime.json``)."""

    broker: str
    http: str
    pid: int

    @staticmethod
    def path(settings: Settings) -> Path:
        return Path(settings.data_dir) / "runtime.json"

    @classmethod
    def read(cls, settings: Settings) -> Runtime | None:
        try:
            return cls(**json.loads(cls.path(settings).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, settings: Settings) -> None:
        path = self.path(settings)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__))
        tmp.replace(path)


class PublisherIngest:
    """The push route's sink: a kafka-python publisher shared by requests, behind a lock."""

    def __init__(self, broker: str, topics: Topics, redactor: Redactor | None = None) -> None:
        self.broker, self.topics, self.redactor = broker, topics, redactor
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def publish_and_flush(self, envelopes: list[Envelope], dead: list[DeadLetter]) -> None:
        with self._lock:
            if self._publisher is None:
                # A push must not hang for a minute while the broker is away: the client gets
                # a 503 quickly and retries.
                self._publisher = Publisher(
                    self.broker,
                    self.topics,
                    connect_attempts=2,
                    producer_options={"max_block_ms": 10_000, "request_timeout_ms": 10_000},
                    redactor=self.redactor,
                )
            try:
                for envelope in envelopes:
                    self._publisher.publish(envelope)
                for record in dead:
                    self._publisher.dead_letter(record)
                self._publisher.flush()
            except Exception:
                # Its failure counts would fail every later push: start afresh next time.
                self._publisher.close()
                self._publisher = None
                raise


def demo_records(limit: int | None = None) -> Iterator[Record]:
    """The shipped datasets, each in time order as it was written, interleaved so that every
    brand shows up from the first minute (and alerts judge hours whose data has arrived)."""
    streams = [iter(by_time(read_preset(name))) for name in DEMO_PRESETS]
    mixed = (r for group in itertools.zip_longest(*streams) for r in group if r is not None)
    return itertools.islice(mixed, limit) if limit else mixed


def run_demo(
    broker: str,
    topics: Topics,
    rate: float | None,
    limit: int | None,
    redactor: Redactor | None = None,
) -> None:
    with Publisher(broker, topics, redactor=redactor) as publisher:
        stats = replay(
            demo_records(limit),
            publisher,
            rate=rate,
            progress=sys.stderr.isatty(),
            description="demo replay",
        )
    print(
        f"demo: sent {stats.sent} messages, {stats.dead_letters} dead letters, "
        f"in {stats.seconds:.1f}s",
        file=sys.stderr,
        flush=True,
    )


def load_classifier(spec: str) -> Classifier:
    print(f"loading classifier {spec!r} ...", file=sys.stderr, flush=True)
    classifier = Classifier.from_pretrained(spec)
    print(f"classifier ready: {classifier.version}", file=sys.stderr, flush=True)
    return classifier


GIL_SWITCH_S = 0.0005


def run_service(
    settings: Settings,
    demo: bool = False,
    demo_rate: float | None = 500.0,
    demo_limit: int | None = None,
) -> None:
    """Run until interrupted (SIGINT/SIGTERM)."""
    topics = Topics(settings.topic_prefix)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    broker_process = None
    broker = settings.broker
    if not broker:
        broker_process = local_broker.spawn(
            topics.all(), Path(settings.data_dir) / "broker.addr", partitions=settings.partitions
        )
        broker = broker_process.address
        if not settings.max_sink_lag:
            settings = settings.model_copy(update={"max_sink_lag": 2000})
    # A worker of another service's store (embedded ClickHouse opens in one process only)
    # opens none here, writes through the owner's /sink, and leaves alerts to the owner.
    remote = settings.store_service
    if remote and broker_process is not None:
        broker_process.stop()
        raise SystemExit("RELRADAR_STORE_SERVICE needs RELRADAR_BROKER (the store owner's broker)")
    store = None if remote else Store.open(settings)
    extra_sessions: list[Store] = []
    try:
        token = settings.api_token.get_secret_value() if settings.api_token else None
        if store is not None:
            store.migrate(progress=sys.stderr.isatty())
        classifier = load_classifier(settings.classifier)
        # The model's sessions compute without the GIL but take it back between runs, one
        # text each (~3 ms). Python hands the GIL over only every 5 ms by default, so a busy
        # event loop left a core idle; 0.5 ms restored the model step's speed beside one.
        sys.setswitchinterval(GIL_SWITCH_S)
        owned: SerialSink | None = None
        alert_store = reader = None
        if store is None:
            cap = min(MAX_REQUEST_BYTES, settings.max_request_bytes)
            sink: Sink = RemoteSink(str(remote), token, max_request_bytes=cap)
        else:
            faults = SinkFaults(settings.chaos_sink_fail_s, settings.chaos_sink_delay_s)
            # One write at a time: the exactly-once lookup must not interleave with other
            # workers' batches arriving on /sink.
            sink = owned = SerialSink(ClickHouseSink(store, faults=faults))
            alert_store, reader = Store.open(settings), store.reader(settings)
            extra_sessions.extend([alert_store, reader])
        metrics = Metrics()
        app, counters = create_app(settings, broker, classifier, sink, alert_store, metrics)
        redactor = Redactor.from_settings(settings)
        ingest = PublisherIngest(broker, topics, redactor) if store is not None else None
        limits = WebLimits.from_settings(settings)

        def stats() -> dict[str, Any]:
            return {**counters.as_dict(), "partitions": held_partitions(app)}

        http = make_app(
            store,
            reader,
            ingest,
            stats,
            token,
            limits,
            sink=owned,
            metrics=metrics.exposition,
        )
        url = f"http://{settings.http_host}:{settings.http_port}"

        @app.task
        async def serve_http() -> None:
            runner = web.AppRunner(http, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.http_host, settings.http_port).start()
            Runtime(broker=broker, http=url, pid=os.getpid()).write(settings)
            serves = "SQL on /, push on /ingest" if store else "a worker: /health, /stats"
            print(
                f"relradar is running: broker {broker}, HTTP {url} ({serves}), "
                f"store {remote or settings.clickhouse_url or store_path(settings)}",
                file=sys.stderr,
                flush=True,
            )
            print(
                'try: relradar sql "SELECT brand, label, count() AS n FROM '
                f'{settings.database}.messages GROUP BY brand, label ORDER BY n DESC LIMIT 20"',
                file=sys.stderr,
                flush=True,
            )

        if demo:

            @app.task
            async def demo_replay() -> None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(
                    None, run_demo, broker, topics, demo_rate, demo_limit, redactor
                )

        tolerate_late_sync()
        fetch_wait(settings.fetch_wait_ms)
        commit_only_processed({topics.raw, topics.classified})
        wait_for_broker(broker)
        worker = faust.Worker(
            app,
            loglevel=settings.log_level,
            quiet=True,
            redirect_stdouts=False,
            logging_config=logging_config(settings.log_level),
        )
        worker.execute_from_commandline()
    finally:
        Runtime.path(settings).unlink(missing_ok=True)
        for session in extra_sessions:
            session.close()
        if store is not None:
            store.close()
        if broker_process is not None:
            broker_process.stop()


def held_partitions(app: faust.App) -> dict[str, list[int]]:
    """The partitions this worker consumes now, per topic: how the group shares the work."""
    try:
        assignment = app.consumer.assignment()
    except ConsumerNotStarted:
        return {}  # not in the group yet
    held: dict[str, list[int]] = {}
    for tp in sorted(assignment):
        held.setdefault(tp.topic, []).append(tp.partition)
    return held


def store_path(settings: Settings) -> str:
    return str(Path(settings.data_dir) / "chdb")
