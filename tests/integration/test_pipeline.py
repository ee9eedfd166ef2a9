"""The whole pipeline across real boundaries: broker, faust worker, embedded ClickHouse."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from ingest.redact import Redactor
from models import Classifier, classify_envelopes
from schemas import DeadLetter, Envelope
from stream_jobs.service import demo_records
from stream_jobs.testing import LocalStack

pytestmark = pytest.mark.integration


def test_real_messages_arrive_exactly_once_and_counts_match_direct_classification(
    stack: LocalStack,
) -> None:
    records = list(demo_records(limit=2600))
    envelopes = [r for r in records if isinstance(r, Envelope)]
    dead = [r for r in records if isinstance(r, DeadLetter)]
    assert len(envelopes) >= 2000
    assert {e.source for e in envelopes} == {"airline", "twcs", "ibm"}

    stack.publish(records)
    stack.wait_for_rows(len(envelopes))
    time.sleep(2)  # anything doubled would land within the next sink window

    [totals] = stack.sql("SELECT count() AS n, uniqExact(id) AS ids FROM relradar.messages")
    assert totals == {"n": len(envelopes), "ids": len(envelopes)}
    stored_ids = {r["id"] for r in stack.sql("SELECT id FROM relradar.messages")}
    assert stored_ids == {e.id for e in envelopes}

    # What the pipeline classifies is the redacted text (PII never reaches the model or store).
    redacted = Redactor().envelopes(envelopes)
    predictions = classify_envelopes(Classifier.from_pretrained("default"), redacted)
    pairs = zip(redacted, predictions, strict=True)
    expected = Counter((e.brand, p.label.value) for e, p in pairs)
    stored = {
        (r["brand"], r["label"]): r["n"]
        for r in stack.sql(
            "SELECT brand, toString(label) AS label, count() AS n FROM relradar.messages "
            "GROUP BY brand, label"
        )
    }
    assert stored == dict(expected)
    for grain in ("minute", "hour", "day"):
        aggregated = {
            (r["brand"], r["label"]): r["n"]
            for r in stack.sql(
                f"SELECT brand, toString(label) AS label, sum(messages) AS n "
                f"FROM relradar.counts_{grain} GROUP BY brand, label"
            )
        }
        assert aggregated == dict(expected), grain

    letters = [json.loads(v) for v in stack.read_topic(stack.topics.deadletter, len(dead))]
    assert len(letters) == len(dead)
    assert all(letter["reason"] for letter in letters)


def _envelope(brand: str, text: str) -> dict[str, object]:
    return {
        "id": f"push:{uuid.uuid4()}",
        "source": "push-test",
        "kind": "social_post",
        "brand": brand,
        "text": text,
        "created_at": datetime.now(UTC).isoformat(),
    }


def test_http_push_stores_valid_items_and_dead_letters_the_rest(stack: LocalStack) -> None:
    brand = f"PushBrand-{uuid.uuid4().hex[:6]}"
    good = [_envelope(brand, f"@{brand} where is my order #{i}?") for i in range(5)]
    bad = [{**_envelope(brand, "x"), "text": ""}, {"id": "no-brand", "text": "hi"}]
    lines = (
        [json.dumps(x) for x in good[:3] + bad] + ["{not json"] + [json.dumps(x) for x in good[3:]]
    )
    status, answer = stack.post("/ingest", "\n".join(lines).encode(), "application/x-ndjson")
    assert status == 202
    assert answer["accepted"] == 5
    assert len(answer["rejected"]) == 3
    query = f"SELECT count() AS n FROM relradar.messages WHERE brand = '{brand}'"
    deadline = time.monotonic() + 60
    while stack.sql(query)[0]["n"] < 5 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert stack.sql(query)[0]["n"] == 5

    status, answer = stack.post("/ingest", b"[1, 2", "application/json")
    assert status == 400 and "not JSON" in answer["error"]


def test_garbage_on_the_raw_topic_becomes_a_dead_letter_and_the_worker_keeps_going(
    stack: LocalStack,
) -> None:
    marker = uuid.uuid4().hex
    before = len(stack.read_topic(stack.topics.deadletter, 10**9, timeout=3))
    stack.publisher.send_raw(stack.topics.raw, f'{{"garbage": "{marker}"}}'.encode())
    stack.publisher.send_raw(stack.topics.raw, b"\xff\xfe not utf-8")
    brand = f"AfterGarbage-{marker[:6]}"
    stack.publish([Envelope.model_validate(_envelope(brand, "still flowing?"))])
    deadline = time.monotonic() + 60
    query = f"SELECT count() AS n FROM relradar.messages WHERE brand = '{brand}'"
    while stack.sql(query)[0]["n"] < 1 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert stack.sql(query)[0]["n"] == 1
    letters = [json.loads(v) for v in stack.read_topic(stack.topics.deadletter, before + 2)]
    mine = [d for d in letters if marker in d["raw"] or "utf-8" in d["reason"].lower()]
    assert {d["stage"] for d in mine} == {"classify"}
    assert len(mine) == 2


def test_sql_command_queries_the_running_service(stack: LocalStack) -> None:
    env = {"RELRADAR_DATA_DIR": stack.env_settings["data_dir"], "PATH": ""}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream_jobs.cli",
            "sql",
            "--format",
            "json",
            "SELECT brand, toString(label) AS label, count() AS n FROM relradar.messages "
            "GROUP BY brand, label ORDER BY n DESC LIMIT 3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    rows = json.loads(done.stdout)
    assert len(rows) == 3 and set(rows[0]) == {"brand", "label", "n"}
    assert rows[0]["n"] >= rows[1]["n"] >= rows[2]["n"] > 0

    refused = subprocess.run(
        [sys.executable, "-m", "stream_jobs.cli", "sql", "DROP TABLE relradar.messages"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode != 0 and "only read queries" in refused.stderr
