"""What the conversation readers share: parsed turns, conversations, and the emitter.

Both readers (``ingest.tickets`` for help-desk ticket exports, ``ingest.transcripts`` for
plain-text transcripts) parse a file into ``Conversation`` objects of ``Turn`` objects; the
``Emitter`` then checks each conversation whole and turns it into one ``support_turn``
envelope per turn, or into one dead letter with the reason (a conversation is all or nothing).
``role_map`` merges caller-given speaker/author-role names over ``DEFAULT_ROLES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ingest.connectors import Record
from schemas import DeadLetter, Envelope, Kind, Role
from schemas.envelope import JsonScalar, describe_error

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CUSTOMER = ("customer", "client", "caller", "user", "c", "end-user", "end_user", "requester")
_AGENT = ("agent", "support", "rep", "advisor", "bot", "a", "admin", "staff")
DEFAULT_ROLES: dict[str, Role] = {
    **dict.fromkeys(_CUSTOMER, Role.customer),
    **dict.fromkeys(_AGENT, Role.agent),
}


@dataclass
class Turn:
    """One parsed turn; ``at`` stays None until the reader dates it."""

    role: Role
    text: str
    author: str | None
    at: datetime | None = None
    meta: dict[str, JsonScalar] = field(default_factory=dict)


@dataclass
class Conversation:
    """A parsed conversation; ``error`` set means it goes to the dead letter whole."""

    native_id: str | None
    brand: str | None
    where: str
    raw: Any
    turns: list[Turn] = field(default_factory=list)
    error: str | None = None
    meta: dict[str, JsonScalar] = field(default_factory=dict)


class Emitter:
    """Checks a parsed conversation and turns it into envelopes or one dead letter."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: dict[str, str] = {}

    def records(self, conv: Conversation) -> list[Record]:
        reason = self._problem(conv)
        envelopes: list[Record] = []
        for i, turn in enumerate(conv.turns if reason is None else []):
            try:
                envelopes.append(self._envelope(conv, i, turn))
            except ValidationError as error:
                reason = f"turn {i}: {describe_error(error)}"
                break
        if reason is None:
            return envelopes
        prefix = f"conversation {conv.native_id}: " if conv.native_id is not None else ""
        raw = conv.raw if conv.raw is not None else ""
        return [DeadLetter.of("connector", self.source, prefix + reason, raw, conv.where)]

    def _problem(self, conv: Conversation) -> str | None:
        if conv.native_id is not None:
            first = self.seen.setdefault(conv.native_id, conv.where)
            if first != conv.where:
                return f"duplicate conversation id (first at {first})"
        if conv.error:
            return conv.error
        if not conv.brand:
            return "missing brand: the conversation names none and the caller gave none"
        if not conv.turns:
            return "no turns"
        empty = next((i for i, turn in enumerate(conv.turns) if not turn.text.strip()), None)
        if empty is not None:
            return f"turn {empty} has empty text"
        if all(turn.role is not Role.customer for turn in conv.turns):
            return "no customer turn"
        if any(turn.at is None for turn in conv.turns):
            return "a turn has no time: no timestamp, no start, no file time"
        return None

    def _envelope(self, conv: Conversation, i: int, turn: Turn) -> Envelope:
        return Envelope(
            id=f"{self.source}:{conv.native_id}:{i}",
            source=self.source,
            kind=Kind.support_turn,
            brand=conv.brand or "",
            author=turn.author[:200] if turn.author else None,
            conversation_id=f"{self.source}:{conv.native_id}",
            turn_index=i,
            role=turn.role,
            text=turn.text,
            created_at=turn.at or EPOCH,
            metadata={**conv.meta, **turn.meta},
        )


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def role_map(roles: Mapping[str, Role | str] | None = None) -> dict[str, Role]:
    """The default speaker/author-role mapping with ``roles`` on top (keys case-insensitive)."""
    merged = dict(DEFAULT_ROLES)
    for name, role in (roles or {}).items():
        try:
            merged[name.strip().lower()] = Role(role)
        except ValueError:
            raise ValueError(f"role for {name!r} must be customer or agent, not {role!r}") from None
    return merged
