"""The labelled corpus: loading, deduplication, the fixed split and the data card.

Raw files in ``models/data/raw`` come from two kinds of source: hand-written examples
(``synthetic_*.jsonl``, one file per batch of industries) and items from the real public data
labelled by hand (``real_labelled_*.jsonl``). ``build_corpus`` normalises them, drops exact
and near-duplicates (word-shingle Jaccard >= 0.7 via MinHash), and gives every item a fixed
split: within each source, whole near-duplicate clusters (and whole real conversations) go to
one split by a hash, so near-copies never straddle train, dev and test. The real items form
their own slice so quality on real text is reported on its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas import LABELS, Label

DATA_DIR = Path(__file__).parent / "data"
RAW_DIR = DATA_DIR / "raw"
CORPUS = DATA_DIR / "corpus.jsonl"
SPLITS = ("train", "dev", "test")
# Real text is scarce, so more of it is held out for an honest real-data score.
SPLIT_SHARES = {"synthetic": (0.80, 0.10, 0.10), "real": (0.50, 0.15, 0.35)}


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    label: Label
    source: str
    slice: str  # "synthetic" or "real"
    kind: str
    role: str
    brand: str
    group: str  # items of one group always share a split (a conversation, a cluster)
    split: str = ""

    def to_json(self) -> str:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["label"] = self.label.value
        return json.dumps(d, ensure_ascii=False)


_URL = re.compile(r"https?://\S+")
_HANDLE = re.compile(r"@\w+")
_NONWORD = re.compile(r"[^\w\s]+")


def normalise(text: str) -> str:
    text = _HANDLE.sub(" ", _URL.sub(" ", text.lower()))
    return " ".join(_NONWORD.sub(" ", text).split())


def shingles(text: str, n: int = 3) -> set[str]:
    words = normalise(text).split()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")


def near_duplicate_clusters(texts: list[str], threshold: float = 0.7) -> list[int]:
    """Cluster ids (union-find) for texts whose shingle Jaccard reaches ``threshold``."""
    sets = [shingles(t) for t in texts]
    rng = np.random.default_rng(12345)
    perms, bands, rows = 64, 16, 4
    a = rng.integers(1, 2**61 - 1, size=perms, dtype=np.uint64)
    b = rng.integers(0, 2**61 - 1, size=perms, dtype=np.uint64)
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        hashed = np.array([_hash64(x) for x in s], dtype=np.uint64)
        signature = (np.outer(hashed, a) + b).min(axis=0)  # uint64 wraps: fine for MinHash
        for band in range(bands):
            buckets[(band, signature[band * rows : (band + 1) * rows].tobytes())].append(i)
    for members in buckets.values():
        for j in members[1:]:
            i = members[0]
            inter = len(sets[i] & sets[j])
            if inter and inter / len(sets[i] | sets[j]) >= threshold:
                parent[find(j)] = find(i)
    return [find(i) for i in range(len(texts))]


def _load_raw(raw_dir: Path) -> list[Item]:
    items: list[Item] = []
    for path in sorted(raw_dir.glob("*.jsonl")):
        is_real = path.name.startswith("real_")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            label = Label(row["label"])
            if is_real:
                rid = str(row["rid"])
                group = group_of(rid)
                source = str(row["source"])
                item_id = rid
            else:
                source = f"synthetic:{path.stem.removeprefix('synthetic_')}"
                item_id = f"{source}:{n}"
                group = item_id
            items.append(
                Item(
                    id=item_id,
                    text=str(row["text"]).strip(),
                    label=label,
                    source=source,
                    slice="real" if is_real else "synthetic",
                    kind=str(row.get("kind", "social_post")),
                    role=str(row.get("role", "customer")),
                    brand=str(row.get("brand") or ""),
                    group=group,
                )
            )
    return items


@dataclass
class BuildReport:
    loaded: int
    exact_duplicates: int
    near_duplicates: int
    label_conflicts: int
    kept: int


def build_corpus(raw_dir: Path = RAW_DIR, out: Path = CORPUS) -> BuildReport:
    """Dedup and split the raw files into ``corpus.jsonl`` (one JSON item per line)."""
    items = [i for i in _load_raw(raw_dir) if i.text]
    loaded = len(items)
    by_norm: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_norm[normalise(item.text)].append(item)
    conflicts = 0
    unique: list[Item] = []
    for same in by_norm.values():
        if len({i.label for i in same}) > 1:
            # The same words with two labels cannot both be right: drop them all.
            conflicts += len(same)
            continue
        unique.append(min(same, key=lambda i: (i.slice != "real", i.id)))
    exact = loaded - conflicts - len(unique)
    clusters = near_duplicate_clusters([i.text for i in unique])
    keep: dict[int, Item] = {}
    for item, cluster in zip(unique, clusters, strict=True):
        # Real items win over written ones, so the real slice keeps its size.
        current = keep.get(cluster)
        if current is None or (current.slice != "real" and item.slice == "real"):
            keep[cluster] = item
    near = len(unique) - len(keep)
    final = sorted(keep.values(), key=lambda i: i.id)
    with out.open("w", encoding="utf-8") as handle:
        for item in final:
            handle.write(_with_split(item).to_json() + "\n")
    return BuildReport(loaded, exact, near, conflicts, len(final))


def group_of(rid: str) -> str:
    """The split group of a real item's id: a whole IBM dialog, otherwise the item itself."""
    parts = rid.split(":")
    return ":".join(parts[:2]) if parts[0] == "ibm" else rid


def split_of(slice_name: str, group: str) -> str:
    """The fixed split of a group: a hash of its name against the slice's shares."""
    shares = SPLIT_SHARES[slice_name]
    point = _hash64(f"split:{group}") / 2**64
    return "train" if point < shares[0] else "dev" if point < shares[0] + shares[1] else "test"


def _with_split(item: Item) -> Item:
    return Item(**{**item.__dict__, "split": split_of(item.slice, item.group)})


def load_corpus(path: Path = CORPUS) -> list[Item]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row["label"] = Label(row["label"])
        items.append(Item(**row))
    return items


def corpus_hash(items: Iterable[Item]) -> str:
    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.id):
        digest.update(f"{item.id}\t{item.label.value}\t{item.split}\t{item.text}\n".encode())
    return digest.hexdigest()


def data_card_table(items: list[Item]) -> str:
    """Counts per label and split, for each slice (the data card's main table)."""
    lines = [
        "| label | "
        + " | ".join(f"{s} {sp}" for s in ("synthetic", "real") for sp in SPLITS)
        + " | total |",
        "|---|" + "---|" * 7,
    ]
    counts = Counter((i.label, i.slice, i.split) for i in items)
    for label in [*LABELS, None]:
        row = [
            counts[(lab, s, sp)]
            for s in ("synthetic", "real")
            for sp in SPLITS
            for lab in ([label] if label else LABELS)
        ]
        if label is None:
            row = [
                sum(counts[(lab, s, sp)] for lab in LABELS)
                for s in ("synthetic", "real")
                for sp in SPLITS
            ]
        name = label.value if label else "**all**"
        lines.append(f"| {name} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    return "\n".join(lines)
