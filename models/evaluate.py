"""``relradar model eval``: every classifier scored side by side on the same held-out items.

On the whole test split, and on its synthetic (written) slice and its real-data slice apart,
it scores the shipped int8 model, the same weights in fp32 torch, the lexicon baseline and a
TF-IDF + logistic regression baseline trained on the same train split: per-label
precision/recall/F1, macro-F1, accuracy, problem-label recall, calibration error, and the
fine-tuned model's confusion matrix. Each classifier reads every test text once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier import SHIPPED_MODEL, Classifier, Prediction
from models.data import Item, load_corpus
from models.lexicon import LexiconClassifier
from models.metrics import Report, evaluate, expected_calibration_error
from models.tfidf import TfidfClassifier
from schemas import LABELS


def scored(predictions: Sequence[Prediction], items: Sequence[Any]) -> tuple[Report, float]:
    """The report and calibration error of predictions for labelled ``items`` (anything with a
    ``label``), in the same order."""
    report = evaluate([i.label for i in items], [p.label for p in predictions])
    probs = np.array([[p.scores[label] for label in LABELS] for p in predictions])
    gold = np.array([LABELS.index(i.label) for i in items])
    return report, expected_calibration_error(probs, gold)


def classifiers(model_dir: Path, train: list[Item]) -> dict[str, Classifier]:
    from models.onnx_runtime import OnnxClassifier
    from models.torch_runtime import TorchClassifier

    return {
        "fine-tuned int8 (shipped)": OnnxClassifier.load(model_dir),
        "fine-tuned fp32": TorchClassifier.load(model_dir),
        "tfidf+logreg": TfidfClassifier.fit([i.text for i in train], [i.label for i in train]),
        "lexicon": LexiconClassifier(),
    }


def format_table(reports: dict[str, tuple[Report, float]]) -> str:
    names = list(reports)
    head = "| label | support | " + " | ".join(f"{n} P/R/F1" for n in names) + " |"
    lines = [head, "|---|---|" + "---|" * len(names)]
    first = next(iter(reports.values()))[0]
    for label in LABELS:
        if label not in first.per_label:
            continue
        cells = []
        for report, _ in reports.values():
            p, r, f, _n = report.per_label[label]
            cells.append(f"{p:.2f} / {r:.2f} / {f:.2f}")
        support = first.per_label[label][3]
        lines.append(f"| {label.value} | {support} | " + " | ".join(cells) + " |")
    for key, title in [
        ("macro_f1", "**macro-F1**"),
        ("accuracy", "**accuracy**"),
        ("problem_recall", "**problem-label recall**"),
        ("problem_flag_recall", "problem flagged (any problem label)"),
    ]:
        values = [f"{getattr(r, key):.4f}" for r, _ in reports.values()]
        lines.append(f"| {title} | {first.n} | " + " | ".join(values) + " |")
    lines.append(
        "| ECE (calibration) | | " + " | ".join(f"{e:.4f}" for _, e in reports.values()) + " |"
    )
    return "\n".join(lines)


def format_confusion(report: Report) -> str:
    present = [
        i
        for i, label in enumerate(LABELS)
        if report.confusion[i].sum() or report.confusion[:, i].sum()
    ]
    short = [LABELS[i].value[:8] for i in present]
    lines = ["gold \\ predicted | " + " | ".join(short), "---|" + "---|" * len(present)]
    for i in present:
        row = " | ".join(str(report.confusion[i, j]) for j in present)
        lines.append(f"{LABELS[i].value} | {row}")
    return "\n".join(lines)


SECTIONS = (("synthetic", "synthetic slice"), ("real", "real slice"), (None, "all of it"))


def run_eval(model_dir: Path = SHIPPED_MODEL) -> dict[str, Any]:
    items = load_corpus()
    train = [i for i in items if i.split == "train"]
    test = [i for i in items if i.split == "test"]
    predictions: dict[str, list[Prediction]] = {}
    for name, model in classifiers(model_dir, train).items():
        began = time.monotonic()
        predictions[name] = model.predict([i.text for i in test])
        print(f"  {name}: {len(test)} test items in {time.monotonic() - began:.1f}s", flush=True)
    results: dict[str, Any] = {}
    for slice_name, title in SECTIONS:
        keep = [k for k, i in enumerate(test) if slice_name is None or i.slice == slice_name]
        part = [test[k] for k in keep]
        reports = {name: scored([p[k] for k in keep], part) for name, p in predictions.items()}
        print(f"\n## Test split, {title} ({len(part)} items)\n")
        print(format_table(reports))
        print(f"\nConfusion matrix, fine-tuned int8, {title}:\n")
        print(format_confusion(reports["fine-tuned int8 (shipped)"][0]))
        print()
        results[slice_name or "all"] = {
            name: {**r.as_dict(), "ece": round(e, 4)} for name, (r, e) in reports.items()
        }
    return results
