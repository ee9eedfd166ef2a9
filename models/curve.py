"""How the fine-tuned model's lead over the TF-IDF baseline moves with written training data
and with ensembling, on dev only. For each share of the written train groups (drawn by group
with a fixed seed, nested, the real train items always whole) it fits the TF-IDF baseline and
one six-layer network per seed on the same items, then scores on dev: each network alone, the
networks' log-probabilities averaged, and that average plus TF-IDF log-probabilities at the
best of a few weights (picked on the same dev items, so an upper bound). Written and real dev
are scored apart. Nothing here looks at the test split; `relradar model curve` runs it.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from models.data import Item
from models.metrics import evaluate
from schemas import LABELS

# (train items, dev items, seed) -> dev logits, columns in LABELS order
FitNetwork = Callable[[list[Item], list[Item], int], np.ndarray]
FUSION_WEIGHTS = (0.25, 0.5, 1.0)


def check_fractions(fractions: Sequence[float]) -> None:
    """Refuse any share outside (0, 1], before anything is trained."""
    bad = [f for f in fractions if not 0 < f <= 1]
    if bad:
        raise ValueError(f"shares must be in (0, 1], got {bad}")


def written_share(train_items: Sequence[Item], fraction: float, seed: int = 7) -> list[Item]:
    """All real train items and the first ``fraction`` of the written groups in a seeded
    order, so a larger share always holds a smaller one."""
    check_fractions([fraction])
    groups = sorted({i.group for i in train_items if i.slice == "synthetic"})
    random.Random(seed).shuffle(groups)
    keep = set(groups[: max(1, int(len(groups) * fraction))])
    return [i for i in train_items if i.slice == "real" or i.group in keep]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))


def slice_scores(dev: Sequence[Item], log_probs: np.ndarray) -> dict[str, float]:
    """Macro-F1 and accuracy of the argmax on the written and the real dev items."""
    out: dict[str, float] = {}
    for name, slice_name in (("written", "synthetic"), ("real", "real")):
        idx = [k for k, item in enumerate(dev) if item.slice == slice_name]
        if not idx:
            continue
        report = evaluate(
            [dev[k].label for k in idx], [LABELS[j] for j in log_probs[idx].argmax(axis=1)]
        )
        out[f"{name}_macro_f1"] = round(report.macro_f1, 4)
        out[f"{name}_accuracy"] = round(report.accuracy, 4)
    return out


def tfidf_log_probs(train: Sequence[Item], dev: Sequence[Item]) -> np.ndarray:
    from models.tfidf import TfidfClassifier

    model = TfidfClassifier.fit([i.text for i in train], [i.label for i in train])
    predictions = model.predict([i.text for i in dev])
    probs = np.array([[p.scores[label] for label in LABELS] for p in predictions])
    return np.log(np.clip(probs, 1e-9, 1.0))


def learning_curve(
    items: Sequence[Item],
    fractions: Sequence[float],
    seeds: Sequence[int],
    fit_network: FitNetwork,
) -> list[dict[str, Any]]:
    """One row per fraction: item counts and the dev scores of every model listed above."""
    check_fractions(fractions)
    train = [i for i in items if i.split == "train"]
    dev = [i for i in items if i.split == "dev"]
    rows: list[dict[str, Any]] = []
    for fraction in fractions:
        share = written_share(train, fraction)
        tfidf = tfidf_log_probs(share, dev)
        nets = {seed: log_softmax(fit_network(share, dev, seed)) for seed in seeds}
        mean = np.mean(list(nets.values()), axis=0)
        scores = {"tfidf": slice_scores(dev, tfidf)}
        scores |= {f"network_seed{seed}": slice_scores(dev, lp) for seed, lp in nets.items()}
        if len(nets) > 1:
            scores["networks_mean"] = slice_scores(dev, mean)
        fused = [(w, slice_scores(dev, mean + w * tfidf)) for w in FUSION_WEIGHTS]
        w, best = max(fused, key=lambda pair: pair[1].get("written_macro_f1", 0.0))
        scores["networks_plus_tfidf"] = {**best, "weight": w}
        rows.append(
            {
                "fraction": fraction,
                "written_train": sum(i.slice == "synthetic" for i in share),
                "real_train": sum(i.slice == "real" for i in share),
                "scores": scores,
            }
        )
    return rows


def teacher_dev_logits(args: Any, progress: bool = False) -> FitNetwork:
    """The default network: `model train`'s six-layer teacher with ``args`` and each seed."""
    from dataclasses import replace

    from models.train import load_tokenizer, predict_logits, train

    def fit(share: list[Item], dev: list[Item], seed: int) -> np.ndarray:
        # the training loop reports each epoch on stdout, which carries this command's result
        with contextlib.redirect_stdout(sys.stderr):
            result = train(share, dev, replace(args, seed=seed), progress=progress)
        texts = [i.text for i in dev]
        return predict_logits(
            result.model, load_tokenizer(), texts, args.max_length, bf16=args.bf16
        )

    return fit


def format_curve(rows: Sequence[dict[str, Any]]) -> str:
    """Written dev macro-F1 of every model per share, with each one's lead over TF-IDF."""
    lines = []
    for row in rows:
        base = row["scores"]["tfidf"]["written_macro_f1"]
        lines.append(
            f"written train {row['written_train']:,} (share {row['fraction']}), "
            f"real train {row['real_train']:,}"
        )
        for name, s in row["scores"].items():
            lead = "" if name == "tfidf" else f"  lead {100 * (s['written_macro_f1'] - base):+.1f}"
            extra = f"  (w {s['weight']})" if "weight" in s else ""
            lines.append(
                f"  {name:<22} written {s['written_macro_f1']:.3f}{lead}"
                f"   real {s.get('real_macro_f1', 0.0):.3f} / acc {s.get('real_accuracy', 0.0):.3f}"
                f"{extra}"
            )
    return "\n".join(lines)
