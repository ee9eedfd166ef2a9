"""Analysts' queries from the command line, against whichever store is configured.

With a ClickHouse server configured, the query goes straight to it. With the embedded engine,
which only the service's process may open, it goes through the service's HTTP endpoint, the
same way any ClickHouse HTTP client would. Either way the answer is column names and rows.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from schemas import Settings


class QueryError(Exception):
    """The query failed, or no store could be reached."""


def run_query(
    settings: Settings, query: str, parameters: dict[str, Any] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows; ``parameters`` fill ``{name:Type}`` placeholders server-side."""
    if settings.clickhouse_url:
        from stream_jobs.store import connect

        try:
            result = connect(settings).query(query, parameters=parameters)
        except Exception as error:
            raise QueryError(str(error)) from None
        return list(result.column_names), [list(r) for r in result.result_rows]
    return http_query(service_url(settings), query, settings, parameters)


def service_url(settings: Settings) -> str:
    from stream_jobs.service import Runtime

    runtime = Runtime.read(settings)
    if runtime is not None:
        return runtime.http
    return f"http://{settings.http_host}:{settings.http_port}"


def http_query(
    url: str, query: str, settings: Settings, parameters: dict[str, Any] | None = None
) -> tuple[list[str], list[list[Any]]]:
    params = urllib.parse.urlencode(
        {
            "default_format": "JSONCompact",
            **{f"param_{k}": v for k, v in (parameters or {}).items()},
        }
    )
    request = urllib.request.Request(f"{url}/?{params}", data=query.encode(), method="POST")
    if settings.api_token:
        request.add_header("Authorization", f"Bearer {settings.api_token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise QueryError(error.read().decode(errors="replace").strip()) from None
    except OSError as error:
        raise QueryError(
            f"no relradar service answered at {url} ({error}); start `relradar run` "
            "or set RELRADAR_CLICKHOUSE_URL"
        ) from None
    try:
        data = json.loads(body)
        return [c["name"] for c in data["meta"]], data["data"]
    except (ValueError, KeyError, TypeError):
        # The query chose its own FORMAT: hand its text back as one column.
        return ["result"], [[body.decode(errors="replace").rstrip("\n")]]


def render_table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)
