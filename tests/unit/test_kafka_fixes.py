"""Offset commits: only past messages the agents finished with (``commit_only_processed``).

The consumer here is a stand-in with the stream runtime's bookkeeping attributes; the methods
called on it are the runtime's own, as patched. The scale-out and fault tests run the same
patches against the real broker.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from stream_jobs.kafka_fixes import _ReadPositions, commit_only_processed, next_commit

RAW = "relradar.raw"


@dataclass
class Flow:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class Msg:
    offset: int
    generation_id: int = 1
    topic: str = RAW
    partition: int = 0
    acked: bool = False

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)

    def __hash__(self) -> int:
        return id(self)


class Topics:
    def acks_enabled_for(self, topic: str) -> bool:
        return True


class App:
    def __init__(self) -> None:
        self.flow_control, self.consumer_generation_id, self.topics = Flow(), 1, Topics()


class StandIn:
    """The attributes the runtime's ack, seek and commit bookkeeping use."""

    def __init__(self, committed: int | None, earliest: int = 0) -> None:
        self.app = App()
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._unacked_messages: set[Any] = set()
        self._n_acked = 0
        self._waiting_for_ack = None
        self.broker_committed = {} if committed is None else {TP(RAW, 0): committed}
        self.earliest, self.sought = earliest, dict[TP, int]()
        self.reread_after_s = 30.0

    def assignment(self) -> set[TP]:
        return {TP(RAW, 0)}

    async def seek_to_committed(self) -> dict[TP, int]:
        return self.broker_committed

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought[tp] = offset

    def commit_ticks(self, n: int) -> list[int | None]:
        """``n`` commit passes (each lets a scheduled re-read run)."""

        async def ticks() -> list[int | None]:
            offsets = []
            for _ in range(n):
                offsets.append(commit_to(self))
                await asyncio.sleep(0.01)
            return offsets

        return asyncio.run(ticks())


@pytest.fixture(scope="module", autouse=True)
def patched() -> None:
    commit_only_processed({RAW})


def assigned(committed: int | None, earliest: int = 0) -> Any:
    consumer = StandIn(committed, earliest)
    asyncio.run(Consumer.perform_seek(consumer))  # type: ignore[arg-type]
    return consumer


def ack(consumer: Any, *offsets: int, generation: int = 1) -> None:
    for offset in offsets:
        Consumer.ack(consumer, Msg(offset, generation))  # type: ignore[arg-type]


def commit_to(consumer: Any) -> int | None:
    offset: int | None = Consumer._new_offset(consumer, TP(RAW, 0))
    if offset is not None:
        consumer._committed_offset[TP(RAW, 0)] = offset  # as a successful commit does
    return offset


def test_next_commit_moves_only_through_a_run_that_starts_at_the_head() -> None:
    assert next_commit([10, 11, 12], 10) == 13
    assert next_commit([12, 10, 11, 15], 10) == 13
    assert next_commit([11, 12], 10) is None  # the head still in work: one past it is not enough
    assert next_commit([7, 8, 10], 10) == 11  # below the head: done before
    assert next_commit([], 10) is None
    assert next_commit([10, 10, 11], 10) == 12  # acked twice (read twice)


def test_an_ack_out_of_order_waits_for_the_message_before_it() -> None:
    consumer = assigned(committed=10)
    ack(consumer, 11, 12)
    assert commit_to(consumer) is None  # the runtime alone committed 13 here, past 10
    ack(consumer, 10)
    assert commit_to(consumer) == 13


def test_a_partition_without_a_commit_starts_at_the_brokers_first_offset() -> None:
    fresh = assigned(committed=None)
    assert fresh.sought == {TP(RAW, 0): 0}
    ack(fresh, 3, 4)
    assert commit_to(fresh) is None  # the runtime alone committed 5 here: 0..2 unread
    ack(fresh, 0, 1, 2)
    assert commit_to(fresh) == 5
    trimmed = assigned(committed=None, earliest=40)  # the broker dropped 0..39 already
    assert trimmed.sought == {TP(RAW, 0): 40}
    ack(trimmed, 40)
    assert commit_to(trimmed) == 41


def test_acks_during_a_rebalance_or_from_before_it_do_not_count() -> None:
    consumer = assigned(committed=10)
    consumer.app.flow_control.active = False  # a rebalance or a stop holds the flow
    ack(consumer, 10, 11)
    consumer.app.flow_control.active = True
    consumer.app.consumer_generation_id = 2
    ack(consumer, 12, generation=1)  # fetched before the rebalance
    assert commit_to(consumer) is None
    ack(consumer, 10, 11, 12, generation=2)  # read again after it, and processed
    assert commit_to(consumer) == 13


def test_the_fetch_loop_sees_no_read_position_on_these_topics() -> None:
    # Its position test dropped re-fetched messages as repeats after a rebalance (2 of 6,000
    # lost in a scale-out run); with none known, every fetched message is delivered.
    positions = _ReadPositions({RAW}, {TP("other", 0): 5})
    positions[TP(RAW, 0)] = 169
    positions.update({TP(RAW, 1): 3})
    assert positions[TP(RAW, 0)] is None and positions[TP(RAW, 1)] is None
    assert positions[TP("other", 0)] == 5 and positions[TP("other", 1)] is None
    positions.pop(TP(RAW, 0))


def test_an_unfinished_head_is_read_again_once_later_offsets_wait_on_it() -> None:
    consumer = assigned(committed=10)
    consumer.sought.clear()
    ack(consumer, 11, 12)  # 10 never arrived: its delivery was cut off
    assert consumer.commit_ticks(3) == [None] * 3 and not consumer.sought  # not yet: 30 s
    consumer.reread_after_s = 0.0
    assert consumer.commit_ticks(2) == [None, None]
    assert consumer.sought == {TP(RAW, 0): 10}  # read on from 10 again
    ack(consumer, 10)
    assert commit_to(consumer) == 13


def test_a_head_the_broker_dropped_is_given_up_and_the_commit_moves_on() -> None:
    consumer = assigned(committed=10)
    consumer.reread_after_s, consumer.earliest = 0.0, 12  # 10 and 11 are gone from the broker
    consumer.sought.clear()
    ack(consumer, 12, 13)
    assert consumer.commit_ticks(2) == [None, 14]  # the second pass after the broker's answer
    assert not consumer.sought
