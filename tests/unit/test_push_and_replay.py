"""HTTP push bodies and replay pacing, with a fake publisher."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ingest import PushError, parse_push, replay
from ingest.replay import by_time
from schemas import DeadLetter, Envelope


def item(i: int, **over: object) -> dict[str, object]:
    return {
        "id": f"p{i}",
        "kind": "social_post",
        "brand": "Acme",
        "text": f"msg {i}",
        "created_at": (datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=i)).isoformat(),
        **over,
    }


def test_single_object_array_and_ndjson() -> None:
    assert len(parse_push(json.dumps(item(1)).encode()).accepted) == 1
    result = parse_push(json.dumps([item(1), item(2)]).encode())
    assert [e.id for e in result.accepted] == ["p1", "p2"]
    assert all(e.source == "http" for e in result.accepted)
    nd = "\n".join(json.dumps(item(i)) for i in range(3)).encode()
    assert len(parse_push(nd, "application/x-ndjson").accepted) == 3
    assert len(parse_push(nd, "application/json").accepted) == 3  # sniffed as NDJSON


def test_bad_items_are_rejected_one_by_one() -> None:
    body = json.dumps([item(1), item(2, text=""), 7, item(3, brand=None), item(4)]).encode()
    result = parse_push(body)
    assert [e.id for e in result.accepted] == ["p1", "p4"]
    summary = result.summary()
    assert [r["at"] for r in summary["rejected"]] == ["item 1", "item 2", "item 3"]
    nd = (json.dumps(item(1)) + "\n{broken\n" + json.dumps(item(2))).encode()
    result = parse_push(nd, "application/x-ndjson")
    assert len(result.accepted) == 2 and "invalid JSON" in result.rejected[0].reason


def test_unreadable_bodies_raise() -> None:
    with pytest.raises(PushError, match="UTF-8"):
        parse_push(b"\xff\xfe")
    with pytest.raises(PushError, match="not JSON"):
        parse_push(b"{oops")


class FakeSink:
    def __init__(self) -> None:
        self.sent: list[Envelope] = []
        self.dead: list[DeadLetter] = []

    def publish(self, envelope: Envelope) -> None:
        self.sent.append(envelope)

    def dead_letter(self, record: DeadLetter) -> None:
        self.dead.append(record)


def records() -> list[Envelope | DeadLetter]:
    envs = [Envelope.model_validate(item(i, source="t")) for i in (3, 1, 2)]
    return [envs[0], DeadLetter.of("connector", "t", "bad row", "x"), envs[1], envs[2]]


def test_replay_counts_every_record_and_honours_limit() -> None:
    sink = FakeSink()
    stats = replay(records(), sink)
    assert (stats.sent, stats.dead_letters) == (3, 1)
    assert [e.id for e in sink.sent] == ["p3", "p1", "p2"]
    sink = FakeSink()
    assert replay(records(), sink, limit=2).sent == 2


def test_speedup_replays_in_timestamp_order() -> None:
    sink = FakeSink()
    replay(records(), sink, speedup=1000.0)
    assert [e.id for e in sink.sent] == ["p1", "p2", "p3"]
    assert next(type(r).__name__ for r in by_time(records())) == "DeadLetter"
    with pytest.raises(ValueError):
        replay(records(), FakeSink(), rate=5, speedup=2)
