"""A second labeller on the test items: how far labellers agree, and the model against each.

Each item was labelled once for the corpus. A second labelling, made from the codebook alone
without sight of the first labels, covers every real test item (``second_labels.jsonl``: first
480, every item whose first label is outside the four common ones and a seeded random draw of
the rest; later the other 1,130) and every written test item (``second_labels_written.jsonl``).
``agreement_report`` gives, for each slice, the labellers' raw agreement and Cohen's kappa,
per-label counts, the second labeller scored as if it were a classifier against the first (how
high a score the labels allow), and every classifier scored against each labeller and on the
items both agree on: the model will be judged by labellers other than the one who labelled its
data, and this is the nearest measurement of that here.
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

SECOND_LABELS = DATA_DIR / "second_labels.jsonl"  # real test items
SECOND_LABELS_WRITTEN = DATA_DIR / "second_labels_written.jsonl"  # every written test item
SECOND_LABEL_SETS = (("real", SECOND_LABELS), ("written", SECOND_LABELS_WRITTEN))


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
    """Print and return, per slice, the labellers' agreement and each classifier against each."""
    from models.evaluate import classifiers

    corpus = load_corpus()
    models = classifiers(model_dir, [i for i in corpus if i.split == "train"])
    return {name: _slice_report(name, *paired_items(corpus, load_second_labels(path)), models)
            for name, path in SECOND_LABEL_SETS}  # fmt: skip


def _slice_report(
    name: str, items: list[Item], second: list[Label], models: dict[str, Any]
) -> dict[str, Any]:
    from models.metrics import evaluate

    first = [i.label for i in items]
    agreed = [k for k, (a, b) in enumerate(zip(first, second, strict=True)) if a == b]
    kappa = cohen_kappa(first, second)
    print(f"\n## Two labellers on {len(items)} {name} test items\n")
    print(f"raw agreement {len(agreed) / len(items):.3f} ({len(agreed)} of {len(items)}), "
          f"kappa {kappa:.3f}\n")  # fmt: skip
    print("| label | first | second | both |\n|---|---|---|---|")
    counts_a, counts_b = Counter(first), Counter(second)
    for label, n in counts_a.most_common():
        both = sum(1 for a, b in zip(first, second, strict=True) if a == b == label)
        print(f"| {label.value} | {n} | {counts_b[label]} | {both} |")
    labeller = evaluate(first, second)
    print(f"\nThe second labeller scored against the first: macro-F1 {labeller.macro_f1:.3f}, "
          f"accuracy {labeller.accuracy:.3f}.")  # fmt: skip
    texts = [i.text for i in items]
    scores: dict[str, dict[str, float]] = {}
    print("\n| classifier | macro-F1 vs first | vs second | where both agree | accuracy vs first "
          "| vs second |\n|---|---|---|---|---|---|")  # fmt: skip
    for classifier, model in models.items():
        predicted = [p.label for p in model.predict(texts)]
        a, b = evaluate(first, predicted), evaluate(second, predicted)
        consensus = evaluate([first[k] for k in agreed], [predicted[k] for k in agreed])
        scores[classifier] = {
            "macro_f1_first": round(a.macro_f1, 4),
            "macro_f1_second": round(b.macro_f1, 4),
            "macro_f1_agreed": round(consensus.macro_f1, 4),
            "accuracy_first": round(a.accuracy, 4),
            "accuracy_second": round(b.accuracy, 4),
        }
        print(f"| {classifier} | {a.macro_f1:.3f} | {b.macro_f1:.3f} | {consensus.macro_f1:.3f} | "
              f"{a.accuracy:.3f} | {b.accuracy:.3f} |")  # fmt: skip
    return {"items": len(items), "agreement": round(len(agreed) / len(items), 4),
            "kappa": round(kappa, 4), "second_labeller_macro_f1": round(labeller.macro_f1, 4),
            "classifiers": scores}  # fmt: skip
