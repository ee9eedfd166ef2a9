"""The publisher: writes envelopes and dead letters to Kafka with kafka-python.

Envelopes are keyed by conversation (or else by brand), so one conversation's turns, and one
brand's posts, keep their order within a partition. Sends are asynchronous; ``flush`` waits
for the broker's acknowledgements and raises ``PublishError`` if any send failed, so a caller
never believes a message was delivered when it was not. Given a ``Redactor``, the publisher is
the one place every connector's and the HTTP push's records pass through before they leave
the process: envelopes and dead letters are redacted there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, NoBrokersAvailable

from ingest.redact import Redactor
from schemas import DeadLetter, Envelope, Topics

log = logging.getLogger(__name__)


class PublishError(Exception):
    """Messages could not be delivered to the broker."""


@dataclass
class PublishStats:
    published: int = 0
    dead_letters: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Publisher:
    """Sends envelopes to the raw topic and bad records to the dead-letter topic."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        connect_attempts: int = 10,
        producer_options: dict[str, Any] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.topics = topics
        self.redactor = redactor
        self.stats = PublishStats()
        self._pending: list[Any] = []
        options: dict[str, Any] = {
            "bootstrap_servers": bootstrap.split(","),
            "acks": "all",
            "linger_ms": 10,
            "retries": 5,
            "max_in_flight_requests_per_connection": 1,  # keeps key order across retries
            "max_request_size": 4 * 1024 * 1024,
            # A fixed protocol version skips the ApiVersions probe, which the local broker
            # answers in a form kafka-python 2.3 cannot decode; every Kafka >= 2.5 speaks it.
            "api_version": (2, 5),
        }
        options.update(producer_options or {})
        self._producer = self._connect(options, connect_attempts)

    @staticmethod
    def _connect(options: dict[str, Any], attempts: int) -> KafkaProducer:
        import time

        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                return KafkaProducer(**options)
            except NoBrokersAvailable:
                if attempt == attempts:
                    raise PublishError(
                        f"no Kafka broker reachable at {options['bootstrap_servers']} "
                        f"after {attempts} attempts"
                    ) from None
                log.warning("broker not reachable, retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _track(self, future: Any) -> None:
        self._pending.append(future)
        if len(self._pending) >= 5000:
            self._settle()

    def publish(self, envelope: Envelope) -> None:
        if self.redactor is not None:
            envelope = self.redactor.envelope(envelope)
        self._track(
            self._producer.send(
                self.topics.raw, key=envelope.key.encode(), value=envelope.to_bytes()
            )
        )
        self.stats.published += 1

    def publish_many(self, envelopes: Iterable[Envelope]) -> None:
        for envelope in envelopes:
            self.publish(envelope)

    def dead_letter(self, record: DeadLetter) -> None:
        if self.redactor is not None:
            record = self.redactor.dead_letter(record)
        self._track(
            self._producer.send(
                self.topics.deadletter, key=record.source.encode(), value=record.to_bytes()
            )
        )
        self.stats.dead_letters += 1

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Send bytes as they are (for tests and tools that feed a topic directly)."""
        self._track(self._producer.send(topic, key=key, value=value))

    def _settle(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            try:
                future.get(timeout=30)
            except KafkaError as error:
                self.stats.failed += 1
                self.stats.errors.append(str(error))

    def flush(self) -> PublishStats:
        """Wait for every send; raise ``PublishError`` when any failed."""
        self._producer.flush()
        self._settle()
        if self.stats.failed:
            raise PublishError(
                f"{self.stats.failed} messages were not delivered: {self.stats.errors[:3]}"
            )
        return self.stats

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
