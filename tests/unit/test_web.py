"""The HTTP endpoint: read-only SQL in ClickHouse's dialect, push ingest, auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import Settings
from stream_jobs.sqlguard import QueryRefused, check_read_only
from stream_jobs.store import Store
from stream_jobs.testing import FakeIngest
from stream_jobs.web import make_app


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


# Tricks against the read-only guard. Each must be refused by the text check itself: the
# embedded engine runs file() and INTO OUTFILE even in read-only mode, and runs every statement
# of a multi-statement text.
MORE_ATTACKS = [
    "SELECT 1; SELECT 2",
    "SELECT 1;\nSELECT file('/etc/hostname')",
    "SELECT 1 /* ; */ ; DROP TABLE t",
    "SELECT 1 # c\n; DROP TABLE t",
    "SELECT 1 #! c\n; DROP TABLE t",
    "SELECT '--', file('/etc/hostname') -- '",
    "SELECT '/*', file('/etc/hostname'), '*/'",
    "SELECT 1 /* /* */ ' */, file('/etc/hostname') --'",
    "SELECT $$--$$, file('/etc/hostname')",
    "SELECT $x$ ' $x$, file('/etc/hostname')",
    "SELECT \"file\"('/etc/hostname')",
    "SELECT `file`('/etc/hostname')",
    "SELECT * FROM `url`('http://127.0.0.1:9/', 'CSV')",
    "SELECT `fi\\x6ce`('/etc/hostname')",
    "SELECT file\u200b('/etc/hostname')",
    "SELECT file\u00a0('/etc/hostname')",
    "SELECT file/**/('/etc/hostname')",
    "SELECT file--\n('/etc/hostname')",
    "SELECT FiLe('/etc/hostname')",
    "SELECT arrayMap(x -> file(x), ['/etc/hostname'])",
    "SELECT 'x' INTO\u200bOUTFILE '/tmp/relradar-x'",
    "SELECT 'x' INTO/**/OUTFILE '/tmp/relradar-x'",
    "SELECT 1 INTO OUTFILE '/tmp/relradar-x' FORMAT CSV",
    "SELECT 'unterminated",
    "SELECT 1 /* unterminated",
    "SELECT $$ unterminated",
    "SELECT 1\x00",
    "SELECT 1 \x1b[2J",
    "INSERT INTO t VALUES (1)",
    "ALTER TABLE t ADD COLUMN c Int8",
    "DROP DATABASE relradar",
    "CREATE TABLE z ENGINE = File(CSV) AS SELECT 1",
    "SYSTEM SHUTDOWN",
    "KILL QUERY WHERE 1",
    "OPTIMIZE TABLE t FINAL",
    "TRUNCATE TABLE t",
    "RENAME TABLE t TO u",
    "GRANT ALL ON *.* TO default",
    "SET readonly = 0",
    "USE system",
    "ATTACH TABLE t",
    "DETACH TABLE t",
    "BACKUP TABLE t TO Disk('d', 'x')",
    "EXCHANGE TABLES t AND u",
    "WATCH t",
    "(SELECT 1); DROP TABLE t",
    "SELECT * FROM remoteSecure('127.0.0.1', system.one)",
    "SELECT * FROM clusterAllReplicas('c', system.one)",
    "SELECT * FROM s3Cluster('c', 'https://b/x.csv')",
    "SELECT * FROM hdfs('hdfs://h/x', 'CSV')",
    "SELECT * FROM azureBlobStorage('x')",
    "SELECT * FROM jdbc('x', 'y')",
    "SELECT * FROM odbc('x', 'y')",
    "SELECT * FROM sqlite('/etc/x.db', 't')",
    "SELECT * FROM mongodb('h', 'd', 'c', 'u', 'p', 'x String')",
    "SELECT * FROM redis('h', 'k', 'k String')",
    "SELECT * FROM input('a String')",
    "SELECT * FROM executablePool('id', 'TSV', 'a String')",
    "SELECT * FROM dictionary('d')",
    "SELECT * FROM icebergLocal('/etc')",
    "SELECT * FROM deltaLake('x')",
    "SELECT * FROM arrowFlight('h:1', 'x')",
    "SELECT * FROM loop(numbers(1))",
    "SELECT getServerSetting('tcp_port')",
    "SELECT catboostEvaluate('/etc/passwd', 1)",
    "DESCRIBE TABLE url('http://x/', 'CSV')",
    "EXPLAIN SELECT * FROM file('/etc/hostname')",
    "SELECT 1 " + "-- padding\n" * 30_000,
]


@pytest.mark.parametrize("sql", MORE_ATTACKS)
def test_more_tricks_are_refused_by_the_guard(sql: str) -> None:
    with pytest.raises(QueryRefused):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'it''s; fine', 'a\\'b', $$x; y$$ AS h, `weird;name` FROM system.one",
        "SELECT 1 /* a /* nested */ comment */ + 1",
        "SELECT 1 -- trailing ; comment",
        "SELECT name FROM system.settings WHERE name = 'readonly'",
        "SELECT 'file(' AS x, 'INTO OUTFILE' AS y",
        "SELECT count() FROM t FORMAT JSON;",
        "((SELECT 1))",
        "EXISTS TABLE t",
        'SELECT 1 AS `select`, "b" FROM system.one',
    ],
)
def test_legitimate_reads_still_pass(sql: str) -> None:
    check_read_only(sql)


def test_bypasses_never_reach_the_engine(stores: tuple[Store, Store], tmp_path: Path) -> None:
    target = tmp_path / "written.txt"

    async def scenario(client: TestClient, _: FakeIngest) -> None:
        for sql in [
            "SELECT '--', file('/etc/hostname') -- '",
            "SELECT \"file\"('/etc/hostname')",
            "SELECT $$--$$, file('/etc/hostname')",
            "SELECT file\u200b('/etc/hostname')",
            f"SELECT 'x' INTO\u200bOUTFILE '{target}'",
            f"SELECT 'x' INTO OUTFILE '{target}'",
            "SELECT 1; SELECT file('/etc/hostname')",
        ]:
            r = await client.post("/", data=sql.encode())
            assert r.status == 403, (sql, await r.text())
            assert r.headers["X-ClickHouse-Exception-Code"] == "164"
        # The output format is appended to the query by the client library: a name only.
        params = {"query": "SELECT 1", "default_format": "TSV; SELECT file('/etc/hostname')"}
        r = await client.get("/", params=params)
        assert r.status == 400 and "format" in await r.text()
        r = await client.get("/", params={"query": "SELECT 1", "default_format": "JSONEachRow"})
        assert r.status == 200 and json.loads(await r.text()) == {"1": 1}

    call(stores, None, scenario)
    assert not target.exists()


def limited_call(
    stores: tuple[Store, Store],
    scenario: Callable[[TestClient, FakeIngest, list[float]], Awaitable[Any]],
    token: str | None = None,
    **limits: Any,
) -> FakeIngest:
    from stream_jobs.web import WebLimits

    ingest = FakeIngest()
    now = [1000.0]

    async def run() -> None:
        app = make_app(*stores, ingest, dict, token, WebLimits(**limits), clock=lambda: now[0])
        async with TestClient(TestServer(app)) as client:
            await scenario(client, ingest, now)

    asyncio.run(run())
    return ingest


GOOD = {"id": "g", "kind": "social_post", "brand": "A", "text": "hi", "created_at": "2025-01-01"}


def test_bodies_over_the_limit_get_413_json(stores: tuple[Store, Store]) -> None:
    async def scenario(client: TestClient, ingest: FakeIngest, _: list[float]) -> None:
        big = json.dumps([{**GOOD, "id": str(i), "text": "x" * 500} for i in range(20)]).encode()
        r = await client.post("/ingest", data=big)
        assert r.status == 413 and "larger than 4096 bytes" in (await r.json())["error"]

        async def chunks() -> Any:  # no Content-Length: the limit holds while reading
            for _ in range(10):
                yield b" " * 1000

        r = await client.post("/ingest", data=chunks())
        assert r.status == 413 and "larger than" in (await r.json())["error"]
        r = await client.post("/", data=b"SELECT 1 " + b" " * 5000)
        assert r.status == 413
        r = await client.post("/ingest", json=[{**GOOD, "id": str(i)} for i in range(4)])
        answer = await r.json()
        assert r.status == 413 and answer["error"] == "4 items in one request; at most 3"
        r = await client.post("/ingest", json=[{**GOOD, "id": str(i)} for i in range(3)])
        assert r.status == 202 and (await r.json())["accepted"] == 3
        assert len(ingest.envelopes) == 3

    limited_call(stores, scenario, max_request_bytes=4096, max_push_items=3)


def test_each_client_is_rate_limited_with_retry_after(stores: tuple[Store, Store]) -> None:
    async def scenario(client: TestClient, _: FakeIngest, now: list[float]) -> None:
        for _ in range(3):
            assert (await client.get("/stats")).status == 401  # guessing is limited too
        r = await client.get("/stats", headers={"Authorization": "Bearer nope"})
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert (await r.json())["retry_after_s"] == 1
        assert (await client.get("/ping")).status == 200  # never limited
        # The right token is its own client, whatever the address.
        ok = {"Authorization": "Bearer s3cret"}
        for _ in range(3):
            assert (await client.get("/stats", headers=ok)).status == 200
        r = await client.post("/ingest", json=GOOD, headers=ok)
        assert r.status == 429
        now[0] += 1.0  # one request's worth refills
        assert (await client.post("/ingest", json=GOOD, headers=ok)).status == 202
        assert (await client.get("/stats", headers=ok)).status == 429
        now[0] += 100.0  # a full bucket, never more than the burst
        statuses = [(await client.get("/stats", headers=ok)).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]

    limited_call(stores, scenario, "s3cret", rate_per_s=1.0, burst=3)


def test_the_rate_limiter_forgets_old_clients_and_can_be_off() -> None:
    from stream_jobs.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(2.0, 2, clock=lambda: now[0], max_clients=2)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    limiter.take("b")
    limiter.take("c")  # "a" is forgotten: it comes back with a full bucket
    assert limiter.take("a") == 0.0
    off = RateLimiter(0, 1)
    assert all(off.take("x") == 0.0 for _ in range(1000))


def test_secrets_never_appear_in_settings_errors_or_stats(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from stream_jobs.cli import main
    from stream_jobs.store import Store as StoreClass
    from stream_jobs.testing import free_port

    secrets = ["pw-Zq8#secret", "tok-9Xv$secret", "key-4Lm%secret"]
    settings = Settings(clickhouse_password=secrets[0], api_token=secrets[1], author_key=secrets[2])
    shown = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    with pytest.raises(ValueError) as in_url:
        Settings(clickhouse_url=f"http://default:{secrets[0]}@127.0.0.1:1")
    with pytest.raises(ValueError) as bad_value:
        Settings(http_port=secrets[1])  # type: ignore[arg-type]
    shown += [str(in_url.value), str(bad_value.value)]
    # A server that is not there: the errors name the URL, never the password.
    port = free_port()
    failing = Settings(clickhouse_url=f"http://127.0.0.1:{port}", clickhouse_password=secrets[0])
    with pytest.raises(Exception) as unreachable:
        StoreClass.open(failing)
    shown.append(repr(unreachable.value))
    for name, value in [("CLICKHOUSE_URL", f"http://127.0.0.1:{port}"),
                        ("CLICKHOUSE_PASSWORD", secrets[0]), ("API_TOKEN", secrets[1]),
                        ("AUTHOR_KEY", secrets[2])]:  # fmt: skip
        monkeypatch.setenv(f"RELRADAR_{name}", value)
    result = CliRunner().invoke(main, ["sql", "SELECT 1"])
    assert result.exit_code != 0
    shown.append(result.output + repr(result.exception))

    async def scenario(client: TestClient, _: FakeIngest) -> None:
        headers = {"Authorization": f"Bearer {secrets[1]}"}
        shown.append(await (await client.get("/stats", headers=headers)).text())
        shown.append(await (await client.get("/stats")).text())  # the 401 names no token

    call(stores, secrets[1], scenario)
    for text in shown:
        for secret in secrets:
            assert secret not in text
