"""The shipped treatment model: how a brand's reply treats the customer.

Agent turns get a *treatment* label in the relationship vocabulary (``docs/treatment.md``).
Two parts, both fitted on the train split and calibrated on dev. The *head* reuses the shipped
relationship model frozen: its mean-pooled embedding (the int8 ONNX graph's second output),
optionally joined by the mean of its input word embeddings, feeds multinomial logistic
regression (``treatment_head.npz``). The *TF-IDF model* reads the words alone
(``models.tfidf.LinearTfidf``, ``treatment_tfidf.npz``). Four variants are scored on dev: the
head, TF-IDF, their mean and a dev-weighted mean of their calibrated probabilities (a mixture
gets its own temperature); the best dev macro-F1 ships (ties: dev real-slice accuracy, then
dev ECE). ``relradar_model.json`` records under ``"treatment"`` the variant, every variant's
dev figures, the temperatures, the data hash and the encoder hash the head is valid for.
``models.treatment_eval`` scores the shipped variant against its parts and the lexicon.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier import (
    ARTIFACT_FILE,
    SHIPPED_MODEL,
    ClassifierError,
    Prediction,
    predictions_from,
)
from models.metrics import evaluate, expected_calibration_error, fit_temperature, softmax
from models.tfidf import LinearTfidf, fit_linear_tfidf
from schemas import LABELS, Label

log = logging.getLogger(__name__)
HEAD_FILE, TFIDF_FILE = "treatment_head.npz", "treatment_tfidf.npz"
# Shipped-variant candidates, simplest first (the first wins a full tie), with the head's
# weights in the mixture each may use; the weighted mean's weight is chosen on dev.
VARIANTS: dict[str, tuple[float, ...]] = {
    "head": (1.0,),
    "tfidf": (0.0,),
    "ensemble_mean": (0.5,),
    "ensemble_weighted": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
}
CHOICE_RULE = "best dev macro-F1; ties: dev real-slice accuracy, then lower dev ECE"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
REAL_WEIGHTS = (1.0, 2.0)
# "pooled": the encoder's output only. "pooled+input": also the mean of the token embeddings the
# encoder reads. Fine-tuning taught the encoder that brand replies are all ``none`` for the
# relationship label, which blurs their differences in its output; the input side keeps them.
FEATURES = ("pooled", "pooled+input")
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
    """``softmax((x @ weight.T + bias) / temperature)`` over ``LABELS``.

    ``x`` is the pooled embedding, followed by the mean input embedding when ``features`` is
    ``"pooled+input"``.
    """

    weight: np.ndarray  # (labels, width)
    bias: np.ndarray  # (labels,)
    temperature: float = 1.0
    features: str = "pooled"

    @property
    def reads_input(self) -> bool:
        return self.features == "pooled+input"

    def logits(self, pooled: np.ndarray, input_mean: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(pooled, dtype=np.float32)
        if self.reads_input:
            if input_mean is None:
                raise ClassifierError("this treatment head also reads the mean input embedding")
            x = np.hstack([x, np.asarray(input_mean, dtype=np.float32)])
        return np.asarray(x @ self.weight.T + self.bias)

    def probabilities(self, pooled: np.ndarray, input_mean: np.ndarray | None = None) -> np.ndarray:
        return softmax(self.logits(pooled, input_mean), self.temperature)

    def save(self, directory: Path) -> None:
        np.savez(directory / HEAD_FILE, weight=self.weight, bias=self.bias)

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> TreatmentHead | None:
        """The head saved in a model directory, or None when it has none."""
        entry = meta.get("treatment")
        if not entry or not (directory / HEAD_FILE).is_file():
            return None
        if entry.get("labels") != [label.value for label in LABELS]:
            raise ClassifierError(f"{directory}: the treatment head's labels differ from the enum")
        if entry.get("encoder") != encoder_fingerprint(directory):
            # A head read off other weights would answer confidently and wrongly; the
            # relationship model must keep working, so the head is left out, loudly.
            log.warning("%s: the treatment head was fitted on another encoder; "
                        "run `relradar model treatment train`", directory)  # fmt: skip
            return None
        part = entry.get("head", entry)  # artifacts from before the TF-IDF part kept it flat
        features = str(part.get("features", "pooled"))
        if features not in FEATURES:
            raise ClassifierError(f"{directory}: unknown treatment features {features!r}")
        with np.load(directory / HEAD_FILE, allow_pickle=False) as data:
            weight, bias = data["weight"].astype(np.float32), data["bias"].astype(np.float32)
        if weight.shape[0] != len(LABELS) or bias.shape != (len(LABELS),):
            raise ClassifierError(f"{directory}: the treatment head has the wrong shape")
        return cls(weight, bias, float(part.get("temperature", 1.0)), features)


def encoder_fingerprint(directory: Path) -> str:
    """A hash of the encoder's shipped weights: the head is only valid for these."""
    from models.artifact import WEIGHTS_FILE

    path = directory / WEIGHTS_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def fit_head(
    inputs: dict[str, np.ndarray],
    y: np.ndarray,
    train: np.ndarray,
    dev: np.ndarray,
    real: np.ndarray,
    seed: int = 13,
) -> tuple[TreatmentHead, dict[str, Any]]:
    """Balanced logistic regression on standardised features; the feature set, C and the
    weight of real items are chosen on dev macro-F1. ``inputs`` maps a name in ``FEATURES``
    to its matrix; the standardisation is folded into the weights, so the head reads raw
    features.
    """
    from sklearn.linear_model import LogisticRegression

    history: list[dict[str, Any]] = []
    best: tuple[float, Any, dict[str, Any], np.ndarray, np.ndarray] | None = None
    for name, x in inputs.items():
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
        z = (x - mean) / std
        for real_weight in REAL_WEIGHTS:
            weights = np.where(real[train], real_weight, 1.0)
            for c in C_GRID:
                model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000,
                                           random_state=seed)  # fmt: skip
                model.fit(z[train], y[train], sample_weight=weights)
                pred = model.predict(z[dev])
                f1 = evaluate([LABELS[i] for i in y[dev]], [LABELS[i] for i in pred]).macro_f1
                entry = {"features": name, "real_weight": real_weight, "C": c,
                         "dev_macro_f1": round(f1, 4)}  # fmt: skip
                history.append(entry)
                if best is None or f1 > best[0]:
                    best = (f1, model, entry, mean, std)
    assert best is not None
    f1, model, chosen, mean, std = best
    weight = np.zeros((len(LABELS), mean.shape[0]), dtype=np.float32)
    bias = np.full(len(LABELS), -1e4, dtype=np.float32)  # a label never seen is never chosen
    for row, cls in enumerate(model.classes_):
        weight[cls] = model.coef_[row] / std
        bias[cls] = model.intercept_[row] - float((model.coef_[row] * mean / std).sum())
    return TreatmentHead(weight, bias, features=chosen["features"]), {**chosen, "grid": history}


# Texts -> (pooled embedding, mean input embedding): what the head reads, from one runtime.
Features = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


def mix(
    p_head: np.ndarray | None, p_tfidf: np.ndarray | None, head_weight: float, temperature: float
) -> np.ndarray:
    """``softmax(log(w * p_head + (1 - w) * p_tfidf) / T)``; a part alone when w is 1 or 0."""
    if head_weight >= 1 and p_head is not None:
        return p_head
    if head_weight <= 0 and p_tfidf is not None:
        return p_tfidf
    if p_head is None or p_tfidf is None:
        raise ClassifierError("a treatment mixture needs both parts' probabilities")
    mixed = head_weight * p_head + (1.0 - head_weight) * p_tfidf
    return softmax(np.log(np.clip(mixed, 1e-30, None)), temperature)


@dataclass(frozen=True)
class TreatmentModel:
    """What ``predict_treatment`` runs: the variant recorded in ``relradar_model.json``.

    ``head_weight`` is the head's share of the mixture (1: the head alone, 0: TF-IDF alone);
    ``temperature`` calibrates the mixture, each part having its own.
    """

    variant: str
    head: TreatmentHead | None
    tfidf: LinearTfidf | None
    tfidf_temperature: float = 1.0
    head_weight: float = 1.0
    temperature: float = 1.0

    def part(self, name: str) -> TreatmentModel:
        """The head (``"head"``) or the TF-IDF model (``"tfidf"``) alone."""
        if name not in ("head", "tfidf"):
            raise ValueError(f"unknown treatment part {name!r}")
        weight = 1.0 if name == "head" else 0.0
        return TreatmentModel(name, self.head, self.tfidf, self.tfidf_temperature, weight)

    def probabilities(self, texts: Sequence[str], features: Features) -> np.ndarray:
        p_head = p_tfidf = None
        if self.head_weight > 0:
            if self.head is None:
                raise ClassifierError(f"treatment variant {self.variant} needs the head")
            p_head = self.head.probabilities(*features(texts))
        if self.head_weight < 1:
            if self.tfidf is None:
                raise ClassifierError(f"treatment variant {self.variant} needs the TF-IDF part")
            p_tfidf = softmax(self.tfidf.logits(texts), self.tfidf_temperature)
        return mix(p_head, p_tfidf, self.head_weight, self.temperature)

    def predictions(self, texts: Sequence[str], features: Features) -> list[Prediction]:
        if not texts:
            return []
        return predictions_from(self.probabilities(texts, features))

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> TreatmentModel | None:
        """The treatment model saved in a model directory, or None when it has none (or its
        head, which the variant needs, was fitted on another encoder)."""
        entry = meta.get("treatment")
        if not entry:
            return None
        if entry.get("labels") != [label.value for label in LABELS]:
            raise ClassifierError(f"{directory}: the treatment model's labels differ from the enum")
        variant = str(entry.get("variant", "head"))
        if variant not in VARIANTS:
            raise ClassifierError(f"{directory}: unknown treatment variant {variant!r}")
        head = TreatmentHead.load(directory, meta)
        part = entry.get("tfidf")
        tfidf = LinearTfidf.load(directory / str(part["file"])) if part else None
        weight = float(entry.get("head_weight", 1.0))
        if weight > 0 and head is None:
            return None
        if weight < 1 and tfidf is None:
            raise ClassifierError(f"{directory}: treatment variant {variant} has no TF-IDF part")
        tfidf_temperature = float(part.get("temperature", 1.0)) if part else 1.0
        return cls(variant, head, tfidf, tfidf_temperature, weight,
                   float(entry.get("temperature", 1.0)))  # fmt: skip


def dev_figures(probs: np.ndarray, y: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """What variants are ranked by: macro-F1 over dev, accuracy on its real slice, ECE."""
    pred = probs.argmax(axis=1)
    report = evaluate([LABELS[k] for k in y], [LABELS[k] for k in pred])
    return {
        "dev_macro_f1": round(report.macro_f1, 4),
        "dev_real_accuracy": round(float((pred == y)[real].mean()), 4),
        "dev_ece": round(expected_calibration_error(probs, y), 4),
    }


def _rank(figures: dict[str, float]) -> tuple[float, float, float]:
    return figures["dev_macro_f1"], figures["dev_real_accuracy"], -figures["dev_ece"]


def choose_variant(
    p_head: np.ndarray, p_tfidf: np.ndarray, y: np.ndarray, real: np.ndarray
) -> tuple[str, dict[str, dict[str, float]]]:
    """Every variant's dev figures (each mixture weight's temperature fitted on these same dev
    items) and the one ``CHOICE_RULE`` picks; the inputs are the parts' calibrated dev
    probabilities."""
    variants: dict[str, dict[str, float]] = {}
    for name, weights in VARIANTS.items():
        for weight in weights:
            mixed = weight * p_head + (1.0 - weight) * p_tfidf
            one_part = weight in (0.0, 1.0)
            temperature = 1.0 if one_part else fit_temperature(np.log(mixed), y)
            probs = mix(p_head, p_tfidf, weight, temperature)
            figures = {**dev_figures(probs, y, real), "head_weight": weight,
                       "temperature": round(temperature, 4)}  # fmt: skip
            if name not in variants or _rank(figures) > _rank(variants[name]):
                variants[name] = figures
    return max(variants, key=lambda n: _rank(variants[n])), variants


def _embedder(model_dir: Path) -> Any:
    from models.onnx_runtime import OnnxClassifier

    return OnnxClassifier.load(model_dir)


def train_treatment(model_dir: Path = SHIPPED_MODEL) -> dict[str, Any]:
    """Fit both parts on train, calibrate them on dev, pick the variant on dev, save; the test
    figures recorded are the shipped variant's, computed the way ``predict_treatment`` runs."""
    from models.treatment_data import clean, data_hash, load_raw

    items, cleaning = clean(load_raw())
    began = time.monotonic()
    runtime = _embedder(model_dir)
    texts = [i.text for i in items]
    pooled, input_mean = runtime.embed(texts), runtime.input_mean(texts)
    print(f"embedded {len(items)} items in {time.monotonic() - began:.1f}s", flush=True)
    y = np.array([LABELS.index(i.label) for i in items])
    split = np.array([i.split for i in items])
    real = np.array([i.source == "real" for i in items])
    train, dev = split == "train", split == "dev"
    inputs = {"pooled": pooled, "pooled+input": np.hstack([pooled, input_mean])}
    head, head_search = fit_head(inputs, y, train, dev, real)
    head_logits = head.logits(pooled, input_mean)
    head = TreatmentHead(head.weight, head.bias, fit_temperature(head_logits[dev], y[dev]),
                         head.features)  # fmt: skip
    tfidf, tfidf_search = fit_linear_tfidf(texts, y, train, dev, real)
    tfidf_logits = tfidf.logits(texts)
    tfidf_temperature = fit_temperature(tfidf_logits[dev], y[dev])
    print(f"fitted both parts in {time.monotonic() - began:.1f}s", flush=True)
    p_head = softmax(head_logits, head.temperature)
    p_tfidf = softmax(tfidf_logits, tfidf_temperature)
    chosen, variants = choose_variant(p_head[dev], p_tfidf[dev], y[dev], real[dev])
    weight, temperature = variants[chosen]["head_weight"], variants[chosen]["temperature"]
    model = TreatmentModel(chosen, head, tfidf, tfidf_temperature, weight, temperature)
    for search, logits, t in ((head_search, head_logits, head.temperature),
                              (tfidf_search, tfidf_logits, tfidf_temperature)):  # fmt: skip
        search["temperature"] = t
        for when, probs in (("before", softmax(logits[dev])), ("after", softmax(logits[dev], t))):
            search[f"dev_ece_{when}"] = round(expected_calibration_error(probs, y[dev]), 4)
    metrics: dict[str, Any] = {"variant": chosen, "dev_macro_f1": variants[chosen]["dev_macro_f1"],
                               "variants_dev": variants}  # fmt: skip
    probs = model.probabilities(texts, lambda _: (pooled, input_mean))
    for name, mask in (("all", split == "test"), ("synthetic", (split == "test") & ~real),
                       ("real", (split == "test") & real)):  # fmt: skip
        report = evaluate([LABELS[k] for k in y[mask]], [LABELS[k] for k in probs[mask].argmax(1)])
        ece = round(expected_calibration_error(probs[mask], y[mask]), 4)
        metrics[f"test_{name}"] = {**report.as_dict(), "ece": ece}
    head.save(model_dir)
    tfidf.save(model_dir / TFIDF_FILE)
    meta_file = model_dir / ARTIFACT_FILE
    meta = json.loads(meta_file.read_text())
    meta["treatment"] = {
        "variant": chosen,
        "labels": [label.value for label in LABELS],
        "head_weight": weight,
        "temperature": temperature,
        "choice": CHOICE_RULE,
        "variants_dev": variants,
        "head": {"file": HEAD_FILE, **head_search},
        "tfidf": {"file": TFIDF_FILE, **tfidf_search},
        "data_hash": data_hash(items),
        "encoder": encoder_fingerprint(model_dir),
        "cleaning": cleaning.__dict__,
        "metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
    }
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    return metrics
