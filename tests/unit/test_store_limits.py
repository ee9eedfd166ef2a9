"""Analysts' SQL runs under time and memory limits it cannot lift."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import Settings
from stream_jobs.store import Store, StoreError


def test_an_expensive_query_is_stopped_and_the_limits_cannot_be_lifted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database="limits", sql_max_seconds=1)
    store = Store.open(settings)
    reader = store.reader(settings)
    try:
        with pytest.raises(StoreError) as stopped:
            reader.raw("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1")
        assert stopped.value.name == "TIMEOUT_EXCEEDED"
        with pytest.raises(StoreError):
            reader.raw("SELECT 1 SETTINGS max_execution_time = 0")
        assert reader.raw("SELECT 41 + 1", fmt="TSV").strip() == b"42"
    finally:
        reader.close()
        store.close()
