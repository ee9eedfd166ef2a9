"""The service's HTTP endpoint: push ingest, read-only SQL, health and stats.

One aiohttp application on ``http_host:http_port`` (127.0.0.1:8123 by default, ClickHouse's
own HTTP port, so analysts' tools find it). ``/`` speaks the part of ClickHouse's HTTP
interface analysts use (``?query=``, a POST body, ``FORMAT``, ``default_format``) for reads
only; ``/ping`` answers like ClickHouse; ``/ingest`` takes JSON or NDJSON envelopes and
answers only once the broker has acknowledged them; ``/health`` and ``/stats`` report the
pipeline; ``POST /sink`` takes the batches of workers that write through this service's store
(``remote_sink``). A configured token is required on every route except ``/ping``. Every route but
``/ping`` is rate-limited per client (429 with ``Retry-After``), bodies are capped (413), and a
push may carry a bounded number of envelopes (413); these errors are JSON with the reason.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from ingest import PushError, parse_push
from ingest.http_push import MAX_ITEMS
from schemas import DeadLetter, Envelope, Settings
from stream_jobs.dashboard import add_dashboard
from stream_jobs.ratelimit import RateLimiter
from stream_jobs.remote_sink import Sink, add_sink_routes
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
# The output format is appended to the query text by the client library: a name, nothing more.
FORMAT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)
CONTENT_TYPES = {
    "JSON": "application/json",
    "JSONCompact": "application/json",
    "JSONEachRow": "application/x-ndjson",
    "CSV": "text/csv",
    "CSVWithNames": "text/csv",
}


@dataclass(frozen=True)
class WebLimits:
    """What one client may send: body size, envelopes per push, request rate and burst."""

    max_request_bytes: int = MAX_BODY
    max_push_items: int = MAX_ITEMS
    rate_per_s: float = 0.0  # 0: no rate limit
    burst: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> WebLimits:
        return cls(
            max_request_bytes=settings.max_request_bytes,
            max_push_items=settings.max_push_items,
            rate_per_s=settings.rate_limit_per_s,
            burst=settings.rate_limit_burst,
        )


class BodyTooLarge(Exception):
    """The request body is over the limit."""


class IngestSink(Protocol):
    """What the push route hands envelopes and dead letters to (a publisher, in the service)."""

    def publish_and_flush(self, envelopes: list[Envelope], dead: list[DeadLetter]) -> None: ...


def _clickhouse_error(status: int, text: str, code: int | None = None) -> web.Response:
    headers = {"X-ClickHouse-Exception-Code": str(code)} if code is not None else {}
    body = f"Code: {code}. DB::Exception: {text}\n" if code is not None else text + "\n"
    return web.Response(status=status, text=body, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    store: Store | None,
    reader: Store | None,
    ingest: IngestSink | None,
    stats: Callable[[], dict[str, Any]],
    token: str | None = None,
    limits: WebLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
    sink: Sink | None = None,
    metrics: Callable[[str], tuple[bytes, str]] | None = None,
) -> web.Application:
    """The aiohttp application; ``reader`` is the read-only store analysts' SQL runs on, and
    ``ingest`` may be None where pushing is not offered. Without a store (a worker writing
    through another service's) it serves ``/ping``, ``/health`` and ``/stats`` only; with a
    ``sink`` it also takes other workers' batches on ``POST /sink`` (``remote_sink``). With
    ``metrics`` (the scraper's ``Accept`` header in, a body and its content type out) it serves
    ``GET /metrics`` for Prometheus, behind the token like the rest."""
    limits = limits or WebLimits()
    limiter = RateLimiter(limits.rate_per_s, limits.burst, clock)

    def authorised(request: web.Request) -> bool:
        if not token:
            return True
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        given = given or request.headers.get("X-ClickHouse-Key", "")
        given = given or request.query.get("token", "")
        return hmac.compare_digest(given.encode(), token.encode())

    def too_large(what: str) -> web.Response:
        reason = f"{what} is larger than {limits.max_request_bytes} bytes"
        return web.json_response({"error": reason}, status=413)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/ping":
            return await handler(request)
        # A client is its token when it shows the right one (it may move between addresses);
        # otherwise its address, so guessing tokens is rate-limited too.
        token_ok = authorised(request)
        client = "token" if token and token_ok else f"peer:{request.remote or 'unknown'}"
        wait = limiter.take(client)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return web.json_response(
                {"error": f"rate limit: retry in {seconds} s", "retry_after_s": seconds},
                status=429,
                headers={"Retry-After": str(seconds)},
            )
        public = request.path == "/dashboard" or request.path.startswith("/static/")
        if not token_ok and not public:
            return web.json_response({"error": "missing or wrong token"}, status=401)
        length = request.content_length
        if length is not None and length > limits.max_request_bytes:
            return too_large(f"the body ({length} bytes)")
        try:
            return await handler(request)
        except BodyTooLarge:
            return too_large("the body")

    async def read_body(request: web.Request) -> bytes:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BodyTooLarge() from None

    async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def health(_: web.Request) -> web.Response:
        ok: bool | None = None  # None: the store is another service's, not checked here
        try:
            if store is not None:
                await run_blocking(store.command, "SELECT 1")
                ok = True
        except StoreError:
            ok = False
        broker = bool(stats().get("broker_up", True))
        healthy = ok is not False and broker
        return web.json_response(
            {"status": "ok" if healthy else "degraded", "store": ok, "broker": broker},
            status=200 if healthy else 503,
        )

    async def stats_view(_: web.Request) -> web.Response:
        return web.json_response(stats())

    async def metrics_view(request: web.Request) -> web.Response:
        assert metrics is not None
        body, content_type = metrics(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def push(request: web.Request) -> web.Response:
        if ingest is None:
            return web.json_response({"error": "ingest is not enabled here"}, status=404)
        body = await read_body(request)
        try:
            result = parse_push(
                body, request.content_type or "application/json", limits.max_push_items
            )
        except PushError as error:
            return web.json_response({"error": str(error)}, status=error.status)
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
            body = (await read_body(request)).decode("utf-8", errors="replace")
            text = f"{text}\n{body}" if text else body
        try:
            statement = check_read_only(text)
        except QueryRefused as error:
            return _clickhouse_error(403, str(error), 164)
        match = FORMAT_CLAUSE.search(statement)
        fmt = match.group(1) if match else request.query.get("default_format", "TabSeparated")
        if not FORMAT_NAME.fullmatch(fmt):
            return _clickhouse_error(400, f"bad format name {fmt[:80]!r}", 73)
        if match:
            statement = statement[: match.start()].rstrip()
        parameters = {
            k[len("param_") :]: v for k, v in request.query.items() if k.startswith("param_")
        }
        assert reader is not None  # the route exists only with a reader
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

    app = web.Application(middlewares=[guard], client_max_size=limits.max_request_bytes)
    app.router.add_get("/ping", ping)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats_view)
    if metrics is not None:
        app.router.add_get("/metrics", metrics_view)
    if reader is not None:
        app.router.add_post("/ingest", push)
        app.router.add_route("GET", "/", sql)
        app.router.add_route("POST", "/", sql)
        add_dashboard(app, reader)
    if sink is not None:
        add_sink_routes(app, sink)
    return app
