"""Gather: held events are written when their window ends, in larger batches under a backlog,
acked only after the write, bounded in number, and a failing writer surfaces in the agent."""

from __future__ import annotations

import asyncio
import time

import pytest

from stream_jobs.gather import Gather, GatherPolicy, Upstream
from stream_jobs.testing import FakeEvent, take_loop_acks


class Recorder:
    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.batches: list[tuple[float, list[FakeEvent]]] = []
        self.gate = gate

    async def __call__(self, events: list[FakeEvent]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.batches.append((time.monotonic(), events))


async def add(gather: Gather, n: int) -> list[FakeEvent]:
    events = [FakeEvent() for _ in range(n)]
    await gather.add(events)
    take_loop_acks(events)  # faust acks its reference as soon as the loop body returns
    return events


def test_a_window_gathers_several_takes_into_one_write() -> None:
    async def main() -> None:
        write = Recorder()
        gather = Gather(GatherPolicy(1000, 0.3, 2.0), write)
        began = time.monotonic()
        first = await add(gather, 3)
        await asyncio.sleep(0.1)
        second = await add(gather, 4)
        assert not write.batches and not any(e.message.acked for e in first + second)
        await asyncio.sleep(0.4)
        assert [len(b) for _, b in write.batches] == [7]
        # Written once the oldest had waited its window, not a window after the last arrival.
        assert 0.28 <= write.batches[0][0] - began < 0.38
        assert all(e.message.acked for e in first + second)
        gather.cancel()

    asyncio.run(main())


def test_a_backlog_lengthens_the_window_and_its_end_shortens_it_again() -> None:
    async def main() -> None:
        write = Recorder()
        upstream = Upstream(seen=1, full=True)  # one event waits: never idle here
        gather = Gather(GatherPolicy(1000, 0.2, 5.0), write, upstream)
        await add(gather, 5)
        await asyncio.sleep(0.4)
        assert not write.batches  # 0.4 s is past the normal window, within the backlog's
        upstream.full = False
        await asyncio.sleep(0.15)  # no new arrival needed: the wait re-checks the backlog
        assert [len(b) for _, b in write.batches] == [5]
        gather.cancel()

    asyncio.run(main())


def test_an_idle_classify_stage_writes_early_but_once_per_window_at_most() -> None:
    async def main() -> None:
        write = Recorder()
        in_flight = [10]
        upstream = Upstream(settle_s=0.1, pending=lambda: in_flight[0])
        gather = Gather(GatherPolicy(1000, 1.0, 5.0), write, upstream)
        began = time.monotonic()
        await add(gather, 3)
        await asyncio.sleep(0.3)
        assert not write.batches  # a batch is still being classified: more is coming
        in_flight[0] = 0
        upstream.published_at = time.monotonic()
        await asyncio.sleep(0.05)
        assert not write.batches  # its records may not have reached this writer yet
        await asyncio.sleep(0.15)
        assert [len(b) for _, b in write.batches] == [3]
        assert write.batches[0][0] - began < 0.6  # well before the 1 s window
        # Still idle, but the last insert was just now: the next waits for its window.
        await add(gather, 2)
        await asyncio.sleep(0.3)
        assert len(write.batches) == 1
        await asyncio.sleep(0.8)
        assert [len(b) for _, b in write.batches] == [3, 2]
        assert write.batches[1][0] - write.batches[0][0] >= 0.95
        gather.cancel()

    asyncio.run(main())


def test_an_event_waiting_in_the_take_buffer_means_not_idle() -> None:
    upstream = Upstream(seen=5, taken=4, settle_s=0.0)
    assert not upstream.idle()
    upstream.taken = 5
    assert upstream.idle()
    upstream.pending = lambda: 1
    assert not upstream.idle()


def test_max_rows_writes_at_once_and_holds_the_taker_while_the_writer_is_busy() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        write = Recorder(gate)
        gather = Gather(GatherPolicy(10, 60.0, 60.0), write)
        await add(gather, 10)  # a full batch goes to the writer at once (which then waits)
        await asyncio.sleep(0.05)
        assert gather.held == 0
        await add(gather, 6)
        blocked = asyncio.create_task(add(gather, 6))  # 12 held while the writer is busy
        await asyncio.sleep(0.1)
        assert not blocked.done() and gather.held == 12
        gate.set()  # the first write ends; the writer takes the next 10: room again
        await asyncio.wait_for(blocked, 1.0)
        await asyncio.sleep(0.05)
        assert [len(b) for _, b in write.batches] == [10, 10]
        assert gather.held == 2
        assert sum(e.message.acked for _, b in write.batches for e in b) == 20
        gather.cancel()

    asyncio.run(main())


def test_a_failed_write_leaves_its_events_unacked_and_raises_at_the_next_add() -> None:
    async def main() -> None:
        async def fail(events: list[FakeEvent]) -> None:
            raise RuntimeError("store gone")

        gather = Gather(GatherPolicy(1000, 0.05, 0.05), fail)
        events = await add(gather, 3)
        await asyncio.sleep(0.2)
        assert not any(e.message.acked for e in events)  # delivered again after a restart
        with pytest.raises(RuntimeError, match="store gone"):
            await add(gather, 1)

    asyncio.run(main())


def test_cancel_drops_held_events_unacked() -> None:
    async def main() -> None:
        write = Recorder()
        gather = Gather(GatherPolicy(1000, 10.0, 10.0), write)
        events = await add(gather, 4)
        gather.cancel()
        await asyncio.sleep(0.05)
        assert not write.batches and not any(e.message.acked for e in events)
        assert gather.held == 0

    asyncio.run(main())


def test_an_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        GatherPolicy(0, 0.5, 2.0)
    with pytest.raises(ValueError):
        GatherPolicy(10, 0.0, 2.0)
