"""The ``relradar`` command: one console script, a subcommand per job.

This module holds the service's commands: ``run`` (the service), ``broker`` (the local
broker), ``replay`` (files and demo datasets into Kafka), ``classify`` (JSONL in, JSONL out),
``schema`` and ``db migrate``; the analysts' ``sql``, ``report`` and ``alerts`` live in
``cli_analyst``, ``model`` and ``bench`` in ``cli_model``, the shared options in ``cli_common``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from schemas import Settings, Topics
from stream_jobs.cli_analyst import alerts, report, sql
from stream_jobs.cli_common import COMMON, common_options, make_settings
from stream_jobs.cli_model import bench, model
from stream_jobs.cli_ops import chaos
from stream_jobs.cli_transcripts import transcripts

__all__ = ["COMMON", "main"]


@click.group()
@click.version_option(package_name="relradar")
def main() -> None:
    """relradar: a streaming pipeline that reads consumer-brand relationships."""


@main.command()
@common_options
@click.option("--demo", is_flag=True, help="Also replay the shipped real datasets.")
@click.option(
    "--demo-rate", type=float, default=500.0, show_default=True, help="Demo messages per second."
)
@click.option("--demo-limit", type=int, help="Stop the demo after this many messages.")
def run(demo: bool, demo_rate: float, demo_limit: int | None, **options: Any) -> None:
    """Run the always-on service (broker, worker, ClickHouse, HTTP) until interrupted."""
    from stream_jobs.service import run_service

    run_service(make_settings(**options), demo=demo, demo_rate=demo_rate, demo_limit=demo_limit)


@main.command()
@click.option(
    "--address-file", type=click.Path(path_type=Path), help="Write host:port here once listening."
)
@click.option("--parent-pid", type=int, help="Exit when this process is gone.")
@click.option("--topic", "topics", multiple=True, help="Topic to create (repeatable).")
@click.option(
    "--partitions",
    type=click.IntRange(1, 256),
    default=4,
    envvar="RELRADAR_PARTITIONS",
    show_default=True,
    help="Partitions of every topic created.",
)
def broker(
    address_file: Path | None, parent_pid: int | None, topics: tuple[str, ...], partitions: int
) -> None:
    """Run the local Kafka-protocol broker in the foreground (in-memory, 127.0.0.1)."""
    from stream_jobs.broker import serve

    serve(topics or Topics().all(), address_file, parent_pid, partitions)


def _broker_address(settings: Settings) -> str:
    from stream_jobs.service import Runtime

    if settings.broker:
        return settings.broker
    runtime = Runtime.read(settings)
    if runtime is None:
        raise click.ClickException(
            "no broker configured and no running service found in "
            f"{settings.data_dir}: start `relradar run` or set RELRADAR_BROKER"
        )
    return runtime.broker


@main.command("replay")
@common_options
@click.argument("source")
@click.option("--map", "mapping", multiple=True, help="FIELD=COLUMN for a generic file.")
@click.option("--source-name", default="file", show_default=True, help="Source of a file.")
@click.option("--brand", help="Brand for rows or conversations that name none.")
@click.option("--time-format", help="strptime format of the timestamp column.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["rows", "auto", "ticket-json", "transcript", "ibm", "twcs"]),
    default="rows",
    show_default=True,
    help="A file's layout: rows (CSV/JSONL, see --map) or conversations (docs/transcripts.md).",
)
@click.option("--rate", type=float, help="Messages per second.")
@click.option("--speedup", type=float, help="N x the original timestamps' pace.")
@click.option("--limit", type=int, help="Send at most this many messages.")
@click.option(
    "--data",
    "data_dir_presets",
    type=click.Path(path_type=Path),
    help="Folder holding the preset datasets (default: the shipped demo data).",
)
def replay_cmd(
    source: str,
    mapping: tuple[str, ...],
    source_name: str,
    brand: str | None,
    time_format: str | None,
    file_format: str,
    rate: float | None,
    speedup: float | None,
    limit: int | None,
    data_dir_presets: Path | None,
    **options: Any,
) -> None:
    """Replay a preset (airline, twcs, ibm), a CSV/JSONL file or a conversations file."""
    from ingest import PRESETS, ColumnMapping, Publisher, Redactor, read_file, read_preset, replay
    from ingest.presets import DEMO_DATA

    settings = make_settings(**options)
    if source in PRESETS:
        records = read_preset(source, data_dir_presets or DEMO_DATA)
    elif file_format != "rows" and Path(source).exists():
        from ingest.transcripts import read_conversations

        if mapping:
            raise click.BadParameter("--map is for --format rows only")
        try:
            name = None if source_name == "file" else source_name
            records = read_conversations(Path(source), file_format, brand, source=name)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    elif Path(source).is_file():
        try:
            cmap = ColumnMapping.from_pairs(
                list(mapping), source=source_name, default_brand=brand, time_format=time_format
            )
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        records = read_file(Path(source), cmap)
    else:
        raise click.BadParameter(
            f"{source!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
        )
    redactor = Redactor.from_settings(settings)
    topics = Topics(settings.topic_prefix)
    with Publisher(_broker_address(settings), topics, redactor=redactor) as publisher:
        stats = replay(
            records,
            publisher,
            rate=rate,
            speedup=speedup,
            limit=limit,
            progress=True,
            description=source,
        )
    click.echo(
        json.dumps(
            {
                "sent": stats.sent,
                "dead_letters": stats.dead_letters,
                "seconds": round(stats.seconds, 2),
            }
        )
    )


def _jsonl(stream: Any) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for n, line in enumerate(stream, start=1):
        if line.strip():
            try:
                obj = json.loads(line)
                yield n, obj if isinstance(obj, dict) else "expected a JSON object"
            except json.JSONDecodeError as error:
                yield n, f"invalid JSON: {error}"


@main.command()
@click.option(
    "--input",
    "input_file",
    type=click.File("r"),
    default="-",
    help="JSONL with id and text per line (default: stdin).",
)
@click.option(
    "--classifier",
    envvar="RELRADAR_CLASSIFIER",
    default="default",
    show_default=True,
    help="'default', 'lexicon' or a model directory.",
)
@click.option("--batch", type=int, default=256, show_default=True)
def classify(input_file: Any, classifier: str, batch: int) -> None:
    """Classify JSONL {"id", "text"} lines; print {"id", "label", "scores"} per line."""
    from models import Classifier

    model = Classifier.from_pretrained(classifier)
    errors = 0
    # Lines are answered in input order; bad lines hold their place with an error.
    pending: list[tuple[Any, str | None, str | None, int]] = []

    def flush() -> None:
        texts = [text for _, text, _, _ in pending if text is not None]
        predictions = iter(model.predict(texts))
        for item_id, text, error, n in pending:
            if text is None:
                click.echo(json.dumps({"id": item_id, "line": n, "error": error}))
                continue
            p = next(predictions)
            scores = {k.value: round(v, 5) for k, v in p.scores.items()}
            click.echo(json.dumps({"id": item_id, "label": p.label.value, "scores": scores}))
        pending.clear()

    for n, obj in _jsonl(input_file):
        text = obj.get("text") if isinstance(obj, dict) else None
        item_id = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text.strip():
            errors += 1
            reason = obj if isinstance(obj, str) else "missing or empty 'text'"
            pending.append((item_id, None, reason, n))
        else:
            pending.append((item_id, text, None, n))
        if len(pending) >= batch:
            flush()
    flush()
    if errors:
        click.echo(f"{errors} lines could not be classified", err=True)
        sys.exit(1)


@main.command()
def schema() -> None:
    """Print the message envelope's JSON Schema."""
    from schemas import envelope_json_schema

    click.echo(json.dumps(envelope_json_schema(), indent=2))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@common_options
@click.option(
    "--cluster",
    help="Cluster name: ON CLUSTER DDL, Replicated and Distributed tables (docs/deploy.md).",
)
@click.option("--print", "print_only", is_flag=True, help="Print the DDL; apply nothing.")
@click.option("--check", is_flag=True, help="Apply nothing; exit 1 while any are pending.")
def migrate(cluster: str | None, print_only: bool, check: bool, **options: Any) -> None:
    """Apply pending ClickHouse migrations (embedded store must not be in use)."""
    from schemas.cluster_ddl import (
        ClusterDDLError,
        apply_plan,
        cluster_plan,
        pending_versions,
        plan_script,
        single_plan,
    )
    from stream_jobs.store import Store, StoreError

    settings = make_settings(**options)
    retention = (settings.retention_days, settings.text_retention_days)
    try:
        plan = cluster_plan(settings.database, cluster, retention) if cluster else None
    except ClusterDDLError as error:
        raise click.ClickException(f"no cluster DDL: {error}") from None
    if print_only:
        click.echo(plan_script(plan or single_plan(settings.database, retention)), nl=False)
        return
    if cluster and not settings.clickhouse_url:
        raise click.UsageError("--cluster needs a ClickHouse server: set RELRADAR_CLICKHOUSE_URL")
    store = Store.open(settings)
    try:
        if check:
            pending = pending_versions(store, settings.database)
            click.echo(f"pending: {pending}" if pending else "up to date")
            sys.exit(1 if pending else 0)
        applied = apply_plan(store, plan) if plan else store.migrate(progress=True)
    except StoreError as error:
        raise click.ClickException(f"migration failed: {error}") from None
    finally:
        store.close()
    click.echo(f"applied: {applied or 'nothing (up to date)'}")


for command in (sql, report, alerts, model, bench, chaos, transcripts):
    main.add_command(command)

if __name__ == "__main__":
    main()
