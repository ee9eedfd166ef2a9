"""HTTP push: the body of a push request turned into envelopes and dead letters.

Live sources POST one JSON object, a JSON array of objects, or NDJSON (one object per line).
Every element is validated on its own, so one bad element never costs the valid ones in the
same request; each bad one becomes a dead letter that names its position and the reason (an
NDJSON line that is not UTF-8 or not JSON, a second element with an id already in the
request, ...). Only a body that cannot be read at all, or one with too many elements, is
refused whole (``PushError``, with the HTTP status to answer). The web route that serves this
lives in the service; this module knows only bodies and records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import DeadLetter, Envelope, parse_envelope
from schemas.envelope import JsonError, load_json

MAX_ITEMS = 10_000


class PushError(ValueError):
    """The request as a whole cannot be taken; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class PushResult:
    accepted: list[Envelope] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "rejected": [{"at": d.location, "reason": d.reason} for d in self.rejected],
        }


def _is_ndjson(content_type: str) -> bool:
    return any(name in content_type for name in ("ndjson", "jsonl", "x-jsonlines"))


def _lines(body: bytes) -> list[tuple[str, bytes]]:
    return [
        (f"line {n}", line)
        for n, line in enumerate(body.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1)
        if line.strip()
    ]


def _items(body: bytes, content_type: str) -> list[tuple[str, Any]]:
    """(position, element) pairs: parsed JSON values, or raw bytes for NDJSON lines."""
    if not body.strip():
        raise PushError("empty body: send a JSON object, a JSON array or NDJSON")
    if _is_ndjson(content_type):
        return list(_lines(body))
    try:
        data = load_json(body)
    except UnicodeDecodeError as error:
        if b"\n" in body.strip():
            return list(_lines(body))  # NDJSON sent as application/json: lines judged alone
        raise PushError(f"body is not valid UTF-8: {error}") from None
    except JsonError as error:
        # A body of several lines that is not one JSON document may be NDJSON.
        if b"\n" in body.strip():
            return list(_lines(body))
        raise PushError(f"body is not JSON: {error}") from None
    items = data if isinstance(data, list) else [data]
    return [(f"item {i}", item) for i, item in enumerate(items)]


def _record(item: Any, where: str) -> Envelope | DeadLetter:
    if isinstance(item, bytes):  # an NDJSON line
        try:
            item = load_json(item)
        except UnicodeDecodeError as error:
            return DeadLetter.of("http", "http", f"invalid UTF-8: {error}", item, where)
        except JsonError as error:
            return DeadLetter.of("http", "http", f"invalid JSON: {error}", item, where)
    if not isinstance(item, dict):
        return DeadLetter.of("http", "http", "expected a JSON object", item, where)
    return parse_envelope({"source": "http", **item}, stage="http", location=where)


def parse_push(
    body: bytes, content_type: str = "application/json", max_items: int = MAX_ITEMS
) -> PushResult:
    """Validate every element of a push body; raises ``PushError`` for an unreadable body."""
    items = _items(body, content_type)
    if len(items) > max_items:
        raise PushError(f"{len(items)} items in one request; at most {max_items}", status=413)
    result = PushResult()
    first_at: dict[str, str] = {}
    for where, item in items:
        record = _record(item, where)
        if isinstance(record, Envelope):
            first = first_at.setdefault(record.id, where)
            if first != where:
                reason = f"duplicate id {record.id!r} in this request (first at {first})"
                record = DeadLetter.of("http", record.source, reason, item, where)
        if isinstance(record, DeadLetter):
            result.rejected.append(record)
        else:
            result.accepted.append(record)
    return result
