"""Alerts end to end: a spike through the real broker, worker and embedded ClickHouse."""

from __future__ import annotations

import html
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from schemas import Envelope
from stream_jobs.testing import LocalStack, free_port, render_page

pytestmark = pytest.mark.integration
T0 = datetime(2025, 6, 1, tzinfo=UTC)
HOSTILE = "@{b} worst company ever, boycott them, I hate you"  # the lexicon reads: enemies
PLAIN = "@{b} where is my order #{i}? it has not arrived"  # the lexicon reads: basic_exchange


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        Receiver.received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", free_port()), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def messages(brand: str, hours: range, per_hour: int, hostile: int) -> list[Envelope]:
    out = []
    for h in hours:
        for i in range(per_hour):
            text = (HOSTILE if i < hostile else PLAIN).format(b=brand, i=i)
            out.append(Envelope(
                id=f"{brand}:{h}:{i}", source="alert-test", kind="social_post", brand=brand,
                text=text, created_at=T0 + timedelta(hours=h, minutes=i % 60),
            ))  # fmt: skip
    return out


def test_a_spike_alerts_once_flat_and_thin_brands_never(tmp_path: Path, webhook: str) -> None:
    week = range(0, 170)
    data = (
        messages("SpikeCo", week, 20, 1)  # 5% enemies for a week
        + messages("SpikeCo", range(170, 173), 20, 9)  # then 45% for three hours
        + messages("FlatCo", range(0, 174), 20, 1)  # 5% throughout
        + messages("TinyCo", range(170, 173), 3, 2)  # 67%, but three messages an hour
        + messages("SpikeCo", range(173, 174), 20, 1)  # a later hour closes the spike's hours
    )
    settings = {"alert_interval_s": 1, "alert_webhooks": f"{webhook}/hook,slack+{webhook}/slack"}
    with LocalStack(tmp_path, classifier="lexicon", **settings) as stack:
        stack.publish(data)
        stack.wait_for_rows(len(data))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(Receiver.received) < 2:
            time.sleep(0.5)
        time.sleep(3)  # later passes must not repeat it
        alerts = stack.sql("SELECT brand, toString(label) AS label, window_start, observed_share,"
                           " expected_share, examples FROM relradar.alerts FINAL")  # fmt: skip
        assert [(a["brand"], a["label"]) for a in alerts] == [("SpikeCo", "enemies")]
        alert = alerts[0]
        assert alert["window_start"].startswith("2025-06-08 02:00")  # hour 170
        assert alert["observed_share"] == 0.45 and alert["expected_share"] < 0.06
        assert len(alert["examples"]) == 3 and "boycott" in alert["examples"][0]

        topic = [json.loads(v) for v in stack.read_topic(stack.topics.alerts, 1)]
        assert [(a["brand"], a["label"]) for a in topic] == [("SpikeCo", "enemies")]
        paths = sorted(r["path"] for r in Receiver.received)
        assert paths == ["/hook", "/slack"]
        generic = next(r["body"] for r in Receiver.received if r["path"] == "/hook")
        slack = next(r["body"] for r in Receiver.received if r["path"] == "/slack")
        assert generic["brand"] == "SpikeCo" and generic["label"] == "enemies"  # type: ignore[index]
        assert "SpikeCo" in slack["text"]  # type: ignore[index]

        # The dashboard, rendered in headless Chromium, draws exactly this data.
        shot = Path(os.environ.get("RELRADAR_SCREENSHOT_DIR", tmp_path)) / "dashboard.png"
        dom = render_page(f"{stack.url}/dashboard?brand=SpikeCo&days=30", tmp_path, shot)
        match = re.search(r'data-rendered="([^"]*)"', dom)
        assert match, dom[-2000:]
        drawn = json.loads(html.unescape(match.group(1)))
        assert "error" not in drawn, drawn
        assert drawn["brand"] == "SpikeCo"
        assert drawn["mix"] == {"days": 8, "total": 3480, "labels": ["basic_exchange", "enemies"]}
        assert drawn["problem"] == {"points": 8, "alerts": 1}
        assert drawn["alerts"] == 1
        assert drawn["voice"] == {"labels": 2, "brands": 3}
        assert shot.exists() and shot.stat().st_size > 10_000
