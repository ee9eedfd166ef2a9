"""The dashboard: a page served by the service, and the JSON it draws from.

``/dashboard`` is a static page (Chart.js, shipped in ``static/vendor`` with its MIT licence)
that calls the ``/api/*`` routes below. Each route runs one of the canned reports' SQL on the
read-only store, over the newest ``days`` of data (event time), so the page shows the same
numbers ``relradar report`` prints.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from stream_jobs.reports import REPORTS
from stream_jobs.store import Store, StoreError

STATIC = Path(__file__).parent / "static"


def add_dashboard(app: web.Application, reader: Store) -> None:
    db = reader.database

    async def rows(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await asyncio.get_running_loop().run_in_executor(None, reader.rows, sql, params)

    async def period(request: web.Request) -> dict[str, Any]:
        days = min(max(int(request.query.get("days", "90")), 1), 3650)
        # Anchored to the chosen brand's newest data, so a brand replayed from another era
        # (or a backfill) shows its own recent period.
        brand = request.query.get("brand", "")
        [newest] = await rows(
            f"SELECT max(bucket) AS b FROM {db}.counts_day "
            "WHERE brand = {brand:String} OR {brand:String} = ''",
            {"brand": brand},
        )
        end = (newest["b"] or datetime(1970, 1, 1)).replace(tzinfo=None) + timedelta(days=1)
        since = end - timedelta(days=days)
        return {"db": db, "since": since, "until": end, "brand": brand}

    def report(name: str, extra: dict[str, Any] | None = None) -> Any:
        spec = REPORTS[name]

        async def handler(request: web.Request) -> web.Response:
            try:
                values = {
                    **await period(request),
                    "baseline_days": 7,
                    "per_label": 3,
                    **(extra or {}),
                }
                found = await rows(spec.sql, {k: values[k] for k in ["db", *spec.parameters]})
            except (StoreError, ValueError) as error:
                return web.json_response({"error": str(error)}, status=400)
            brand = request.query.get("brand")
            if brand and name == "problem-share":
                found = [r for r in found if r["brand"] == brand]
            return web.json_response(found, dumps=_dumps)

        return handler

    async def brands(_: web.Request) -> web.Response:
        found = await rows(
            f"SELECT brand, sum(messages) AS messages FROM {db}.counts_day "
            "GROUP BY brand ORDER BY messages DESC, brand",
            {},
        )
        return web.json_response(found, dumps=_dumps)

    async def alerts(request: web.Request) -> web.Response:
        found = await rows(
            f"SELECT brand, toString(label) AS label, window_start, observed_share, "
            f"expected_share, lift, p_value, examples FROM {db}.alerts FINAL "
            "WHERE brand = {brand:String} OR {brand:String} = '' "
            "ORDER BY window_start DESC LIMIT 50",
            {"brand": request.query.get("brand", "")},
        )
        return web.json_response(found, dumps=_dumps)

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "dashboard.html")

    app.router.add_get("/dashboard", page)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/brands", brands)
    app.router.add_get("/api/mix", report("mix"))
    app.router.add_get("/api/problem-share", report("problem-share"))
    app.router.add_get("/api/share-of-voice", report("share-of-voice"))
    app.router.add_get("/api/alerts", alerts)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))
