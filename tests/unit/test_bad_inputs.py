"""The bad-input corpus through every entry point short of a broker: the parser (the raw
topic's path), HTTP push bodies, CSV and JSONL replay, and the web app in-process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ingest import ColumnMapping, PushError, Redactor, parse_push, read_file
from schemas import DeadLetter, Envelope, parse_envelope
from stream_jobs.testing import FakeIngest
from stream_jobs.web import WebLimits, make_app
from tests.bad_inputs import (
    ACCEPTED,
    CARD,
    CASES,
    DEAD,
    EMAIL,
    NA,
    PHONE,
    REFUSED,
    Case,
    bodies,
    csv_bytes,
)

VALID = CASES[0]
assert VALID.kind == "valid"
IDS = [c.kind for c in CASES]


def test_the_corpus_covers_at_least_thirty_kinds() -> None:
    assert len(set(IDS)) == len(IDS) >= 30
    for case in CASES:
        outcomes = set(case.outcomes.values())
        assert outcomes <= {ACCEPTED, DEAD, REFUSED, NA}, case.kind
        assert case.reason or DEAD not in outcomes, f"{case.kind}: say what the reason names"


def check(case: Case, where: str, record: Envelope | DeadLetter | None) -> None:
    expected = case.outcomes[where]
    if expected == ACCEPTED:
        assert isinstance(record, Envelope), f"{case.kind} via {where}: {record}"
        if case.stored_text is not None:
            assert Redactor().envelope(record).text == case.stored_text
    else:
        assert isinstance(record, DeadLetter), f"{case.kind} via {where}: {record}"
        assert case.reason in record.reason, f"{case.kind} via {where}: {record.reason}"
        assert record.raw or case.kind == "nul_in_text"


def pushed(result: Any, ident: str) -> Envelope | DeadLetter | None:
    """The record of the case's item: the rejected one if any, else the last accepted."""
    if result.rejected:
        return result.rejected[-1]  # type: ignore[no-any-return]
    return result.accepted[-1] if result.accepted else None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_http_push_as_array_element_ndjson_line_and_whole_body(case: Case) -> None:
    # A valid item goes first (the duplicate's original); it must come through whatever follows.
    first = [] if case is VALID else [VALID]
    if case.outcomes["array"] != NA:
        items = [c.array_element("p") for c in [*first, case]]
        result = parse_push(json.dumps(items).encode())
        assert [e.id for e in result.accepted[:1]] == ["p-valid"]
        check(case, "array", pushed(result, case.ident("p")))
    body = b"\n".join(c.line("p") for c in [*first, case]) + b"\n"
    result = parse_push(body, "application/x-ndjson")
    assert result.accepted[0].id == "p-valid"
    check(case, "ndjson", pushed(result, case.ident("p")))
    whole = case.outcomes["whole"]
    if whole == REFUSED:
        with pytest.raises(PushError, match=r"JSON|UTF-8") as refused:
            parse_push(case.line("w"))
        assert refused.value.status == 400
    elif whole != NA:
        result = parse_push(case.line("w"))
        assert len(result.accepted) + len(result.rejected) == 1
        check(case, "whole", pushed(result, case.ident("w")))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_raw_topic_records_are_parsed_or_dead_lettered(case: Case) -> None:
    record = parse_envelope(case.line("t"), stage="classify", location="raw[0]@1")
    if case.kind == "duplicate_id":
        # One message alone is valid; the sink finds the id stored with another text.
        assert isinstance(record, Envelope)
        return
    check(case, "topic", record)
    if isinstance(record, DeadLetter):
        assert record.stage == "classify" and record.location == "raw[0]@1"
        assert len(record.to_bytes()) < 300_000


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jsonl_and_csv_replay(case: Case, tmp_path: Path) -> None:
    jsonl = tmp_path / "corpus.jsonl"
    first = [] if case is VALID else [VALID]
    jsonl.write_bytes(b"".join(c.line("f") + b"\n" for c in [*first, case]))
    records = list(read_file(jsonl, ColumnMapping(source="jsonl")))
    assert len(records) == len(first) + 1 and isinstance(records[0], Envelope)
    check(case, "jsonl", records[-1])
    if case.outcomes["csv"] == NA:
        return
    element = case.element("f")
    assert isinstance(element, dict)
    path = tmp_path / "corpus.csv"
    path.write_bytes(csv_bytes([c.element("f") for c in [*first, case]]))  # type: ignore[misc]
    records = list(read_file(path, ColumnMapping(source="csv")))
    assert len(records) == len(first) + 1 and isinstance(records[0], Envelope)
    check(case, "csv", records[-1])


def test_file_level_trouble_is_dead_lettered_row_by_row(tmp_path: Path) -> None:
    rows = [VALID.element("f"), {**VALID.element("f"), "id": "second"}]
    good = csv_bytes(rows)  # type: ignore[arg-type]
    header, first, second = good.splitlines()
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + good)  # a spreadsheet's byte-order mark
    assert all(isinstance(r, Envelope) for r in read_file(path, ColumnMapping(source="c")))
    path.write_bytes(b"\n".join([header, first + b",extra", b"\xff" + second[1:], second]) + b"\n")
    records = list(read_file(path, ColumnMapping(source="c")))
    assert [type(r).__name__ for r in records] == ["DeadLetter", "DeadLetter", "Envelope"]
    assert "fields" in records[0].reason and "UTF-8" in records[1].reason  # type: ignore[union-attr]
    path = tmp_path / "epoch.jsonl"
    path.write_text(json.dumps({**VALID.element("f"), "created_at": 1e300}) + "\n")
    [letter] = list(read_file(path, ColumnMapping(source="j")))
    assert isinstance(letter, DeadLetter) and "timestamp" in letter.reason


def test_dead_letters_carry_no_pii_once_redacted() -> None:
    [pii_dead] = [c for c in CASES if c.kind == "pii_dead"]
    record = parse_envelope(pii_dead.line("t"), stage="classify")
    assert isinstance(record, DeadLetter) and EMAIL in record.raw
    redacted = Redactor().dead_letter(record)
    for secret in (EMAIL, PHONE, CARD, "4111111111111111"):
        assert secret not in redacted.raw
    assert "[EMAIL]" in redacted.raw and "#123456789" in redacted.raw


LIMITS = WebLimits(max_request_bytes=4_000_000, max_push_items=200, rate_per_s=0)


def serve(scenario: Any, limits: WebLimits = LIMITS) -> FakeIngest:
    ingest = FakeIngest()
    store: Any = SimpleNamespace(database="x")

    async def run() -> None:
        app = make_app(store, store, ingest, dict, None, limits)
        async with TestClient(TestServer(app)) as client:
            await scenario(client)

    asyncio.run(run())
    return ingest


def test_the_whole_corpus_in_one_request_loses_no_valid_item() -> None:
    accepted = [c for c in CASES if c.outcomes["ndjson"] == ACCEPTED]

    async def scenario(client: TestClient) -> None:
        body = b"\n".join(c.line("nd") for c in CASES)
        r = await client.post(
            "/ingest", data=body, headers={"Content-Type": "application/x-ndjson"}
        )
        answer = await r.json()
        assert r.status == 202 and answer["accepted"] == len(accepted)
        assert len(answer["rejected"]) == len(CASES) - len(accepted)
        assert all(item["reason"] and item["at"].startswith("line ") for item in answer["rejected"])
        array = [e for c in CASES if (e := c.array_element("ar")) is not None]
        r = await client.post("/ingest", json=array)
        assert r.status == 202
        assert (await client.get("/ping")).status == 200

    ingest = serve(scenario)
    ids = [e.id for e in ingest.envelopes]
    assert len(ids) == len(set(ids))
    expected = [parse_envelope(c.line("nd"), "test") for c in accepted]
    assert set(ids) >= {e.id for e in expected if isinstance(e, Envelope)}
    assert all(isinstance(e, Envelope) for e in expected)
    assert all(isinstance(d.reason, str) and d.stage == "http" for d in ingest.dead)


@pytest.mark.parametrize("body", bodies(4_000_000, 200), ids=lambda b: b.kind)
def test_whole_bodies_get_a_clear_answer(body: Any) -> None:
    async def scenario(client: TestClient) -> None:
        r = await client.post(
            "/ingest", data=body.body, headers={"Content-Type": body.content_type}
        )
        assert r.status == body.status, await r.text()
        answer = await r.json()
        if body.status in (413, 400) and "error" in answer:
            assert body.reason in answer["error"]
        elif body.status == 400:
            assert all(body.reason in item["reason"] for item in answer["rejected"])
        assert (await client.get("/ping")).status == 200

    ingest = serve(scenario)
    if body.status == 413:
        assert not ingest.envelopes and not ingest.dead  # refused whole: nothing published


def test_docs_table_matches_the_corpus() -> None:
    from tests.bad_inputs import markdown_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    assert markdown_table() in doc, "regenerate the table in docs/security.md (see there how)"
