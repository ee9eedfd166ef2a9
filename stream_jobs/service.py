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

import faust
from aiohttp import web

from ingest import Publisher, read_preset, replay
from ingest.replay import Record, by_time
from models import Classifier
from schemas import DeadLetter, Envelope, Settings, Topics
from stream_jobs import broker as local_broker
from stream_jobs.app import create_app
from stream_jobs.logs import logging_config
from stream_jobs.sink import ClickHouseSink
from stream_jobs.store import Store
from stream_jobs.web import make_app

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

    def __init__(self, broker: str, topics: Topics) -> None:
        self.broker, self.topics = broker, topics
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def publish_and_flush(self, envelopes: list[Envelope], dead: list[DeadLetter]) -> None:
        with self._lock:
            if self._publisher is None:
                self._publisher = Publisher(self.broker, self.topics)
            for envelope in envelopes:
                self._publisher.publish(envelope)
            for record in dead:
                self._publisher.dead_letter(record)
            self._publisher.flush()


def demo_records(limit: int | None = None) -> Iterator[Record]:
    """The shipped datasets, each in time order as it was written, interleaved so that every
    brand shows up from the first minute (and alerts judge hours whose data has arrived)."""
    streams = [iter(by_time(read_preset(name))) for name in DEMO_PRESETS]
    mixed = (r for group in itertools.zip_longest(*streams) for r in group if r is not None)
    return itertools.islice(mixed, limit) if limit else mixed


def run_demo(broker: str, topics: Topics, rate: float | None, limit: int | None) -> None:
    with Publisher(broker, topics) as publisher:
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
        broker_process = local_broker.spawn(topics.all(), Path(settings.data_dir) / "broker.addr")
        broker = broker_process.address
        if not settings.max_sink_lag:
            settings = settings.model_copy(update={"max_sink_lag": 2000})
    store = Store.open(settings)
    extra_sessions: list[Store] = []
    try:
        store.migrate(progress=sys.stderr.isatty())
        classifier = load_classifier(settings.classifier)
        sink = ClickHouseSink(store)
        alert_store, reader = Store.open(settings), store.reader(settings)
        extra_sessions.extend([alert_store, reader])
        app, counters = create_app(settings, broker, classifier, sink, alert_store)
        token = settings.api_token.get_secret_value() if settings.api_token else None
        http = make_app(store, reader, PublisherIngest(broker, topics), counters.as_dict, token)
        url = f"http://{settings.http_host}:{settings.http_port}"

        @app.task
        async def serve_http() -> None:
            runner = web.AppRunner(http, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.http_host, settings.http_port).start()
            Runtime(broker=broker, http=url, pid=os.getpid()).write(settings)
            print(
                f"relradar is running: broker {broker}, HTTP {url} (SQL on /, push on "
                f"/ingest), store {settings.clickhouse_url or store_path(settings)}",
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
                await loop.run_in_executor(None, run_demo, broker, topics, demo_rate, demo_limit)

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
        store.close()
        if broker_process is not None:
            broker_process.stop()


def store_path(settings: Settings) -> str:
    return str(Path(settings.data_dir) / "chdb")
