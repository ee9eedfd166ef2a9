"""Support conversations from help-desk ticket exports (JSON documents or JSONL).

``ticket_records`` reads an export holding ``{"tickets": [...], "users": [...]}``, an array of
tickets, one ticket, or one ticket per line, and yields one ``support_turn`` envelope per public
comment (private notes are skipped and counted), in timestamp order, with the author's role
from ``author_role``, the users list or the requester; an unreadable ticket becomes one dead
letter with the reason. ``strip_html`` turns HTML comment bodies into their visible text.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from ingest.connectors import Record, parse_time
from ingest.turns import EPOCH, Conversation, Emitter, Turn, role_map, utc
from schemas import Role
from schemas.envelope import JsonError, JsonScalar, load_json


def _time(value: Any) -> datetime:
    """A timestamp in UTC; raises ValueError with a readable message when it is none."""
    try:
        return utc(parse_time(value))
    except (ValueError, OverflowError, OSError) as error:
        raise ValueError(f"{str(value)[:40]!r} is not a timestamp ({error})") from None


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
) -> Turn:
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
    return Turn(role, _body(comment), author, _time(comment["created_at"]), meta)


def _ticket(
    obj: Any, where: str, brand: str | None, roles: dict[str, Role], users: dict[str, Any]
) -> Conversation:
    if isinstance(obj, dict) and isinstance(obj.get("ticket"), dict):
        obj = obj["ticket"]  # some exports wrap each ticket: {"ticket": {...}}
    if not isinstance(obj, dict):
        return Conversation(None, None, where, obj, error="a ticket must be a JSON object")
    tid = obj.get("id")
    if not isinstance(tid, str | int) or isinstance(tid, bool) or not str(tid).strip():
        return Conversation(None, None, where, obj, error="ticket has no id")
    names = (
        _name(obj.get(k)) for k in ("brand", "brand_name", "organization", "organization_name")
    )
    conv = Conversation(str(tid).strip(), next((n for n in names if n), brand), where, obj)
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
    order = sorted(range(len(conv.turns)), key=lambda i: conv.turns[i].at or EPOCH)
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
) -> Iterator[tuple[str, Any, dict[str, Any]] | Conversation]:
    """(where, ticket, users) for every ticket; unreadable input comes as a failed conversation."""
    data = data.removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        yield Conversation(None, None, name, "", error="empty file: no tickets")
        return
    try:
        doc = load_json(data)
    except (UnicodeDecodeError, JsonError) as error:
        if not _first_line_is_json(data):
            yield Conversation(None, None, name, data, error=f"unparseable JSON: {error}")
            return
        for lineno, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                yield f"{name}:{lineno}", load_json(line), {}
            except (UnicodeDecodeError, JsonError) as bad:
                where = f"{name}:{lineno}"
                yield Conversation(None, None, where, line, error=f"unparseable JSON: {bad}")
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
        yield Conversation(None, None, name, doc, error=reason)


def ticket_records(
    data: bytes,
    name: str,
    *,
    brand: str | None = None,
    source: str = "ticket",
    roles: Mapping[str, Role | str] | None = None,
) -> Iterator[Record]:
    """Envelopes and dead letters from a ticket export (a JSON document or JSONL)."""
    emitter, mapping = Emitter(source), role_map(roles)
    for item in _ticket_docs(data, name):
        if isinstance(item, Conversation):
            yield from emitter.records(item)
        else:
            where, ticket, users = item
            yield from emitter.records(_ticket(ticket, where, brand, mapping, users))
