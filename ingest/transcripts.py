"""Support conversations from help-desk ticket exports and plain-text transcripts.

``read_conversations`` turns a file of conversations into one ``support_turn`` envelope per
turn (``conversation_id``, ``turn_index`` 0..n-1 in conversation order, ``role``), or, for a
conversation that cannot be read faithfully, one dead letter with the reason. A conversation
is all or nothing: a partial one would misstate who said what and when, so one bad turn sends
the whole conversation to the dead letter, while the file's other conversations still come
through. Formats: ticket JSON/JSONL exports (read by ``ingest.tickets``), speaker-prefixed text
transcripts (read here) and the shipped ``ibm`` and ``twcs`` presets (docs/transcripts.md
describes them, and the choices made).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from ingest.connectors import Record
from ingest.presets import read_ibm, read_ibm_dir, read_twcs
from ingest.tickets import strip_html, ticket_records
from ingest.turns import DEFAULT_ROLES, Conversation, Emitter, Turn, role_map, utc
from schemas import DeadLetter, Role

__all__ = [
    "DEFAULT_ROLES",
    "FORMATS",
    "detect_format",
    "read_conversations",
    "role_map",
    "strip_html",
    "ticket_records",
    "transcript_records",
]

FORMATS = ("auto", "ticket-json", "transcript", "ibm", "twcs")

# --- Plain-text transcripts ---------------------------------------------------------------------

_HEADER = re.compile(r"^\s*###\s*conversation\s+(?P<id>[^\s=]+)(?P<rest>.*)$", re.IGNORECASE)
_PAIR = re.compile(r'(\w+)=(?:"([^"]*)"|(\S+))')
_ISO = r"\d{4}-\d\d-\d\d[ T]\d{1,2}:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?"
_STAMP = re.compile(rf"^\s*(?:\[(?P<bracket>\d[^\]]{{0,39}})\]|(?P<iso>{_ISO}))\s*")
_WORD = r"[^\W\d_][\w'.-]*"
_LABEL = re.compile(
    rf"(?P<label>{_WORD}(?: {_WORD}){{0,2}}?)\s*(?:\((?P<name>[^()]{{1,80}})\))?\s*:(?:\s+|$)"
)
_CLOCK = re.compile(r"^(\d{1,2}):(\d\d)(?::(\d\d))?\s*([AaPp][Mm])?$")


def _iso(text: str) -> datetime:
    """A full date and time; one without an offset is UTC, one with keeps its offset."""
    try:
        if re.fullmatch(_ISO, text.strip()):
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except ValueError:
        pass
    raise ValueError(f"unparseable timestamp {text!r}")


def _stamp(text: str) -> datetime | time:
    """A turn's timestamp: a clock time (its date comes from the turns before) or a full one."""
    clock = _CLOCK.match(text.strip())
    if clock is None:
        return _iso(text)
    hour, minute, second = int(clock[1]), int(clock[2]), int(clock[3] or 0)
    if clock[4] and 1 <= hour <= 12:
        hour = hour % 12 + (12 if clock[4].lower() == "pm" else 0)
    elif clock[4]:
        hour = 99
    try:
        return time(hour, minute, second)
    except ValueError:
        raise ValueError(f"unparseable timestamp {text!r}") from None


def _timeline(
    conv: Conversation,
    stamps: list[datetime | time | None],
    start: datetime | None,
    file_time: datetime | None,
) -> None:
    """Give every turn a time; the transcript's line order is the conversation's order."""
    zone = start.tzinfo if start is not None and start.tzinfo is not None else UTC
    prev: datetime | None = None
    for i, (turn, stamp) in enumerate(zip(conv.turns, stamps, strict=True)):
        ref, origin = prev or start or file_time, "turn"
        if isinstance(stamp, datetime):
            at: datetime | None = stamp
        elif isinstance(stamp, time):
            if ref is None:
                raise ValueError(f"turn {i} has a clock time but no date: give start=")
            local = ref.astimezone(zone)
            at = datetime.combine(local.date(), stamp, tzinfo=zone)
            if local - at > timedelta(hours=12):
                at += timedelta(days=1)  # the conversation went past midnight
            origin = "turn" if prev or start else "file"
        else:
            at, origin = ref, "previous" if prev else "start" if start else "file"
        if at is not None and prev is not None and at < prev:
            raise ValueError(f"time goes backwards at turn {i} ({utc(at)} after {prev})")
        turn.at = utc(at) if at is not None else None
        turn.meta["time_from"] = origin
        prev = turn.at or prev


def _transcript(
    where: str,
    head: str | None,
    body: list[tuple[int, str | None]],
    brand: str | None,
    start: datetime | None,
    file_time: datetime | None,
    roles: dict[str, Role],
) -> Conversation:
    raw = "\n".join([head or ""] * (head is not None) + [t or "<not UTF-8>" for _, t in body])
    conv = Conversation(Path(where.rpartition(":")[0]).stem, brand, where, raw)
    try:
        if head is not None:
            header = _HEADER.match(head)
            if header is None:
                conv.native_id = None
                raise ValueError("bad header: expected '### conversation <id> brand=<Brand>'")
            conv.native_id = header["id"]
            for key, quoted, plain in _PAIR.findall(header["rest"]):
                value = (quoted or plain).strip()
                if key == "brand":
                    conv.brand = value or brand
                elif key == "start":
                    start = _iso(value)
                else:
                    conv.meta[key] = value[:200]
        stamps: list[datetime | time | None] = []
        for n, text in body:
            if text is None:
                raise ValueError(f"line {n} is not valid UTF-8")
            if not text.strip():
                continue
            stamp = _STAMP.match(text)
            rest = text[stamp.end() :] if stamp else text.lstrip()
            label = _LABEL.match(rest)
            if stamp and not label:
                raise ValueError(f"line {n}: a timestamp without a 'Speaker:' label")
            if label is None or (stamp is None and " " in label["label"]):
                if not conv.turns:
                    raise ValueError(f"line {n}: text before the first speaker line")
                last = conv.turns[-1]  # a line without a speaker continues the turn before it
                last.text = f"{last.text}\n{text.strip()}" if last.text else text.strip()
                continue
            role = roles.get(label["label"].lower())
            if role is None:
                raise ValueError(f"line {n}: unknown speaker {label['label']!r}")
            author = (label["name"] or "").strip() or None
            if author is None and label["label"].lower() not in DEFAULT_ROLES:
                author = label["label"]
            conv.turns.append(Turn(role, rest[label.end() :].strip(), author))
            stamps.append(_stamp(stamp["bracket"] or stamp["iso"]) if stamp else None)
        _timeline(conv, stamps, start, file_time)
    except (ValueError, OverflowError) as error:  # overflow: dates at the calendar's ends
        conv.error = str(error)
    return conv


def transcript_records(
    data: bytes,
    name: str,
    *,
    brand: str | None = None,
    source: str = "transcript",
    roles: Mapping[str, Role | str] | None = None,
    start: datetime | None = None,
    file_time: datetime | None = None,
) -> Iterator[Record]:
    """Envelopes and dead letters from a speaker-prefixed text transcript.

    Without ``### conversation`` headers the whole text is one conversation named after the
    file. ``brand`` and ``start`` apply where a header gives none; ``file_time`` dates turns
    when nothing else does (marked ``time_from: file`` in the metadata).
    """
    emitter, mapping = Emitter(source), role_map(roles)
    start = start.replace(tzinfo=UTC) if start and start.tzinfo is None else start
    file_time = utc(file_time) if file_time is not None else None
    lines: list[tuple[int, str | None]] = []
    for n, line in enumerate(data.removeprefix(codecs.BOM_UTF8).split(b"\n"), start=1):
        try:
            lines.append((n, line.rstrip(b"\r").decode("utf-8")))
        except UnicodeDecodeError:
            lines.append((n, None))
    heads = [i for i, (_, text) in enumerate(lines) if text and text.lstrip().startswith("###")]
    if not heads:
        conv = _transcript(f"{name}:1", None, lines, brand, start, file_time, mapping)
        yield from emitter.records(conv)
        return
    preamble = [(n, t) for n, t in lines[: heads[0]] if t is None or t.strip()]
    if preamble:
        reason = f"{len(preamble)} lines before the first '### conversation' header"
        text = "\n".join(t or "<not UTF-8>" for _, t in preamble)
        yield DeadLetter.of("connector", source, reason, text, f"{name}:{preamble[0][0]}")
    for a, b in zip(heads, [*heads[1:], len(lines)], strict=True):
        where, head = f"{name}:{lines[a][0]}", lines[a][1]
        yield from emitter.records(
            _transcript(where, head, lines[a + 1 : b], brand, start, file_time, mapping)
        )


# --- One entry point ----------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """Which of ``FORMATS`` a file (or the IBM dialogs' folder) is, from its content."""
    if path.is_dir():
        if (path / "dev.json").is_file() or (path / "test.json").is_file():
            return "ibm"
        raise ValueError(f"{path} is a folder; only the IBM dialogs' folder is read as one")
    with path.open("rb") as handle:
        head = handle.read(65_536).removeprefix(codecs.BOM_UTF8)
    first_line = head.split(b"\n", 1)[0].lower()
    if path.suffix.lower() == ".csv" or (b"tweet_id" in first_line and b"," in first_line):
        if all(col in first_line for col in (b"tweet_id", b"inbound", b"in_response_to")):
            return "twcs"
        raise ValueError(f"{path.name} is a CSV of rows, not conversations: replay it with --map")
    if head.lstrip()[:1] in (b"[", b"{"):
        return "ibm" if b'"dialogHeader"' in head else "ticket-json"
    return "transcript"


def read_conversations(
    path: Path | str,
    fmt: str = "auto",
    brand: str | None = None,
    *,
    source: str | None = None,
    roles: Mapping[str, Role | str] | None = None,
    start: datetime | None = None,
) -> Iterator[Record]:
    """Every conversation of a file as per-turn envelopes, or a dead letter with the reason.

    ``fmt`` is one of ``FORMATS`` ("auto" looks at the content). ``brand`` is the default for
    conversations that name none; ``source`` names the envelopes' source (default: the
    format); ``roles`` adds speaker/author-role names; ``start`` dates untimed transcripts.
    Raises ValueError for an unknown format or a file that holds no conversations at all.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    mapping = role_map(roles)
    if fmt == "ibm":
        return read_ibm_dir(path) if path.is_dir() else read_ibm(path)
    if fmt == "twcs":
        return read_twcs(path)
    data = path.read_bytes()
    if fmt == "ticket-json":
        return ticket_records(
            data, path.name, brand=brand, source=source or "ticket", roles=mapping
        )
    file_time = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return transcript_records(
        data,
        path.name,
        brand=brand,
        source=source or "transcript",
        roles=mapping,
        start=start,
        file_time=file_time,
    )
