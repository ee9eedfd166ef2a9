"""The local Kafka-protocol broker for one machine and for tests.

librdkafka's mock cluster (from the confluent-kafka wheel) is a real Kafka-protocol server on
127.0.0.1 that keeps data in memory. ``serve`` runs it in the foreground (``relradar broker``),
creates the product's topics, prints ``BROKER host:port`` and writes that address to a file;
``spawn`` starts it as a child process and waits for its address. It keeps only about 5 MiB
per partition, so the stream jobs stay caught up and report offset gaps loudly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class BrokerError(Exception):
    """The local broker could not be started."""


def serve(
    topics: Sequence[str],
    address_file: Path | None = None,
    parent_pid: int | None = None,
    partitions: int = 4,
) -> None:
    """Run the mock cluster until SIGTERM/SIGINT (or until ``parent_pid`` is gone)."""
    from confluent_kafka import Producer

    if partitions != 4:
        # The mock cluster auto-creates every topic with 4 partitions and has no CreateTopics.
        raise BrokerError("the local broker supports exactly 4 partitions per topic")
    producer = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "unused", "log_level": 3})
    metadata = producer.list_topics(timeout=10)
    broker = next(iter(metadata.brokers.values()))
    address = f"127.0.0.1:{broker.port}"
    for topic in topics:
        producer.list_topics(topic=topic, timeout=10)  # a metadata request auto-creates it
    if address_file is not None:
        address_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = address_file.with_suffix(".tmp")
        tmp.write_text(address)
        tmp.replace(address_file)
    print(f"BROKER {address}", flush=True)
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop:
        time.sleep(0.5)
        if parent_pid is not None and os.getppid() != parent_pid:
            break
    if address_file is not None and address_file.read_text() == address:
        address_file.unlink(missing_ok=True)


@dataclass
class BrokerProcess:
    process: subprocess.Popen[bytes]
    address: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(
    topics: Sequence[str], address_file: Path, follow_parent: bool = True, timeout: float = 30
) -> BrokerProcess:
    """Start ``relradar broker`` as a child process and wait for its address."""
    address_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "stream_jobs.cli", "broker", "--address-file", str(address_file)]
    if follow_parent:
        cmd += ["--parent-pid", str(os.getpid())]
    for topic in topics:
        cmd += ["--topic", topic]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if address_file.exists():
            return BrokerProcess(process, address_file.read_text().strip())
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise BrokerError(f"local broker exited with {process.returncode}: {err[-2000:]}")
        time.sleep(0.1)
    process.kill()
    raise BrokerError(f"local broker gave no address within {timeout:.0f}s")
