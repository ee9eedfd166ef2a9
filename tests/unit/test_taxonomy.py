"""The label enum, its families and precedence, kept in step with the codebook."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import LABELS, PRECEDENCE, PROBLEM_LABELS, Label, resolve, storage_number
from schemas.taxonomy import codebook_labels

ROOT = Path(__file__).resolve().parents[2]
CODEBOOKS = [ROOT / "docs" / "codebook.md", ROOT.parent / "shared" / "taxonomy.md"]


@pytest.mark.parametrize("path", CODEBOOKS, ids=["docs", "shared"])
def test_enum_matches_the_codebook_table(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not beside this checkout")
    table = codebook_labels(path)
    assert list(table) == [label.value for label in LABELS]
    for label in LABELS:
        assert table[label.value] == label.family.value


def test_project_codebook_is_present() -> None:
    assert codebook_labels(CODEBOOKS[0]), "docs/codebook.md must hold the label table"


def test_problem_set_is_the_problem_family() -> None:
    assert {label for label in LABELS if label.family.value == "problem"} == PROBLEM_LABELS
    assert {Label.enemies, Label.ex_friends, Label.love_hate, Label.captive} == PROBLEM_LABELS


def test_precedence_rule_from_the_codebook() -> None:
    assert resolve({Label.buddies, Label.enemies}) is Label.enemies
    assert resolve({Label.captive, Label.love_hate}) is Label.love_hate
    assert resolve({Label.ex_friends, Label.enemies, Label.captive}) is Label.enemies
    assert resolve({Label.marriage, Label.dependency}) is Label.dependency
    assert resolve({Label.buddies, Label.best_friends}) is Label.best_friends
    assert resolve({Label.captive, Label.dependency}) is Label.captive
    assert resolve({Label.business_partner}) is Label.business_partner
    assert resolve({Label.none, Label.basic_exchange}) is Label.basic_exchange
    assert resolve(set()) is Label.none
    assert list(PRECEDENCE[:4]) == [Label.enemies, Label.ex_friends, Label.love_hate, Label.captive]


def test_storage_numbers_start_at_one_and_are_stable() -> None:
    numbers = [storage_number(label) for label in LABELS]
    assert numbers == list(range(1, 14))
    # Appending is the only allowed change: these must never move.
    assert storage_number(Label.fling) == 1 and storage_number(Label.none) == 13
