"""Generic file connectors: CSV and JSONL replay with a column mapping.

A ``ColumnMapping`` says which column of a file holds each envelope field; ``read_file``
yields, for every row, either a valid ``Envelope`` or a ``DeadLetter`` naming the file, the
line and the reason (bad UTF-8, a short row, bad JSON, a failed field, a duplicate id). Bad
rows are data, not exceptions, so one bad row never stops a replay and none is lost silently:
a byte-order mark, a field beyond the csv module's size limit, a JSON line nested too deeply
or a timestamp out of range is a dead letter like any other.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas import DeadLetter, Envelope, Kind
from schemas.envelope import JsonError, describe_error, load_json

Record = Envelope | DeadLetter
Row = dict[str, Any]
# A field up to this size is read, then judged by the envelope's limits (with a clear reason).
MAX_CSV_FIELD = 16 * 1024 * 1024


class MappingError(ValueError):
    """A row lacks what the mapping needs (its message becomes the dead letter's reason)."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which column feeds which envelope field; unset columns fall back to the constants."""

    text: str = "text"
    id: str | None = "id"
    brand: str | None = "brand"
    created_at: str | None = "created_at"
    author: str | None = "author"
    conversation_id: str | None = "conversation_id"
    turn_index: str | None = "turn_index"
    role: str | None = "role"
    language: str | None = "language"
    kind: str | None = "kind"
    source: str = "file"
    default_kind: Kind = Kind.social_post
    default_brand: str | None = None
    time_format: str | None = None
    metadata: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[str], **constants: Any) -> ColumnMapping:
        """Build from ``field=column`` strings, as the CLI's ``--map`` gives them."""
        known = set(cls.__dataclass_fields__)
        values: dict[str, Any] = dict(constants)
        for pair in pairs:
            name, sep, column = pair.partition("=")
            if not sep or name not in known:
                raise ValueError(f"bad mapping {pair!r}: expected FIELD=COLUMN, FIELD in {known}")
            values[name] = column
        return cls(**values)


def parse_time(value: Any, fmt: str | None = None) -> datetime:
    """Parse a timestamp: a strptime format if given, else ISO 8601 or epoch seconds."""
    if isinstance(value, datetime):
        return value
    text = str(value).strip()
    if not text:
        raise MappingError("created_at is empty")
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        if fmt:
            return datetime.strptime(text, fmt)
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), UTC)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as error:
        raise MappingError(f"created_at {text[:40]!r} is not a timestamp: {error}") from None


def row_id(source: str, row: Row) -> str:
    """A deterministic id for a row without one, so replaying a file twice gives equal ids."""
    digest = hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
    return f"{source}:{digest[:20]}"


def _get(row: Row, column: str | None) -> Any:
    if column is None:
        return None
    value = row.get(column)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def map_row(row: Row, m: ColumnMapping) -> Envelope:
    """Turn one row into an envelope; raises ``MappingError`` or ``ValidationError``."""
    if m.text not in row:
        raise MappingError(f"no {m.text!r} column (text)")
    raw_id = _get(row, m.id)
    raw_time = _get(row, m.created_at)
    turn = _get(row, m.turn_index)
    data: dict[str, Any] = {
        "id": f"{m.source}:{raw_id}" if raw_id is not None else row_id(m.source, row),
        "source": m.source,
        "kind": _get(row, m.kind) or m.default_kind,
        "brand": _get(row, m.brand) or m.default_brand,
        "author": _get(row, m.author),
        "conversation_id": _get(row, m.conversation_id),
        "turn_index": int(turn) if isinstance(turn, str) and turn.strip().isdigit() else turn,
        "role": _get(row, m.role) or "customer",
        "text": row.get(m.text),
        "language": _get(row, m.language),
        "created_at": parse_time(raw_time, m.time_format) if raw_time is not None else None,
        "metadata": {k: row.get(k) for k in m.metadata if k in row},
    }
    if data["brand"] is None:
        raise MappingError("no brand: the row has none and the mapping gives no default")
    if data["created_at"] is None:
        raise MappingError("no created_at: the row has no timestamp")
    return Envelope.model_validate({k: v for k, v in data.items() if v is not None})


def _csv_rows(path: Path) -> Iterator[tuple[int, Row | DeadLetter]]:
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD))
    # utf-8-sig: a byte-order mark from a spreadsheet must not become part of the first column.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                # The reader resumes at the next line; the unreadable one is accounted for.
                where = f"{path.name}:{reader.line_num}"
                reason = f"unreadable CSV: {error}"
                yield reader.line_num, DeadLetter.of("connector", path.name, reason, "", where)
                continue
            where = f"{path.name}:{reader.line_num}"
            raw = json.dumps(row, default=str, ensure_ascii=False)
            if None in row or any(v is None for v in row.values()):
                reason = (
                    f"row has {len(row) - (None in row) + len(row.get(None) or [])} "
                    f"fields, the header has {len(header)}"
                )
                yield reader.line_num, DeadLetter.of("connector", path.name, reason, raw, where)
            elif any(_has_surrogate(v) for v in row.values()):
                yield (
                    reader.line_num,
                    DeadLetter.of(
                        "connector", path.name, "invalid UTF-8", raw.encode(errors="replace"), where
                    ),
                )
            else:
                yield reader.line_num, row


def _has_surrogate(value: Any) -> bool:
    return isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Row | DeadLetter]]:
    with path.open("rb") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                obj = load_json(line)  # a BOM on the first line is dropped
            except UnicodeDecodeError as error:
                yield (
                    lineno,
                    DeadLetter.of("connector", path.name, f"invalid UTF-8: {error}", line, where),
                )
                continue
            except JsonError as error:
                yield (
                    lineno,
                    DeadLetter.of("connector", path.name, f"invalid JSON: {error}", line, where),
                )
                continue
            if not isinstance(obj, dict):
                yield (
                    lineno,
                    DeadLetter.of(
                        "connector", path.name, "expected a JSON object per line", line, where
                    ),
                )
                continue
            yield lineno, obj


def iter_rows(path: Path) -> Iterator[tuple[int, Row | DeadLetter]]:
    """Rows of a CSV or JSONL file (by suffix), bad ones already turned into dead letters."""
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        return _jsonl_rows(path)
    return _csv_rows(path)


@dataclass
class Deduper:
    """Turns a second occurrence of an id into a dead letter naming the first."""

    seen: dict[str, str] = field(default_factory=dict)

    def check(self, record: Record, where: str) -> Record:
        if isinstance(record, Envelope):
            first = self.seen.setdefault(record.id, where)
            if first != where:
                return DeadLetter.of(
                    "connector",
                    record.source,
                    f"duplicate id {record.id} (first at {first})",
                    record.model_dump(mode="json"),
                    where,
                )
        return record


def records_from_rows(
    rows: Iterator[tuple[int, Row | DeadLetter]],
    mapping: ColumnMapping,
    name: str,
    transform: Callable[[Row], Row] | None = None,
) -> Iterator[Record]:
    dedup = Deduper()
    for lineno, row in rows:
        where = f"{name}:{lineno}"
        if isinstance(row, DeadLetter):
            yield row
            continue
        try:
            envelope = map_row(transform(row) if transform else row, mapping)
        except RecursionError:
            reason = "row nested too deeply"
            yield DeadLetter.of("connector", mapping.source, reason, row, where)
            continue
        except (MappingError, ValidationError, ValueError, TypeError, ArithmeticError) as error:
            reason = describe_error(error) if isinstance(error, ValidationError) else str(error)
            yield DeadLetter.of("connector", mapping.source, reason, row, where)
            continue
        yield dedup.check(envelope, where)


def read_file(path: Path, mapping: ColumnMapping) -> Iterator[Record]:
    """Every row of a CSV/JSONL file as an envelope or a dead letter, in file order."""
    return records_from_rows(iter_rows(path), mapping, path.name)
