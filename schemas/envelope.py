"""Message envelopes: what every connector emits and what the classify job produces.

``Envelope`` is the one shape a message has on the raw topic, whatever its origin (a social
post, or one turn of a support transcript). ``ClassifiedMessage`` adds the classifier's
verdict. ``DeadLetter`` is the record a bad input becomes, with the reason, so nothing is
dropped silently. ``parse_envelope`` is the single validating entry point used by connectors,
the HTTP push endpoint and the stream job alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.taxonomy import Label

MAX_TEXT_CHARS = 20_000
MAX_RAW_DEADLETTER_CHARS = 64_000

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
JsonScalar = str | int | float | bool | None


class Kind(StrEnum):
    social_post = "social_post"
    support_turn = "support_turn"


class Role(StrEnum):
    customer = "customer"
    agent = "agent"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One message, as every connector delivers it to the raw topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id = Field(description="Globally unique id: the source's own id, prefixed by source.")
    source: Name = Field(description="Where it came from, e.g. 'airline', 'twcs', 'http'.")
    kind: Kind
    brand: Name = Field(description="The brand the message is about or addressed to.")
    author: Name | None = None
    conversation_id: Id | None = None
    turn_index: int | None = Field(default=None, ge=0)
    role: Role = Role.customer
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    language: Annotated[str, StringConstraints(max_length=16)] | None = None
    created_at: datetime
    ingested_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, JsonScalar] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text_has_content(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("text contains a NUL character")
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        return value

    @field_validator("created_at", "ingested_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Naive timestamps are taken as UTC: connectors convert local times before this point.
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, JsonScalar]) -> dict[str, JsonScalar]:
        if len(json.dumps(value, default=str)) > 8_000:
            raise ValueError("metadata is larger than 8000 characters of JSON")
        return value

    @model_validator(mode="after")
    def _turns_belong_to_conversations(self) -> Envelope:
        if self.kind is Kind.support_turn and (
            self.conversation_id is None or self.turn_index is None
        ):
            raise ValueError("a support_turn needs conversation_id and turn_index")
        return self

    @property
    def key(self) -> str:
        """Partition key: one conversation, or else one brand, keeps its order."""
        return self.conversation_id or f"brand:{self.brand}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class ClassifiedMessage(Envelope):
    """An envelope with the classifier's label, per-label scores and model version."""

    label: Label
    scores: dict[Label, float]
    model_version: Name
    classified_at: datetime = Field(default_factory=utcnow)

    @field_validator("scores")
    @classmethod
    def _scores_are_probabilities(cls, value: dict[Label, float]) -> dict[Label, float]:
        if any(not 0.0 <= v <= 1.0 for v in value.values()):
            raise ValueError("scores must lie in [0, 1]")
        return value


class DeadLetter(BaseModel):
    """A record that could not be accepted, kept with the reason it failed."""

    model_config = ConfigDict(frozen=True)

    stage: Name = Field(description="Where it failed: connector, http, classify, sink.")
    source: Name
    reason: str
    raw: str = Field(description="The offending input, truncated to 64k characters.")
    location: str | None = Field(default=None, description="File:line, topic/offset, ...")
    failed_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def of(
        cls, stage: str, source: str, reason: str, raw: Any, location: str | None = None
    ) -> DeadLetter:
        if isinstance(raw, bytes):
            text = raw.decode("utf-8", errors="replace")
        elif isinstance(raw, str):
            text = raw
        else:
            text = json.dumps(raw, default=str, ensure_ascii=False)
        return cls(
            stage=stage,
            source=source or "unknown",
            reason=reason[:2000],
            raw=text[:MAX_RAW_DEADLETTER_CHARS],
            location=location,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def describe_error(error: ValidationError | ValueError) -> str:
    """A one-line reason from a validation error, naming the fields that failed."""
    if isinstance(error, ValidationError):
        parts = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"]) or "record"
            parts.append(f"{where}: {item['msg']}")
        return "; ".join(parts)
    return str(error)


def parse_envelope(
    data: bytes | str | dict[str, Any], stage: str, location: str | None = None
) -> Envelope | DeadLetter:
    """Validate one record; a failure comes back as a dead letter with the reason."""
    source = data.get("source", "unknown") if isinstance(data, dict) else "unknown"
    try:
        if isinstance(data, bytes | str):
            # Decode explicitly: json.loads would guess UTF-16/32 from the first bytes.
            obj = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            source = str(obj.get("source") or "unknown")[:200]
            return Envelope.model_validate(obj)
        return Envelope.model_validate(data)
    except UnicodeDecodeError as error:
        return DeadLetter.of(stage, str(source), f"invalid UTF-8: {error}", data, location)
    except json.JSONDecodeError as error:
        return DeadLetter.of(stage, str(source), f"invalid JSON: {error}", data, location)
    except (ValidationError, ValueError) as error:
        return DeadLetter.of(stage, str(source)[:200], describe_error(error), data, location)


def envelope_json_schema() -> dict[str, Any]:
    """The envelope's JSON Schema, as shipped in ``schemas/envelope.schema.json``."""
    return Envelope.model_json_schema()
