"""Message envelopes: what every connector emits and what the classify job produces.

``Envelope`` is the one shape a message has on the raw topic, whatever its origin (a social
post, or one turn of a support transcript). ``ClassifiedMessage`` adds the classifier's
verdict. ``DeadLetter`` is the record a bad input becomes, with the reason, so nothing is
dropped silently. ``parse_envelope`` is the single validating entry point used by connectors,
the HTTP push endpoint and the stream job alike; ``load_json`` is the one JSON reader they use.
The input policy (what is refused, what is cleaned) is tabled in ``docs/security.md``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
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
MAX_METADATA_CHARS = 8_000
# No social post predates 1990; earlier times are placeholders (epoch 0, 1900) from broken
# sources, and the hourly counts use 32-bit DateTime, which cannot hold them.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
# Clock skew and local times mislabelled as UTC stay within a day; later is a broken clock.
MAX_FUTURE = timedelta(days=1)
MAX_TURN_INDEX = 2**31 - 1  # the store's Int32 column
# Removed from text: C0/C1 controls except tab, newline and carriage return, and invisible
# characters that only serve to split words (zero-width space, word joiner, BOM, soft hyphen).
# Zero-width (non-)joiners stay: emoji sequences and several scripts need them.
_STRIPPED = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff]")


def _plain(value: str) -> str:
    """Names and ids must not hide characters: no controls, no invisible format characters."""
    for char in value:
        if unicodedata.category(char) in {"Cc", "Cf", "Cs"}:
            raise ValueError(f"contains the control or invisible character U+{ord(char):04X}")
    return value


def _int_as_str(value: Any) -> Any:
    # Many sources number their posts; an integer id is taken as its decimal string.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[
    str,
    BeforeValidator(_int_as_str),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=256),
    AfterValidator(_plain),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain),
]
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
    turn_index: int | None = Field(default=None, ge=0, le=MAX_TURN_INDEX)
    role: Role = Role.customer
    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description="The message; control and zero-width characters are removed, NUL refused.",
    )
    language: Annotated[str, StringConstraints(max_length=16), AfterValidator(_plain)] | None = None
    created_at: datetime = Field(
        description="When it was written; naive times are UTC; 1990 up to a day ahead of now."
    )
    ingested_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, JsonScalar] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text_has_content(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("text contains a NUL character")
        value = _STRIPPED.sub("", value)
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        # Emoji-only text is a real message; text of only marks or joiners is not.
        if not any(unicodedata.category(char)[0] in "LNPS" for char in value):
            raise ValueError("text has no visible character")
        return value

    @field_validator("created_at", "ingested_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # Naive timestamps are taken as UTC: connectors convert local times before this point.
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if value < EARLIEST:
            raise ValueError(f"{value.isoformat()} is before {EARLIEST.date()}: not a post time")
        if value > utcnow() + MAX_FUTURE:
            raise ValueError(f"{value.isoformat()} is more than {MAX_FUTURE.days} day ahead of now")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, JsonScalar]) -> dict[str, JsonScalar]:
        for key, item in value.items():
            _plain(key)
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"metadata {key!r} is not a finite number")
        if len(json.dumps(value, default=str)) > MAX_METADATA_CHARS:
            raise ValueError(f"metadata is larger than {MAX_METADATA_CHARS} characters of JSON")
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
    treatment: Label | None = Field(
        default=None, description="Agent turns: how the brand's words treat the customer."
    )
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
        cls, stage: str, source: Any, reason: str, raw: Any, location: str | None = None
    ) -> DeadLetter:
        """A dead letter from anything at all: this must never fail, whatever the input."""
        if isinstance(raw, bytes):
            text = raw[: MAX_RAW_DEADLETTER_CHARS * 4].decode("utf-8", errors="replace")
        elif isinstance(raw, str):
            text = raw
        else:
            try:
                text = json.dumps(raw, default=str, ensure_ascii=False)
            except (RecursionError, ValueError, TypeError) as error:
                text = f"<{type(raw).__name__} that cannot be written as JSON: {error}>"
        return cls(
            stage=_label(stage),
            source=_label(source),
            reason=_valid_unicode(reason[:2000]),
            raw=_valid_unicode(text[:MAX_RAW_DEADLETTER_CHARS]),
            location=_valid_unicode(location[:1000]) if location is not None else None,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def _valid_unicode(text: str) -> str:
    # Lone surrogates (from surrogate-escaped files or JSON escapes) cannot be encoded.
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _label(value: Any) -> str:
    """A stage or source name made safe for a dead letter (printable, 1 to 200 characters)."""
    text = value if isinstance(value, str) else str(value) if value is not None else ""
    text = "".join(c for c in text[:400] if unicodedata.category(c) not in {"Cc", "Cf", "Cs"})
    return text.strip()[:200].strip() or "unknown"


class JsonError(ValueError):
    """Bytes that are not one acceptable JSON document (the message says why)."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonError(f"key {key[:100]!r} appears twice in one object")
            seen.add(key)
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise JsonError(f"{name} is not JSON")


def load_json(data: bytes | str) -> Any:
    """Parse one JSON document strictly; raises ``UnicodeDecodeError`` or ``JsonError``.

    Stricter than ``json.loads`` where lenience hides problems: bytes must be UTF-8 (never
    guessed as UTF-16/32), a leading BOM is dropped, a key given twice in one object is refused
    (parsers disagree on which value wins), as are NaN, Infinity and numbers beyond float range;
    nesting too deep for the parser, or an integer too long, is an error, never a crash.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_finite,
            parse_constant=_no_constant,
        )
    except JsonError:
        raise
    except json.JSONDecodeError as error:
        raise JsonError(str(error)) from None
    except RecursionError:
        raise JsonError("nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise JsonError(str(error)) from None


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
    """Validate one record; a failure comes back as a dead letter with the reason.

    Never raises: whatever arrives (bytes from a topic, a line of a file, a pushed object)
    becomes an ``Envelope`` or a ``DeadLetter`` saying why not.
    """
    source: Any = "unknown"
    try:
        obj = load_json(data) if isinstance(data, bytes | str) else data
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {_json_type(obj)}")
        source = obj.get("source") or "unknown"
        return Envelope.model_validate(obj)
    except UnicodeDecodeError as error:
        reason = f"invalid UTF-8: {error}"
    except JsonError as error:
        reason = f"invalid JSON: {error}"
    except ValidationError as error:
        reason = describe_error(error)
    except (ValueError, TypeError, RecursionError) as error:
        reason = str(error) or type(error).__name__
    return DeadLetter.of(stage, source, reason, data, location)


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def envelope_json_schema() -> dict[str, Any]:
    """The envelope's JSON Schema, as shipped in ``schemas/envelope.schema.json``."""
    return Envelope.model_json_schema()
