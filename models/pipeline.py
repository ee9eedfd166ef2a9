"""Train-to-ship: corpus, fine-tuning, calibration, test scores and the shipped artifact.

``train_and_ship`` is what ``relradar model train`` and ``make train`` run: it rebuilds the
corpus from the raw labelled files, fine-tunes the six-layer teacher on the train split with
early stopping on dev, distils the four-layer student from it (``models.distill``; the student
is what ships), fits the problem-label bias and the softmax temperature on dev, scores the
held-out test split (synthetic and real slices apart), writes the artifact with its metrics,
the corpus hash and how it was distilled, and refits the treatment head on the new encoder.
``distill_and_ship`` redoes the student step from a saved teacher checkpoint.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import save_artifact
from models.base import load_tokenizer
from models.classifier import SHIPPED_MODEL
from models.data import Item, build_corpus, corpus_hash, load_corpus
from models.datacard import write_data_card
from models.distill import DistillArgs, distil, distill_args_dict, unlabelled_pool
from models.metrics import (
    calibrated,
    evaluate,
    expected_calibration_error,
    fit_problem_bias,
    fit_temperature,
    softmax,
    with_problem_bias,
)
from models.train import (
    TrainingArgs,
    TrainResult,
    args_dict,
    predict_logits,
    save_checkpoint,
    train,
)
from schemas import LABELS


def calibration(items: list[Item], count: int = 1024) -> list[str]:
    """A fixed, spread-out sample of training texts for int8 calibration."""
    ordered = sorted(items, key=lambda i: i.id)
    step = max(1, len(ordered) // count)
    return [i.text for i in ordered[::step][:count]]


def dev_settings(dev_logits: np.ndarray, dev_gold: np.ndarray) -> dict[str, float]:
    """The problem-label bias (best dev macro-F1) and then the temperature (least dev NLL)
    for the biased logits, so that the shipped probabilities stay calibrated."""
    bias = fit_problem_bias(dev_logits, dev_gold)
    biased = with_problem_bias(dev_logits, bias)
    return {"problem_bias": bias, "temperature": fit_temperature(biased, dev_gold)}


def calibrate_artifact(path: Path, dev: list[Item]) -> dict[str, float]:
    """Fit the dev settings on the shipped int8 graph's own dev logits (what the runtime's
    decisions and probabilities come from) and record them in the artifact."""
    import json

    from models.classifier import ARTIFACT_FILE
    from models.onnx_runtime import OnnxClassifier

    index = {label: k for k, label in enumerate(LABELS)}
    logits = OnnxClassifier.load(path).logits([i.text for i in dev])
    settings = dev_settings(logits, np.array([index[i.label] for i in dev]))
    meta = json.loads((path / ARTIFACT_FILE).read_text())
    meta.update(settings)
    (path / ARTIFACT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return settings


def reexport(checkpoint: Path, out: Path = SHIPPED_MODEL, quantize: str = "dynamic") -> None:
    """Rebuild the shipped artifact's weights and ONNX graph from a full training checkpoint,
    and refit its dev settings (problem-label bias, temperature) on the new graph."""
    import json

    from models.classifier import ARTIFACT_FILE
    from models.net import MeanPoolClassifier

    meta = json.loads((out / ARTIFACT_FILE).read_text())
    model = MeanPoolClassifier.from_pretrained(checkpoint)
    corpus = load_corpus()
    items = [i for i in corpus if i.split == "train"]
    for key in ("format_version", "runtime", "labels", "base_model", "created_at"):
        meta.pop(key, None)
    save_artifact(model, load_tokenizer(), out, meta, calibration_texts=calibration(items),
                  quantize=quantize)  # fmt: skip
    calibrate_artifact(out, [i for i in corpus if i.split == "dev"])


def train_and_ship(
    args: TrainingArgs,
    out: Path = SHIPPED_MODEL,
    checkpoint_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    distill: DistillArgs | None = None,
    candidates: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Rebuild the corpus, fine-tune the six-layer teacher, then (unless ``distill`` is None)
    distil the four-layer student from it on the train split plus the unlabelled real texts
    among ``candidates`` (id, text); ship the last model trained."""
    items, corpus = _corpus()
    train_items, dev_items, _ = _splits(items, limit)
    print(f"train {len(train_items)}, dev {len(dev_items)}", flush=True)
    result = train(train_items, dev_items, args, progress=progress)
    teacher: dict[str, Any] = {"best_epoch": result.best_epoch,
                               "dev_macro_f1": round(result.best_dev_macro_f1, 4)}  # fmt: skip
    if checkpoint_dir is not None:
        saved = checkpoint_dir / time.strftime("%Y%m%d-%H%M%S")
        save_checkpoint(result.model, saved)
        teacher["checkpoint"] = saved.name
    if distill is None:
        return ship(result, items, corpus, args, out, limit)
    return _distil_and_ship(result.model, teacher, items, corpus, args, distill, candidates or [],
                            out, checkpoint_dir, limit, progress)  # fmt: skip


def distill_and_ship(
    teacher_checkpoint: Path,
    args: TrainingArgs,
    distill: DistillArgs,
    candidates: list[tuple[str, str]],
    out: Path = SHIPPED_MODEL,
    checkpoint_dir: Path | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The student step alone, from a teacher checkpoint that ``train_and_ship`` saved."""
    from models.net import MeanPoolClassifier

    items, corpus = _corpus()
    teacher = MeanPoolClassifier.from_pretrained(teacher_checkpoint).eval()
    info = {"checkpoint": teacher_checkpoint.name}
    return _distil_and_ship(teacher, info, items, corpus, args, distill, candidates, out,
                            checkpoint_dir, limit, progress)  # fmt: skip


def _corpus() -> tuple[list[Item], dict[str, int]]:
    """The corpus rebuilt from the raw files (and its data card), with the build's counts."""
    report = build_corpus()
    write_data_card(report)
    print(f"corpus: {report}", flush=True)
    return load_corpus(), dict(report.__dict__)


def _splits(items: list[Item], limit: int | None) -> tuple[list[Item], list[Item], list[Item]]:
    """Train, dev and test items; with ``limit`` (a quick check) at most that many train items
    and a quarter as many dev and test items."""
    part = limit and limit // 4
    return (
        [i for i in items if i.split == "train"][:limit],
        [i for i in items if i.split == "dev"][:part],
        [i for i in items if i.split == "test"][:part],
    )


def _distil_and_ship(
    teacher: Any,
    teacher_info: dict[str, Any],
    items: list[Item],
    corpus: dict[str, int],
    args: TrainingArgs,
    distill: DistillArgs,
    candidates: list[tuple[str, str]],
    out: Path,
    checkpoint_dir: Path | None,
    limit: int | None,
    progress: bool,
) -> dict[str, Any]:
    train_items, dev_items, _ = _splits(items, limit)
    pool = unlabelled_pool(candidates, items)[:limit]
    result = distil(teacher, train_items, dev_items, pool, args, distill, progress)
    if checkpoint_dir is not None:
        save_checkpoint(result.model, checkpoint_dir / time.strftime("%Y%m%d-%H%M%S-student"))
    unlabelled = {"texts": len(pool), "hash": hashlib.sha256("\n".join(pool).encode()).hexdigest()}
    # Rows stored by the stream name the model that labelled them: the student is not the teacher.
    extra = {"name": f"relradar-minilm-{len(distill.layers)}l",
             "distillation": {**distill_args_dict(distill), "teacher": teacher_info,
                              "unlabelled": unlabelled}}  # fmt: skip
    return ship(result, items, corpus, args, out, limit, extra)


def ship(
    result: TrainResult,
    items: list[Item],
    corpus: dict[str, int],
    args: TrainingArgs,
    out: Path,
    limit: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score a trained model on dev and test, write the artifact, fit the int8 graph's dev
    settings and refit the treatment head on the new encoder."""
    train_items, dev_items, test_items = _splits(items, limit)
    tokenizer = load_tokenizer()
    index = {label: i for i, label in enumerate(LABELS)}
    dev_logits = predict_logits(
        result.model, tokenizer, [i.text for i in dev_items], args.max_length
    )
    dev_gold = np.array([index[i.label] for i in dev_items])
    settings = dev_settings(dev_logits, dev_gold)
    bias, temperature = settings["problem_bias"], settings["temperature"]
    metrics: dict[str, Any] = {
        "best_epoch": result.best_epoch,
        "dev_macro_f1": round(result.best_dev_macro_f1, 4),
        "train_seconds": round(result.seconds, 1),
        "history": result.history,
        "problem_bias": bias,
        "temperature": round(temperature, 4),
        "dev_ece_before": round(expected_calibration_error(softmax(dev_logits), dev_gold), 4),
        "dev_ece_after": round(
            expected_calibration_error(calibrated(dev_logits, temperature, bias), dev_gold), 4
        ),
    }
    for slice_name in ("synthetic", "real"):
        part = [i for i in test_items if i.slice == slice_name]
        if not part:
            continue
        logits = predict_logits(result.model, tokenizer, [i.text for i in part], args.max_length)
        probs = calibrated(logits, temperature, bias)
        scores = evaluate([i.label for i in part], [LABELS[k] for k in probs.argmax(axis=1)])
        metrics[f"test_{slice_name}"] = scores.as_dict()
        gold = np.array([index[i.label] for i in part])
        metrics[f"test_{slice_name}"]["ece"] = round(expected_calibration_error(probs, gold), 4)
    meta = {  # the temperature and problem bias come from the int8 graph (calibrate_artifact)
        "name": "relradar-minilm",
        "max_length": args.max_length,
        "data_hash": corpus_hash(items),
        "training_args": args_dict(args),
        "metrics": metrics,
        "corpus": corpus,
        **(extra or {}),
    }
    save_artifact(result.model, tokenizer, out, meta, calibration_texts=calibration(train_items))
    # ``metrics`` scores the fp32 weights with settings fitted on their own dev logits; what
    # ships is the int8 graph, so its settings are fitted again on its own dev logits.
    shipped = calibrate_artifact(out, dev_items)
    print(f"saved {out} (int8 dev settings {shipped})", flush=True)
    # The treatment head reads this encoder's embeddings, so a new encoder needs a new head.
    from models.treatment import train_treatment

    treatment = train_treatment(out)
    print(f"treatment head: dev macro-F1 {treatment['dev_macro_f1']}", flush=True)
    return metrics
