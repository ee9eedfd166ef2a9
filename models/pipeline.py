"""Train-to-ship: corpus, fine-tuning, calibration, test scores and the shipped artifact.

``train_and_ship`` is what ``relradar model train`` and ``make train`` run: it rebuilds the
corpus from the raw labelled files, fine-tunes on the train split with early stopping on dev,
fits the problem-label bias and the softmax temperature on dev, scores the held-out test split
(synthetic and real slices apart), writes the artifact with its metrics and the corpus hash,
and refits the treatment head on the new encoder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import save_artifact
from models.base import load_tokenizer
from models.classifier import SHIPPED_MODEL
from models.data import Item, build_corpus, corpus_hash, load_corpus
from models.datacard import write_data_card
from models.metrics import (
    evaluate,
    expected_calibration_error,
    fit_problem_bias,
    fit_temperature,
    softmax,
    with_problem_bias,
)
from models.train import TrainingArgs, args_dict, predict_logits, save_checkpoint, train
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
) -> dict[str, Any]:
    report = build_corpus()
    write_data_card(report)
    print(f"corpus: {report}", flush=True)
    items = load_corpus()
    train_items = [i for i in items if i.split == "train"][:limit]
    dev_items = [i for i in items if i.split == "dev"][: limit and limit // 4]
    test_items = [i for i in items if i.split == "test"][: limit and limit // 4]
    print(f"train {len(train_items)}, dev {len(dev_items)}, test {len(test_items)}", flush=True)
    result = train(train_items, dev_items, args, progress=progress)
    tokenizer = load_tokenizer()
    index = {label: i for i, label in enumerate(LABELS)}
    dev_logits = predict_logits(
        result.model, tokenizer, [i.text for i in dev_items], args.max_length
    )
    dev_gold = np.array([index[i.label] for i in dev_items])
    settings = dev_settings(dev_logits, dev_gold)
    bias, temperature = settings["problem_bias"], settings["temperature"]
    dev_biased = with_problem_bias(dev_logits, bias)
    metrics: dict[str, Any] = {
        "best_epoch": result.best_epoch,
        "dev_macro_f1": round(result.best_dev_macro_f1, 4),
        "train_seconds": round(result.seconds, 1),
        "history": result.history,
        "problem_bias": bias,
        "temperature": round(temperature, 4),
        "dev_ece_before": round(expected_calibration_error(softmax(dev_logits), dev_gold), 4),
        "dev_ece_after": round(
            expected_calibration_error(softmax(dev_biased, temperature), dev_gold), 4
        ),
    }
    for slice_name in ("synthetic", "real"):
        part = [i for i in test_items if i.slice == slice_name]
        if not part:
            continue
        logits = predict_logits(result.model, tokenizer, [i.text for i in part], args.max_length)
        logits = with_problem_bias(logits, bias)
        scores = evaluate([i.label for i in part], [LABELS[k] for k in logits.argmax(axis=1)])
        metrics[f"test_{slice_name}"] = scores.as_dict()
        gold = np.array([index[i.label] for i in part])
        metrics[f"test_{slice_name}"]["ece"] = round(
            expected_calibration_error(softmax(logits, temperature), gold), 4
        )
    if checkpoint_dir is not None:
        save_checkpoint(result.model, checkpoint_dir / time.strftime("%Y%m%d-%H%M%S"))
    meta = {  # the temperature and problem bias come from the int8 graph (calibrate_artifact)
        "name": "relradar-minilm",
        "max_length": args.max_length,
        "data_hash": corpus_hash(items),
        "training_args": args_dict(args),
        "metrics": metrics,
        "corpus": report.__dict__,
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
