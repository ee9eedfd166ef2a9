"""The relationship taxonomy: the 13 labels, their families and the precedence rule.

This module is the code side of the labelling codebook (``docs/codebook.md``). The enum's
member order is the storage order: ClickHouse Enum8 values are numbered from 1 in this order,
so new labels may only ever be appended. ``codebook_labels`` parses the codebook's table so a
test can keep the two in step.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path


class Family(StrEnum):
    positive = "positive"
    neutral = "neutral"
    demanding = "demanding"
    collaborative = "collaborative"
    intense = "intense"
    problem = "problem"
    no_relationship = "—"  # the codebook writes an em dash: no family


class Label(StrEnum):
    fling = "fling"
    basic_exchange = "basic_exchange"
    master_servant = "master_servant"
    business_partner = "business_partner"
    buddies = "buddies"
    best_friends = "best_friends"
    marriage = "marriage"
    dependency = "dependency"
    captive = "captive"
    love_hate = "love_hate"
    ex_friends = "ex_friends"
    enemies = "enemies"
    none = "none"

    @property
    def family(self) -> Family:
        return FAMILIES[self]

    @property
    def is_problem(self) -> bool:
        return self in PROBLEM_LABELS


LABELS: tuple[Label, ...] = tuple(Label)

FAMILIES: dict[Label, Family] = {
    Label.fling: Family.positive,
    Label.basic_exchange: Family.neutral,
    Label.master_servant: Family.demanding,
    Label.business_partner: Family.collaborative,
    Label.buddies: Family.positive,
    Label.best_friends: Family.positive,
    Label.marriage: Family.positive,
    Label.dependency: Family.intense,
    Label.captive: Family.problem,
    Label.love_hate: Family.problem,
    Label.ex_friends: Family.problem,
    Label.enemies: Family.problem,
    Label.none: Family.no_relationship,
}

PROBLEM_LABELS: frozenset[Label] = frozenset(
    {Label.enemies, Label.ex_friends, Label.love_hate, Label.captive}
)

# Codebook rule 4: problem types win in this order, then the more intense positive bond.
PRECEDENCE: tuple[Label, ...] = (
    Label.enemies,
    Label.ex_friends,
    Label.love_hate,
    Label.captive,
    Label.dependency,
    Label.marriage,
    Label.best_friends,
    Label.buddies,
)


def resolve(present: set[Label] | frozenset[Label]) -> Label:
    """Pick the primary label when several relationship types are present (codebook rule 4).

    Types the precedence list does not rank (fling, basic_exchange, master_servant,
    business_partner) are kept only when nothing ranked is present; among those, the order of
    the enum decides, and ``none`` only wins when nothing else is present.
    """
    for label in PRECEDENCE:
        if label in present:
            return label
    for label in LABELS:
        if label in present and label is not Label.none:
            return label
    return Label.none


def storage_number(label: Label) -> int:
    """The Enum8 value of a label in ClickHouse (numbered from 1, never 0)."""
    return LABELS.index(label) + 1


_ROW = re.compile(r"^\|\s*`(?P<label>[a-z_]+)`\s*\|\s*(?P<family>[^|]+?)\s*\|")


def codebook_labels(path: Path) -> dict[str, str]:
    """Labels and families as the codebook's markdown table states them."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            found[match["label"]] = match["family"].strip()
    return found
