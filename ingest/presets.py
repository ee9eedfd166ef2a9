"""Presets for the real public data the product ships as its demo.

Each preset turns one dataset into envelopes: the airline tweets (social posts to six US
airlines), TWCS (customer tweets and brand replies, threads rebuilt from the reply links) and
the IBM customer-care dialogs (support turns). Bad rows become dead letters like in any other
connector. ``PRESETS`` maps a preset name to its reader and its file inside a data folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ingest.connectors import ColumnMapping, Deduper, MappingError, Record, iter_rows, parse_time
from ingest.connectors import records_from_rows as _from_rows
from schemas import DeadLetter, Envelope, Kind, Role
from schemas.envelope import describe_error

DEMO_DATA = Path(__file__).parent / "demo_data"

AIRLINE = ColumnMapping(
    text="text",
    id="tweet_id",
    brand="airline",
    created_at="tweet_created",
    author="name",
    conversation_id=None,
    turn_index=None,
    role=None,
    language=None,
    kind=None,
    source="airline",
    time_format="%Y-%m-%d %H:%M:%S %z",
    metadata=("airline_sentiment", "negativereason"),
)


def _airline_fix(row: dict[str, Any]) -> dict[str, Any]:
    # The dataset's "Delta" rows are tweets addressed to @JetBlue (see the data's README).
    if row.get("airline") == "Delta":
        return {**row, "airline": "JetBlue"}
    return row


def read_airline(path: Path) -> Iterator[Record]:
    return _from_rows(iter_rows(path), AIRLINE, path.name, transform=_airline_fix)


_MENTION = re.compile(r"@(\w+)")
TWCS_TIME = "%a %b %d %H:%M:%S %z %Y"


def read_twcs(path: Path) -> Iterator[Record]:
    """Customer tweets and brand replies, with threads rebuilt from ``in_response_to``.

    Turns are numbered 0..n-1 per thread in time order, counting only rows that become
    envelopes (a row with a bad time must not leave a gap). Rows of a thread that a brand
    answered are support turns; a tweet no brand answered stays a social post.
    """
    rows: dict[str, dict[str, Any]] = {}
    order: list[tuple[int, str]] = []
    for lineno, row in iter_rows(path):
        if isinstance(row, DeadLetter):
            yield row
            continue
        tid = str(row.get("tweet_id", "")).strip()
        if not tid:
            yield DeadLetter.of("connector", "twcs", "no tweet_id", row, f"{path.name}:{lineno}")
            continue
        rows.setdefault(tid, row)
        order.append((lineno, tid))

    def root_of(tid: str) -> str:
        seen = set()
        while True:
            parent = str(rows[tid].get("in_response_to_tweet_id") or "").strip()
            if not parent or parent not in rows or parent in seen:
                return tid
            seen.add(tid)
            tid = parent

    roots = {tid: root_of(tid) for tid in rows}
    times = {tid: _safe_time(row) for tid, row in rows.items()}
    timed = (t for t in rows if times[t] is not None)
    threads: dict[str, list[str]] = {}
    for tid in sorted(timed, key=lambda t: (times[t], int(t) if t.isdigit() else 0)):
        threads.setdefault(roots[tid], []).append(tid)
    # The thread's brand is the first brand that answered in time, not in file order.
    brand_of_thread: dict[str, str] = {}
    for tid in (t for tids in threads.values() for t in tids):
        if _inbound(rows[tid]) is False:
            brand_of_thread.setdefault(roots[tid], str(rows[tid]["author_id"]))

    built: dict[str, Envelope] = {}
    failed: dict[str, str] = {}
    for tid, row in rows.items():
        try:
            inbound = _inbound(row)
            if inbound is None:
                raise MappingError(f"inbound is {row.get('inbound')!r}, not True or False")
            root = roots[tid]
            brand = (
                str(row["author_id"])
                if not inbound
                else brand_of_thread.get(root) or _first_mention(str(row.get("text", "")))
            )
            if not brand:
                raise MappingError("no brand: no reply from a brand in the thread, no @mention")
            envelope = Envelope(
                id=f"twcs:{tid}",
                source="twcs",
                kind=Kind.support_turn if root in brand_of_thread else Kind.social_post,
                brand=brand,
                author=str(row.get("author_id") or "") or None,
                conversation_id=f"twcs:{root}",
                turn_index=0,
                role=Role.customer if inbound else Role.agent,
                text=row.get("text", ""),
                created_at=parse_time(row.get("created_at"), TWCS_TIME),
            )
        except (MappingError, ValidationError, ValueError, KeyError) as error:
            failed[tid] = (
                describe_error(error) if isinstance(error, ValidationError) else str(error)
            )
            continue
        built[tid] = envelope
    # Number only the rows that became envelopes, so a thread's turns run 0..n-1 without gaps.
    for tids in threads.values():
        for i, tid in enumerate(t for t in tids if t in built):
            built[tid] = built[tid].model_copy(update={"turn_index": i})

    dedup = Deduper()
    for lineno, tid in order:
        where = f"{path.name}:{lineno}"
        if tid in failed:
            yield DeadLetter.of("connector", "twcs", failed[tid], rows[tid], where)
        else:
            yield dedup.check(built[tid], where)


def _safe_time(row: dict[str, Any]) -> float | None:
    try:
        return parse_time(row.get("created_at"), TWCS_TIME).timestamp()
    except MappingError:
        return None


def _inbound(row: dict[str, Any]) -> bool | None:
    return {"True": True, "False": False}.get(str(row.get("inbound")).strip())


def _first_mention(text: str) -> str | None:
    match = _MENTION.search(text)
    return match.group(1) if match else None


def read_ibm(path: Path) -> Iterator[Record]:
    """Support turns from IBM's customer-care dialogs (a JSON array of dialogs)."""
    try:
        dialogs = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        yield DeadLetter.of("connector", "ibm", f"unreadable dialog file: {error}", b"", path.name)
        return
    if not isinstance(dialogs, list):
        yield DeadLetter.of("connector", "ibm", "expected a JSON array of dialogs", "", path.name)
        return
    dedup = Deduper()
    for n, dialog in enumerate(dialogs):
        where = f"{path.name}#{n}"
        try:
            header = dialog["dialogHeader"]
            session, company = str(header["sessionID"]), str(header["company"])
            turns = list(dialog["dialogContent"])
        except (KeyError, TypeError) as error:
            yield DeadLetter.of(
                "connector", "ibm", f"malformed dialog: missing {error}", dialog, where
            )
            continue
        final = dialog.get("agentURL") or {}
        if final.get("url_utterance") and final.get("tweet_ID") not in {
            t.get("tweet_ID") for t in turns if isinstance(t, dict)
        }:
            turns.append(
                {
                    "agent": company,
                    "message": final["url_utterance"],
                    "tweet_ID": final.get("tweet_ID"),
                    "datetime": _tweet_time(final.get("tweet_ID"))
                    or (
                        turns[-1].get("datetime") if turns and isinstance(turns[-1], dict) else None
                    ),
                }
            )
        for i, turn in enumerate(turns):
            try:
                is_agent = "agent" in turn
                author = turn.get("agent") if is_agent else turn.get("client", turn.get("client1"))
                envelope = Envelope(
                    id=f"ibm:{session}:{i}",
                    source="ibm",
                    kind=Kind.support_turn,
                    brand=company,
                    author=author or None,
                    conversation_id=f"ibm:{session}",
                    turn_index=i,
                    role=Role.agent if is_agent else Role.customer,
                    text=turn.get("message", ""),
                    created_at=parse_time(turn.get("datetime")),
                    metadata={"tweet_id": turn.get("tweet_ID")},
                )
            except (MappingError, ValidationError, ValueError, TypeError, AttributeError) as error:
                reason = describe_error(error) if isinstance(error, ValidationError) else str(error)
                yield DeadLetter.of("connector", "ibm", reason, turn, f"{where}/{i}")
                continue
            yield dedup.check(envelope, f"{where}/{i}")


def _tweet_time(tweet_id: Any) -> datetime | None:
    """When a tweet was posted, from its id: the final agent reply has no time of its own."""
    # Twitter ids since late 2010 carry milliseconds since 2010-11-04T01:42:54.657Z in bits 22+.
    try:
        value = int(str(tweet_id))
    except ValueError:
        return None
    if value < 1 << 50:
        return None
    return datetime.fromtimestamp(((value >> 22) + 1_288_834_974_657) / 1000, UTC)


def read_ibm_dir(path: Path) -> Iterator[Record]:
    for name in ("dev.json", "test.json"):
        yield from read_ibm(path / name)


@dataclass(frozen=True)
class Preset:
    name: str
    reader: Callable[[Path], Iterator[Record]]
    relative_path: str
    description: str


PRESETS: dict[str, Preset] = {
    "airline": Preset(
        "airline",
        read_airline,
        "airline/Tweets.csv",
        "Twitter US Airline Sentiment: tweets to six US airlines (2015)",
    ),
    "twcs": Preset(
        "twcs",
        read_twcs,
        "twcs/twcs_excerpt_first5000.csv",
        "Customer Support on Twitter: customer tweets and brand replies (2017)",
    ),
    "ibm": Preset(
        "ibm",
        read_ibm_dir,
        "ibm_twitter_cdp",
        "IBM customer-care dialogs: support turns with 25 brands (2018-2020)",
    ),
}


def read_preset(name: str, data_dir: Path = DEMO_DATA) -> Iterator[Record]:
    """Every record of a preset's dataset, from ``data_dir`` (the shipped demo data)."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
    return preset.reader(data_dir / preset.relative_path)
