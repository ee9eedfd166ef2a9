"""A corpus of bad and hostile input, as data, with the outcome each entry point must give.

Every ``Case`` is one element (a JSON object, or the raw bytes of one line or message) and
the outcome it must have when it arrives through the HTTP push (``http``: in a JSON array, as
an NDJSON line, or as the whole body), the raw Kafka topic (``topic``), and a file replay
(``jsonl`` and ``csv``: files are read with a column mapping, so unmapped keys are ignored and
CSV cells are all text). ``BODIES`` are whole push requests that are refused or taken as a
whole. The unit and integration tests run all of it; docs/security.md tables it.

Outcomes: ``accepted`` (stored, once), ``dead_letter`` (on the dead-letter topic with the
reason; a push answers it in ``rejected``), ``refused`` (the whole request answered 4xx with a
JSON reason, nothing published), ``n/a`` (cannot be expressed there).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.envelope import load_json

ACCEPTED, DEAD, REFUSED, NA = "accepted", "dead_letter", "refused", "n/a"
WHEN = "2025-06-01T10:00:00Z"
SOON = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
EMAIL, PHONE, CARD = "jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"
PII_TEXT = f"I am {EMAIL}, call {PHONE}, card {CARD}; order #123456789 on 2025-05-30 cost $129.99"


def base(**over: Any) -> dict[str, Any]:
    """A valid envelope (id first, so a truncated dead letter still names it)."""
    item: dict[str, Any] = {
        "id": "ID",
        "source": "corpus",
        "kind": "social_post",
        "brand": "CorpusBrand",
        "text": "where is my order?",
        "created_at": WHEN,
    }
    item.update(over)
    return {k: v for k, v in item.items() if v is not ...}


@dataclass(frozen=True)
class Case:
    kind: str
    item: dict[str, Any] | bytes  # "ID" in it stands for the id, unique per entry point
    http: str  # as an element of a JSON array or as an NDJSON line
    reason: str = ""  # part of the reason of the dead letter or the refusal
    whole: str | None = None  # alone as the whole push body; None: as http
    topic: str | None = None  # None: as http
    jsonl: str | None = None  # None: as topic
    csv: str | None = None  # None: as jsonl; always n/a for raw bytes
    stored_text: str | None = None  # what messages.text holds when accepted and changed
    note: str = ""

    @property
    def outcomes(self) -> dict[str, str]:
        topic = self.topic or self.http
        jsonl = self.jsonl or topic
        return {
            "array": self.http if self.array_element("x") is not None else NA,
            "ndjson": self.http,
            "whole": self.whole or (REFUSED if self.array_element("x") is None else self.http),
            "topic": topic,
            "jsonl": jsonl,
            "csv": NA if isinstance(self.item, bytes) else (self.csv or jsonl),
        }

    def ident(self, entry: str) -> str:
        # The duplicate takes the id of the valid case that comes first at the same entry point.
        return f"{entry}-{'valid' if self.kind == 'duplicate_id' else self.kind}"

    def element(self, entry: str) -> dict[str, Any] | bytes:
        """The element with its id made unique for ``entry`` (an entry point's name)."""
        ident = self.ident(entry)
        if isinstance(self.item, bytes):
            return self.item.replace(b"ID", ident.encode())
        item = dict(self.item)
        # The author names the case too, so its dead letter can be found whatever the id is.
        item.setdefault("author", ident)
        if isinstance(item.get("id"), str):
            item["id"] = item["id"].replace("ID", ident)
        elif isinstance(item.get("id"), int):
            item["id"] = item["id"] * 1000 + sum(map(ord, ident))  # still an integer
        return item

    def line(self, entry: str) -> bytes:
        element = self.element(entry)
        if isinstance(element, bytes):
            return element
        return json.dumps(element, ensure_ascii=False).encode()

    def array_element(self, entry: str) -> Any | None:
        """The element as a value inside a JSON array, or None when raw bytes cannot be one."""
        element = self.element(entry)
        if not isinstance(element, bytes):
            return element
        try:
            return load_json(element)
        except ValueError:
            return None


def _nested(depth: int) -> bytes:
    return b'{"id": "ID", "metadata": ' + b"[" * depth + b"]" * depth + b"}"


_OK = json.dumps(base())[:-1].encode()  # the valid object without its closing brace

CASES: list[Case] = [
    Case("valid", base(), ACCEPTED, note="the baseline every other case varies"),
    Case(
        "duplicate_id",
        base(text="a second message with the first one's id"),
        DEAD,
        "duplicate id",
        whole=NA,
        note="same id as 'valid', other text: in one request or file the second is refused;"
        " on the topic the sink finds the id stored with another text",
    ),
    Case("invalid_json", b'{"id": "ID", "text": "unfinished', DEAD, "invalid JSON"),
    Case("wrong_type_text", base(text=123), DEAD, "text", csv=ACCEPTED, note="CSV: '123' is text"),
    Case(
        "wrong_type_brand",
        base(brand=["a", "b"]),
        DEAD,
        "brand",
        csv=ACCEPTED,
        note="CSV: the cell holds the JSON text, a (strange) brand name",
    ),
    Case("wrong_type_time", base(created_at=[2025, 6, 1]), DEAD, "created_at"),
    Case("missing_text", base(text=...), DEAD, "text"),
    Case("null_text", base(text=None), DEAD, "text"),
    Case("empty_text", base(text=""), DEAD, "text"),
    Case("whitespace_text", base(text=" \n\t "), DEAD, "empty or whitespace"),
    Case(
        "megabyte_text",
        base(text="x" * 1_000_000),
        DEAD,
        "at most 20000 characters",
        note="dead-lettered, not truncated: a cut message may say the opposite",
    ),
    Case("invalid_utf8", _OK.replace(b"where is", b"where \xff\xfe is") + b"}", DEAD, "UTF-8"),
    Case("lone_surrogate", _OK.replace(b"where is", b"where \\ud800 is") + b"}", DEAD, "text"),
    Case(
        "nul_in_text",
        base(text="nul\x00byte"),
        DEAD,
        "NUL",
        note="a NUL means binary data, not text",
    ),
    Case(
        "control_chars",
        base(text="bell\x07 and \x1b[31mred\x1b[0m"),
        ACCEPTED,
        stored_text="bell and [31mred[0m",
        note="controls other than tab/newline/CR are removed (terminal escapes too)",
    ),
    Case(
        "html_script",
        base(text="<script>alert(1)</script><b>hi</b>"),
        ACCEPTED,
        note="stored as written; the dashboard escapes what it shows",
    ),
    Case("emoji_only", base(text="🔥🔥🔥"), ACCEPTED, note="emoji carry meaning"),
    Case("rtl_combining", base(text="שלום مرحبا cafe\u0301 \u202bx\u202c"), ACCEPTED),
    Case("only_marks", base(text="\u0301\u0302\u200d"), DEAD, "no visible character"),
    Case(
        "zero_width_text",
        base(text="pay\u200bpal re\u2060fund"),
        ACCEPTED,
        stored_text="paypal refund",
        note="zero-width space, word joiner, BOM removed",
    ),
    Case("zero_width_only", base(text="\u200b\ufeff\u2060"), DEAD, "empty or whitespace"),
    Case("zero_width_id", base(id="ID\u200bx"), DEAD, "invisible character"),
    Case(
        "bidi_brand",
        base(brand="Acme\u202e"),
        DEAD,
        "invisible character",
        note="a brand must not hide characters",
    ),
    Case(
        "homoglyph_brand",
        base(brand="Аcme"),
        ACCEPTED,
        note="Cyrillic А: a different brand, not merged (not detected)",
    ),
    Case("far_past", base(created_at="1969-12-31T23:59:59Z"), DEAD, "before 1990"),
    Case("epoch_zero", base(created_at=0), DEAD, "before 1990"),
    Case("far_future", base(created_at="2999-01-01T00:00:00Z"), DEAD, "ahead of now"),
    Case("near_future", base(created_at=SOON), ACCEPTED, note="up to a day ahead is clock skew"),
    Case("naive_time", base(created_at="2025-06-01T10:00:00"), ACCEPTED, note="taken as UTC"),
    Case("odd_timezone", base(created_at="2025-06-01T10:00:00+05:45"), ACCEPTED),
    Case("bad_timezone", base(created_at="2025-06-01T10:00:00+25:00"), DEAD, "created_at"),
    Case("named_timezone", base(created_at="2025-06-01 10:00 PST"), DEAD, "created_at"),
    Case(
        "unknown_brand",
        base(brand="Never Heard Of It Ltd."),
        ACCEPTED,
        note="there is no brand registry",
    ),
    Case(
        "sql_text",
        base(text="'; DROP TABLE relradar.messages; --"),
        ACCEPTED,
        note="stored as written: inserts are parameterised",
    ),
    Case("deeply_nested", _nested(100_000), DEAD, "nested too deeply"),
    Case(
        "nested_metadata",
        base(metadata={"a": {"b": {"c": 1}}}),
        DEAD,
        "metadata",
        jsonl=ACCEPTED,
        note="files: metadata is an unmapped column, ignored",
    ),
    Case("huge_metadata", base(metadata={"k": "x" * 10_000}), DEAD, "metadata", jsonl=ACCEPTED),
    Case("bom", b"\xef\xbb\xbf" + _OK + b"}", ACCEPTED, note="a leading BOM is dropped"),
    Case("non_object", b'"ID is a string, not an object"', DEAD, "JSON object"),
    Case(
        "extra_field",
        base(colour="red"),
        DEAD,
        "colour",
        jsonl=ACCEPTED,
        note="the envelope is strict (typos lose data); files ignore unmapped columns",
    ),
    Case(
        "duplicate_key",
        _OK + b', "text": "second"}',
        DEAD,
        "appears twice",
        note="parsers disagree on which value wins",
    ),
    Case("nan_number", _OK + b', "metadata": {"x": NaN}}', DEAD, "NaN"),
    Case("huge_integer", _OK + b', "turn_index": ' + b"9" * 5000 + b"}", DEAD, "digits"),
    Case("int_id", base(id=4242), ACCEPTED, note="an integer id is its decimal string"),
    Case("float_id", base(id=1.5), DEAD, "id", jsonl=ACCEPTED, note="files: 'replay:1.5'"),
    Case("very_long_id", base(id="ID" + "x" * 300), DEAD, "id"),
    Case("negative_turn", base(turn_index=-1), DEAD, "turn_index"),
    Case("huge_turn", base(turn_index=10**12), DEAD, "turn_index"),
    Case("unknown_kind", base(kind="email"), DEAD, "kind"),
    Case("turn_without_conversation", base(kind="support_turn"), DEAD, "conversation_id"),
    Case(
        "pii_text",
        base(text=PII_TEXT),
        ACCEPTED,
        stored_text="I am [EMAIL], call [PHONE], card [CARD]; order #123456789 on 2025-05-30"
        " cost $129.99",
        note="redacted before it is published",
    ),
    Case(
        "pii_dead",
        base(text=PII_TEXT, brand=""),
        DEAD,
        "brand",
        note="the dead letter's raw input is redacted too",
    ),
]


@dataclass(frozen=True)
class Body:
    kind: str
    body: bytes
    content_type: str
    status: int
    reason: str  # part of the JSON error (or of a rejected item's reason when status is 400)


def _items(n: int) -> bytes:
    return json.dumps([base(id=f"many-{i}") for i in range(n)]).encode()


def bodies(max_bytes: int, max_items: int) -> list[Body]:
    """Whole push requests, for an endpoint with these limits."""
    return [
        Body("empty_body", b"", "application/json", 400, "empty body"),
        Body("whitespace_body", b" \n ", "application/x-ndjson", 400, "empty body"),
        Body("body_not_json", b"{nope", "application/json", 400, "not JSON"),
        Body("body_not_utf8", b'{"text": "\xff"}', "application/json", 400, "UTF-8"),
        Body("body_nested", b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested"),
        Body(
            "array_of_non_objects", b'[1, "a", null, [2]]', "application/json", 400, "JSON object"
        ),
        Body("too_many_items", _items(max_items + 1), "application/json", 413, "at most"),
        Body("body_too_large", b" " * (max_bytes + 1), "application/json", 413, "larger than"),
        Body(
            "bom_body",
            b"\xef\xbb\xbf" + json.dumps(base(id="bom-body")).encode(),
            "application/json",
            202,
            "",
        ),
        Body("text_plain_json", json.dumps(base(id="plain-body")).encode(), "text/plain", 202, ""),
        Body("empty_array", b"[]", "application/json", 202, ""),
    ]


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """A CSV file of rows (the union of their keys as header; non-text cells as JSON)."""
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: v if isinstance(v, str) else "" if v is None else json.dumps(v)
                for k, v in row.items()
            }
        )
    return out.getvalue().encode("utf-8")


_WORDS = {ACCEPTED: "stored", DEAD: "dead letter", REFUSED: "refused (400)", NA: "n/a"}


def markdown_table() -> str:
    """The corpus as the table in docs/security.md (a test keeps the two equal)."""
    lines = [
        "| kind | HTTP array / NDJSON | HTTP whole body | raw topic | JSONL replay | CSV replay"
        " | reason; decision |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in CASES:
        o = {k: _WORDS[v] for k, v in case.outcomes.items()}
        http = o["ndjson"] if o["array"] == o["ndjson"] else f"{o['array']} / {o['ndjson']}"
        note = "; ".join(x for x in (f"`{case.reason}`" if case.reason else "", case.note) if x)
        cells = [f"`{case.kind}`", http, o["whole"], o["topic"], o["jsonl"], o["csv"], note]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| whole push request | answer |", "|---|---|"]
    for body in bodies(16 * 1024 * 1024, 10_000):
        reason = f" `{body.reason}`" if body.reason else ""
        lines.append(f"| `{body.kind}` | {body.status}{reason} |")
    return "\n".join(lines)
