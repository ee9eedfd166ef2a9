"""The DDL applied to the real (embedded) ClickHouse engine: tables, enums, idempotence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import LABEL_ENUM, LABELS, ClassifiedMessage, Label, Settings, migrations
from stream_jobs.sink import ClickHouseSink, label_counts
from stream_jobs.store import Store, StoreError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("chdb")
    opened = Store.open(Settings(data_dir=path, database="ddltest"))
    opened.migrate()
    yield opened
    opened.close()  # one embedded engine per process: free the path for the next module


def message(i: int, label: Label = Label.enemies, brand: str = "Acme") -> ClassifiedMessage:
    return ClassifiedMessage(
        id=f"m{i}",
        source="t",
        kind="social_post",
        brand=brand,
        text="x",
        created_at=datetime(2024, 3, 1, 12, i % 60, tzinfo=UTC),
        label=label,
        scores={label: 1.0},
        model_version="test",
    )


def test_label_enum_numbers_from_one() -> None:
    assert LABEL_ENUM.startswith("Enum8('fling' = 1, ")
    assert f"'none' = {len(LABELS)}" in LABEL_ENUM


def test_migrations_create_tables_and_are_idempotent(store: Store) -> None:
    tables = {
        r["name"] for r in store.rows("SELECT name FROM system.tables WHERE database = 'ddltest'")
    }
    assert {
        "messages",
        "counts_minute",
        "counts_hour",
        "counts_day",
        "labels",
        "schema_migrations",
    } <= tables
    assert store.migrate() == []
    versions = [
        r["version"]
        for r in store.rows("SELECT version FROM ddltest.schema_migrations ORDER BY version")
    ]
    assert versions == [m.version for m in migrations("ddltest")]


def test_unknown_enum_value_is_refused_not_stored_as_zero(store: Store) -> None:
    with pytest.raises(StoreError):
        store.command("INSERT INTO ddltest.labels VALUES ('frenemies', 'x', 0)")


def test_rewriting_a_batch_changes_neither_rows_nor_aggregates(store: Store) -> None:
    sink = ClickHouseSink(store)
    batch = [message(i) for i in range(50)] + [message(100 + i, Label.buddies) for i in range(20)]
    sink.write(batch)
    sink.write(batch)  # a replay after a crash writes the same batch again
    assert label_counts(store) == {("Acme", Label.enemies): 50, ("Acme", Label.buddies): 20}
    for grain in ("minute", "hour", "day"):
        [row] = store.rows(f"SELECT sum(messages) AS n FROM ddltest.counts_{grain}")
        assert row["n"] == 70, grain
    [row] = store.rows("SELECT count() AS n FROM ddltest.counts_hour FINAL WHERE label = 'enemies'")
    assert row["n"] == 1


def test_timestamps_come_back_utc_aware(store: Store) -> None:
    [row] = store.rows("SELECT created_at FROM ddltest.messages WHERE id = 'm1'")
    assert row["created_at"] == datetime(2024, 3, 1, 12, 1, tzinfo=UTC)


def test_store_errors_keep_clickhouse_code_and_name(store: Store) -> None:
    with pytest.raises(StoreError) as caught:
        store.rows("SELECT * FROM ddltest.nope")
    assert caught.value.code == 60 and caught.value.name == "UNKNOWN_TABLE"


def test_retention_follows_the_settings(store: Store) -> None:
    def table_sql() -> str:
        [row] = store.rows(
            "SELECT create_table_query AS q FROM system.tables "
            "WHERE database = 'ddltest' AND name = 'messages'"
        )
        return str(row["q"])

    Store(store.client, "ddltest", (30, 7)).migrate()
    assert "TTL toDateTime(created_at) + toIntervalDay(30)" in table_sql()
    assert "`text` String TTL toDateTime(created_at) + toIntervalDay(7)" in table_sql()
    Store(store.client, "ddltest", (0, 0)).migrate()
    assert "TTL" not in table_sql()


def test_every_table_and_column_is_documented(store: Store) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "tables.md").read_text()
    sections = {part.split("`")[1]: part for part in doc.split("\n## ")[1:]}
    columns = store.rows(
        "SELECT table, name FROM system.columns WHERE database = 'ddltest' "
        "AND table NOT LIKE '%_mv' AND table NOT LIKE '.inner%'"
    )
    missing = []
    for row in columns:
        table, column = str(row["table"]), str(row["name"])
        section = next(
            (text for name, text in sections.items() if table in text.split("\n")[0]), ""
        )
        if f"| `{column}` |" not in section:
            missing.append(f"{table}.{column}")
    assert not missing, f"document in docs/tables.md: {missing}"
    assert set(sections) >= {"messages", "labels", "schema_migrations"}
    assert len(columns) > 30  # the check did read the tables


def test_author_timeline_keeps_customers_with_an_author_once(store: Store) -> None:
    def one(i: int, author: str | None, role: str) -> ClassifiedMessage:
        return ClassifiedMessage(
            id=f"a{i}", source="t", kind="social_post", brand="Zed", text="x", author=author,
            role=role, created_at=datetime(2024, 4, 1, 9, i, tzinfo=UTC), label=Label.buddies,
            scores={Label.buddies: 1.0}, model_version="test",
        )  # fmt: skip

    batch = [one(1, "sam", "customer"), one(2, "sam", "customer"), one(3, "ZedHelp", "agent"),
             one(4, None, "customer")]  # fmt: skip
    sink = ClickHouseSink(store)
    sink.write(batch)
    sink.write(batch)
    rows = store.rows("SELECT author, id FROM ddltest.author_labels FINAL ORDER BY id")
    assert rows == [{"author": "sam", "id": "a1"}, {"author": "sam", "id": "a2"}]
