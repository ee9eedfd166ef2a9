"""``relradar transcripts analyze``: the stream job's conversation logic, offline.

It reads conversations in any accepted format (ticket JSON, plain-text transcripts, the IBM
dialogs, TWCS threads), classifies customer turns and labels agent turns' treatment with the
same classifier and code the stream job uses, and prints one JSON object per conversation:
relationship, treatment, mismatch and its kind, and the customer's label sequence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.group()
def transcripts() -> None:
    """Support conversations: relationship, treatment and mismatch."""


@transcripts.command()
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    help="auto, ticket-json, transcript, ibm or twcs.",
)
@click.option("--brand", help="Brand of conversations that name none.")
@click.option(
    "--classifier",
    envvar="RELRADAR_CLASSIFIER",
    default="default",
    show_default=True,
    help="'default', 'lexicon' or a model directory [RELRADAR_CLASSIFIER].",
)
@click.option("--batch", type=click.IntRange(1), default=256, show_default=True)
@click.option(
    "--summary", is_flag=True, help="Print mismatch rates per brand instead of conversations."
)
def analyze(
    input_path: Path, fmt: str, brand: str | None, classifier: str, batch: int, summary: bool
) -> None:
    """Print one JSON object per conversation of INPUT; bad ones are reported on stderr."""
    from ingest import read_conversations
    from models import Classifier
    from schemas import DeadLetter, Envelope
    from stream_jobs.app import classified_records
    from stream_jobs.conversations import summarize_messages

    try:
        records = list(read_conversations(input_path, fmt, brand))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--input") from None
    envelopes = [r for r in records if isinstance(r, Envelope)]
    dead = [r for r in records if isinstance(r, DeadLetter)]
    model = Classifier.from_pretrained(classifier)
    classified = []
    for start in range(0, len(envelopes), batch):
        classified.extend(classified_records(envelopes[start : start + batch], model))
    summaries = summarize_messages(classified)
    if summary:
        for row in mismatch_by_brand(summaries):
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        for one in summaries:
            click.echo(json.dumps(one.as_json(), ensure_ascii=False))
    for record in dead:
        where = f" ({record.location})" if record.location else ""
        click.echo(f"skipped{where}: {record.reason}", err=True)
    mismatched = sum(s.mismatch for s in summaries)
    report: dict[str, Any] = {"conversations": len(summaries), "mismatched": mismatched,
                              "dead_letters": len(dead)}  # fmt: skip
    click.echo(json.dumps(report), err=True)


def mismatch_by_brand(summaries: list[Any]) -> list[dict[str, Any]]:
    """Per brand (most conversations first): conversations the brand replied to, how many
    mismatched, the rate, and the kinds."""
    from collections import Counter, defaultdict

    groups: dict[str, list[Any]] = defaultdict(list)
    for s in summaries:
        if s.treatment is not None:
            groups[s.brand].append(s)
    rows = []
    for name, group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        kinds = Counter(s.mismatch_kind for s in group if s.mismatch)
        mismatched = sum(kinds.values())
        rows.append({"brand": name, "conversations": len(group), "mismatched": mismatched,
                     "rate": round(mismatched / len(group), 4),
                     "kinds": dict(kinds.most_common())})  # fmt: skip
    return rows
