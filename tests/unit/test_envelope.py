"""Envelope validation, dead letters and the exported JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import (
    ClassifiedMessage,
    DeadLetter,
    Envelope,
    Label,
    envelope_json_schema,
    parse_envelope,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "envelope.schema.json"


def base(**over: object) -> dict[str, object]:
    return {
        "id": "t:1",
        "source": "t",
        "kind": "social_post",
        "brand": "Acme",
        "text": "hello @Acme",
        "created_at": "2024-05-01T10:00:00Z",
        **over,
    }


def test_valid_envelope_and_defaults() -> None:
    env = Envelope.model_validate(base())
    assert env.role.value == "customer"
    assert env.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert env.ingested_at.tzinfo is not None
    assert env.key == "brand:Acme"
    assert Envelope.model_validate(base(conversation_id="c1")).key == "c1"


def test_timestamps_become_utc() -> None:
    naive = Envelope.model_validate(base(created_at="2024-05-01T10:00:00"))
    assert naive.created_at.tzinfo == UTC
    tz = timezone(timedelta(hours=-8))
    local = Envelope.model_validate(base(created_at=datetime(2024, 5, 1, 2, tzinfo=tz)))
    assert local.created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n"}, "text"),
        ({"text": "a\x00b"}, "text"),
        ({"text": "x" * 20_001}, "text"),
        ({"brand": ""}, "brand"),
        ({"kind": "email"}, "kind"),
        ({"role": "bot"}, "role"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"turn_index": -1}, "turn_index"),
        ({"unexpected": 1}, "unexpected"),
        ({"kind": "support_turn"}, "support_turn"),
    ],
)
def test_invalid_envelopes_are_refused_with_the_field_named(change: dict, field: str) -> None:
    record = parse_envelope(json.dumps(base(**change)), stage="test")
    assert isinstance(record, DeadLetter)
    assert field in record.reason
    assert record.stage == "test"


def test_unreadable_input_becomes_a_dead_letter() -> None:
    assert "invalid JSON" in parse_envelope(b"{nope", "t").reason  # type: ignore[union-attr]
    assert "UTF-8" in parse_envelope(b"\xff\xfe{}", "t").reason  # type: ignore[union-attr]
    assert "JSON object" in parse_envelope(b"[1]", "t").reason  # type: ignore[union-attr]
    big = DeadLetter.of("t", "s", "r", "x" * 100_000)
    assert len(big.raw) == 64_000


def test_classified_message_scores_must_be_probabilities() -> None:
    env = base()
    ok = ClassifiedMessage.model_validate(
        {**env, "label": "enemies", "scores": {"enemies": 0.9}, "model_version": "m"}
    )
    assert ok.label is Label.enemies
    with pytest.raises(ValidationError):
        ClassifiedMessage.model_validate(
            {**env, "label": "enemies", "scores": {"enemies": 1.5}, "model_version": "m"}
        )
    with pytest.raises(ValidationError):
        ClassifiedMessage.model_validate(
            {**env, "label": "frenemies", "scores": {}, "model_version": "m"}
        )


def test_shipped_json_schema_is_current() -> None:
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == envelope_json_schema(), "run: relradar schema > schemas/envelope.schema.json"
    assert set(shipped["required"]) >= {"id", "source", "kind", "brand", "text", "created_at"}
