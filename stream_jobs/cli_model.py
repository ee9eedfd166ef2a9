"""The model and benchmark commands: ``model train|distill|export|eval|agreement|curve``,
``model treatment train|eval`` and ``bench classify|query``.

Benchmarks print figures and ratios against a baseline run in the same process; nothing here
asserts a speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


@click.group()
def model() -> None:
    """Train and evaluate the relationship classifier."""


def _layers(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...] | None:
    if value == "none":
        return None
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r}: layer numbers like 0,2,4,5, or none") from None


# The teacher's schedule: `model train` defaults, and what `model distill` records for it.
EPOCHS, BATCH_SIZE, LEARNING_RATE = 8, 32, 8e-5


def _ship_options(command: Any) -> Any:
    """``--seed``, the student's options, ``--out`` and ``--limit``: shared by both commands."""
    command = click.option(
        "--limit", type=int, help="Train on at most this many items (a quick check)."
    )(command)
    command = click.option(
        "--out", type=click.Path(path_type=Path), help="Model directory (default: shipped)."
    )(command)
    command = _student_options(command)
    return click.option("--seed", type=int, default=13, show_default=True)(command)


def _student_options(command: Any) -> Any:
    command = click.option(
        "--student-epochs", type=int, default=6, show_default=True, help="Epochs of the student."
    )(command)
    return click.option(
        "--student-layers",
        default="0,2,4,5",
        show_default=True,
        callback=_layers,
        help="The teacher's layers the shipped student keeps; 'none' ships the teacher itself.",
    )(command)


def _distill_args(layers: tuple[int, ...], epochs: int) -> Any:
    from models.distill import DistillArgs

    try:
        return DistillArgs(layers=layers, epochs=epochs)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def customer_texts() -> list[tuple[str, str]]:
    """(id, text) of every customer message in the shipped real data: the pool the student's
    unlabelled texts are picked from (``models.distill.unlabelled_pool``)."""
    from schemas import Envelope, Role
    from stream_jobs.service import demo_records

    return [
        (record.id, record.text)
        for record in demo_records()
        if isinstance(record, Envelope) and record.role is Role.customer
    ]


@model.command()
@click.option("--epochs", type=int, default=EPOCHS, show_default=True, help="Teacher epochs.")
@click.option("--batch-size", type=int, default=BATCH_SIZE, show_default=True)
@click.option("--learning-rate", type=float, default=LEARNING_RATE, show_default=True)
@_ship_options
def train(
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    student_layers: tuple[int, ...] | None,
    student_epochs: int,
    out: Path | None,
    limit: int | None,
) -> None:
    """Rebuild the corpus, fine-tune the six-layer teacher, distil the four-layer student,
    calibrate, score the test split and save the model (both checkpoints go to models/runs)."""
    from models.classifier import SHIPPED_MODEL
    from models.pipeline import train_and_ship

    args = _training_args(epochs, batch_size, learning_rate, seed)
    distill = None if student_layers is None else _distill_args(student_layers, student_epochs)
    metrics = train_and_ship(
        args,
        out or SHIPPED_MODEL,
        checkpoint_dir=Path("models/runs"),
        limit=limit,
        progress=sys.stderr.isatty(),
        distill=distill,
        candidates=customer_texts() if distill else None,
    )
    click.echo(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))


@model.command("distill")
@click.argument("teacher", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_ship_options
def distill_cmd(
    teacher: Path,
    seed: int,
    student_layers: tuple[int, ...] | None,
    student_epochs: int,
    out: Path | None,
    limit: int | None,
) -> None:
    """Only the student step of `model train`, from a saved teacher checkpoint (a
    models/runs directory): distil, calibrate, score the test split and save the model."""
    from models.classifier import SHIPPED_MODEL
    from models.pipeline import distill_and_ship

    if student_layers is None:
        raise click.BadParameter("distill needs student layers", param_hint="--student-layers")
    metrics = distill_and_ship(
        teacher,
        _training_args(EPOCHS, BATCH_SIZE, LEARNING_RATE, seed),
        _distill_args(student_layers, student_epochs),
        customer_texts(),
        out or SHIPPED_MODEL,
        checkpoint_dir=Path("models/runs"),
        limit=limit,
        progress=sys.stderr.isatty(),
    )
    click.echo(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))


def _training_args(epochs: int, batch_size: int, learning_rate: float, seed: int) -> Any:
    from models.train import TrainingArgs

    try:
        return TrainingArgs(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@model.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--quantize",
    type=click.Choice(["dynamic", "static", "none"]),
    default="dynamic",
    show_default=True,
    help="dynamic: int8, ranges per text, one text per run; static: fixed calibrated ranges.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Model directory (default: shipped).")
def export_cmd(checkpoint: Path, quantize: str, out: Path | None) -> None:
    """Rebuild a model directory's weights and ONNX graph from a training checkpoint, and
    refit its problem-label bias and temperature on dev (then: model treatment train)."""
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


_SHARES = "Shares of the written train groups, e.g. 0.25,0.5,1."
_SEEDS = "One six-layer network per seed at each share; several are also averaged."


@model.command("curve")
@click.option("--fractions", default="0.25,0.5,1", show_default=True, help=_SHARES)
@click.option("--seeds", default="13", show_default=True, help=_SEEDS)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def curve_cmd(fractions: str, seeds: str, fmt: str) -> None:
    """Dev only: the fine-tuned network's lead over TF-IDF as written data grows, and with
    seeds averaged and TF-IDF added (about 11 minutes per network on all the data, 2 cores)."""
    from models.curve import check_fractions, format_curve, learning_curve, teacher_dev_logits
    from models.data import load_corpus

    try:
        shares = [float(part) for part in fractions.split(",")]
        seed_list = [int(part) for part in seeds.split(",")]
    except ValueError:
        raise click.BadParameter("comma-separated numbers, e.g. 0.25,0.5,1 and 13,14") from None
    try:
        check_fractions(shares)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--fractions") from None
    args = _training_args(EPOCHS, BATCH_SIZE, LEARNING_RATE, seed_list[0])
    rows = learning_curve(
        load_corpus(), shares, seed_list, teacher_dev_logits(args, progress=sys.stderr.isatty())
    )
    click.echo(json.dumps(rows, indent=2) if fmt == "json" else format_curve(rows))


@model.command("agreement")
@click.option("--model-dir", type=click.Path(path_type=Path), help="Default: the shipped model.")
def agreement_cmd(model_dir: Path | None) -> None:
    """Two labellers on real test items: their agreement, and each classifier against each."""
    from models.agreement import agreement_report
    from models.classifier import SHIPPED_MODEL

    agreement_report(model_dir or SHIPPED_MODEL)


@model.group()
def treatment() -> None:
    """The treatment model: how agent turns treat the customer (docs/treatment.md)."""


@treatment.command("train")
@click.option("--model-dir", type=click.Path(path_type=Path), help="Default: the shipped model.")
def treatment_train_cmd(model_dir: Path | None) -> None:
    """Fit the head and the TF-IDF part, calibrate, pick the shipped variant on dev, save."""
    from models.classifier import SHIPPED_MODEL
    from models.treatment import train_treatment

    metrics = train_treatment(model_dir or SHIPPED_MODEL)
    click.echo(json.dumps(metrics, indent=2))


@treatment.command("eval")
@click.option("--model-dir", type=click.Path(path_type=Path), help="Default: the shipped model.")
def treatment_eval_cmd(model_dir: Path | None) -> None:
    """Score the shipped variant, the head and TF-IDF alone and the lexicon cues on test."""
    from models.classifier import SHIPPED_MODEL
    from models.treatment_eval import run_treatment_eval

    run_treatment_eval(model_dir or SHIPPED_MODEL)


@click.group()
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
@click.option(
    "--batch-size",
    type=int,
    help="Texts per run of a static graph (default 16); a dynamic graph runs one at a time.",
)
@click.option("--model-dir", type=click.Path(path_type=Path), help="Default: the shipped model.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def bench_classify_cmd(
    count: int, baseline_limit: int | None, batch_size: int | None, model_dir: Path | None, fmt: str
) -> None:
    """Shipped int8 path vs a plain transformers pipeline, same process, same real texts."""
    from models.bench import bench_classify
    from models.classifier import SHIPPED_MODEL, ClassifierError

    try:
        result = bench_classify(
            real_texts(count),
            model_dir or SHIPPED_MODEL,
            baseline_limit,
            batch_size,
            progress=sys.stderr.isatty(),
        )
    except ClassifierError as error:
        raise click.BadParameter(str(error), param_hint="--batch-size") from None
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
