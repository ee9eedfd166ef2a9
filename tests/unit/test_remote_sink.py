"""Writing through the store owner: ``RemoteSink`` against the real ``/sink`` routes.

The owner's HTTP app runs in-process (aiohttp's test server) over a real embedded store; the
client is the synchronous ``RemoteSink`` the worker uses, called from a thread as the sink
agent calls it. What is checked is what the stored rows and aggregates say.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import ClassifiedMessage, Label, Settings
from stream_jobs.remote_sink import RemoteSink, SerialSink, Sink
from stream_jobs.sink import ClickHouseSink, SinkBackpressure, SinkError, SinkFaults
from stream_jobs.store import Store, StoreError
from stream_jobs.web import make_app

T = TypeVar("T")
DB = "remotesink"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store.open(Settings(data_dir=tmp_path_factory.mktemp("chdb"), database=DB))
    opened.migrate()
    yield opened
    opened.close()  # one embedded engine per process: free it for the next module


def message(source: str, i: int, text: str | None = None) -> ClassifiedMessage:
    return ClassifiedMessage(
        id=f"{source}:{i}", source=source, kind="social_post", brand=f"B{i % 3}",
        text=text or f"text {i}", author=f"a{i % 7}",
        created_at=datetime(2024, 3, 1, i % 24, i % 60, tzinfo=UTC),
        label=Label.buddies, scores={Label.buddies: 1.0}, model_version="test",
    )  # fmt: skip


def stored(store: Store, source: str) -> dict[str, int]:
    where = f"source = '{source}'"
    [row] = store.rows(
        f"SELECT count() AS rows, uniqExact(id) AS ids FROM {DB}.messages WHERE {where}"
    )
    [day] = store.rows(f"SELECT sum(messages) AS n FROM {DB}.counts_day WHERE {where}")
    return {"rows": int(row["rows"]), "ids": int(row["ids"]), "counts_day": int(day["n"])}


def with_owner(
    store: Store,
    client: Callable[[str], T],
    sink: Sink | None = None,
    token: str | None = None,
) -> T:
    """Run ``client(url)`` in a thread while the owner's app serves ``/sink`` on ``url``."""
    owner = sink or SerialSink(ClickHouseSink(store))

    async def run() -> T:
        app = make_app(store, store, None, dict, token, sink=owner)
        async with TestServer(app) as server:
            url = str(server.make_url("")).rstrip("/")
            return await asyncio.get_running_loop().run_in_executor(None, client, url)

    return asyncio.run(run())


def test_batches_written_remotely_are_stored_exactly_once(store: Store) -> None:
    def client(url: str) -> tuple[Any, ...]:
        sink = RemoteSink(url)
        first = sink.write([message("once", i) for i in range(40)])
        # A replay after a crash, cut differently, with one id reused for another text.
        again = sink.write(
            [message("once", i) for i in range(20, 60)] + [message("once", 3, "other text")]
        )
        return first, again

    first, again = with_owner(store, client)
    assert (first.written, first.replays, again.written, again.replays) == (40, 0, 20, 20)
    [(conflicting, reason)] = again.conflicts
    assert (conflicting.id, conflicting.text) == ("once:3", "other text")
    assert "different text" in reason
    assert stored(store, "once") == {"rows": 60, "ids": 60, "counts_day": 60}


def test_a_batch_over_the_request_cap_goes_in_parts_and_maps_conflicts_back(
    store: Store,
) -> None:
    batch = [message("parts", i) for i in range(300)] + [message("parts", 7, "changed")]

    def client(url: str) -> Any:
        sink = RemoteSink(url, max_request_bytes=8_000)  # a few dozen messages a request
        assert len(list(sink._parts(batch))) > 5
        return sink.write(batch)

    result = with_owner(store, client)
    assert (result.written, result.replays) == (300, 0)
    assert [(m.id, m.text) for m, _ in result.conflicts] == [("parts:7", "changed")]
    assert stored(store, "parts") == {"rows": 300, "ids": 300, "counts_day": 300}


def test_concurrent_workers_sending_the_same_messages_store_each_once(store: Store) -> None:
    batch = [message("race", i) for i in range(400)]

    def client(url: str) -> int:
        results: list[int] = []

        def one_worker(size: int) -> None:
            # Cut differently from the others' (a rebalance's replay): the insert tokens differ,
            # so only the owner's one-write-at-a-time lookup keeps an id from landing twice.
            sink = RemoteSink(url)
            written = [sink.write(batch[s : s + size]).written for s in range(0, 400, size)]
            results.append(sum(written))

        workers = [threading.Thread(target=one_worker, args=(40 + 13 * k,)) for k in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(results)

    assert with_owner(store, client) == 400
    assert stored(store, "race") == {"rows": 400, "ids": 400, "counts_day": 400}


def test_a_failing_store_is_backpressure_with_the_owners_retry_after(store: Store) -> None:
    failing = SerialSink(ClickHouseSink(store, faults=SinkFaults(fail_for_s=3600)))

    def client(url: str) -> tuple[Any, ...]:
        request = urllib.request.Request(
            f"{url}/sink", data=message("fail", 0).model_dump_json().encode(), method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=30)
        sink = RemoteSink(url)
        with pytest.raises(SinkBackpressure) as pressure:
            sink.write([message("fail", i) for i in range(5)])
        return answer.value.code, answer.value.headers["Retry-After"], pressure.value

    status, header, pressure = with_owner(store, client, sink=failing)
    assert (status, header) == (503, "1")
    # The owner's own backoff (its second failure: 1 s) travels to the worker as is.
    assert pressure.retry_after == 1.0 and "injected" in str(pressure)
    assert stored(store, "fail")["rows"] == 0


def test_the_token_is_required_and_a_wrong_one_holds_the_batch(store: Store) -> None:
    def client(url: str) -> tuple[Any, ...]:
        with pytest.raises(SinkBackpressure) as refused:
            RemoteSink(url, token="wrong").write([message("auth", 1)])
        with pytest.raises(StoreError, match="401"):
            RemoteSink(url).repair()
        return refused.value, RemoteSink(url, token="s3cret").write([message("auth", 1)])

    refused, accepted = with_owner(store, client, token="s3cret")
    # Refused is not bad data: nothing is dead-lettered, the worker retries until it is fixed.
    assert "401" in str(refused) and refused.retry_after > 0
    assert accepted.written == 1 and stored(store, "auth")["rows"] == 1


def test_an_unreadable_batch_is_a_sink_error_not_a_retry(store: Store) -> None:
    class Garbled(RemoteSink):
        def _parts(self, batch: Any) -> Iterator[tuple[int, int, bytes]]:
            yield 0, 1, b'{"id": "x", "label": "no such label"}\n'

    def client(url: str) -> SinkError:
        with pytest.raises(SinkError, match="line 1") as error:
            Garbled(url).write([message("garbled", 0)])
        return error.value

    assert "400" in str(with_owner(store, client))


def test_an_unreachable_owner_is_backpressure_that_backs_off() -> None:
    sink = RemoteSink("http://127.0.0.1:9", timeout=2)
    waits = []
    for _ in range(3):
        with pytest.raises(SinkBackpressure, match="unreachable") as pressure:
            sink.write([message("away", 0)])
        waits.append(pressure.value.retry_after)
    assert waits == [0.5, 1.0, 2.0]
    with pytest.raises(StoreError, match="unreachable"):
        sink.repair()


def test_repair_runs_on_the_owner(store: Store) -> None:
    def client(url: str) -> int:
        sink = RemoteSink(url)
        sink.write([message("repair", i) for i in range(10)])
        return sink.repair()

    # The owner's repair ran (through the route) and found the aggregates complete.
    assert with_owner(store, client) == 0
    assert stored(store, "repair") == {"rows": 10, "ids": 10, "counts_day": 10}


def test_a_worker_without_a_store_serves_only_ping_health_and_stats() -> None:
    async def run() -> dict[str, int]:
        app = make_app(None, None, None, lambda: {"raw_in": 7})
        async with TestClient(TestServer(app)) as client:
            statuses = {}
            for path in ("/ping", "/health", "/stats", "/?query=SELECT+1", "/dashboard"):
                statuses[path] = (await client.get(path)).status
            statuses["POST /sink"] = (await client.post("/sink", data=b"")).status
            statuses["POST /ingest"] = (await client.post("/ingest", data=b"{}")).status
            health = await (await client.get("/health")).json()
            assert health == {"status": "ok", "store": None, "broker": True}
            return statuses

    assert asyncio.run(run()) == {
        "/ping": 200, "/health": 200, "/stats": 200, "/?query=SELECT+1": 404,
        "/dashboard": 404, "POST /sink": 404, "POST /ingest": 404,
    }  # fmt: skip


def test_conversation_summaries_reach_the_owners_store(store: Store) -> None:
    from stream_jobs.conversations import ConversationSummary

    at = datetime(2024, 3, 1, 9, tzinfo=UTC)
    summary = ConversationSummary(
        conversation_id="remote-c1", brand="B1", customer="a1",
        customer_relationship=Label.captive, treatment=Label.basic_exchange, mismatch=True,
        mismatch_kind="captive treated as basic exchange", customer_labels=[Label.captive],
        treatments=[Label.basic_exchange], turns=2, started_at=at, updated_at=at,
    )  # fmt: skip
    with_owner(store, lambda url: RemoteSink(url).write_conversations([summary]))
    [row] = store.rows(
        f"SELECT customer_relationship, treatment, turns FROM {DB}.conversations "
        "WHERE conversation_id = 'remote-c1'"
    )
    assert (row["customer_relationship"], row["treatment"], row["turns"]) == (
        "captive", "basic_exchange", 2,
    )  # fmt: skip
