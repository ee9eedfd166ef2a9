"""The exactly-once sink against embedded ClickHouse: replays, conflicts and view repair."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from schemas import ClassifiedMessage, Label, Settings
from stream_jobs.sink import ClickHouseSink
from stream_jobs.store import Store

GRAINS = ("minute", "hour", "day")


@pytest.fixture()
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store.open(Settings(data_dir=tmp_path_factory.mktemp("chdb"), database="sinktest"))
    opened.migrate()
    yield opened
    opened.close()


def message(i: int, text: str = "x", label: Label = Label.buddies) -> ClassifiedMessage:
    return ClassifiedMessage(
        id=f"m{i}", source="t", kind="social_post", brand=f"B{i % 3}", text=text,
        author=f"a{i % 7}", created_at=datetime(2024, 3, 1, i % 24, i % 60, tzinfo=UTC),
        label=label, scores={label: 1.0}, model_version="test",
    )  # fmt: skip


def totals(store: Store) -> dict[str, int]:
    out = {"messages": int(store.rows("SELECT count() AS n FROM sinktest.messages")[0]["n"])}
    for grain in GRAINS:
        [row] = store.rows(f"SELECT sum(messages) AS n FROM sinktest.counts_{grain}")
        out[grain] = int(row["n"])
    [row] = store.rows("SELECT count() AS n FROM sinktest.author_labels")
    out["author_labels"] = int(row["n"])
    return out


def test_a_replayed_batch_cut_differently_is_stored_once(store: Store) -> None:
    sink = ClickHouseSink(store)
    first = sink.write([message(i) for i in range(50)])
    # After a crash the topic is read again from the last commit, and batches fall differently.
    again = sink.write([message(i) for i in range(25, 80)] + [message(79)])
    assert (first.written, again.written, again.replays) == (50, 30, 26)
    assert totals(store) == dict.fromkeys(["messages", *GRAINS, "author_labels"], 80)
    [row] = store.rows("SELECT uniqExact(id) AS n FROM sinktest.messages")
    assert row["n"] == 80


def test_the_same_id_with_other_text_is_a_conflict_not_a_row(store: Store) -> None:
    sink = ClickHouseSink(store)
    sink.write([message(1, "hello")])
    result = sink.write([message(1, "something else"), message(2), message(2, "other")])
    assert result.written == 1 and result.replays == 0
    assert [(m.id, "different text" in why) for m, why in result.conflicts] == [
        ("m2", True),
        ("m1", True),
    ]
    assert totals(store)["messages"] == 2


def test_repair_completes_views_a_crash_cut_short_without_doubling(store: Store) -> None:
    sink = ClickHouseSink(store)
    sink.write([message(i) for i in range(30)])
    # A crash after the table's part but before the views' parts: the views missed the block.
    store.command("DETACH TABLE sinktest.counts_hour_mv")
    store.command("DETACH TABLE sinktest.author_labels_mv")
    sink.write([message(i) for i in range(30, 70)])
    store.command("ATTACH TABLE sinktest.counts_hour_mv")
    store.command("ATTACH TABLE sinktest.author_labels_mv")
    broken = totals(store)
    assert broken["messages"] == 70 and broken["hour"] == 30 and broken["author_labels"] == 30
    restarted = ClickHouseSink(store)
    assert restarted.repair() == 40 + 40  # the hour counts and the author timeline
    assert restarted.repair() == 0  # repair is itself idempotent
    assert totals(store) == dict.fromkeys(["messages", *GRAINS, "author_labels"], 70)


def test_repair_skips_a_batch_that_never_reached_the_table(store: Store) -> None:
    sink = ClickHouseSink(store)
    store.insert("sink_batches", [["t0", ["never1", "never2"]]], ["token", "ids"])
    assert sink.repair() == 0
    assert totals(store)["messages"] == 0
