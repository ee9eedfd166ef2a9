"""Evaluation of the shipped treatment model on the held-out test split.

``run_treatment_eval`` scores the shipped variant (through both the int8 ONNX and the fp32
torch runtimes), each of its parts alone (the head, the TF-IDF model) and the lexicon's agent
cues on the same test items of the treatment data, on all of them and on the written and real
slices apart; it prints the tables and confusion matrices and returns the figures. Training
and the inference model live in ``models.treatment``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.classifier import SHIPPED_MODEL, ClassifierError, Prediction
from models.metrics import Report


def score(
    predict: Callable[[list[str]], list[Prediction]], items: Sequence[Any]
) -> tuple[Report, float]:
    """The report and the expected calibration error of ``predict`` on labelled ``items``."""
    from models.evaluate import scored

    return scored(predict([i.text for i in items]), items)


def run_treatment_eval(model_dir: Path = SHIPPED_MODEL) -> dict[str, Any]:
    """The shipped variant (int8 and fp32 paths) vs the head alone, TF-IDF alone and the
    lexicon's cues, on all test items, then written and real apart."""
    from models.evaluate import format_confusion, format_table
    from models.lexicon import LexiconClassifier
    from models.onnx_runtime import OnnxClassifier
    from models.torch_runtime import TorchClassifier
    from models.treatment_data import load_items

    items = load_items()
    onnx = OnnxClassifier.load(model_dir)
    shipped = onnx.treatment
    if shipped is None:
        raise ClassifierError(f"{model_dir} has no usable treatment model")
    head, tfidf = shipped.part("head"), shipped.part("tfidf")
    main = f"shipped {shipped.variant} int8"
    models: dict[str, Callable[[list[str]], list[Prediction]]] = {
        main: onnx.predict_treatment,
        "shipped fp32": TorchClassifier.load(model_dir).predict_treatment,
        "head alone int8": lambda texts: head.predictions(texts, onnx.treatment_features),
        "tfidf alone": lambda texts: tfidf.predictions(texts, onnx.treatment_features),
        "lexicon cues": LexiconClassifier().predict_treatment,
    }
    results: dict[str, Any] = {}
    slices = (("all", "all"), ("synthetic", "written"), ("real", "real"))
    for source, title in slices:
        part = [i for i in items if i.split == "test" and source in ("all", i.source)]
        reports = {name: score(predict, part) for name, predict in models.items()}
        print(f"\n## Treatment, test split, {title} slice ({len(part)} items)\n")
        print(format_table(reports))
        if source != "all":
            print(f"\nConfusion matrix, {main}, {title} slice:\n")
            print(format_confusion(reports[main][0]))
        results[source] = {n: {**r.as_dict(), "ece": round(e, 4)} for n, (r, e) in reports.items()}
    print("\n## Summary (test split)\n\n| slice | metric | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for source, title in slices:
        for key in ("macro_f1", "accuracy", "ece"):
            cells = " | ".join(f"{results[source][n][key]:.3f}" for n in models)
            n = results[source][main]["n"]
            print(f"| {title} ({n}) | {key.replace('_', '-')} | {cells} |")
    return results
