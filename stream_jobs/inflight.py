"""Batches in flight: the classify agent's next batch is taken while the last one is published.

A sequential loop leaves the model idle while a batch's records wait for the broker's acks and
while the next batch is gathered and parsed; on a machine whose cores the model fills, that idle
time is lost throughput. ``InFlight`` runs each batch's work (the model step, then publishing)
as a task and lets the agent take the next batch at once, with at most ``depth`` batches
pending. Model steps run one at a time (``model`` lock) unless the agent lets a step overlap
the last one (it does under a backlog), and batches publish in the order they were taken.
Offsets stay safe: the take loop acks its events as soon as the loop body returns, so each
event's message gets one more reference here and is acked (offset committable) only once its
batch's records are on the broker. A batch that fails raises in the agent the next time it
waits, as the sequential loop would have.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


class InFlight:
    """At most ``depth`` batches between being taken and being acked (``depth`` 1: sequential)."""

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self.depth = depth
        self.model = asyncio.Lock()  # model steps one at a time, when they take it
        self.publishing = asyncio.Lock()  # FIFO: batches publish in the order they were taken
        self._tasks: deque[asyncio.Task[None]] = deque()
        self.items = 0  # events taken but not yet through their work (for backpressure)

    async def submit(self, events: Sequence[Any], work: Callable[[], Awaitable[None]]) -> None:
        """Start ``work`` for ``events``; return once fewer than ``depth`` batches are pending."""
        for event in events:
            event.message.incref()
        self.items += len(events)
        self._tasks.append(asyncio.create_task(self._run(events, work)))
        while self._tasks and (len(self._tasks) >= self.depth or self._tasks[0].done()):
            await self._tasks.popleft()

    async def drain(self) -> None:
        """Wait for every pending batch."""
        while self._tasks:
            await self._tasks.popleft()

    def cancel(self) -> None:
        """Stop pending batches; their events stay unacked and are delivered again."""
        while self._tasks:
            self._tasks.popleft().cancel()
        self.items = 0

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def _run(self, events: Sequence[Any], work: Callable[[], Awaitable[None]]) -> None:
        try:
            await work()
        finally:
            self.items -= len(events)
        for event in events:
            event.ack()
