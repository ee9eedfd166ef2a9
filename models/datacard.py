"""The data card: what the labelled corpus holds, how it was made, and what it lacks.

``write_data_card`` regenerates ``models/data/DATA_CARD.md`` from the corpus, so the counts in
the card are always the counts of the data the shipped model was trained on.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from models.data import DATA_DIR, BuildReport, corpus_hash, data_card_table, load_corpus
from schemas import LABELS

CARD = DATA_DIR / "DATA_CARD.md"

HOW = """\
## How the items were made

- **Written examples** (`raw/synthetic_*.jsonl`, one file per batch of industries: travel;
  telecoms, streaming and software; banks, insurance and utilities; food, games, cars,
  electronics and fitness; retail, grocery and delivery). Each was written by hand to the
  codebook, one relationship type at a time, in the registers people really use with brands:
  tweets, replies, forum comments, app reviews, support chats and emails, with typos, slang,
  emoji, hashtags, @handles, sarcasm and ALL-CAPS. Writers were told to avoid the codebook's
  stock phrases (at most about 1 in 8 items of a label may use one) and to show the relationship
  through situations instead; about 20% are marked `hard`: mixed signals settled by the
  precedence rule, sarcasm, and misleading words ("would love a refund" is a basic exchange).
  About a third are support-transcript turns; `none` includes brand replies, ads, news, job
  posts and spam.
- **Real items** (`raw/real_labelled_0.jsonl` to `_7`): 5,185 messages sampled from the shared
  real data (airline tweets stratified by their sentiment column to over-sample the rarer
  positive ones; TWCS customer tweets and brand replies; IBM customer-care turns, both sides),
  each read and labelled by hand per the codebook, with a `high`/`low` confidence mark. They
  are their own slice: scores on real text are always reported apart from the written items.
- **Rare-type real items, training only** (`raw/real_labelled_8.jsonl`): 470 customer messages
  picked to find real examples of the rare types. Candidates were the unlabelled customer
  messages of the demo data whose group hashes to the train split (6,597), so dev and test are
  unchanged; the then shipped model scored them, and for each rare type (fling,
  master_servant, best_friends, marriage, dependency, captive, love_hate, ex_friends: 55 each;
  business_partner: 30) the highest-scoring were taken. Four annotation agents labelled them
  from the codebook without seeing the model's guess. Most turned out ordinary
  (basic_exchange 171, buddies 95, enemies 31); the rare types got marriage 38, ex_friends 28,
  master_servant 24, fling 24, business_partner 23, best_friends 11, love_hate 7, captive 2 and
  dependency 2. The model's picks make these items harder than a random draw: they are the
  messages it already took for rare types, many of them wrongly.
  Their texts come from the shipped demo datasets and keep those datasets' licences (see
  `ingest/demo_data/SOURCES.md`: the airline and TWCS data are reported as CC BY-NC-SA 4.0,
  non-commercial; the IBM dialogs are Apache 2.0).
- **Unlabelled real texts, for distillation only** (not in this corpus or its counts): the
  shipped student model also learns the teacher model's outputs on about 6,200 unlabelled
  customer messages of the demo data, picked by the same rule (group hashes to the train
  split; not labelled; no exact or near copy of any dev or test item). They carry no label, so
  no score is computed on them (`models.distill.unlabelled_pool`; `docs/model.md`).
- **Cleaning**: exact duplicates after normalisation (case, handles, URLs, punctuation) are
  merged, and texts with two different labels are dropped; near-duplicates (word 3-shingle
  Jaccard >= 0.7, found with MinHash) are collapsed to one item, a real item winning over a
  written one.
- **Split**: fixed by a hash of each item's group, within each source: written items 80/10/10
  (train/dev/test), real items 50/15/35 (more real text held out, as it is scarce). A group is a
  near-duplicate cluster, and for IBM dialogs the whole conversation, so near-copies and turns
  of one dialog never straddle splits.
"""

GAPS = """\
## Known gaps

- Real text is mostly `basic_exchange` (complaints and questions), `buddies` and `none`: the
  real slice has few or no `captive`, `dependency` and `love_hate` items, so real-data scores for
  those labels are not meaningful; their quality rests on the written items.
- The written items, however varied, come from a few writers; a model can learn their habits.
  The real-data slice is the check on that, and is small (hundreds of test items).
- English only; Twitter-era airline and tech-support text dominates the real slice; no
  languages, markets or channels (voice transcripts, long emails) beyond that.
- One labeller per real item in training. A second labeller relabelled every real test item
  independently, from the codebook alone (`second_labels.jsonl`; first 480: every test item
  whose first label is outside basic_exchange, buddies, enemies and none, plus a seeded random
  draw of the rest, with raw agreement 0.887 and Cohen's kappa 0.838; then the other 1,130):
  over all 1,610, raw agreement 0.904, kappa 0.830 (`relradar model agreement`). Every written
  test item was relabelled the same way (`second_labels_written.jsonl`, four agents, 239
  items each): raw agreement 0.971, kappa 0.968, so the written items say what their writers
  meant clearly enough for another reader. Both labellers are annotation agents working from
  the same codebook, not people, so agreement between people may well be lower. Items marked
  `low` confidence are kept, and are the likeliest to be disputed.
- Agent-turn "treatment" labels (how the brand treats the customer) are not in this corpus.
"""


def write_data_card(report: BuildReport | None = None, path: Path = CARD) -> str:
    items = load_corpus()
    by_source = Counter(i.source for i in items)
    kinds = Counter((i.slice, i.kind) for i in items)
    words = sorted(len(i.text.split()) for i in items)
    lines = [
        "# Data card: relationship-labelled corpus",
        "",
        f"{len(items)} items after cleaning, {len(LABELS)} labels (the codebook's), corpus hash "
        f"`{corpus_hash(items)[:16]}` (recorded in the shipped model). Regenerate with "
        "`relradar model train` (which rebuilds `corpus.jsonl` from `raw/` and this card).",
        "",
        "## Counts per label, slice and split",
        "",
        data_card_table(items),
        "",
        "## Counts per source",
        "",
        "| source | items | train | dev | test |",
        "|---|---|---|---|---|",
    ]
    for source, n in sorted(by_source.items()):
        split = Counter(i.split for i in items if i.source == source)
        lines.append(f"| {source} | {n} | {split['train']} | {split['dev']} | {split['test']} |")
    lines += [
        "",
        "| slice | social posts | support turns |",
        "|---|---|---|",
        *(
            f"| {s} | {kinds[(s, 'social_post')]} | {kinds[(s, 'support_turn')]} |"
            for s in ("synthetic", "real")
        ),
        "",
        f"Length in words: median {words[len(words) // 2]}, 10th percentile "
        f"{words[len(words) // 10]}, 90th percentile {words[9 * len(words) // 10]}, "
        f"longest {words[-1]}.",
        "",
    ]
    if report is not None:
        lines += [
            f"Cleaning: {report.loaded} raw items, {report.exact_duplicates} exact duplicates "
            f"merged, {report.label_conflicts} dropped for conflicting labels, "
            f"{report.near_duplicates} near-duplicates collapsed, {report.kept} kept.",
            "",
        ]
    text = "\n".join(lines) + "\n" + HOW + "\n" + GAPS
    path.write_text(text)
    return text
