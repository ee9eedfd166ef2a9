"""Gathered inserts: the sink writes fewer, larger batches while the classifier runs flat out.

Every ClickHouse insert costs the store about the same CPU whatever its size (the id lookup,
the batch note, the materialized views: ~110 ms here), and on a machine whose cores the model
fills, that CPU is model time lost. faust's ``take_events`` yields whatever arrived within a
fixed tick, so at flat-out the sink wrote about one insert per classify batch. ``Gather`` holds
events across takes and hands them to a writer task when the oldest has waited its window:
``window_s`` normally, ``backlog_window_s`` while the classify agent is taking full batches (a
backlog: the backlog sets latency then, and every insert saved is model time won); at once
when ``max_rows`` are held; and early when the classify stage has gone idle (nothing more is
coming: the end of a burst, a trickle), but not more than once per ``window_s``. Offsets stay
safe as in ``InFlight``: each held event's message gets one more reference, released (offset
committable) only after its batch is written. A writer that fails raises in the agent the
next time it adds events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatherPolicy:
    """When held events are written: ``max_rows`` held, or the oldest waited its window."""

    max_rows: int
    window_s: float
    backlog_window_s: float
    # Re-checked at least this often while waiting: a backlog that ends shortens the window.
    recheck_s: float = 0.05

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.window_s <= 0 or self.backlog_window_s <= 0:
            raise ValueError(f"invalid gather policy {self}")

    @property
    def take_within_s(self) -> float:
        """The tick for ``take_events``: short, so that arrivals are held as they come."""
        return min(self.recheck_s, self.window_s)


@dataclass
class Upstream:
    """What a worker's gathered writers know of its classify stage.

    ``full``: the last batch taken came full (more was waiting: a backlog). ``idle()``: every
    raw event that reached the classify stream was taken, none is being classified or
    published, and the last publish was ``settle_s`` ago (time for its records to reach this
    worker's writers): nothing more is on its way, so waiting longer only adds latency.
    """

    seen: int = 0
    taken: int = 0
    full: bool = False
    published_at: float = 0.0
    settle_s: float = 0.15
    pending: Callable[[], int] = lambda: 0  # events taken, not yet published

    def idle(self) -> bool:
        return (
            self.seen == self.taken
            and self.pending() == 0
            and time.monotonic() - self.published_at >= self.settle_s
        )


class Gather:
    """Holds taken events and writes them in batches from its own task."""

    def __init__(
        self,
        policy: GatherPolicy,
        write: Callable[[list[Any]], Awaitable[None]],
        upstream: Upstream | None = None,
    ) -> None:
        self.policy = policy
        self._write = write
        self._upstream = upstream
        self._held: list[Any] = []
        self._oldest = 0.0  # monotonic time the oldest held event arrived
        self._last_flush = -float("inf")
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        return len(self._held)

    async def add(self, events: Sequence[Any]) -> None:
        """Hold ``events``; return once fewer than ``max_rows`` are held."""
        task = self._ensure_task()
        if task.done():
            await task  # the writer's error, raised in the agent
        for event in events:
            event.message.incref()
        if not self._held:
            self._oldest = time.monotonic()
        self._held.extend(events)
        self._arrived.set()
        while len(self._held) >= self.policy.max_rows:
            self._room.clear()
            room = asyncio.ensure_future(self._room.wait())
            try:
                await asyncio.wait({room, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                room.cancel()
            if task.done():
                await task

    def cancel(self) -> None:
        """Stop writing; held events stay unacked and are delivered again."""
        if self._task is not None:
            self._task.cancel()
        self._held.clear()

    def _ensure_task(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
            self._task.add_done_callback(_log_failure)
        return self._task

    def _window(self) -> float:
        backlog = self._upstream is not None and self._upstream.full
        return self.policy.backlog_window_s if backlog else self.policy.window_s

    def _upstream_idle(self, now: float) -> bool:
        # At most one insert per window still: a trickle must not become an insert a message.
        return (
            self._upstream is not None
            and now - self._last_flush >= self.policy.window_s
            and self._upstream.idle()
        )

    async def _due(self) -> None:
        """Return when the held events should be written."""
        while True:
            if not self._held:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            now = time.monotonic()
            if len(self._held) >= self.policy.max_rows or self._upstream_idle(now):
                return
            left = self._oldest + self._window() - now
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, self.policy.recheck_s))

    async def _run(self) -> None:
        while True:
            await self._due()
            self._last_flush = time.monotonic()
            batch = self._held[: self.policy.max_rows]
            self._held = self._held[self.policy.max_rows :]
            if self._held:
                # The rest arrived after the batch's first; timing them from now delays them
                # by one window at most.
                self._oldest = time.monotonic()
            self._room.set()
            await self._write(batch)
            for event in batch:
                event.ack()


def _log_failure(task: asyncio.Task[None]) -> None:
    # Raised in the agent at its next add; logged here too, in case no more events come.
    if not task.cancelled() and task.exception() is not None:
        log.error("gathered write failed: %r", task.exception())
