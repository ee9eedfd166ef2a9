"""The analysts' commands: ``sql``, ``report`` and ``alerts``.

They run against whichever store is configured: a ClickHouse server directly, or the embedded
store through the running service's HTTP endpoint (only the service may open it).
"""

from __future__ import annotations

import json
from typing import Any

import click

from stream_jobs.cli_common import common_options, make_settings
from stream_jobs.reports import REPORTS

REPORT_NAMES = tuple(REPORTS)


def echo_rows(
    columns: list[str],
    rows: list[list[Any]],
    fmt: str,
    title: str | None = None,
    hidden: frozenset[str] = frozenset(),
) -> None:
    """Print rows as a JSON array of objects, or as a table (``hidden`` columns left out)."""
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
        return
    from stream_jobs.query import render_table

    keep = [i for i, c in enumerate(columns) if c not in hidden]
    if title:
        click.echo(title)
    click.echo(render_table([columns[i] for i in keep], [[r[i] for i in keep] for r in rows]))


@click.command()
@common_options
@click.argument("query")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def sql(query: str, fmt: str, **options: Any) -> None:
    """Run an analyst's read query against the running service's ClickHouse."""
    from stream_jobs.query import QueryError, run_query

    try:
        columns, rows = run_query(make_settings(**options), query)
    except QueryError as error:
        raise click.ClickException(str(error)) from None
    echo_rows(columns, rows, fmt)


@click.command()
@common_options
@click.argument("name", type=click.Choice(sorted(REPORT_NAMES)))
@click.option("--brand", default="", help="Brand (mix needs one; examples: optional).")
@click.option("--since", help="Start (ISO date/time); default: 30 days before the newest data.")
@click.option("--until", help="End, exclusive; default: just after the newest data.")
@click.option("--baseline-days", type=int, default=7, show_default=True)
@click.option("--before", help="movers: the earlier period as SINCE..UNTIL (default: 7 days).")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--per-label", type=int, default=3, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def report(
    name: str,
    brand: str,
    since: str | None,
    until: str | None,
    baseline_days: int,
    before: str | None,
    limit: int,
    per_label: int,
    fmt: str,
    **options: Any,
) -> None:
    """Run a canned analyst report (its SQL is in docs/reports.md)."""
    from datetime import datetime, timedelta

    from stream_jobs.query import QueryError, run_query

    settings = make_settings(**options)
    spec = REPORTS[name]
    try:
        if until is None or since is None:
            _, [[newest]] = run_query(
                settings, f"SELECT toString(max(bucket)) FROM {settings.database}.counts_day"
            )
            end = datetime.fromisoformat(str(newest)) + timedelta(days=1)
            until = until or end.strftime("%Y-%m-%d %H:%M:%S")
            since = since or (end - timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S")
        a_since, a_until = (before or "..").split("..")
        if not (a_since and a_until):
            start = datetime.fromisoformat(since)
            a_since = (start - timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S")
            a_until = start.strftime("%Y-%m-%d %H:%M:%S")
        values: dict[str, Any] = {
            "db": settings.database,
            "brand": brand,
            "since": since,
            "until": until,
            "baseline_days": baseline_days,
            "limit": limit,
            "per_label": per_label,
            "a_since": a_since,
            "a_until": a_until,
            "b_since": since,
            "b_until": until,
        }
        if name == "mix" and not brand:
            raise click.BadParameter("the mix report needs --brand")
        params = {k: values[k] for k in ["db", *spec.parameters]}
        columns, rows = run_query(settings, spec.sql, params)
    except QueryError as error:
        raise click.ClickException(str(error)) from None
    echo_rows(columns, rows, fmt, title=f"{spec.title} ({since} .. {until})")


@click.group()
def alerts() -> None:
    """Problem-relationship alerts."""


@alerts.command("list")
@common_options
@click.option("--brand", default="", help="Only this brand.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def alerts_list(brand: str, limit: int, fmt: str, **options: Any) -> None:
    """The newest alerts (``--format json``: a JSON array of alert objects)."""
    from stream_jobs.query import QueryError, run_query

    settings = make_settings(**options)
    sql = (
        "SELECT id, brand, toString(label) AS label, window_start, window_end, messages, count, "
        "observed_share, expected_share, lift, p_value, test, examples, created_at "
        f"FROM {settings.database}.alerts FINAL "
        "WHERE brand = {brand:String} OR {brand:String} = '' "
        "ORDER BY window_start DESC, brand, label LIMIT {limit:UInt32}"
    )
    try:
        columns, rows = run_query(settings, sql, {"brand": brand, "limit": limit})
    except QueryError as error:
        raise click.ClickException(str(error)) from None
    echo_rows(columns, rows, fmt, hidden=frozenset({"id", "test", "examples", "window_end"}))
