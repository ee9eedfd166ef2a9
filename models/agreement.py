"""A second labeller on the real test items: how far labellers agree, and the model against each.

The real slice was labelled by one labeller. ``second_labels.jsonl`` holds a second,
independent labelling of 480 of its test items (every test item whose first label is outside
the four common ones, then a seeded random draw of the rest), made from the codebook alone
without sight of the first labels. ``agreement_report`` gives the labellers' raw agreement and
Cohen's kappa, per-label counts, and every classifier scored against each labeller on the same
items: the model will be judged by labellers other than the one who labelled its data, and
this is the nearest measurement of that here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.data import DATA_DIR, Item, load_corpus
from schemas import Label

SECOND_LABELS = DATA_DIR / "second_labels.jsonl"


def cohen_kappa(first: Sequence[Label], second: Sequence[Label]) -> float:
    """Agreement beyond what the two label distributions give by chance (1: total, 0: chance)."""
    if len(first) != len(second) or not first:
        raise ValueError("two non-empty label lists of one length are needed")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    chance = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    return 1.0 if chance == 1 else (observed - chance) / (1 - chance)


@dataclass(frozen=True)
class SecondLabel:
    id: str
    label: Label
    confidence: str


def load_second_labels(path: Path = SECOND_LABELS) -> list[SecondLabel]:
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return [SecondLabel(r["id"], Label(r["label"]), r["confidence"]) for r in rows]


def paired_items(
    items: Sequence[Item], second: Sequence[SecondLabel]
) -> tuple[list[Item], list[Label]]:
    """The corpus items the second labeller saw, and its labels, in one order."""
    by_id = {i.id: i for i in items}
    missing = [s.id for s in second if s.id not in by_id]
    if missing:
        raise ValueError(f"second labels for items not in the corpus: {missing[:5]}")
    return [by_id[s.id] for s in second], [s.label for s in second]


def agreement_report(model_dir: Path) -> dict[str, Any]:
    """Print and return the labellers' agreement and each classifier against each labeller."""
    from models.evaluate import classifiers
    from models.metrics import evaluate

    corpus = load_corpus()
    items, second = paired_items(corpus, load_second_labels())
    first = [i.label for i in items]
    agreed = sum(a == b for a, b in zip(first, second, strict=True))
    kappa = cohen_kappa(first, second)
    print(f"\n## Two labellers on {len(items)} real test items\n")
    print(
        f"raw agreement {agreed / len(items):.3f} ({agreed} of {len(items)}), kappa {kappa:.3f}\n"
    )
    print("| label | first | second | both |\n|---|---|---|---|")
    counts_a, counts_b = Counter(first), Counter(second)
    for label, n in counts_a.most_common():
        both = sum(1 for a, b in zip(first, second, strict=True) if a == b == label)
        print(f"| {label.value} | {n} | {counts_b[label]} | {both} |")
    train = [i for i in corpus if i.split == "train"]
    texts = [i.text for i in items]
    scores: dict[str, dict[str, float]] = {}
    print("\n| classifier | macro-F1 vs first | vs second | accuracy vs first | vs second |")
    print("|---|---|---|---|---|")
    for name, model in classifiers(model_dir, train).items():
        predicted = [p.label for p in model.predict(texts)]
        a, b = evaluate(first, predicted), evaluate(second, predicted)
        scores[name] = {
            "macro_f1_first": round(a.macro_f1, 4),
            "macro_f1_second": round(b.macro_f1, 4),
            "accuracy_first": round(a.accuracy, 4),
            "accuracy_second": round(b.accuracy, 4),
        }
        print(f"| {name} | {a.macro_f1:.3f} | {b.macro_f1:.3f} | {a.accuracy:.3f} | "
              f"{b.accuracy:.3f} |")  # fmt: skip
    return {"items": len(items), "agreement": round(agreed / len(items), 4),
            "kappa": round(kappa, 4), "classifiers": scores}  # fmt: skip
