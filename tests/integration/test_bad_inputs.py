"""The whole bad-input corpus against one real stack: HTTP push (array, NDJSON, single
objects, whole bodies), the raw topic, and CSV/JSONL files through ``relradar replay``.

Every bad item must be answered with an error or land on the dead-letter topic with its reason,
every valid item must be stored exactly once, no e-mail, phone or card number may reach the
store or the dead-letter topic, and the service must still answer at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest import ColumnMapping, read_file
from schemas import Envelope, parse_envelope
from stream_jobs.testing import LocalStack
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

pytestmark = pytest.mark.integration
MAX_BYTES, MAX_ITEMS = 4_000_000, 1000
SECRETS = [EMAIL, PHONE, CARD, CARD.replace(" ", "")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    root: Path = tmp_path_factory.mktemp("bad-inputs")
    with LocalStack(
        root, classifier="lexicon", max_request_bytes=MAX_BYTES, max_push_items=MAX_ITEMS
    ) as running:
        yield running


def pushed_id(element: Any) -> str | None:
    """The id an element is stored under when pushed over HTTP (None: not an envelope)."""
    if not isinstance(element, dict):
        element = parse_envelope(element, "x") if isinstance(element, bytes) else None
        return element.id if isinstance(element, Envelope) else None
    record = parse_envelope({"source": "http", **element}, "x")
    return record.id if isinstance(record, Envelope) else None


def replay(stack: LocalStack, path: Path, source: str) -> dict[str, Any]:
    env = {**os.environ, "RELRADAR_DATA_DIR": stack.env_settings["data_dir"]}
    done = subprocess.run(
        [sys.executable, "-m", "stream_jobs.cli", "replay", str(path), "--source-name", source],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_every_bad_input_is_answered_and_every_good_one_stored_once(
    stack: LocalStack, tmp_path: Path
) -> None:
    stored: dict[str, Case] = {}  # id -> case, every item that must be stored
    letters: list[tuple[str, Case, str]] = []  # (ident, case, stage): dead letters expected

    def expect(case: Case, entry: str, outcome: str, record_id: str | None, stage: str) -> None:
        if outcome == ACCEPTED:
            assert record_id is not None, case.kind
            stored[record_id] = case
        elif outcome == DEAD:
            sink = case.kind == "duplicate_id" and entry == "tp"
            letters.append((case.ident(entry), case, "sink" if sink else stage))

    # HTTP: the corpus as one JSON array and as one NDJSON body (valid items must survive).
    array = [c for c in CASES if c.outcomes["array"] != NA]
    status, answer = stack.post(
        "/ingest", json.dumps([c.array_element("ar") for c in array]).encode()
    )
    assert status == 202
    rejected = {int(r["at"].split()[1]): r["reason"] for r in answer["rejected"]}
    for i, case in enumerate(array):
        outcome = case.outcomes["array"]
        assert (i in rejected) == (outcome == DEAD), (case.kind, rejected.get(i))
        assert case.reason in rejected.get(i, "")
        expect(case, "ar", outcome, pushed_id(case.array_element("ar")), "http")
    assert answer["accepted"] == sum(c.outcomes["array"] == ACCEPTED for c in array)

    body = b"\n".join(c.line("nd") for c in CASES)
    status, answer = stack.post("/ingest", body, "application/x-ndjson")
    assert status == 202
    rejected = {int(r["at"].split()[1]): r["reason"] for r in answer["rejected"]}
    for n, case in enumerate(CASES, start=1):
        outcome = case.outcomes["ndjson"]
        assert (n in rejected) == (outcome == DEAD) and case.reason in rejected.get(n, ""), case
        record = pushed_id(case.array_element("nd")) if outcome == ACCEPTED else None
        expect(case, "nd", outcome, record, "http")

    # HTTP: every case alone as the whole body.
    for case in CASES:
        outcome = case.outcomes["whole"]
        if outcome == NA:
            continue
        status, answer = stack.post("/ingest", case.line("wh"))
        if outcome == REFUSED:
            assert status == 400 and answer["error"], case.kind
            continue
        assert status == (202 if outcome == ACCEPTED else 400), (case.kind, answer)
        element = case.array_element("wh")
        expect(case, "wh", outcome, pushed_id(element) if outcome == ACCEPTED else None, "http")

    # HTTP: whole bodies, refused or taken as a whole.
    for item in bodies(MAX_BYTES, MAX_ITEMS):
        status, answer = stack.post("/ingest", item.body, item.content_type)
        assert status == item.status, (item.kind, answer)
        if "error" in answer:
            assert item.reason in answer["error"], (item.kind, answer)
        elif status == 400:
            assert all(item.reason in r["reason"] for r in answer["rejected"])
    stored.update({"bom-body": CASES[0], "plain-body": CASES[0]})

    # The raw topic, as third parties write it (one key: one partition, the order kept).
    for case in CASES:
        stack.publisher.send_raw(stack.topics.raw, case.line("tp"), key=b"corpus")
        record = parse_envelope(case.line("tp"), "x")
        outcome = case.outcomes["topic"]
        expect(case, "tp", outcome, record.id if isinstance(record, Envelope) else None, "classify")
    stack.publisher.flush()

    # Files, through the replay command.
    jsonl, table = tmp_path / "corpus.jsonl", tmp_path / "corpus.csv"
    jsonl.write_bytes(b"".join(c.line("jl") + b"\n" for c in CASES))
    in_csv = [c for c in CASES if c.outcomes["csv"] != NA]
    table.write_bytes(csv_bytes([c.element("cv") for c in in_csv]))  # type: ignore[misc]
    for path, source, entry, cases in [(jsonl, "jsonl", "jl", CASES), (table, "csv", "cv", in_csv)]:
        records = list(read_file(path, ColumnMapping(source=source)))
        assert len(records) == len(cases)
        for case, record in zip(cases, records, strict=True):
            outcome = case.outcomes[source]
            assert isinstance(record, Envelope) == (outcome == ACCEPTED), (source, case.kind)
            expect(case, entry, outcome, getattr(record, "id", None), "connector")
        done = replay(stack, path, source)
        accepted = sum(c.outcomes[source] == ACCEPTED for c in cases)
        assert (done["sent"], done["dead_letters"]) == (accepted, len(cases) - accepted)

    # Every valid item stored, exactly once.
    stack.wait_for_rows(len(stored))

    def missing(found: list[dict[str, Any]]) -> list[str]:
        return [
            f"{ident} ({case.kind}, {stage})"
            for ident, case, stage in letters
            if not any(
                ident in d["raw"] and case.reason in d["reason"] and d["stage"] == stage
                for d in found
            )
        ]

    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = [json.loads(v) for v in stack.read_topic(stack.topics.deadletter, 10**9, 5)]
        if not missing(found):
            break
    [totals] = stack.sql("SELECT count() AS n, uniqExact(id) AS ids FROM relradar.messages")
    assert totals == {"n": len(stored), "ids": len(stored)}
    rows = {r["id"]: r for r in stack.sql("SELECT id, text FROM relradar.messages")}
    assert set(rows) == set(stored)
    for record_id, case in stored.items():
        if case.stored_text is not None:
            assert rows[record_id]["text"] == case.stored_text, case.kind

    # Every bad item on the dead-letter topic, with its reason, from the right stage.
    assert not missing(found), missing(found)
    assert len(letters) >= 150 and len(stored) >= 60

    # No PII in the store or on the dead-letter topic.
    for secret in SECRETS:
        assert not any(secret in r["text"] for r in rows.values())
        assert not any(secret in d["raw"] or secret in d["reason"] for d in found)
    assert any("[EMAIL]" in d["raw"] for d in found)

    # Still serving.
    assert stack.get("/health")["status"] == "ok"
    with urllib.request.urlopen(f"{stack.url}/ping", timeout=10) as response:
        assert response.read() == b"Ok.\n"
