"""Conversation rules (relationship, treatment, mismatch) and trajectories in ClickHouse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from schemas import ClassifiedMessage, Label, Settings
from stream_jobs.conversations import (
    ConversationState,
    dominant,
    mismatch_kind,
    strongest,
    summarize,
    summarize_messages,
)
from stream_jobs.sink import ClickHouseSink
from stream_jobs.store import Store

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
L = Label


def turn(
    conv: str, i: int, role: str, label: Label, author: str = "cust", **kw: object
) -> ClassifiedMessage:
    agent = role == "agent"
    return ClassifiedMessage(
        id=f"{conv}:{i}", source="t", kind="support_turn", brand=str(kw.get("brand", "Acme")),
        author="AcmeHelp" if agent else author, conversation_id=conv, turn_index=i, role=role,
        text=f"turn {i}", created_at=T0 + timedelta(minutes=int(str(kw.get("minute", i)))),
        label=L.none if agent else label, scores={L.none: 1.0}, model_version="test",
        treatment=label if agent else None,
    )  # fmt: skip


def test_relationship_is_the_strongest_by_precedence_with_basic_exchange_last() -> None:
    assert strongest([L.basic_exchange, L.business_partner]) is L.business_partner
    assert strongest([L.buddies, L.enemies, L.best_friends]) is L.enemies
    assert strongest([L.buddies, L.business_partner]) is L.buddies
    assert strongest([L.none]) is L.none and strongest([]) is L.none


def test_treatment_is_the_most_frequent_and_ties_go_to_the_later_turn() -> None:
    assert dominant([L.basic_exchange, L.buddies, L.basic_exchange]) is L.basic_exchange
    assert dominant([L.basic_exchange, L.business_partner]) is L.business_partner
    assert dominant([L.none, L.none]) is L.none and dominant([]) is None


@pytest.mark.parametrize(
    ("customer", "treatment", "kind"),
    [
        (L.business_partner, L.basic_exchange, "partner_treated_as_exchange"),
        (L.business_partner, L.business_partner, None),
        (L.enemies, L.basic_exchange, "problem_met_with_boilerplate"),
        (L.enemies, L.best_friends, None),
        (L.buddies, L.enemies, "hostile_treatment"),
        (L.ex_friends, L.ex_friends, "written_off"),
        (L.marriage, L.basic_exchange, "bond_treated_as_exchange"),
        (L.basic_exchange, L.master_servant, "status_mismatch"),
        (L.basic_exchange, L.fling, "overfamiliar"),
        (L.basic_exchange, L.basic_exchange, None),
        (L.none, L.enemies, None),
        (L.buddies, None, None),
    ],
)
def test_mismatch_kinds(customer: Label, treatment: Label | None, kind: str | None) -> None:
    assert mismatch_kind(customer, treatment) == kind


def test_the_model_case_and_replays_leave_the_state_unchanged() -> None:
    conv = [
        turn("c1", 0, "customer", L.basic_exchange),
        turn("c1", 1, "agent", L.basic_exchange),
        turn("c1", 2, "customer", L.business_partner),
        turn("c1", 3, "agent", L.basic_exchange),
    ]
    [summary] = summarize_messages(conv + conv[1:3])  # a replay delivers turns again
    assert summary.customer_relationship is L.business_partner
    assert summary.treatment is L.basic_exchange
    assert (summary.mismatch, summary.mismatch_kind) == (True, "partner_treated_as_exchange")
    assert summary.customer_labels == [L.basic_exchange, L.business_partner]
    assert summary.turns == 4 and summary.customer == "cust"
    state = ConversationState("c1")
    for m in reversed(conv):  # out of order: the turn index, not arrival, orders the turns
        state.add(m)
    again = summarize(ConversationState.from_dict(state.to_dict()))
    assert again == summary


@pytest.fixture()
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store.open(Settings(data_dir=tmp_path_factory.mktemp("chdb"), database="convtest"))
    opened.migrate()
    yield opened
    opened.close()


def post(i: int, author: str, label: Label, minute: int) -> ClassifiedMessage:
    return ClassifiedMessage(
        id=f"p{i}", source="t", kind="social_post", brand="Acme", author=author,
        text=f"post {i}", created_at=T0 + timedelta(minutes=minute), label=label,
        scores={label: 1.0}, model_version="test",
    )  # fmt: skip


def test_transitions_follow_each_customer_and_survive_late_and_replayed_messages(
    store: Store,
) -> None:
    sink = ClickHouseSink(store)
    sink.write([post(1, "ann", L.buddies, 0), post(2, "ann", L.none, 5),
                post(3, "ann", L.ex_friends, 10), post(4, "bob", L.best_friends, 1)])  # fmt: skip
    sink.write([post(5, "bob", L.love_hate, 20), post(3, "ann", L.ex_friends, 10)])  # fmt: skip
    sink.write([post(6, "ann", L.enemies, 7)])  # late: between ann's buddies and ex_friends

    rows = store.rows(
        "SELECT author, toString(from_label) AS f, toString(to_label) AS t, into_problem AS p "
        "FROM convtest.transitions FINAL ORDER BY author, to_at"
    )
    assert rows == [
        {"author": "ann", "f": "buddies", "t": "enemies", "p": 1},
        {"author": "ann", "f": "enemies", "t": "ex_friends", "p": 0},
        {"author": "bob", "f": "best_friends", "t": "love_hate", "p": 1},
    ]


def test_a_wave_of_customers_turning_into_enemies_raises_one_transition_alert(
    store: Store,
) -> None:
    from stream_jobs.alerts import AlertRule
    from stream_jobs.transition_alerts import TRANSITION_TEST, evaluate_transitions

    batch, n = [], 0
    for hour in range(33):
        turned = hour == 31
        for c in range(10 if hour < 32 else 1):
            author = f"h{hour}c{c}"
            second = L.enemies if turned else L.buddies
            for minute, label in ((0, L.buddies), (30, second)):
                n += 1
                batch.append(post(n, author, label, hour * 60 + minute))
    ClickHouseSink(store).write(batch)
    [alert] = evaluate_transitions(store, AlertRule())
    assert (alert.brand, alert.label, alert.count, alert.messages) == ("Acme", "enemies", 10, 10)
    assert alert.window_start == T0 + timedelta(hours=31) and alert.test == TRANSITION_TEST
    assert alert.examples and alert.examples[0].startswith("buddies -> enemies: post")


def test_every_mismatch_rule_is_documented() -> None:
    from pathlib import Path

    from stream_jobs.conversations import MISMATCH_RULES

    doc = (Path(__file__).parents[2] / "docs" / "conversations.md").read_text()
    assert [r.kind for r in MISMATCH_RULES if f"| `{r.kind}` |" not in doc] == []


def test_transcripts_analyze_prints_one_object_per_conversation() -> None:
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from stream_jobs.cli import main

    data = Path(__file__).parents[1] / "data" / "conversations_flow.json"
    result = CliRunner().invoke(main, ["transcripts", "analyze", "--input", str(data)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["conversation_id"] for r in rows] == [f"ticket:{i}" for i in range(1, 7)]
    first = rows[0]
    assert set(first) >= {"conversation_id", "customer_relationship", "treatment", "mismatch",
                          "mismatch_kind", "customer_labels"}  # fmt: skip
    assert first["customer_relationship"] == "business_partner"
    assert (first["mismatch"], first["mismatch_kind"]) == (True, "partner_treated_as_exchange")
    summary = CliRunner().invoke(
        main, ["transcripts", "analyze", "--input", str(data), "--summary"]
    )
    by_brand = {json.loads(line)["brand"]: json.loads(line) for line in summary.stdout.splitlines()}
    assert by_brand["Freshbasket"]["conversations"] == 2
    assert by_brand["Freshbasket"]["kinds"] == {"partner_treated_as_exchange": 1}
