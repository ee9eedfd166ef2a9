"""The service's HTTP endpoint: push ingest, read-only SQL, health and stats.

One aiohttp application on ``http_host:http_port`` (127.0.0.1:8123 by default, ClickHouse's
own HTTP port, so analysts' tools find it). ``/`` speaks the part of ClickHouse's HTTP
interface analysts use (``?query=``, a POST body, ``FORMAT``, ``default_format``) for reads
only; ``/ping`` answers like ClickHouse; ``/ingest`` takes JSON or NDJSON envelopes and
answers only once the broker has acknowledged them; ``/health`` and ``/stats`` report the
pipeline. A configured token is required on every route except ``/ping``.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from ingest import PushError, parse_push
from schemas import DeadLetter, Envelope
from stream_jobs.dashboard import add_dashboard
from stream_jobs.sqlguard import QueryRefused, check_read_only
from stream_jobs.store import Store, StoreError

MAX_BODY = 16 * 1024 * 1024
ALLOWED_PARAMS = {"query", "default_format", "database", "token"}
# Transport parameters ClickHouse's HTTP clients send; they change nothing the engine does.
TRANSPORT_PARAMS = {
    "query_id", "session_id", "session_timeout", "compress", "decompress",
    "enable_http_compression", "wait_end_of_query", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
}  # fmt: skip
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
CONTENT_TYPES = {
    "JSON": "application/json",
    "JSONCompact": "application/json",
    "JSONEachRow": "application/x-ndjson",
    "CSV": "text/csv",
    "CSVWithNames": "text/csv",
}


class IngestSink(Protocol):
    """What the push route hands envelopes and dead letters to (a publisher, in the service)."""

    def publish_and_flush(self, envelopes: list[Envelope], dead: list[DeadLetter]) -> None: ...


def _clickhouse_error(status: int, text: str, code: int | None = None) -> web.Response:
    headers = {"X-ClickHouse-Exception-Code": str(code)} if code is not None else {}
    body = f"Code: {code}. DB::Exception: {text}\n" if code is not None else text + "\n"
    return web.Response(status=status, text=body, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    store: Store,
    reader: Store,
    ingest: IngestSink | None,
    stats: Callable[[], dict[str, Any]],
    token: str | None = None,
) -> web.Application:
    """The aiohttp application; ``reader`` is the read-only store analysts' SQL runs on, and
    ``ingest`` may be None where pushing is not offered."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        public = request.path in {"/ping", "/dashboard"} or request.path.startswith("/static/")
        if token and not public:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            given = given or request.headers.get("X-ClickHouse-Key", "")
            given = given or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return web.json_response({"error": "missing or wrong token"}, status=401)
        return await handler(request)

    async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def health(_: web.Request) -> web.Response:
        try:
            await run_blocking(store.command, "SELECT 1")
            ok = True
        except StoreError:
            ok = False
        return web.json_response(
            {"status": "ok" if ok else "degraded", "store": ok}, status=200 if ok else 503
        )

    async def stats_view(_: web.Request) -> web.Response:
        return web.json_response(stats())

    async def push(request: web.Request) -> web.Response:
        if ingest is None:
            return web.json_response({"error": "ingest is not enabled here"}, status=404)
        body = await request.read()
        try:
            result = parse_push(body, request.content_type or "application/json")
        except PushError as error:
            return web.json_response({"error": str(error)}, status=400)
        try:
            await run_blocking(ingest.publish_and_flush, result.accepted, result.rejected)
        except Exception as error:
            return web.json_response({"error": f"not delivered: {error}"}, status=503)
        status = 202 if result.accepted or not result.rejected else 400
        return web.json_response(result.summary(), status=status)

    async def sql(request: web.Request) -> web.Response:
        for name in request.query:
            if name not in ALLOWED_PARAMS | TRANSPORT_PARAMS and not name.startswith("param_"):
                reason = f"parameter {name!r} is not accepted: settings are fixed on this endpoint"
                return _clickhouse_error(400, reason, 115)
        database = request.query.get("database") or None
        if database and not IDENTIFIER.fullmatch(database):
            return _clickhouse_error(400, f"bad database name {database!r}", 81)
        text = request.query.get("query", "")
        if request.method == "POST":
            body = (await request.read()).decode("utf-8", errors="replace")
            text = f"{text}\n{body}" if text else body
        try:
            statement = check_read_only(text)
        except QueryRefused as error:
            return _clickhouse_error(403, str(error), 164)
        match = FORMAT_CLAUSE.search(statement)
        fmt = match.group(1) if match else request.query.get("default_format", "TabSeparated")
        if match:
            statement = statement[: match.start()].rstrip()
        parameters = {
            k[len("param_") :]: v for k, v in request.query.items() if k.startswith("param_")
        }
        try:
            data = await run_blocking(reader.raw, statement, fmt, None, parameters, database)
        except StoreError as error:
            return _clickhouse_error(400 if error.code else 500, str(error), error.code or 1001)
        content_type = CONTENT_TYPES.get(fmt, "text/plain")
        return web.Response(
            body=data,
            content_type=content_type,
            charset="utf-8",
            headers={"X-ClickHouse-Format": fmt},
        )

    app = web.Application(middlewares=[auth], client_max_size=MAX_BODY)
    app.router.add_get("/ping", ping)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats_view)
    app.router.add_post("/ingest", push)
    app.router.add_route("GET", "/", sql)
    app.router.add_route("POST", "/", sql)
    add_dashboard(app, reader)
    return app
