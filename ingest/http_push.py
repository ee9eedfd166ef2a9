"""HTTP push: the body of a push request turned into envelopes and dead letters.

Live sources POST one JSON object, a JSON array of objects, or NDJSON (one object per line).
Every element is validated on its own, so one bad element never costs the valid ones in the
same request; each bad one becomes a dead letter that names its position and the reason. The
web route that serves this lives in the service; this module knows only bodies and records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from schemas import DeadLetter, Envelope, parse_envelope

MAX_ITEMS = 10_000


class PushError(ValueError):
    """The request as a whole cannot be read (not JSON, not NDJSON, too many items)."""


@dataclass
class PushResult:
    accepted: list[Envelope] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "rejected": [{"at": d.location, "reason": d.reason} for d in self.rejected],
        }


def _items(body: bytes, content_type: str) -> list[tuple[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PushError(f"body is not valid UTF-8: {error}") from None
    ndjson = "ndjson" in content_type or "jsonl" in content_type or "x-jsonlines" in content_type
    if not ndjson:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            # A body of several lines that is not one JSON document may be NDJSON.
            if "\n" not in text.strip():
                raise PushError(f"body is not JSON: {error}") from None
            ndjson = True
        else:
            items = data if isinstance(data, list) else [data]
            return [(f"item {i}", item) for i, item in enumerate(items)]
    return [
        (f"line {n}", line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


def parse_push(body: bytes, content_type: str = "application/json") -> PushResult:
    """Validate every element of a push body; raises ``PushError`` for an unreadable body."""
    items = _items(body, content_type)
    if len(items) > MAX_ITEMS:
        raise PushError(f"{len(items)} items in one request; at most {MAX_ITEMS}")
    result = PushResult()
    for where, item in items:
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except json.JSONDecodeError as error:
                result.rejected.append(
                    DeadLetter.of("http", "http", f"invalid JSON: {error}", item, where)
                )
                continue
        if isinstance(item, dict):
            record = parse_envelope({"source": "http", **item}, stage="http", location=where)
        else:
            record = DeadLetter.of("http", "http", "expected a JSON object", item, where)
        if isinstance(record, DeadLetter):
            result.rejected.append(record)
        else:
            result.accepted.append(record)
    return result
