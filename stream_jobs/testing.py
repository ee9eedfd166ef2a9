"""Flow-test helpers: a real local stack in a temporary folder, in a few lines.

``LocalStack`` starts the local broker and the service as real processes (as an operator
would), publishes envelopes with the product's own publisher, queries the embedded store
through the service's HTTP endpoint, and reads topics back. A flow test is then::

    with LocalStack(tmp_path) as stack:
        stack.publish(envelopes)
        stack.wait_for_rows(len(envelopes))
        assert stack.sql("SELECT count() AS n FROM relradar.messages")[0]["n"] == len(envelopes)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest import Publisher
from schemas import DeadLetter, Envelope, Settings, Topics
from stream_jobs.broker import BrokerProcess, spawn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalStack:
    """Broker and service processes for one test, torn down on exit."""

    def __init__(self, root: Path, classifier: str = "default", **settings: Any) -> None:
        self.root = root
        self.port = free_port()
        self.topics = Topics()
        self.env_settings = {
            "data_dir": str(root / "data"),
            "http_port": str(self.port),
            "classifier": classifier,
            "max_sink_lag": "2000",  # the local broker: one worker, keep the sink caught up
            **{k: str(v) for k, v in settings.items()},
        }
        self.broker: BrokerProcess | None = None
        self.service: subprocess.Popen[bytes] | None = None
        self._publisher: Publisher | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers: list[Worker] = []

    @property
    def settings(self) -> Settings:
        broker = self.broker.address if self.broker else None
        return Settings.model_validate({**self.env_settings, "broker": broker})

    def start(self, timeout: float = 120) -> LocalStack:
        self.root.mkdir(parents=True, exist_ok=True)
        self.broker = spawn(
            self.topics.all(), self.root / "broker.addr", partitions=self.settings.partitions
        )
        self.start_service(timeout)
        return self

    def start_service(self, timeout: float = 120) -> None:
        assert self.broker is not None
        env = {**os.environ, "RELRADAR_BROKER": self.broker.address}
        env.update({f"RELRADAR_{k.upper()}": v for k, v in self.env_settings.items()})
        log = (self.root / "service.log").open("ab")
        self.service = subprocess.Popen(
            [sys.executable, "-m", "stream_jobs.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_healthy("service", self.service, self.get, self.log_tail, timeout)

    def stop_service(self, kill: bool = False) -> None:
        if self.service and self.service.poll() is None:
            if kill:
                self.service.kill()
            else:
                self.service.terminate()
            try:
                self.service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()

    def start_worker(self, name: str, timeout: float = 120, **settings: Any) -> Worker:
        """One more worker in the consumer group, writing through this stack's service.

        It has its own data dir and HTTP port (``/ping``, ``/health``, ``/stats``) and reaches
        the store through ``RELRADAR_STORE_SERVICE``; ``settings`` override the stack's.
        """
        assert self.broker is not None
        port, root = free_port(), self.root / name
        root.mkdir(parents=True, exist_ok=True)
        own = {"data_dir": str(root), "http_port": str(port), "store_service": self.url}
        env = {**os.environ, "RELRADAR_BROKER": self.broker.address}
        merged = {**self.env_settings, **own, **{k: str(v) for k, v in settings.items()}}
        env.update({f"RELRADAR_{k.upper()}": v for k, v in merged.items()})
        log = root / "worker.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "stream_jobs.cli", "run"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        worker = Worker(name, f"http://127.0.0.1:{port}", process, log)
        self.workers.append(worker)
        worker.wait_healthy(timeout)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        self.stop_service()
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        path = self.root / "service.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            assert self.broker is not None
            self._publisher = Publisher(self.broker.address, self.topics)
        return self._publisher

    def publish(self, records: Iterable[Envelope | DeadLetter]) -> None:
        for record in records:
            if isinstance(record, Envelope):
                self.publisher.publish(record)
            else:
                self.publisher.dead_letter(record)
        self.publisher.flush()

    def get(self, path: str, **params: Any) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=30) as response:
            return json.loads(response.read())

    def get_status(self, path: str) -> tuple[int, Any]:
        """A GET's status and JSON body, errors included."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def post(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def sql(self, query: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode(
            {
                "query": query,
                "default_format": "JSONEachRow",
            }
        )
        with urllib.request.urlopen(f"{self.url}/?{params}", timeout=60) as response:
            return [json.loads(line) for line in response.read().splitlines() if line.strip()]

    def wait_for_rows(self, n: int, timeout: float = 120, table: str = "messages") -> int:
        """Wait until ``table`` holds at least ``n`` rows; returns the count seen last."""
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline:
            count = int(self.sql(f"SELECT count() AS n FROM relradar.{table}")[0]["n"])
            if count >= n:
                return count
            time.sleep(0.25)
        raise TimeoutError(f"{count} of {n} rows after {timeout:.0f}s: {self.log_tail()}")

    def read_topic(self, topic: str, expect: int, timeout: float = 30) -> list[bytes]:
        """Every message of ``topic`` from the start (stops at ``expect`` or the timeout)."""
        from kafka import KafkaConsumer

        assert self.broker is not None
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker.address,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            api_version=(2, 5),
            consumer_timeout_ms=2000,
        )
        from kafka import TopicPartition

        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(m.value for m in batch)
        consumer.close()
        return values


@dataclass
class FakeMessage:
    """A faust message's reference count, as the agents' batching helpers use it."""

    refcount: int = 1  # the take loop's own reference
    acked: bool = False

    def incref(self) -> None:
        self.refcount += 1

    def release(self) -> None:
        self.refcount -= 1
        self.acked = self.refcount == 0


@dataclass
class FakeEvent:
    """A taken event: ``ack`` releases one reference to its message."""

    message: FakeMessage = field(default_factory=FakeMessage)

    def ack(self) -> None:
        self.message.release()


def take_loop_acks(events: Iterable[FakeEvent]) -> None:
    """What faust's take loop does once the loop body returns."""
    for event in events:
        event.ack()


class FakeIngest:
    """Stands in for the broker behind ``POST /ingest``: keeps what it was handed."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.dead: list[DeadLetter] = []

    def publish_and_flush(self, envelopes: list[Envelope], dead: list[DeadLetter]) -> None:
        self.envelopes += envelopes
        self.dead += dead


def wait_healthy(
    name: str,
    process: subprocess.Popen[bytes],
    get: Callable[[str], Any],
    log_tail: Callable[[], str],
    timeout: float,
) -> None:
    """Wait until a started process answers ``/health`` with ok; raise if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited {process.returncode}: {log_tail()}")
        try:
            if get("/health")["status"] == "ok":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{name} not healthy in {timeout:.0f}s: {log_tail()}")


@dataclass
class Worker:
    """An extra worker process of a ``LocalStack`` (``start_worker``)."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return json.loads(response.read())

    def wait_healthy(self, timeout: float) -> None:
        wait_healthy(f"worker {self.name}", self.process, self.get, self.log_tail, timeout)

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (a graceful leave: the group hands its partitions on) or SIGKILL."""
        if self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def render_page(url: str, workdir: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran, in headless Chromium (and a PNG if asked)."""
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium is not installed (make test installs Debian's package)")
    base = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium'}",
            "--virtual-time-budget=20000", "--window-size=1400,1500"]  # fmt: skip
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return dom.stdout
