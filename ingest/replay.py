"""Replay: feed records to the publisher at a fixed rate or at N x their original pace.

Envelopes go to the raw topic and dead letters to the dead-letter topic, so the counts a
replay reports (sent, dead-lettered) account for every input row. With ``speedup`` the
records are ordered by ``created_at`` and the gaps between them are shrunk N times; with
``rate`` they are sent at that many per second; with neither, as fast as the broker takes
them. A progress bar shows on stderr when asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from tqdm import tqdm

from schemas import DeadLetter, Envelope

Record = Envelope | DeadLetter


class Sink(Protocol):
    def publish(self, envelope: Envelope) -> None: ...
    def dead_letter(self, record: DeadLetter) -> None: ...


@dataclass
class ReplayStats:
    sent: int = 0
    dead_letters: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def by_time(records: Iterable[Record]) -> list[Record]:
    """Dead letters first (they have no time), then envelopes in ``created_at`` order."""
    items = list(records)
    dead = [r for r in items if isinstance(r, DeadLetter)]
    envs = sorted((r for r in items if isinstance(r, Envelope)), key=lambda e: e.created_at)
    return [*dead, *envs]


def paced(
    records: Iterable[Record], rate: float | None = None, speedup: float | None = None
) -> Iterator[Record]:
    """Yield records at ``rate`` per second, or ``speedup`` x their own pace, or unpaced."""
    if rate is not None and speedup is not None:
        raise ValueError("give rate or speedup, not both")
    if (rate is not None and rate <= 0) or (speedup is not None and speedup <= 0):
        raise ValueError("rate and speedup must be positive")
    start = time.monotonic()
    first_ts: float | None = None
    count = 0
    for record in records:
        if isinstance(record, Envelope):
            if rate is not None:
                due = start + count / rate
            elif speedup is not None:
                ts = record.created_at.timestamp()
                first_ts = ts if first_ts is None else first_ts
                due = start + max(0.0, ts - first_ts) / speedup
            else:
                due = 0.0
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            count += 1
        yield record


def replay(
    records: Iterable[Record],
    sink: Sink,
    *,
    rate: float | None = None,
    speedup: float | None = None,
    limit: int | None = None,
    progress: bool = False,
    description: str = "replay",
) -> ReplayStats:
    """Send records to ``sink``; ``limit`` caps the number of envelopes sent."""
    if speedup is not None:
        records = by_time(records)
    stats = ReplayStats()
    began = time.monotonic()
    total = limit if limit is not None else (len(records) if isinstance(records, list) else None)
    with tqdm(total=total, desc=description, unit="msg", disable=not progress) as bar:
        for record in paced(records, rate, speedup):
            if isinstance(record, DeadLetter):
                sink.dead_letter(record)
                stats.dead_letters += 1
                continue
            if limit is not None and stats.sent >= limit:
                break
            sink.publish(record)
            stats.sent += 1
            bar.update(1)
    stats.seconds = time.monotonic() - began
    return stats
