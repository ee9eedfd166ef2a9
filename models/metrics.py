"""Classification metrics: per-label precision/recall/F1, macro-F1, confusion, calibration.

Plain numpy, so evaluation needs no extra dependency and every classifier (lexicon, TF-IDF,
fine-tuned) is scored by the same code on the same items. It also fits the fine-tuned model's
two dev-split settings: the softmax temperature and the problem-label bias (a logit offset for
the problem labels, which alerts count, chosen on dev macro-F1).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas import LABELS, PROBLEM_LABELS, Label


@dataclass(frozen=True)
class Report:
    n: int
    accuracy: float
    macro_f1: float
    problem_recall: float  # problem items given their exact label (micro)
    problem_flag_recall: float  # problem items given any problem label (what alerts count)
    per_label: dict[Label, tuple[float, float, float, int]]  # precision, recall, f1, support
    confusion: np.ndarray

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "problem_recall": round(self.problem_recall, 4),
            "problem_flag_recall": round(self.problem_flag_recall, 4),
            "per_label": {
                k.value: [round(x, 4) for x in v[:3]] + [v[3]] for k, v in self.per_label.items()
            },
        }


def evaluate(gold: Sequence[Label], pred: Sequence[Label]) -> Report:
    """Scores over the labels present in ``gold`` (macro-F1 averages those labels only)."""
    index = {label: i for i, label in enumerate(LABELS)}
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        confusion[index[g], index[p]] += 1
    per_label: dict[Label, tuple[float, float, float, int]] = {}
    for label, i in index.items():
        support = int(confusion[i].sum())
        if support == 0:
            continue
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = (float(precision), float(recall), float(f1), support)
    problem = [i for label, i in index.items() if label in PROBLEM_LABELS]
    problem_support = confusion[problem].sum()
    problem_exact = sum(confusion[i, i] for i in problem)
    problem_flagged = confusion[np.ix_(problem, problem)].sum()
    nan = float("nan")
    return Report(
        n=len(gold),
        accuracy=float(np.trace(confusion) / max(1, len(gold))),
        macro_f1=float(np.mean([v[2] for v in per_label.values()])) if per_label else 0.0,
        problem_recall=float(problem_exact / problem_support) if problem_support else nan,
        problem_flag_recall=float(problem_flagged / problem_support) if problem_support else nan,
        per_label=per_label,
        confusion=confusion,
    )


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-label confidence, in equal-width bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == gold
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (confidence > lo) & (confidence <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The temperature minimising dev NLL (a 1-D search; the curve is convex in log T)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.05), np.log(10.0), 300)):
        p = softmax(logits, float(t))
        nll = -np.log(np.clip(p[np.arange(len(gold)), gold], 1e-12, None)).mean()
        if nll < best_nll:
            best_t, best_nll = float(t), float(nll)
    return best_t


PROBLEM_BIAS_GRID = tuple(round(0.1 * k, 1) for k in range(11))
_PROBLEM = np.array([label in PROBLEM_LABELS for label in LABELS], dtype=np.float32)


def with_problem_bias(logits: np.ndarray, bias: float) -> np.ndarray:
    """The logits with ``bias`` added to every problem label's."""
    return np.asarray(logits + np.float32(bias) * _PROBLEM, dtype=np.float32)


def calibrated(logits: np.ndarray, temperature: float, problem_bias: float) -> np.ndarray:
    """The shipped model's probabilities: ``softmax((logits + bias on problems) / T)``."""
    return softmax(with_problem_bias(logits, problem_bias), temperature)


def fit_problem_bias(
    logits: np.ndarray, gold: np.ndarray, grid: Sequence[float] = PROBLEM_BIAS_GRID
) -> float:
    """The problem-label bias with the best dev macro-F1; ties go to the higher problem-label
    recall, then to the smaller bias. The bias is a prior shift toward the labels alerts
    count, which the class weighting of training only partly gives them."""
    gold_labels = [LABELS[g] for g in gold]
    best: tuple[float, float, float] | None = None
    for bias in grid:
        predicted = with_problem_bias(logits, bias).argmax(axis=1)
        report = evaluate(gold_labels, [LABELS[k] for k in predicted])
        recall = 0.0 if np.isnan(report.problem_recall) else report.problem_recall
        key = (round(report.macro_f1, 6), round(recall, 6), -float(bias))
        if best is None or key > best:
            best = key
    return 0.0 if best is None else -best[2]
