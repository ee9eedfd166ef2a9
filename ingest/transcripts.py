"""Support conversations from help-desk ticket exports and plain-text transcripts.

``read_conversations`` turns a file of conversations into one ``support_turn`` envelope per
turn (``conversation_id``, ``turn_index`` 0..n-1 in conversation order, ``role``), or, for a
conversation that cannot be read faithfully, one dead letter with the reason. A conversation
is all or nothing: a partial one would misstate who said what and when, so one bad turn sends
the whole conversation to the dead letter, while the file's other conversations still come
through. Formats: ticket JSON/JSONL exports, speaker-prefixed text transcripts and the shipped
``ibm`` and ``twcs`` presets (docs/transcripts.md describes them, and the choices made).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ingest.connectors import Record, parse_time
from ingest.presets import read_ibm, read_ibm_dir, read_twcs
from schemas import DeadLetter, Envelope, Kind, Role
from schemas.envelope import JsonError, JsonScalar, describe_error, load_json

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FORMATS = ("auto", "ticket-json", "transcript", "ibm", "twcs")
_CUSTOMER = ("customer", "client", "caller", "user", "c", "end-user", "end_user", "requester")
_AGENT = ("agent", "support", "rep", "advisor", "bot", "a", "admin", "staff")
DEFAULT_ROLES: dict[str, Role] = {
    **dict.fromkeys(_CUSTOMER, Role.customer),
    **dict.fromkeys(_AGENT, Role.agent),
}


@dataclass
class _Turn:
    role: Role
    text: str
    author: str | None
    at: datetime | None = None
    meta: dict[str, JsonScalar] = field(default_factory=dict)


@dataclass
class _Conversation:
    native_id: str | None
    brand: str | None
    where: str
    raw: Any
    turns: list[_Turn] = field(default_factory=list)
    error: str | None = None
    meta: dict[str, JsonScalar] = field(default_factory=dict)


class _Emitter:
    """Checks a parsed conversation and turns it into envelopes or one dead letter."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: dict[str, str] = {}

    def records(self, conv: _Conversation) -> list[Record]:
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

    def _problem(self, conv: _Conversation) -> str | None:
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

    def _envelope(self, conv: _Conversation, i: int, turn: _Turn) -> Envelope:
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
            created_at=turn.at or _EPOCH,
            metadata={**conv.meta, **turn.meta},
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time(value: Any) -> datetime:
    """A timestamp in UTC; raises ValueError with a readable message when it is none."""
    try:
        return _utc(parse_time(value))
    except (ValueError, OverflowError, OSError) as error:
        raise ValueError(f"{str(value)[:40]!r} is not a timestamp ({error})") from None


def role_map(roles: Mapping[str, Role | str] | None = None) -> dict[str, Role]:
    """The default speaker/author-role mapping with ``roles`` on top (keys case-insensitive)."""
    merged = dict(DEFAULT_ROLES)
    for name, role in (roles or {}).items():
        try:
            merged[name.strip().lower()] = Role(role)
        except ValueError:
            raise ValueError(f"role for {name!r} must be customer or agent, not {role!r}") from None
    return merged


# --- HTML bodies ------------------------------------------------------------------------------

_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "ul", "ol", "table", "blockquote", "pre", "hr"}
_BLOCK_TAGS |= {f"h{n}" for n in range(1, 7)}
_LOOKS_HTML = re.compile(r"<[a-zA-Z/!][^>]*>|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "style"}:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """Visible text of an HTML body: tags and scripts dropped, entities decoded, lines kept."""
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


# --- Ticket exports -----------------------------------------------------------------------------


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _body(comment: dict[str, Any]) -> str:
    for key in ("plain_body", "body", "html_body"):
        value = comment.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{key} is {type(value).__name__}, not text")
        # plain_body is text by definition; body is HTML in some help desks' exports.
        if key == "html_body" or (key == "body" and _LOOKS_HTML.search(value)):
            return strip_html(value)
        return value.strip()
    return ""


def _comment_turn(
    comment: dict[str, Any], requester: Any, users: dict[str, Any], roles: dict[str, Role]
) -> _Turn:
    author_id = comment.get("author_id")
    user = users.get(str(author_id)) if author_id is not None else None
    user = user if isinstance(user, dict) else {}
    role_name = comment.get("author_role") or user.get("role")
    if role_name is None and requester is not None and str(author_id) == str(requester):
        role_name = "end-user"  # the requester is the customer even without a role field
    if not isinstance(role_name, str):
        raise ValueError("no author_role, and the author is not the requester")
    role = roles.get(role_name.strip().lower())
    if role is None:
        raise ValueError(f"unknown author_role {role_name!r}")
    if "created_at" not in comment:
        raise ValueError("no created_at")
    author = _name(comment.get("author_name")) or _name(comment.get("author")) or _name(user)
    if author is None and author_id is not None and not isinstance(author_id, dict | list):
        author = str(author_id).strip() or None
    meta: dict[str, JsonScalar] = {}
    if isinstance(comment.get("id"), str | int) and not isinstance(comment.get("id"), bool):
        meta["comment_id"] = str(comment["id"])[:200]
    return _Turn(role, _body(comment), author, _time(comment["created_at"]), meta)


def _ticket(
    obj: Any, where: str, brand: str | None, roles: dict[str, Role], users: dict[str, Any]
) -> _Conversation:
    if isinstance(obj, dict) and isinstance(obj.get("ticket"), dict):
        obj = obj["ticket"]  # some exports wrap each ticket: {"ticket": {...}}
    if not isinstance(obj, dict):
        return _Conversation(None, None, where, obj, error="a ticket must be a JSON object")
    tid = obj.get("id")
    if not isinstance(tid, str | int) or isinstance(tid, bool) or not str(tid).strip():
        return _Conversation(None, None, where, obj, error="ticket has no id")
    names = (
        _name(obj.get(k)) for k in ("brand", "brand_name", "organization", "organization_name")
    )
    conv = _Conversation(str(tid).strip(), next((n for n in names if n), brand), where, obj)
    comments = obj.get("comments")
    if not isinstance(comments, list):
        conv.error = "no comments list"
        return conv
    private = 0
    for n, comment in enumerate(comments):
        if not isinstance(comment, dict):
            conv.error = f"comment {n} is not a JSON object"
            return conv
        if comment.get("public", True) in (False, "false", 0):
            private += 1  # internal notes never reached the customer: not turns of the talk
            continue
        try:
            conv.turns.append(_comment_turn(comment, obj.get("requester_id"), users, roles))
        except ValueError as error:
            conv.error = f"comment {n}: {error}"
            return conv
    # The timestamps decide the order: exports list comments in storage order, which can differ.
    order = sorted(range(len(conv.turns)), key=lambda i: conv.turns[i].at or _EPOCH)
    if order != list(range(len(conv.turns))):
        conv.turns = [conv.turns[i] for i in order]
        conv.meta["reordered"] = True
    conv.meta["private_notes_skipped"] = private
    subject = _name(obj.get("subject"))
    if subject:
        conv.meta["subject"] = subject[:200]
    return conv


def _first_line_is_json(data: bytes) -> bool:
    line = data.lstrip().split(b"\n", 1)[0]
    try:
        load_json(line)
    except (UnicodeDecodeError, JsonError):
        return False
    return True


def _ticket_docs(
    data: bytes, name: str
) -> Iterator[tuple[str, Any, dict[str, Any]] | _Conversation]:
    """(where, ticket, users) for every ticket; unreadable input comes as a failed conversation."""
    data = data.removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        yield _Conversation(None, None, name, "", error="empty file: no tickets")
        return
    try:
        doc = load_json(data)
    except (UnicodeDecodeError, JsonError) as error:
        if not _first_line_is_json(data):
            yield _Conversation(None, None, name, data, error=f"unparseable JSON: {error}")
            return
        for lineno, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                yield f"{name}:{lineno}", load_json(line), {}
            except (UnicodeDecodeError, JsonError) as bad:
                where = f"{name}:{lineno}"
                yield _Conversation(None, None, where, line, error=f"unparseable JSON: {bad}")
        return
    if isinstance(doc, dict) and isinstance(doc.get("tickets"), list):
        users = doc.get("users")
        users = users if isinstance(users, list) else []
        by_id = {str(u.get("id")): u for u in users if isinstance(u, dict)}
        for n, ticket in enumerate(doc["tickets"]):
            yield f"{name}#{n}", ticket, by_id
    elif isinstance(doc, list):
        for n, ticket in enumerate(doc):
            yield f"{name}#{n}", ticket, {}
    elif isinstance(doc, dict) and ("comments" in doc or "ticket" in doc):
        yield name, doc, {}
    else:
        reason = "expected {'tickets': [...]}, an array of tickets or one ticket per line"
        yield _Conversation(None, None, name, doc, error=reason)


def ticket_records(
    data: bytes,
    name: str,
    *,
    brand: str | None = None,
    source: str = "ticket",
    roles: Mapping[str, Role | str] | None = None,
) -> Iterator[Record]:
    """Envelopes and dead letters from a ticket export (a JSON document or JSONL)."""
    emitter, mapping = _Emitter(source), role_map(roles)
    for item in _ticket_docs(data, name):
        if isinstance(item, _Conversation):
            yield from emitter.records(item)
        else:
            where, ticket, users = item
            yield from emitter.records(_ticket(ticket, where, brand, mapping, users))


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
    conv: _Conversation,
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
            raise ValueError(f"time goes backwards at turn {i} ({_utc(at)} after {prev})")
        turn.at = _utc(at) if at is not None else None
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
) -> _Conversation:
    raw = "\n".join([head or ""] * (head is not None) + [t or "<not UTF-8>" for _, t in body])
    conv = _Conversation(Path(where.rpartition(":")[0]).stem, brand, where, raw)
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
            conv.turns.append(_Turn(role, rest[label.end() :].strip(), author))
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
    emitter, mapping = _Emitter(source), role_map(roles)
    start = start.replace(tzinfo=UTC) if start and start.tzinfo is None else start
    file_time = _utc(file_time) if file_time is not None else None
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
