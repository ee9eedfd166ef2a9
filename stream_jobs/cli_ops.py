"""Operators' commands: ``relradar chaos`` (the kill-and-restart drill) and ``bench pipeline``.

Both run the real pipeline end to end: on the embedded defaults they start the local broker
and the service as their own processes in a scratch folder; ``chaos`` can also be pointed at a
deployment (its broker, its HTTP endpoint, and a command that kills a worker).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from stream_jobs.cli_model import bench


@click.command()
@click.option("--messages", "-n", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--kills", "-k", type=click.IntRange(0), default=3, show_default=True)
@click.option("--rate", type=float, default=1000.0, show_default=True, help="Messages/s sent.")
@click.option("--seed", type=int, help="Seed of the kill schedule.")
@click.option(
    "--classifier",
    envvar="RELRADAR_CLASSIFIER",
    default="default",
    show_default=True,
    help="Classifier of the drill's service (embedded drill only).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Keep the drill's broker, store and logs here (default: a temporary folder).",
)
@click.option("--broker", help="A deployment's Kafka bootstrap servers (instead of local).")
@click.option("--http", "http_url", help="The deployment's relradar HTTP endpoint URL.")
@click.option("--kill-command", help="Shell command that kills one worker of the deployment.")
@click.option("--database", default="relradar", show_default=True)
def chaos(
    messages: int,
    kills: int,
    rate: float,
    seed: int | None,
    classifier: str,
    workdir: Path | None,
    broker: str | None,
    http_url: str | None,
    kill_command: str | None,
    database: str,
) -> None:
    """Kill the worker K times while N messages stream; print what was lost or doubled.

    Exits 1 unless every message is stored exactly once and every aggregate agrees.
    """
    from stream_jobs.chaos import drill, local_drill, remote_target

    if bool(broker) != bool(http_url):
        raise click.UsageError("--broker and --http go together (a deployment's drill)")
    if broker and http_url:
        report = drill(remote_target(broker, http_url, kill_command, database), messages, kills,
                       rate, seed)  # fmt: skip
    elif workdir is not None:
        report = local_drill(workdir, messages, kills, rate, seed, classifier)
    else:
        with tempfile.TemporaryDirectory(prefix="relradar-chaos-") as tmp:
            report = local_drill(Path(tmp), messages, kills, rate, seed, classifier)
    click.echo(json.dumps(report.as_json(), indent=2))
    sys.exit(0 if report.ok else 1)


@bench.command("pipeline")
@click.option("--messages", "-n", type=click.IntRange(100), default=5000, show_default=True)
@click.option(
    "--classifier",
    default="default",
    show_default=True,
    help="'default' (shipped model), 'lexicon' or a model directory.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="A service setting for this run (repeatable), e.g. --set classify_batch=128.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Keep the run's broker, store and logs here (default: a temporary folder).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def bench_pipeline_cmd(
    messages: int, classifier: str, overrides: tuple[str, ...], workdir: Path | None, fmt: str
) -> None:
    """N real messages through broker, worker and store: msg/s, latency, vs the classifier.

    Also classifies the same messages in this process alone (the bottleneck's ceiling), and
    measures latency again at half the sustained rate.
    """
    from schemas import Settings
    from stream_jobs.bench_pipeline import bench_pipeline, text_report

    service: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in Settings.model_fields:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE of a setting", param_hint="--set")
        service[key] = value
    # The service inherits this environment; the in-process classifier batches like it.
    batch = Settings.model_validate({**Settings().model_dump(), **service}).classify_batch

    def run(root: Path) -> dict[str, Any]:
        say = (lambda line: click.echo(line, err=True)) if sys.stderr.isatty() else None
        return bench_pipeline(root, messages, classifier, batch, service, progress=say)

    if workdir is not None:
        result = run(workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="relradar-bench-") as tmp:
            result = run(Path(tmp))
    click.echo(json.dumps(result) if fmt == "json" else text_report(result))
