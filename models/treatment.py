"""The treatment head: how a brand's reply treats the customer, read off the shipped encoder.

Agent turns get a *treatment* label in the relationship vocabulary (``docs/treatment.md``).
Rather than a second network, the shipped relationship model's fine-tuned encoder is reused
frozen: its mean-pooled embedding (the int8 ONNX graph's second output) feeds a linear head,
multinomial logistic regression with balanced class weights whose L2 strength is chosen on
dev macro-F1, then a softmax temperature fitted on dev. The head is a 13 x 384 matrix applied
in numpy, saved as ``treatment_head.npz`` beside the model, with its labels, temperature,
metrics and data hash under ``"treatment"`` in ``relradar_model.json``.

``run_treatment_eval`` scores the head against a TF-IDF + logistic-regression baseline and the
lexicon's agent-side cues on the same held-out items, written and real apart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier import ARTIFACT_FILE, SHIPPED_MODEL, ClassifierError, Prediction
from models.metrics import Report, evaluate, expected_calibration_error, fit_temperature, softmax
from schemas import LABELS, Label

HEAD_FILE = "treatment_head.npz"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# docs/treatment.md: hostility, then lock-in (a farewell that comes with an exit fee is still a
# fence), then the other problem treatments, command, and the bonds by intensity; content
# (an idea taken up) before tone; any relational signal before boilerplate.
TREATMENT_PRECEDENCE: tuple[Label, ...] = (
    Label.enemies, Label.captive, Label.ex_friends, Label.love_hate, Label.master_servant,
    Label.dependency, Label.marriage, Label.business_partner, Label.best_friends,
    Label.buddies, Label.fling, Label.basic_exchange, Label.none,
)  # fmt: skip


def resolve_treatment(present: set[Label] | frozenset[Label]) -> Label:
    """The primary treatment when a turn shows several (``none`` when it shows nothing)."""
    return next((label for label in TREATMENT_PRECEDENCE if label in present), Label.none)


@dataclass(frozen=True)
class TreatmentHead:
    """``softmax((x @ weight.T + bias) / temperature)`` over ``LABELS``, x a pooled embedding."""

    weight: np.ndarray  # (labels, hidden)
    bias: np.ndarray  # (labels,)
    temperature: float = 1.0

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(embeddings, dtype=np.float32) @ self.weight.T + self.bias

    def predictions(self, embeddings: np.ndarray) -> list[Prediction]:
        probs = softmax(self.logits(embeddings), self.temperature)
        return [
            Prediction(LABELS[int(row.argmax())], dict(zip(LABELS, map(float, row), strict=True)))
            for row in probs
        ]

    def save(self, directory: Path) -> None:
        np.savez(directory / HEAD_FILE, weight=self.weight, bias=self.bias,
                 temperature=np.float32(self.temperature))  # fmt: skip

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> TreatmentHead | None:
        """The head saved in a model directory, or None when it has none."""
        entry = meta.get("treatment")
        if not entry or not (directory / HEAD_FILE).is_file():
            return None
        if entry.get("labels") != [label.value for label in LABELS]:
            raise ClassifierError(f"{directory}: the treatment head's labels differ from the enum")
        with np.load(directory / HEAD_FILE, allow_pickle=False) as data:
            weight, bias = data["weight"].astype(np.float32), data["bias"].astype(np.float32)
        if weight.shape[0] != len(LABELS) or bias.shape != (len(LABELS),):
            raise ClassifierError(f"{directory}: the treatment head has the wrong shape")
        return cls(weight, bias, float(entry.get("temperature", 1.0)))


def fit_head(
    train_x: np.ndarray,
    train_y: np.ndarray,
    dev_x: np.ndarray,
    dev_y: np.ndarray,
    grid: Sequence[float] = C_GRID,
    seed: int = 13,
) -> tuple[TreatmentHead, dict[str, Any]]:
    """Balanced logistic regression on standardised embeddings, C chosen on dev macro-F1.

    The standardisation is folded into the weights, so the shipped head reads raw embeddings.
    """
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    history: list[dict[str, float]] = []
    best: tuple[float, float, Any] = (-1.0, 0.0, None)
    for c in grid:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
        model.fit((train_x - mean) / std, train_y)
        pred = model.predict((dev_x - mean) / std)
        f1 = evaluate([LABELS[i] for i in dev_y], [LABELS[i] for i in pred]).macro_f1
        history.append({"C": c, "dev_macro_f1": round(f1, 4)})
        if f1 > best[0]:
            best = (f1, c, model)
    f1, c, model = best
    weight = np.zeros((len(LABELS), train_x.shape[1]), dtype=np.float32)
    bias = np.full(len(LABELS), -1e4, dtype=np.float32)  # a label never seen is never chosen
    for row, cls in enumerate(model.classes_):
        weight[cls] = model.coef_[row] / std
        bias[cls] = model.intercept_[row] - float((model.coef_[row] * mean / std).sum())
    return TreatmentHead(weight, bias), {"C": c, "dev_macro_f1": round(f1, 4), "grid": history}


def _embedder(model_dir: Path) -> Any:
    from models.onnx_runtime import OnnxClassifier

    return OnnxClassifier.load(model_dir)


def train_treatment(model_dir: Path = SHIPPED_MODEL) -> dict[str, Any]:
    """Embed the treatment data with the shipped int8 encoder, fit, calibrate, score, save."""
    from models.treatment_data import clean, data_hash, load_raw

    items, cleaning = clean(load_raw())
    began = time.monotonic()
    embeddings = _embedder(model_dir).embed([i.text for i in items])
    print(f"embedded {len(items)} items in {time.monotonic() - began:.1f}s", flush=True)
    index = {label: n for n, label in enumerate(LABELS)}
    y = np.array([index[i.label] for i in items])
    part = {s: np.array([i.split == s for i in items]) for s in ("train", "dev", "test")}
    head, search = fit_head(embeddings[part["train"]], y[part["train"]],
                            embeddings[part["dev"]], y[part["dev"]])  # fmt: skip
    dev_logits = head.logits(embeddings[part["dev"]])
    temperature = fit_temperature(dev_logits, y[part["dev"]])
    head = TreatmentHead(head.weight, head.bias, temperature)
    metrics: dict[str, Any] = {
        **search,
        "dev_ece_before": round(expected_calibration_error(softmax(dev_logits), y[part["dev"]]), 4),
        "dev_ece_after": round(
            expected_calibration_error(softmax(dev_logits, temperature), y[part["dev"]]), 4
        ),
    }
    for source in ("synthetic", "real"):
        mask = part["test"] & np.array([i.source == source for i in items])
        probs = softmax(head.logits(embeddings[mask]), temperature)
        report = evaluate([LABELS[k] for k in y[mask]], [LABELS[k] for k in probs.argmax(1)])
        metrics[f"test_{source}"] = {
            **report.as_dict(),
            "ece": round(expected_calibration_error(probs, y[mask]), 4),
        }
    head.save(model_dir)
    meta_file = model_dir / ARTIFACT_FILE
    meta = json.loads(meta_file.read_text())
    meta["treatment"] = {
        "file": HEAD_FILE,
        "labels": [label.value for label in LABELS],
        "input": "mean-pooled embedding (ONNX output 'pooled'), encoder frozen",
        "fit": "balanced multinomial logistic regression on int8 embeddings",
        "temperature": temperature,
        "data_hash": data_hash(items),
        "cleaning": cleaning.__dict__,
        "metrics": metrics,
    }
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    return metrics


def score(
    predict: Callable[[list[str]], list[Prediction]], items: Sequence[Any]
) -> tuple[Report, float]:
    predictions = predict([i.text for i in items])
    report = evaluate([i.label for i in items], [p.label for p in predictions])
    probs = np.array([[p.scores[label] for label in LABELS] for p in predictions])
    gold = np.array([LABELS.index(i.label) for i in items])
    return report, expected_calibration_error(probs, gold)


def run_treatment_eval(model_dir: Path = SHIPPED_MODEL) -> dict[str, Any]:
    """Head (int8 and fp32) vs TF-IDF + LR vs lexicon cues, on test: written and real apart."""
    from models.evaluate import format_confusion, format_table
    from models.lexicon import LexiconClassifier
    from models.tfidf import TfidfClassifier
    from models.torch_runtime import TorchClassifier
    from models.treatment_data import load_items

    items = load_items()
    train = [i for i in items if i.split == "train"]
    tfidf = TfidfClassifier.fit([i.text for i in train], [i.label for i in train])
    models: dict[str, Callable[[list[str]], list[Prediction]]] = {
        "head int8 (shipped)": _embedder(model_dir).predict_treatment,
        "head fp32": TorchClassifier.load(model_dir).predict_treatment,
        "tfidf+logreg": tfidf.predict,
        "lexicon cues": LexiconClassifier().predict_treatment,
    }
    results: dict[str, Any] = {}
    for source, title in (("synthetic", "written"), ("real", "real")):
        part = [i for i in items if i.split == "test" and i.source == source]
        reports = {name: score(predict, part) for name, predict in models.items()}
        print(f"\n## Treatment, test split, {title} slice ({len(part)} items)\n")
        print(format_table(reports))
        for name in ("head int8 (shipped)", "tfidf+logreg"):
            print(f"\nConfusion matrix, {name}, {title} slice:\n")
            print(format_confusion(reports[name][0]))
        results[source] = {n: {**r.as_dict(), "ece": round(e, 4)} for n, (r, e) in reports.items()}
    return results
