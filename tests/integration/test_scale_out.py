"""Scale-out: three workers in one consumer group on 8 partitions, one of them stopped mid-stream.

The store-owning service and two more workers (``RELRADAR_STORE_SERVICE`` pointing at it, each
with its own data dir and HTTP port) share the partitions of a real local broker. Real messages
stream in at a steady rate; once every worker has classified a share, one extra worker gets
SIGTERM, the group hands its partitions to the other two, and the stream carries on. At the
end every message must be stored exactly once with every aggregate in agreement, and the
per-worker counters say who did what (printed, and kept in ``scale_out.json``).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ingest import Publisher
from schemas import Envelope, Topics
from stream_jobs.chaos import drill_envelopes, http_sql, verify, wait_drained
from stream_jobs.testing import LocalStack

pytestmark = pytest.mark.integration
MESSAGES, RATE = 6000, 300.0


class Sender(threading.Thread):
    """Publishes envelopes at a steady rate; ``sent`` is how many the broker has so far."""

    def __init__(self, broker: str, envelopes: list[Envelope]) -> None:
        super().__init__(daemon=True)
        self.broker, self.envelopes, self.sent = broker, envelopes, 0

    def run(self) -> None:
        with Publisher(self.broker, Topics()) as publisher:
            start = time.monotonic()
            for i, envelope in enumerate(self.envelopes):
                publisher.publish(envelope)
                if i % 50 == 49:
                    publisher.flush()
                    self.sent = i + 1
                ahead = i / RATE - (time.monotonic() - start)
                if ahead > 0.005:
                    time.sleep(ahead)
            publisher.flush()
            self.sent = len(self.envelopes)


def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def test_workers_share_the_partitions_and_take_over_a_stopped_ones(tmp_path: Path) -> None:
    envelopes = list(drill_envelopes("scale", MESSAGES))
    # Several workers: each sink serves partitions other workers classify into, so a worker's
    # own sink lag says nothing; the lag guard is off (LocalStack turns it on for one worker).
    settings = {"partitions": 8, "max_sink_lag": 0}
    with LocalStack(tmp_path, classifier="lexicon", **settings) as stack:
        assert stack.broker is not None
        extra = [stack.start_worker("worker-a"), stack.start_worker("worker-b")]
        stopped, staying = extra[1], extra[0]

        def stats() -> dict[str, dict[str, Any]]:
            running = {"owner": stack.get("/stats"), staying.name: staying.get("/stats")}
            if stopped.process.poll() is None:
                running[stopped.name] = stopped.get("/stats")
            return running

        # Sending starts while the group may still be rebalancing: the first messages of a
        # partition, fetched before its first offset commit, are the ones a rebalance used to
        # skip (kafka_fixes.commit_only_processed).
        sender = Sender(stack.broker.address, envelopes)
        sender.start()
        # Mid-stream: a third of the messages sent, the partitions shared by all three, and
        # every worker at work on its share.
        until(
            lambda: (
                not sender.is_alive()
                or (
                    sender.sent >= MESSAGES // 3
                    and shared(now := stats())
                    and all(s["classified_out"] > 0 for s in now.values())
                )
            ),
            180,
            "the workers never all got a share",
        )
        before_stop = stats()
        sent_at_stop = sender.sent
        stopped.stop()  # SIGTERM: a graceful leave, its partitions go to the other two
        sender.join()
        wait_drained(http_sql(stack.url), "relradar", "chaos-scale", MESSAGES, timeout=240)
        after = stats()
        result = verify(http_sql(stack.url), "relradar", "chaos-scale", {e.id for e in envelopes})
        stopped_exit = stopped.process.returncode
        if result["lost"]:  # which ones, and where they sit on the topics, for the report
            result["lost_on_topics"] = lost_on_topics(stack, envelopes)

    figures = {
        "raw_partitions_before_stop": {k: raw(v) for k, v in before_stop.items()},
        "raw_partitions_after": {k: raw(v) for k, v in after.items()},
        "sent_before_stop": sent_at_stop,
        "before_stop": {k: pick(v) for k, v in before_stop.items()},
        "after": {k: pick(v) for k, v in after.items()},
        "result": result,
    }
    (tmp_path / "scale_out.json").write_text(json.dumps(figures, indent=2))
    print("\nscale-out figures:", json.dumps(figures, indent=2))

    # Shared: every worker had classified part of the stream before one of them left.
    assert set(before_stop) == {"owner", "worker-a", "worker-b"} and shared(before_stop)
    assert all(s["classified_out"] > 0 for s in before_stop.values()), before_stop
    assert sent_at_stop < MESSAGES, "the worker stopped only after the stream had ended"
    assert stopped_exit == 0, stopped.log_tail()
    # Taken over: the stopped worker's partitions now belong to the two that stayed, and
    # what was sent after the stop was read by them.
    assert raw(before_stop["worker-b"]) and shared(after), figures
    grown = sum(after[k]["raw_in"] - before_stop[k]["raw_in"] for k in ("owner", "worker-a"))
    assert grown >= MESSAGES - sent_at_stop, figures
    assert all(after[k]["raw_in"] > before_stop[k]["raw_in"] for k in after), figures
    # Exact: every message stored once, every aggregate equal to what the rows say.
    assert (result["stored_rows"], result["distinct_ids"]) == (MESSAGES, MESSAGES), result
    assert result["duplicates"] == result["lost"] == result["unexpected"] == 0
    assert not any(result["aggregate_mismatches"].values()), result
    assert all(s["offset_gaps"] == 0 and s["dead_letters"] == 0 for s in after.values()), after


def raw(stats: dict[str, Any]) -> list[int]:
    return list(stats.get("partitions", {}).get(Topics().raw, []))


def shared(workers: dict[str, dict[str, Any]]) -> bool:
    """Every raw partition held by exactly one of these workers, and each holding some."""
    held = [p for stats in workers.values() for p in raw(stats)]
    return sorted(held) == list(range(8)) and all(raw(stats) for stats in workers.values())


def pick(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("raw_in", "classified_out", "rows_written", "replays_skipped", "sink_batches",
            "offset_gaps", "dead_letters", "sink_retries", "alerts_raised")  # fmt: skip
    return {k: stats.get(k) for k in keys}


def lost_on_topics(stack: LocalStack, envelopes: list[Envelope]) -> list[list[Any]]:
    """(id, topic, partition, offset) of each message sent but not stored, on either topic."""
    from kafka import KafkaConsumer, TopicPartition

    assert stack.broker is not None
    stored = {r["id"] for r in http_sql(stack.url)(
        "SELECT DISTINCT id FROM relradar.messages WHERE source = 'chaos-scale'")}  # fmt: skip
    lost = {f'"{e.id}"'.encode(): e.id for e in envelopes if e.id not in stored}
    consumer = KafkaConsumer(bootstrap_servers=stack.broker.address, enable_auto_commit=False,
                             api_version=(2, 5), consumer_timeout_ms=3000)  # fmt: skip
    found: list[list[Any]] = []
    for topic in (Topics().raw, Topics().classified):
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning()
        for message in consumer:
            found += [[i, topic, message.partition, message.offset]
                      for key, i in lost.items() if key in (message.value or b"")]  # fmt: skip
    consumer.close()
    return found
