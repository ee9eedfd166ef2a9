"""The HTTP endpoint: read-only SQL in ClickHouse's dialect, push ingest, auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import DeadLetter, Envelope, Settings
from stream_jobs.sqlguard import QueryRefused, check_read_only
from stream_jobs.store import Store
from stream_jobs.web import make_app


class FakeIngest:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.dead: list[DeadLetter] = []

    def publish_and_flush(self, envelopes: list[Envelope], dead: list[DeadLetter]) -> None:
        self.envelopes += envelopes
        self.dead += dead


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store]]:
    path: Path = tmp_path_factory.mktemp("web")
    settings = Settings(data_dir=path, database="webtest")
    opened = Store.open(settings)
    opened.command("CREATE DATABASE IF NOT EXISTS webtest")
    opened.command("CREATE TABLE IF NOT EXISTS webtest.t (a UInt32, b String) ENGINE = Memory")
    opened.command("INSERT INTO webtest.t VALUES (1, 'x'), (2, 'y')")
    reader = opened.reader(settings)
    yield opened, reader
    # One embedded engine per process: release this path for the next module's store.
    reader.close()
    opened.close()


def call(
    stores: tuple[Store, Store],
    token: str | None,
    scenario: Callable[[TestClient, FakeIngest], Awaitable[Any]],
) -> Any:
    ingest = FakeIngest()

    async def run() -> Any:
        app = make_app(*stores, ingest, lambda: {"rows_written": 3}, token)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client, ingest)

    return asyncio.run(run())


ATTACKS = [
    "DROP TABLE t",
    "INSERT INTO t VALUES (1)",
    "SELECT 1; DROP TABLE t",
    "SELECT 1 -- harmless\n; DROP TABLE t",
    "ALTER TABLE t DELETE WHERE 1",
    "  ",
    "/* only a comment */",
    "CREATE TABLE x (a Int8) ENGINE=Memory",
    "SET readonly = 0",
    "SELECT file('/etc/passwd')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM FILE ('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV')",
    "SELECT * FROM s3('https://bucket/x.csv')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM executable('id', 'TSV', 'a String')",
    "SELECT * FROM python('settings')",
    "SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')",
    "SELECT * FROM postgresql('h:5432', 'db', 't', 'u', 'p')",
    "WITH x AS (SELECT * FROM url('http://x/', 'CSV')) SELECT * FROM x",
    "SELECT 1 INTO OUTFILE '/tmp/x'",
    "SELECT * FROM system.one /* ; */ ; SELECT 2",
]


@pytest.mark.parametrize("sql", ATTACKS)
def test_writes_escapes_and_multiple_statements_are_refused(sql: str) -> None:
    with pytest.raises(QueryRefused):
        check_read_only(sql)


def test_reads_pass_even_with_semicolons_in_strings() -> None:
    assert check_read_only("SELECT 'a;b' AS x;") == "SELECT 'a;b' AS x"
    assert check_read_only("SELECT 'url(' AS u -- file(\n") == "SELECT 'url(' AS u -- file("
    for ok in ("WITH 1 AS a SELECT a", "SHOW TABLES", "DESCRIBE t", "EXPLAIN SELECT 1"):
        check_read_only(ok)


def test_query_param_body_and_formats(stores: tuple[Store, Store]) -> None:
    async def scenario(client: TestClient, _: FakeIngest) -> None:
        r = await client.get("/", params={"query": "SELECT a, b FROM webtest.t ORDER BY a"})
        assert r.status == 200 and await r.text() == "1\tx\n2\ty\n"
        r = await client.post(
            "/?default_format=JSONEachRow", data="SELECT a FROM webtest.t ORDER BY a"
        )
        assert [json.loads(x) for x in (await r.text()).splitlines()] == [{"a": 1}, {"a": 2}]
        r = await client.post("/", data="SELECT count() AS n FROM webtest.t FORMAT JSONCompact")
        assert json.loads(await r.text())["data"] == [[2]]
        r = await client.get("/", params={"query": "DROP TABLE webtest.t"})
        assert r.status == 403 and r.headers["X-ClickHouse-Exception-Code"] == "164"
        r = await client.get("/", params={"query": "SELECT * FROM webtest.nope"})
        assert r.status == 400 and r.headers["X-ClickHouse-Exception-Code"] == "60"
        r = await client.get("/", params={"query": "SELECT 1", "readonly": "0"})
        assert r.status == 400
        r = await client.get("/", params={"query": "SELECT 1", "output_format_x": "1"})
        assert r.status == 400
        r = await client.get("/", params={"query": "SELECT * FROM file('/etc/hostname')"})
        assert r.status == 403
        r = await client.get("/", params={"query": "SELECT count() FROM t", "database": "webtest"})
        assert r.status == 200 and await r.text() == "2\n"
        r = await client.get("/", params={"query": "SELECT count() FROM t"})
        assert r.status == 400  # no default database given: the table is not found
        r = await client.get("/", params={"query": "SELECT 1", "database": "x; DROP"})
        assert r.status == 400
        r = await client.get("/", params={"query": "SELECT {n:UInt8} + 1", "param_n": "41"})
        assert await r.text() == "42\n"
        assert (await (await client.get("/ping")).text()) == "Ok.\n"
        r = await client.get("/", params={"query": "SELECT file('/etc/hostname')"})
        assert r.status == 403
        # The engine's own read-only mode catches what the text check lets through.
        r = await client.get("/", params={"query": "SELECT 1 SETTINGS readonly = 0"})
        assert r.status == 400 and r.headers["X-ClickHouse-Exception-Code"] == "164"
        r = await client.get("/", params={"query": "SELECT 'file(' AS f, '; DROP' AS g"})
        assert r.status == 200 and await r.text() == "file(\t; DROP\n"

    call(stores, None, scenario)
    # The analysts' read-only session never locks the writer's session.
    writer = stores[0]
    writer.command("INSERT INTO webtest.t VALUES (3, 'z')")
    assert writer.rows("SELECT count() AS n FROM webtest.t")[0]["n"] == 3
    writer.command("ALTER TABLE webtest.t DELETE WHERE a = 3")


def test_push_accepts_good_items_and_reports_bad_ones(stores: tuple[Store, Store]) -> None:
    async def scenario(client: TestClient, ingest: FakeIngest) -> None:
        good = {
            "id": "1",
            "kind": "social_post",
            "brand": "A",
            "text": "hi",
            "created_at": "2024-01-01T00:00:00Z",
        }
        r = await client.post("/ingest", json=[good, {**good, "id": "2", "text": ""}])
        body = await r.json()
        assert r.status == 202 and body["accepted"] == 1 and len(body["rejected"]) == 1
        assert [e.id for e in ingest.envelopes] == ["1"] and len(ingest.dead) == 1
        r = await client.post("/ingest", data=b"{broken")
        assert r.status == 400
        r = await client.post("/ingest", json=[{**good, "text": ""}])
        assert r.status == 400

    call(stores, None, scenario)


def test_token_is_required_when_configured(stores: tuple[Store, Store]) -> None:
    async def scenario(client: TestClient, _: FakeIngest) -> None:
        assert (await client.get("/stats")).status == 401
        assert (await client.get("/", params={"query": "SELECT 1", "token": "nope"})).status == 401
        r = await client.get("/stats", headers={"Authorization": "Bearer s3cret"})
        assert r.status == 200 and (await r.json())["rows_written"] == 3
        assert (await client.get("/ping")).status == 200

    call(stores, "s3cret", scenario)


def test_clickhouse_connect_http_client_queries_it_like_a_server(
    stores: tuple[Store, Store],
) -> None:
    import threading

    import clickhouse_connect
    from aiohttp import web

    from stream_jobs.testing import free_port

    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(make_app(*stores, None, dict, None))
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    assert started.wait(10)
    try:
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
        result = client.query("SELECT a, b FROM webtest.t WHERE a >= {lo:UInt32} ORDER BY a",
                              parameters={"lo": 1})  # fmt: skip
        assert result.result_rows == [(1, "x"), (2, "y")]
        with pytest.raises(Exception, match="164"):
            client.command("INSERT INTO webtest.t VALUES (9, 'w')")
        with pytest.raises(Exception, match="164"):
            client.query("SELECT file('/etc/hostname')")
    finally:
        loop.call_soon_threadsafe(loop.stop)
