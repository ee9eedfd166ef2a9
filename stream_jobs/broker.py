"""The local Kafka-protocol broker for one machine and for tests.

librdkafka's mock cluster (from the confluent-kafka wheel) is a real Kafka-protocol server on
127.0.0.1 that keeps data in memory. ``serve`` runs it in the foreground (``relradar broker``),
creates the product's topics, prints ``BROKER host:port`` and writes that address to a file;
``spawn`` starts it as a child process and waits for its address. It keeps only about 5 MiB
per partition, so the stream jobs stay caught up and report offset gaps loudly.
"""

from __future__ import annotations

import ctypes
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


class MockCluster:
    """librdkafka's mock cluster through its C API, from the library the wheel bundles.

    The Python binding only starts the mock with auto-created 4-partition topics; the C API
    creates topics with any partition count (scale-out needs more than 4) and can take the
    broker down and up again, which the fault drills use.
    """

    def __init__(self) -> None:
        import confluent_kafka

        libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
        found = sorted(libs.glob("librdkafka*.so*"))
        if not found:
            raise BrokerError(f"no librdkafka shared library under {libs}")
        lib = ctypes.CDLL(str(found[0]))
        lib.rd_kafka_conf_new.restype = ctypes.c_void_p
        lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.c_size_t]  # fmt: skip
        lib.rd_kafka_new.restype = ctypes.c_void_p
        lib.rd_kafka_new.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
        lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
        lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                                   ctypes.c_int]  # fmt: skip
        for name in ("rd_kafka_mock_broker_set_down", "rd_kafka_mock_broker_set_up"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int32]
        self.lib = lib
        conf = lib.rd_kafka_conf_new()
        error = ctypes.create_string_buffer(512)
        lib.rd_kafka_conf_set(conf, b"log_level", b"3", error, 512)
        self._handle = lib.rd_kafka_new(0, conf, error, 512)  # 0: a producer handle hosts it
        if not self._handle:
            raise BrokerError(f"librdkafka: {error.value.decode(errors='replace')}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._handle, 1)
        if not self._cluster:
            raise BrokerError("librdkafka could not start its mock cluster")
        self.address = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def create_topic(self, name: str, partitions: int) -> None:
        code = self.lib.rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        if code:
            raise BrokerError(f"could not create topic {name!r}: librdkafka error {code}")

    def set_down(self, down: bool) -> None:
        setter = (
            self.lib.rd_kafka_mock_broker_set_down if down else self.lib.rd_kafka_mock_broker_set_up
        )
        setter(self._cluster, 1)


def serve(
    topics: Sequence[str],
    address_file: Path | None = None,
    parent_pid: int | None = None,
    partitions: int = 4,
) -> None:
    """Run the mock cluster until SIGTERM/SIGINT (or until ``parent_pid`` is gone).

    SIGUSR1 takes the broker down (connections refused, as in an outage) and SIGUSR2 brings
    it back, so drills can test what clients do while the broker is unavailable.
    """
    cluster = MockCluster()
    for topic in topics:
        cluster.create_topic(topic, partitions)
    address = cluster.address
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
    signal.signal(signal.SIGUSR1, lambda *_: cluster.set_down(True))
    signal.signal(signal.SIGUSR2, lambda *_: cluster.set_down(False))
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

    def outage(self, down: bool) -> None:
        """Take the broker down (``True``) or bring it back (``False``), for fault drills."""
        self.process.send_signal(signal.SIGUSR1 if down else signal.SIGUSR2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(
    topics: Sequence[str],
    address_file: Path,
    follow_parent: bool = True,
    timeout: float = 30,
    partitions: int = 4,
) -> BrokerProcess:
    """Start ``relradar broker`` as a child process and wait for its address."""
    address_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "stream_jobs.cli", "broker", "--address-file", str(address_file)]
    cmd += ["--partitions", str(partitions)]
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
