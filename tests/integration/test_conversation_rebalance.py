"""Conversation state survives a worker leaving mid-stream (two workers, eight partitions).

Two hundred conversations get their first two turns while two workers share the partitions, so
each worker holds part of the conversation state. Then the rest of the turns stream in and one
worker is stopped part-way: the other must restore the moved conversations' state from the
changelog before it reads on. Every stored conversation must then equal the offline analysis
of all four of its turns; a lost state would show up as a conversation of two turns.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models import Classifier
from schemas import Envelope
from stream_jobs.app import classified_records
from stream_jobs.conversations import summarize_messages
from stream_jobs.testing import LocalStack

pytestmark = pytest.mark.integration
T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
CUSTOMER = [
    "My order {n} never arrived, can you check where it is?",
    "You guys are the best, the app update is fantastic! {n}",
    "Worst service ever, I'm telling everyone to avoid you. Order {n}",
    "Idea: let me schedule deliveries weekly from the app. Happy to test it. {n}",
]
AGENT = [
    "Sorry about that, please DM us your order number {n} and we'll look into it.",
    "Thanks so much, that made our day! Enjoy the new features {n}",
]


def conversation(n: int) -> list[Envelope]:
    turns = [
        (CUSTOMER[n % 4], "customer"), (AGENT[n % 2], "agent"),
        (CUSTOMER[(n + 1) % 4], "customer"), (AGENT[(n + 1) % 2], "agent"),
    ]  # fmt: skip
    return [
        Envelope(
            id=f"rb:{n}:{i}",
            source="rebalance",
            kind="support_turn",
            brand=f"Brand{n % 5}",
            author=f"cust{n}" if role == "customer" else f"Brand{n % 5}Help",
            conversation_id=f"rb:{n}",
            turn_index=i,
            role=role,
            text=text.format(n=n),
            created_at=T0 + timedelta(minutes=n, seconds=i),
        )
        for i, (text, role) in enumerate(turns)
    ]


def test_conversation_state_moves_with_its_partition(tmp_path: Path) -> None:
    conversations = [conversation(n) for n in range(200)]
    first = [t for c in conversations for t in c[:2]]
    rest = [t for c in conversations for t in c[2:]]
    everything = [t for c in conversations for t in c]
    lexicon = Classifier.from_pretrained("lexicon")
    expected = {
        s.conversation_id: s.as_json()
        for s in summarize_messages(classified_records(everything, lexicon))
    }
    with LocalStack(tmp_path, classifier="lexicon", partitions=8, max_sink_lag=0) as stack:
        other = stack.start_worker("worker-b")
        stack.publish(first)
        stack.wait_for_rows(len(first))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [row] = stack.sql("SELECT count() AS n FROM relradar.conversations FINAL")
            if row["n"] == 200:
                break
            time.sleep(0.5)
        held_by_other = other.get("/stats")["conversations_updated"]

        sender = threading.Thread(target=stack.publish, args=(rest,))
        sender.start()
        time.sleep(1.0)  # part of the rest is in; stop the worker mid-stream
        other.stop()
        sender.join()
        stack.wait_for_rows(len(first) + len(rest), timeout=180)
        deadline = time.monotonic() + 120
        stored: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            stored = stack.sql(
                "SELECT conversation_id, turns, toString(customer_relationship) AS rel, "
                "toString(treatment) AS treatment, mismatch_kind, "
                "arrayMap(x -> toString(x), customer_labels) AS labels "
                "FROM relradar.conversations FINAL ORDER BY conversation_id"
            )
            if len(stored) == 200 and all(r["turns"] == 4 for r in stored):
                break
            time.sleep(0.5)
    assert 0 < held_by_other < 200  # both workers held conversation state before the stop
    assert [r["turns"] for r in stored] == [4] * 200
    for row in stored:
        want = expected[str(row["conversation_id"])]
        got = (row["rel"], row["treatment"], row["mismatch_kind"] or None, row["labels"])
        assert got == (want["customer_relationship"], want["treatment"], want["mismatch_kind"],
                       want["customer_labels"])  # fmt: skip
