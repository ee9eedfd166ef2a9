"""Faults for real: SIGKILLed workers, a failing and a slow ClickHouse, a broker outage.

Each test runs the broker and the service as their own processes (``LocalStack``), breaks one
of them the way production breaks, and then counts: every message stored exactly once, every
aggregate equal to what the stored rows say, the service still the same process.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from schemas import ClassifiedMessage, Topics
from stream_jobs.chaos import drill, drill_envelopes, http_sql, local_target, verify
from stream_jobs.testing import LocalStack

pytestmark = pytest.mark.integration


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_three_sigkills_mid_stream_lose_and_double_nothing(tmp_path: Path) -> None:
    with LocalStack(tmp_path, classifier="lexicon") as stack:
        # Sending lasts 50 s; seed 11 waits 3.3, 3.8 and 5.6 s before the kills, and with two
        # ~12 s restarts the third kill lands at ~38 s, while messages are still arriving. At
        # 700/s the sender finished in 7 s and a restarted worker could drain the backlog
        # before the next kill, so whether a kill was mid-stream depended on timing.
        report = drill(local_target(stack), messages=5000, kills=3, rate=100, seed=11)
        # The classified topic holds more records than were sent when a kill caught the worker
        # between publishing and committing: the replays the sink had to collapse were real.
        classified = stack.read_topic(Topics().classified, expect=10**6, timeout=20)
        ids = [ClassifiedMessage.model_validate_json(v).id for v in classified]
    assert report.kills == 3 and report.kills_mid_stream >= 2, report
    assert (report.sent, report.stored_rows, report.distinct_ids) == (5000, 5000, 5000), report
    assert report.duplicates == report.lost == report.unexpected == 0
    assert report.aggregate_mismatches == {
        "counts_minute": 0, "counts_hour": 0, "counts_day": 0, "author_labels": 0,
    }  # fmt: skip
    assert len(set(ids)) == 5000 and len(ids) >= 5000


def test_a_failing_store_pauses_the_pipeline_and_loses_nothing(tmp_path: Path) -> None:
    envelopes = list(drill_envelopes("fail", 4000))
    with LocalStack(tmp_path, classifier="lexicon", chaos_sink_fail_s=20) as stack:
        start = time.monotonic()
        stack.publish(envelopes)
        time.sleep(max(0.0, 12 - (time.monotonic() - start)))
        during = stack.get("/stats")
        stored_during = stack.sql("SELECT count() AS n FROM relradar.messages")[0]["n"]
        stack.wait_for_rows(4000, timeout=180)
        result = verify(http_sql(stack.url), "relradar", "chaos-fail", {e.id for e in envelopes})
        after = stack.get("/stats")
    assert stored_during == 0 and during["rows_written"] == 0
    assert during["sink_retries"] >= 3 and "injected" in during["last_error"]
    # Backpressure: classifying stops once the sink is max_sink_lag behind, so consumption
    # pauses instead of piling classified records up (4,000 were waiting on the topic).
    assert during["classified_out"] - during["sink_seen"] <= 2000 + 256
    assert during["raw_in"] < 4000
    assert result["stored_rows"] == result["distinct_ids"] == 4000 and result["lost"] == 0
    assert not any(result["aggregate_mismatches"].values())
    assert after["rows_written"] == 4000 and after["dead_letters"] == 0


def test_a_slow_store_keeps_memory_bounded(tmp_path: Path) -> None:
    envelopes = list(drill_envelopes("slow", 12000))
    settings = {"chaos_sink_delay_s": 1.0, "sink_batch": 500}
    with LocalStack(tmp_path, classifier="lexicon", **settings) as stack:
        assert stack.service is not None
        pid = stack.service.pid
        before = rss_mib(pid)
        peak, lags = before, []
        sender = threading.Thread(target=stack.publish, args=(envelopes,))
        sender.start()
        while sender.is_alive() or stack.get("/stats")["rows_written"] < 6000:
            peak = max(peak, rss_mib(pid))
            stats = stack.get("/stats")
            lags.append(stats["classified_out"] - stats["sink_seen"])
            time.sleep(0.5)
        sender.join()
        stack.wait_for_rows(12000, timeout=240)
        [row] = stack.sql("SELECT count() AS n, uniqExact(id) AS u FROM relradar.messages")
    # The store takes 500 rows a second at most while 12,000 arrive much faster: the backlog
    # stays in the broker, not in the worker.
    assert max(lags) <= 2000 + 256 + 500
    assert peak - before < 200, (before, peak)
    assert row == {"n": 12000, "u": 12000}


def test_a_broker_outage_at_start_and_mid_run_is_ridden_out(tmp_path: Path) -> None:
    envelopes = list(drill_envelopes("outage", 1500))
    stack = LocalStack(tmp_path, classifier="lexicon")
    try:
        stack.root.mkdir(parents=True, exist_ok=True)
        from stream_jobs.broker import spawn

        stack.broker = spawn(stack.topics.all(), tmp_path / "broker.addr")
        stack.broker.outage(True)
        threading.Timer(15, stack.broker.outage, args=(False,)).start()
        stack.start_service(timeout=180)  # healthy only once the broker is back
        assert stack.service is not None
        pid = stack.service.pid
        stack.publish(envelopes[:500])
        stack.wait_for_rows(500)
        stack.broker.outage(True)
        sender = threading.Thread(target=stack.publish, args=(envelopes[500:1000],))
        sender.start()  # the producer buffers and retries while the broker is away
        time.sleep(8)
        health = stack.get_status("/health")
        pushed = stack.post("/ingest", envelopes[1000].to_bytes())
        stack.broker.outage(False)
        sender.join()
        stack.publish(envelopes[1001:])
        code, _ = stack.post("/ingest", envelopes[1000].to_bytes())
        stack.wait_for_rows(1500, timeout=120)
        [row] = stack.sql("SELECT count() AS n, uniqExact(id) AS u FROM relradar.messages")
        stats = stack.get("/stats")
        assert stack.service.pid == pid and stack.service.poll() is None
    finally:
        stack.stop()
    assert health[0] == 503 and health[1]["broker"] is False
    assert pushed[0] == 503 and "not delivered" in pushed[1]["error"]
    assert code == 202
    assert row == {"n": 1500, "u": 1500}
    assert stats["broker_outages"] >= 1 and stats["broker_up"] is True
