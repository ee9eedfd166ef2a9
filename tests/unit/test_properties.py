"""Properties that must hold for any input: the parsers never crash and account for every
record, valid envelopes round-trip, and redaction is idempotent and keeps what is not PII."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest import ColumnMapping, PushError, Redactor, parse_push, read_file, redact_pii
from ingest.presets import read_airline, read_ibm, read_twcs
from schemas import DeadLetter, Envelope, parse_envelope

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["id", "source", "kind", "brand", "text", "created_at", "turn_index", "role", "author"]
# Objects that look like envelopes, with any value in any field.
envelope_like = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=8
)

# Names and ids: visible characters (spaces inside are fine, invisible ones are refused).
visible = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"))
names = st.builds(
    lambda a, b: a + b,
    st.text(visible, min_size=1, max_size=20),
    st.text(max_size=10).map(lambda s: "".join(c for c in s if c.isprintable())),
)
times = st.datetimes(
    min_value=datetime(1990, 1, 2),
    max_value=datetime.now() - timedelta(days=1),  # bounds are naive; the zone is UTC
    timezones=st.just(UTC),
)


@st.composite
def valid_envelopes(draw: st.DrawFn) -> Envelope:
    turn = draw(st.booleans())
    text = draw(st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s))
    data: dict[str, Any] = {
        "id": draw(names),
        "source": draw(names),
        "kind": "support_turn" if turn else "social_post",
        "brand": draw(names),
        "text": text + " ok",
        "created_at": draw(times),
        "role": draw(st.sampled_from(["customer", "agent"])),
        "metadata": draw(st.dictionaries(st.text(max_size=10), st.integers() | names, max_size=3)),
    }
    if turn:
        data |= {"conversation_id": draw(names), "turn_index": draw(st.integers(0, 10_000))}
    record = parse_envelope(data, "test")
    if isinstance(record, DeadLetter):  # an invisible character drawn into a name: skip it
        from hypothesis import reject

        reject()
    assert isinstance(record, Envelope)
    return record


def records_are_sound(record: Envelope | DeadLetter) -> None:
    assert isinstance(record, Envelope | DeadLetter)
    # Whatever came back can be written to a topic.
    json.loads(record.to_bytes())
    if isinstance(record, DeadLetter):
        assert record.reason and record.source


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_envelope_never_raises_on_bytes(data: bytes) -> None:
    records_are_sound(parse_envelope(data, "test"))


@FAST
@given(envelope_like)
def test_parse_envelope_never_raises_on_objects(data: dict[str, Any]) -> None:
    records_are_sound(parse_envelope(data, "test"))
    records_are_sound(parse_envelope(json.dumps(data).encode(), "test"))


@FAST
@given(valid_envelopes())
def test_valid_envelopes_round_trip(envelope: Envelope) -> None:
    again = parse_envelope(envelope.to_bytes(), "test")
    assert again == envelope
    assert parse_envelope(envelope.model_dump(mode="json"), "test") == envelope


@FAST
@given(
    st.binary(max_size=400)
    | st.lists(envelope_like, max_size=5).map(lambda x: json.dumps(x).encode()),
    st.sampled_from(["application/json", "application/x-ndjson", "text/plain", ""]),
)
def test_parse_push_answers_every_body(body: bytes, content_type: str) -> None:
    try:
        result = parse_push(body, content_type, max_items=50)
    except PushError as error:
        assert str(error) and error.status in (400, 413)
        return
    for record in [*result.accepted, *result.rejected]:
        records_are_sound(record)
    assert json.dumps(result.summary())


@FAST
@given(st.lists(envelope_like, min_size=1, max_size=8))
def test_parse_push_accounts_for_every_item(items: list[dict[str, Any]]) -> None:
    for body, kind in [
        (json.dumps(items).encode(), "application/json"),
        ("\n".join(json.dumps(i) for i in items).encode(), "application/x-ndjson"),
    ]:
        result = parse_push(body, kind)
        assert len(result.accepted) + len(result.rejected) == len(items)
        assert len({e.id for e in result.accepted}) == len(result.accepted)


@contextmanager
def in_file(name: str, data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        yield path


cells = st.text(max_size=40) | st.sampled_from(["", "2025-01-01T00:00:00Z", "1", "-1", "Acme"])
CSV_COLUMNS = ["id", "text", "brand", "created_at", "turn_index", "kind", "extra"]


@FAST
@given(st.lists(st.fixed_dictionaries({c: cells for c in CSV_COLUMNS}), max_size=8))
def test_csv_replay_gives_one_record_per_row(rows: list[dict[str, str]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    with in_file("rows.csv", out.getvalue().encode("utf-8", "surrogatepass")) as path:
        records = list(read_file(path, ColumnMapping(source="p")))
        assert len(records) == len(rows)
        for record in records:
            records_are_sound(record)


@FAST
@given(st.lists(envelope_like.map(json.dumps).map(str.encode) | st.binary(max_size=60), max_size=8))
def test_jsonl_replay_gives_one_record_per_line(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    with in_file("rows.jsonl", b"\n".join(lines)) as path:
        records = list(read_file(path, ColumnMapping(source="p")))
        assert len(records) == sum(1 for line in lines if line.strip())
        for record in records:
            records_are_sound(record)


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        total = 0
        for i, char in enumerate(reversed(body + check)):
            d = int(char) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")


emails = st.from_regex(r"[a-z][a-z0-9._]{0,10}@[a-z]{2,8}\.(com|org|de|co\.uk)", fullmatch=True)
phones = st.from_regex(
    r"\+(44|49|33|91) [0-9]{3} [0-9]{3} [0-9]{4}|\([2-9][0-9]{2}\) [2-9][0-9]{2}-[0-9]{4}",
    fullmatch=True,
)
cards = st.from_regex(r"4[0-9]{14}", fullmatch=True).map(_luhn_complete)
pii = emails | phones | cards
safe_words = st.text(
    st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters="@+"), max_size=12
)


@FAST
@given(st.text(max_size=300))
def test_redaction_is_idempotent_on_any_text(text: str) -> None:
    once = redact_pii(text)
    assert redact_pii(once) == once
    handles = Redactor(handles=True)
    assert handles.text(handles.text(text, "Acme"), "Acme") == handles.text(text, "Acme")


@FAST
@given(
    st.text(
        st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters="@"), max_size=300
    )
)
def test_text_without_digits_or_at_signs_is_kept(text: str) -> None:
    assert redact_pii(text) == text
    assert Redactor(handles=True).text(text) == text


@FAST
@given(st.lists(st.tuples(safe_words, pii), min_size=1, max_size=5), safe_words)
def test_pii_goes_and_the_words_around_it_stay(pairs: list[tuple[str, str]], tail: str) -> None:
    text = "".join(f"{word} {value} " for word, value in pairs) + tail
    out = redact_pii(text)
    for word, value in pairs:
        assert value not in out
        assert word in out
    assert out.endswith(tail)
    assert out.count("[") - text.count("[") >= len(pairs)  # one placeholder per value at least


@FAST
@given(valid_envelopes())
def test_redacted_envelopes_stay_valid(envelope: Envelope) -> None:
    out = Redactor(handles=True, author_key=b"k").envelope(envelope)
    assert parse_envelope(out.model_dump(mode="json"), "test") == out


AIRLINE = ["tweet_id", "airline", "name", "text", "tweet_created", "airline_sentiment"]
TWCS = ["tweet_id", "author_id", "inbound", "created_at", "text", "in_response_to_tweet_id"]
preset_cells = cells | st.sampled_from(
    ["True", "False", "Tue Oct 31 22:10:47 +0000 2017", "1", "2"]
)


def _csv(columns: list[str], rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8", "surrogatepass")


@FAST
@given(st.lists(st.fixed_dictionaries({c: preset_cells for c in AIRLINE}), max_size=6))
def test_airline_preset_reader_gives_one_record_per_row(rows: list[dict[str, str]]) -> None:
    with in_file("Tweets.csv", _csv(AIRLINE, rows)) as path:
        records = list(read_airline(path))
        assert len(records) == len(rows)
        for record in records:
            records_are_sound(record)


@FAST
@given(st.lists(st.fixed_dictionaries({c: preset_cells for c in TWCS}), max_size=6))
def test_twcs_preset_reader_gives_one_record_per_row(rows: list[dict[str, str]]) -> None:
    with in_file("twcs.csv", _csv(TWCS, rows)) as path:
        records = list(read_twcs(path))
        assert len(records) == len(rows)
        for record in records:
            records_are_sound(record)


@FAST
@given(json_values)
def test_ibm_preset_reader_never_raises(dialogs: Any) -> None:
    with in_file("dev.json", json.dumps(dialogs).encode()) as path:
        for record in read_ibm(path):
            records_are_sound(record)


transcript_lines = st.lists(
    st.sampled_from(
        ["Customer: ", "Agent: ", "[10:00] Customer: ", "client: ", "", "--- "]
    ).flatmap(lambda prefix: st.text(max_size=30).map(lambda text: prefix + text)),
    max_size=8,
)


@FAST
@given(
    transcript_lines.map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))
    | st.lists(envelope_like, max_size=3).map(lambda x: json.dumps(x).encode())
    | st.binary(max_size=200),
    st.sampled_from(["transcript", "ticket-json", "auto"]),
)
def test_conversation_files_give_records_or_a_clear_error(data: bytes, fmt: str) -> None:
    from ingest.transcripts import read_conversations

    with in_file("conversation.txt", data) as path:
        try:
            records = list(read_conversations(path, fmt, brand="Acme"))
        except ValueError as error:  # a file that holds no conversation at all
            assert str(error)
            return
        for record in records:
            records_are_sound(record)
