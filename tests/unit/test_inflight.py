"""InFlight: batches overlap, but acks wait for their work, order holds and failures surface."""

from __future__ import annotations

import asyncio

import pytest

from stream_jobs.inflight import InFlight
from stream_jobs.testing import FakeEvent, take_loop_acks


def test_events_are_acked_only_after_their_work() -> None:
    async def main() -> None:
        inflight = InFlight(2)
        gate = asyncio.Event()
        events = [FakeEvent(), FakeEvent()]

        async def work() -> None:
            await gate.wait()

        await inflight.submit(events, work)
        take_loop_acks(events)
        assert not any(e.message.acked for e in events)
        assert inflight.items == 2  # still counted as not yet published (backpressure)
        gate.set()
        await inflight.drain()
        assert all(e.message.acked for e in events)
        assert inflight.items == 0

    asyncio.run(main())


def test_model_steps_run_one_at_a_time_and_publish_in_order() -> None:
    async def main() -> None:
        inflight = InFlight(3)
        running, most, published = 0, 0, []

        def work(n: int, model_s: float) -> object:
            async def run() -> None:
                nonlocal running, most
                async with inflight.model:
                    running += 1
                    most = max(most, running)
                    await asyncio.sleep(model_s)
                    running -= 1
                async with inflight.publishing:
                    await asyncio.sleep(0.03 if n == 0 else 0)  # the first publish is slow
                    published.append(n)

            return run

        for n, model_s in enumerate([0.01, 0.001, 0.001, 0.001]):
            await inflight.submit([FakeEvent()], work(n, model_s))  # type: ignore[arg-type]
            assert inflight.pending < 3
        await inflight.drain()
        assert most == 1
        assert published == [0, 1, 2, 3]

    asyncio.run(main())


def test_depth_bounds_pending_batches() -> None:
    async def main() -> None:
        inflight = InFlight(2)
        gates = [asyncio.Event() for _ in range(3)]
        started: list[int] = []

        def work(n: int) -> object:
            async def run() -> None:
                started.append(n)
                await gates[n].wait()

            return run

        await inflight.submit([FakeEvent()], work(0))  # type: ignore[arg-type]
        third = asyncio.create_task(inflight.submit([FakeEvent()], work(1)))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert not third.done()  # two pending: the agent waits before taking more
        gates[0].set()
        await third
        assert inflight.pending == 1
        gates[1].set()
        await inflight.drain()

    asyncio.run(main())


def test_a_failed_batch_raises_and_cancelled_batches_stay_unacked() -> None:
    async def main() -> None:
        inflight = InFlight(2)
        hang = asyncio.Event()

        async def fails() -> None:
            raise RuntimeError("broker gone")

        async def hangs() -> None:
            await hang.wait()

        failed = [FakeEvent()]
        await inflight.submit(failed, fails)
        await asyncio.sleep(0)
        waiting = [FakeEvent()]
        with pytest.raises(RuntimeError, match="broker gone"):
            await inflight.submit(waiting, hangs)
        take_loop_acks(failed)
        assert not failed[0].message.acked
        inflight.cancel()
        await asyncio.sleep(0)
        take_loop_acks(waiting)
        assert not waiting[0].message.acked
        assert inflight.pending == 0

    asyncio.run(main())


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InFlight(0)
