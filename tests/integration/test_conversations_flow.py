"""Hand-written support conversations through the real broker, worker and ClickHouse.

Six tickets (ticket-JSON, read by the product's own connector) cover the model case of a
mismatch (a customer with suggestions answered with a promotion), a match, a problem met with
boilerplate, hostile lock-in, and one customer whose second conversation turns into a problem
relationship. What the stream job stores must equal what the offline analyzer says, and the
clear-cut cases must come out as a person would label them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingest import read_conversations
from models import Classifier
from schemas import Envelope
from stream_jobs.app import classified_records
from stream_jobs.conversations import summarize_messages
from stream_jobs.testing import LocalStack

pytestmark = pytest.mark.integration
DATA = Path(__file__).parents[1] / "data" / "conversations_flow.json"


def test_conversations_mismatch_and_transitions_end_to_end(tmp_path: Path) -> None:
    envelopes = [r for r in read_conversations(DATA) if isinstance(r, Envelope)]
    assert len(envelopes) == 15
    offline = {
        s.conversation_id: s.as_json()
        for s in summarize_messages(classified_records(envelopes, Classifier.from_pretrained()))
    }
    with LocalStack(tmp_path) as stack:
        stack.publish(envelopes)
        stack.wait_for_rows(14)
        deadline = time.monotonic() + 60
        stored: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            stored = stack.sql(
                "SELECT conversation_id, toString(customer_relationship) AS customer_relationship,"
                " toString(treatment) AS treatment, mismatch, mismatch_kind, turns, "
                "arrayMap(x -> toString(x), customer_labels) AS customer_labels "
                "FROM relradar.conversations FINAL ORDER BY conversation_id"
            )
            if len(stored) == 6 and all(r["turns"] == offline[str(r["conversation_id"])]["turns"]
                                        for r in stored):  # fmt: skip
                break
            time.sleep(0.5)
        # The sink computes transitions after it has inserted a batch's rows, so the rows (and
        # the conversations) can be visible a moment before the transitions are.
        transitions: list[dict[str, object]] = []
        while time.monotonic() < deadline and not any(r["author"] == "7004" for r in transitions):
            transitions = stack.sql(
                "SELECT brand, author, toString(from_label) AS f, toString(to_label) AS t, "
                "into_problem FROM relradar.transitions FINAL"
            )
            time.sleep(0.2)
    for row in stored:
        want = offline[str(row["conversation_id"])]
        assert {k: row[k] for k in ("customer_relationship", "treatment", "turns",
                                     "customer_labels")} == {
            k: want[k] for k in ("customer_relationship", "treatment", "turns", "customer_labels")
        }  # fmt: skip
        assert (bool(row["mismatch"]), row["mismatch_kind"] or None) == (
            want["mismatch"],
            want["mismatch_kind"],
        )
    kinds = {str(r["conversation_id"]): r["mismatch_kind"] or None for r in stored}
    assert kinds["ticket:1"] == "partner_treated_as_exchange"  # the model case
    assert kinds["ticket:2"] is None  # a partner treated as a partner
    assert kinds["ticket:3"] == "problem_met_with_boilerplate"
    assert kinds["ticket:5"] == "hostile_treatment"  # lock-in answering a plain question
    # Customer 7004 at Tunely: a buddies ticket, a farewell a week later. (The first ticket was
    # "You guys are awesome, the new running playlists made my morning run so much fun!", which
    # the model does not take for `buddies`: short praise without the codebook's buddies cues is
    # a known miss, docs/model.md. This test is about the transition, so its ticket carries the
    # cues. Likewise ticket 1's order number and its product idea are two turns: the shipped
    # model reads the idea as `none` when a bare "Done, order 55121." opens the same turn.)
    [move] = [r for r in transitions if r["author"] == "7004"]
    assert move["brand"] == "Tunely" and (move["f"], move["t"]) == ("buddies", "ex_friends")
    assert move["into_problem"] == 1
