"""The ``relradar`` command: one console script, a subcommand per job.

Settings come from ``RELRADAR_*`` environment variables; the common options below override
them (each option names its variable, datasette-style). The settings object is built here,
once, and passed down. Subcommands: ``run`` (the service), ``broker`` (the local broker),
``replay`` (files and demo datasets into Kafka), ``classify`` (JSONL in, JSONL out), ``sql``
(an analyst's query against the running store), ``db migrate``, plus ``model`` and ``bench``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from schemas import Settings, Topics
from stream_jobs.reports import REPORTS as _REPORTS

REPORT_NAMES = tuple(_REPORTS)

F = TypeVar("F", bound=Callable[..., Any])

COMMON = [
    click.option(
        "--data-dir",
        envvar="RELRADAR_DATA_DIR",
        type=click.Path(path_type=Path),
        help="Embedded data and runtime files [RELRADAR_DATA_DIR].",
    ),
    click.option(
        "--broker",
        envvar="RELRADAR_BROKER",
        help="Kafka bootstrap servers; unset uses the local broker [RELRADAR_BROKER].",
    ),
    click.option(
        "--clickhouse-url",
        envvar="RELRADAR_CLICKHOUSE_URL",
        help="ClickHouse server URL; unset is embedded [RELRADAR_CLICKHOUSE_URL].",
    ),
    click.option(
        "--http-port",
        envvar="RELRADAR_HTTP_PORT",
        type=int,
        help="Port of the service's HTTP endpoint [RELRADAR_HTTP_PORT].",
    ),
    click.option(
        "--classifier",
        envvar="RELRADAR_CLASSIFIER",
        help="'default', 'lexicon' or a model directory [RELRADAR_CLASSIFIER].",
    ),
]


def common_options(fn: F) -> F:
    for option in reversed(COMMON):
        fn = option(fn)
    return fn


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the options the user gave on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


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
def broker(address_file: Path | None, parent_pid: int | None, topics: tuple[str, ...]) -> None:
    """Run the local Kafka-protocol broker in the foreground (in-memory, 127.0.0.1)."""
    from stream_jobs.broker import serve

    serve(topics or Topics().all(), address_file, parent_pid)


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
@click.option("--brand", help="Brand for rows that have none (generic file).")
@click.option("--time-format", help="strptime format of the timestamp column.")
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
    rate: float | None,
    speedup: float | None,
    limit: int | None,
    data_dir_presets: Path | None,
    **options: Any,
) -> None:
    """Replay a preset (airline, twcs, ibm) or a CSV/JSONL file into Kafka."""
    from ingest import PRESETS, ColumnMapping, Publisher, read_file, read_preset, replay
    from ingest.presets import DEMO_DATA

    settings = make_settings(**options)
    if source in PRESETS:
        records = read_preset(source, data_dir_presets or DEMO_DATA)
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
    with Publisher(_broker_address(settings), Topics(settings.topic_prefix)) as publisher:
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
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    else:
        from stream_jobs.query import render_table

        click.echo(render_table(columns, rows))


@main.command()
def schema() -> None:
    """Print the message envelope's JSON Schema."""
    from schemas import envelope_json_schema

    click.echo(json.dumps(envelope_json_schema(), indent=2))


@main.command()
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

    from stream_jobs.query import QueryError, render_table, run_query
    from stream_jobs.reports import REPORTS

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
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    else:
        click.echo(f"{spec.title} ({since} .. {until})")
        click.echo(render_table(columns, rows))


@main.group()
def alerts() -> None:
    """Problem-relationship alerts."""


@alerts.command("list")
@common_options
@click.option("--brand", default="", help="Only this brand.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def alerts_list(brand: str, limit: int, fmt: str, **options: Any) -> None:
    """The newest alerts (``--format json``: a JSON array of alert objects)."""
    from stream_jobs.query import QueryError, render_table, run_query

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
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str))
    else:
        shown = [c for c in columns if c not in {"id", "test", "examples", "window_end"}]
        keep = [columns.index(c) for c in shown]
        click.echo(render_table(shown, [[r[i] for i in keep] for r in rows]))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@common_options
def migrate(**options: Any) -> None:
    """Apply pending ClickHouse migrations (embedded store must not be in use)."""
    from stream_jobs.store import Store

    store = Store.open(make_settings(**options))
    applied = store.migrate(progress=True)
    click.echo(f"applied: {applied or 'nothing (up to date)'}")


@main.group()
def model() -> None:
    """Train and evaluate the relationship classifier."""


@model.command()
@click.option("--epochs", type=int, default=6, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--learning-rate", type=float, default=8e-5, show_default=True)
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Model directory (default: shipped).")
@click.option("--limit", type=int, help="Train on at most this many items (a quick check).")
def train(
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    out: Path | None,
    limit: int | None,
) -> None:
    """Rebuild the corpus, fine-tune, calibrate, score the test split and save the model."""
    from models.classifier import SHIPPED_MODEL
    from models.pipeline import train_and_ship
    from models.train import TrainingArgs

    try:
        args = TrainingArgs(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    metrics = train_and_ship(
        args,
        out or SHIPPED_MODEL,
        checkpoint_dir=Path("models/runs"),
        limit=limit,
        progress=sys.stderr.isatty(),
    )
    click.echo(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))


@model.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option("--quantize", type=click.Choice(["static", "dynamic", "none"]), default="static")
@click.option("--out", type=click.Path(path_type=Path), help="Model directory (default: shipped).")
def export_cmd(checkpoint: Path, quantize: str, out: Path | None) -> None:
    """Rebuild a model directory's weights and ONNX graph from a training checkpoint."""
    from models.classifier import SHIPPED_MODEL
    from models.pipeline import reexport

    reexport(checkpoint, out or SHIPPED_MODEL, quantize)
    click.echo(f"exported {checkpoint} -> {out or SHIPPED_MODEL} ({quantize})")


@model.command("eval")
@click.option("--model-dir", type=click.Path(path_type=Path), help="Default: the shipped model.")
def eval_cmd(model_dir: Path | None) -> None:
    """Score the fine-tuned model and both baselines on the held-out test split."""
    from models.classifier import SHIPPED_MODEL
    from models.evaluate import run_eval

    run_eval(model_dir or SHIPPED_MODEL)


@main.group()
def bench() -> None:
    """Benchmarks: figures and ratios against a baseline run in the same process."""


def real_texts(limit: int) -> list[str]:
    """Customer texts from the shipped real data, the three datasets interleaved."""
    from schemas import Envelope, Role
    from stream_jobs.service import demo_records

    texts: list[str] = []
    for record in demo_records():
        if isinstance(record, Envelope) and record.role is Role.customer:
            texts.append(record.text)
            if len(texts) >= limit:
                break
    return texts


@bench.command("classify")
@click.option("--texts", "count", type=int, default=5000, show_default=True)
@click.option("--baseline-limit", type=int, help="Time the plain pipeline on fewer texts.")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--model-dir", type=click.Path(path_type=Path), help="Default: the shipped model.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def bench_classify_cmd(
    count: int, baseline_limit: int | None, batch_size: int, model_dir: Path | None, fmt: str
) -> None:
    """Shipped int8 path vs a plain transformers pipeline, same process, same real texts."""
    from models.bench import bench_classify
    from models.classifier import SHIPPED_MODEL

    result = bench_classify(
        real_texts(count),
        model_dir or SHIPPED_MODEL,
        baseline_limit,
        batch_size,
        progress=sys.stderr.isatty(),
    )
    if fmt == "json":
        click.echo(json.dumps(result))
        return
    s, p = result["shipped"], result["plain_pipeline"]
    click.echo(
        f"{result['texts']} real texts, {result['mean_tokens']} tokens on average, "
        f"{result['cores']} cores"
    )
    click.echo(f"shipped ({s['path']}, batch {s['batch_size']}): {s['msgs_per_s']} msg/s")
    click.echo(f"plain pipeline ({p['path']}, {p['texts']} texts): {p['msgs_per_s']} msg/s")
    click.echo(f"ratio: {result['ratio']}x   label agreement: {result['label_agreement']:.2%}")


@bench.command("query")
@click.option("--rows", type=int, default=10_000_000, show_default=True)
@click.option("--repeat", type=int, default=7, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def bench_query_cmd(rows: int, repeat: int, fmt: str) -> None:
    """Load N rows into a temporary store; time brand x label x day from the aggregates."""
    from stream_jobs.bench import bench_query

    result = bench_query(rows, repeat)
    if fmt == "json":
        click.echo(json.dumps(result))
        return
    click.echo(
        f"loaded {result['rows']:,} rows in {result['load_seconds']}s "
        f"({result['load_rows_per_s']:,} rows/s)"
    )
    click.echo(
        f"brand x label x day, 90 days, from counts_day: {result['aggregate_query_ms']} ms "
        f"(median of {repeat}); from raw messages: {result['raw_query_ms']} ms; "
        f"ratio {result['ratio']}x; answers agree: {result['answers_agree']}"
    )


if __name__ == "__main__":
    main()
