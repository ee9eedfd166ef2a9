"""Canned reports on known data in the embedded engine, and their documentation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import ClassifiedMessage, Label, Settings
from stream_jobs.reports import REPORTS, reports_markdown
from stream_jobs.sink import ClickHouseSink
from stream_jobs.store import Store

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
ARGS = {
    "db": "reports", "brand": "Acme", "since": "2026-01-09 00:00:00",
    "until": "2026-01-12 00:00:00", "baseline_days": 7, "limit": 50, "per_label": 2,
    "a_since": "2026-01-02 00:00:00", "a_until": "2026-01-09 00:00:00",
    "b_since": "2026-01-09 00:00:00", "b_until": "2026-01-12 00:00:00",
}  # fmt: skip


def message(i: int, brand: str, day: int, label: Label) -> ClassifiedMessage:
    return ClassifiedMessage(
        id=f"{brand}-{i}", source="t", kind="social_post", brand=brand, text=f"{label} {i}",
        created_at=DAY0 + timedelta(days=day, minutes=i % 500), label=label,
        scores={label: 0.5 + (i % 5) / 10}, model_version="test",
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("reports")
    opened = Store.open(Settings(data_dir=path, database="reports"))
    opened.migrate()
    rows = []
    for day in range(10):
        for i in range(20):
            # Acme: 10% enemies for a week, then 50% from day 8; Bolt stays at 10%.
            acme_bad = i < (10 if day >= 8 else 2)
            rows.append(
                message(day * 100 + i, "Acme", day, Label.enemies if acme_bad else Label.buddies)
            )
            rows.append(
                message(
                    day * 100 + i, "Bolt", day, Label.enemies if i < 2 else Label.basic_exchange
                )
            )
    ClickHouseSink(opened).write(rows)
    yield opened
    opened.close()  # one embedded engine per process: free the path for the next module


def run(store: Store, name: str) -> list[dict[str, object]]:
    report = REPORTS[name]
    return store.rows(report.sql, {k: ARGS[k] for k in ["db", *report.parameters]})


def test_mix_shares_sum_to_one_per_day(store: Store) -> None:
    rows = run(store, "mix")
    days = {r["day"] for r in rows}
    assert len(days) == 2  # Jan 9 and 10 (days 8 and 9); Jan 11 has no data
    for day in days:
        assert sum(r["share"] for r in rows if r["day"] == day) == pytest.approx(1, abs=1e-3)  # type: ignore[misc]
    assert {r["label"]: r["share"] for r in rows if r["day"] == DAY0 + timedelta(days=8)} == {
        "enemies": 0.5, "buddies": 0.5,
    }  # fmt: skip


def test_problem_share_against_its_own_baseline(store: Store) -> None:
    rows = {(r["brand"], r["day"]): r for r in run(store, "problem-share")}
    acme = rows[("Acme", DAY0 + timedelta(days=8))]
    assert (acme["share"], acme["baseline"], acme["excess"]) == (0.5, 0.1, 0.4)
    bolt = rows[("Bolt", DAY0 + timedelta(days=8))]
    assert bolt["excess"] == 0.0


def test_share_of_voice_and_movers(store: Store) -> None:
    voice = [r for r in run(store, "share-of-voice") if r["label"] == "enemies"]
    assert {r["brand"]: r["share_of_voice"] for r in voice} == {"Acme": 0.8333, "Bolt": 0.1667}
    top = run(store, "movers")[0]
    assert top["brand"] == "Acme"
    assert abs(top["change"]) == pytest.approx(0.4)  # type: ignore[arg-type]


def test_examples_are_the_most_confident_per_label(store: Store) -> None:
    rows = run(store, "examples")
    assert {r["label"] for r in rows} == {"enemies", "buddies"}
    assert all(r["brand"] == "Acme" and r["confidence"] == 0.9 for r in rows)
    assert len(rows) == 4


def test_docs_show_every_report_as_it_is() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reports.md").read_text()
    assert doc == reports_markdown(), "regenerate docs/reports.md from stream_jobs.reports"
