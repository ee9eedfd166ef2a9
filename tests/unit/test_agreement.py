"""The second labellings of test items: their contract with the corpus, and Cohen's kappa."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.agreement import (
    SECOND_LABELS,
    SECOND_LABELS_WRITTEN,
    cohen_kappa,
    load_second_labels,
    paired_items,
)
from models.data import load_corpus
from schemas import Label

B, N, E = Label.basic_exchange, Label.none, Label.enemies


def test_kappa_is_one_for_total_agreement_and_zero_at_chance() -> None:
    assert cohen_kappa([B, N, E], [B, N, E]) == pytest.approx(1.0)
    # Both say B half the time, independently of each other: agreement is what chance gives.
    assert cohen_kappa([B, B, N, N], [B, N, B, N]) == pytest.approx(0.0)
    # 3 of 4 agree; chance agreement 0.5 (each labeller: B 2, N 2) -> (0.75 - 0.5) / 0.5
    assert cohen_kappa([B, B, N, N], [B, B, N, B]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        cohen_kappa([B], [B, N])


@pytest.mark.parametrize(
    ("path", "slice_name"), [(SECOND_LABELS, "real"), (SECOND_LABELS_WRITTEN, "synthetic")]
)
def test_second_labels_cover_every_test_item_of_their_slice_once(
    path: Path, slice_name: str
) -> None:
    second = load_second_labels(path)
    corpus = load_corpus()
    _items, labels = paired_items(corpus, second)
    test = {i.id for i in corpus if i.slice == slice_name and i.split == "test"}
    assert len(second) == len({s.id for s in second}) and {s.id for s in second} == test
    assert all(isinstance(label, Label) for label in labels)
    assert {s.confidence for s in second} <= {"high", "low"}
    assert set(labels) == set(Label), "every label appears in the second labelling"
