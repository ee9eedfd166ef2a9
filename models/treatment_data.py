"""The treatment-labelled agent turns: loading, validation, deduplication and the fixed split.

``models/data/treatment`` holds agent (brand) turns labelled with how they treat the customer
(``docs/treatment.md``): hand-written turns (``synthetic_*.jsonl``, with industry and channel)
and real brand replies labelled by hand (``real_*.jsonl``, with their dataset). ``load_items``
validates every row (a bad one is an error naming the file and line), drops exact duplicates
(and every copy of a text given two labels), collapses near-duplicates (word-shingle Jaccard
>= 0.7, real items kept first) and gives each item a split by the hash of its *group*: items
that are still alike (Jaccard >= 0.5) or come from one real conversation share a group, so
near-copies never straddle train, dev and test. Nothing is written back: the split is a pure
function of the files, and ``data_hash`` names the result.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from models.data import DATA_DIR, SPLITS, near_duplicate_clusters, normalise
from schemas import LABELS, Label

TREATMENT_DIR = DATA_DIR / "treatment"
# Real text is scarce, so more of it is held out for an honest real-data score.
SHARES = {"synthetic": (0.80, 0.10, 0.10), "real": (0.50, 0.15, 0.35)}
CHANNELS = frozenset({"twitter", "chat", "email", "call", "review_reply"})
DUPLICATE, SAME_GROUP = 0.7, 0.5


class TreatmentDataError(ValueError):
    """A treatment data file has a row that cannot be used."""


@dataclass(frozen=True)
class TreatmentItem:
    id: str
    text: str
    label: Label
    source: str  # "synthetic" or "real"
    industry: str = ""  # synthetic only
    channel: str = ""  # synthetic only
    dataset: str = ""  # real only: "twcs" or "ibm_twitter_cdp"
    group: str = ""
    split: str = ""


def _row(path: Path, n: int, line: str) -> TreatmentItem:
    where = f"{path.name}:{n}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise TreatmentDataError(f"{where}: not JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise TreatmentDataError(f"{where}: a row must be a JSON object")
    missing = [k for k in ("id", "text", "label", "source") if not str(row.get(k) or "").strip()]
    if missing:
        raise TreatmentDataError(f"{where}: missing {', '.join(missing)}")
    try:
        label = Label(row["label"])
    except ValueError:
        raise TreatmentDataError(f"{where}: unknown label {row['label']!r}") from None
    source = str(row["source"])
    if source == "synthetic":
        if row.get("channel") not in CHANNELS or not row.get("industry"):
            raise TreatmentDataError(f"{where}: synthetic rows need an industry and a channel")
        industry, channel = str(row["industry"]), str(row["channel"])
        return TreatmentItem(str(row["id"]), str(row["text"]).strip(), label, source,
                             industry=industry, channel=channel)  # fmt: skip
    if source == "real":
        if not row.get("dataset"):
            raise TreatmentDataError(f"{where}: real rows need their dataset")
        return TreatmentItem(str(row["id"]), str(row["text"]).strip(), label, source,
                             dataset=str(row["dataset"]))  # fmt: skip
    raise TreatmentDataError(f"{where}: source must be 'synthetic' or 'real', not {source!r}")


def load_raw(directory: Path = TREATMENT_DIR) -> list[TreatmentItem]:
    """Every row of every ``*.jsonl`` file, validated; ids must be unique across files."""
    items: list[TreatmentItem] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            item = _row(path, n, line)
            if item.id in seen:
                raise TreatmentDataError(f"{path.name}:{n}: duplicate id {item.id!r}")
            seen.add(item.id)
            items.append(item)
    if not items:
        raise TreatmentDataError(f"no treatment data in {directory}")
    return items


@dataclass(frozen=True)
class Cleaning:
    loaded: int
    exact_duplicates: int
    label_conflicts: int
    near_duplicates: int
    kept: int


def _conversation(item: TreatmentItem) -> str:
    # Turns of one IBM dialog ("ibm:<session>:<turn>") stay together.
    parts = item.id.split(":")
    return ":".join(parts[:2]) if item.source == "real" and parts[0] == "ibm" else item.id


def clean(items: list[TreatmentItem]) -> tuple[list[TreatmentItem], Cleaning]:
    """Dedup, group and split (see the module docstring); the result is sorted by id."""
    by_text: dict[str, list[TreatmentItem]] = defaultdict(list)
    for item in items:
        by_text[normalise(item.text)].append(item)
    conflicts, unique = 0, []
    for same in by_text.values():
        if len({i.label for i in same}) > 1:
            conflicts += len(same)  # the same words with two labels cannot both be right
            continue
        unique.append(min(same, key=lambda i: (i.source != "real", i.id)))
    exact = len(items) - conflicts - len(unique)
    keep: dict[int, TreatmentItem] = {}
    for item, cluster in zip(unique, near_duplicate_clusters([i.text for i in unique], DUPLICATE),
                             strict=True):  # fmt: skip
        current = keep.get(cluster)
        if current is None or (current.source != "real" and item.source == "real"):
            keep[cluster] = item
    kept = sorted(keep.values(), key=lambda i: i.id)
    groups = near_duplicate_clusters([i.text for i in kept], SAME_GROUP)
    # Union the similarity clusters with real conversations; a group is named by its first id.
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for item, cluster in zip(kept, groups, strict=True):
        for key in (f"sim:{cluster}", f"conv:{_conversation(item)}"):
            a, b = find(f"item:{item.id}"), find(key)
            if a != b:
                parent[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = defaultdict(list)
    for item in kept:
        members[find(f"item:{item.id}")].append(item.id)
    name = {root: min(ids) for root, ids in members.items()}
    result = [_with_split(replace(i, group=name[find(f"item:{i.id}")])) for i in kept]
    report = Cleaning(len(items), exact, conflicts, len(unique) - len(kept), len(result))
    return result, report


def _with_split(item: TreatmentItem) -> TreatmentItem:
    shares = SHARES[item.source]
    digest = hashlib.blake2b(f"treatment-split:{item.group}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "little") / 2**64
    split = "train" if point < shares[0] else "dev" if point < shares[0] + shares[1] else "test"
    return replace(item, split=split)


def load_items(directory: Path = TREATMENT_DIR) -> list[TreatmentItem]:
    """The cleaned, split items (validation errors raise ``TreatmentDataError``)."""
    return clean(load_raw(directory))[0]


def data_hash(items: list[TreatmentItem]) -> str:
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.id):
        digest.update(f"{item.id}\t{item.label.value}\t{item.split}\t{item.text}\n".encode())
    return digest.hexdigest()


def card_table(items: list[TreatmentItem]) -> str:
    """Counts per label x split x source: the data card's main table."""
    columns = [(s, sp) for s in ("synthetic", "real") for sp in SPLITS]
    counts = Counter((i.label, i.source, i.split) for i in items)
    head = "| label | " + " | ".join(f"{s} {sp}" for s, sp in columns) + " | total |"
    lines = [head, "|---|" + "---|" * (len(columns) + 1)]
    for label in LABELS:
        row = [counts[(label, s, sp)] for s, sp in columns]
        lines.append(f"| {label.value} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = [sum(counts[(label, s, sp)] for label in LABELS) for s, sp in columns]
    lines.append("| **all** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(lines)
