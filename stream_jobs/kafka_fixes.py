"""Kafka client behaviour the service needs, added to the stream runtime's clients.

Three things the stock clients do not do: wait (with backoff, reporting it) for a broker that
is away at start instead of exiting into a crash loop; deliver every fetched message and
commit only offsets whose messages were processed, through rebalances and stops (the runtime
could commit past messages it had dropped or skipped, and the next owner of the partition
never read them); and keep a follower whose SyncGroup the local broker refuses from wedging.
The patches touch private methods of aiokafka 0.14 and faust-streaming 0.15; each marks the
class so it is applied once, and tests (scale-out, faults) fail if a client upgrade breaks them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)


def next_commit(done: Iterable[int], head: int) -> int | None:
    """Where a partition's commit may move from ``head``, given the offsets done since.

    ``head`` is the committed offset: the first message not known to be done. Only a run of
    done offsets that starts exactly there moves the commit; an offset done out of order
    waits until every message before it is done. None: the commit stays.
    """
    end = head
    for offset in sorted(set(done)):
        if offset > end:
            break
        if offset == end:
            end += 1
    return end if end > head else None


class _ReadPositions(defaultdict[Any, Any]):
    """The consumer's last-read offsets, reported as unknown for the given topics.

    The runtime's fetch loop drops a fetched message whose offset is below the last one read
    (as a repeat) and notes the offsets between as skipped; but it counts as read messages it
    never delivered (handed on while a rebalance held the flow, then cancelled), so after the
    rebalance's seek it dropped the re-fetched ones. Unknown, every fetched message is
    delivered: a repeat is collapsed downstream.
    """

    def __init__(self, topics: set[str], positions: Mapping[Any, Any]) -> None:
        super().__init__(lambda: None, positions)
        self.topics = topics

    def __getitem__(self, tp: Any) -> Any:
        return None if tp.topic in self.topics else super().__getitem__(tp)


def commit_only_processed(topics: set[str], reread_after_s: float = 30.0) -> None:
    """Deliver every fetched message on ``topics``, and commit only past finished ones.

    The stream runtime let a worker commit past messages it never processed; a graceful
    stop or a rebalance then handed the partition on without them (CI once lost 3 of the
    scale-out test's 6,000 messages; reproduced here, 2 lost: offsets 166-167 of a partition
    that had just moved). The gaps closed here:

    - After a rebalance its fetch loop dropped re-fetched messages it took for repeats
      (``_ReadPositions``), and noted them as skipped, which let the commit pass them.
    - It commits a run of acked offsets that begins one past the committed offset, or
      anywhere in a partition with no commit yet, so one ack out of order could carry the
      commit past a message still in work. Here the run must begin at the committed offset.
    - While a rebalance or a stop holds the flow, a stream acks each event it takes instead
      of processing it, and after a rebalance it acks events fetched before it the same way.
      Those acks are refused: after a rebalance every partition is read again from its
      committed offset, and after a stop its next owner reads it.
    - A partition without a committed offset kept its read position through a rebalance,
      past the events dropped with it (its first messages). It is read again from its first
      offset on the broker, where its commits then start.

    A partition whose committed offset is still unfinished ``reread_after_s`` after later
    offsets were finished is read again from it: each agent finishes its events in order, so
    that message was lost on its way to them (its delivery cut off by a rebalance, or its agent
    restarted after a failure). If the broker no longer holds it, the commit moves on to the
    broker's first offset and the loss is logged (the agents' gap detectors count it).

    Every stage downstream is idempotent (the sink collapses repeats; conversation turns are
    kept by index), so reading a message twice is safe and skipping one is not.
    """
    from faust.transport.consumer import Consumer
    from faust.types.tuples import ack_lock

    if getattr(Consumer, "commits_only_processed", False):
        return
    init, ack, perform_seek = Consumer.__init__, Consumer.ack, Consumer.perform_seek
    new_offset = Consumer._new_offset
    starts: dict[Any, int] = {}  # where the last seek began reading each partition of topics
    stuck: dict[Any, tuple[int, float]] = {}  # partition: (its unfinished head, since when)
    rereads: set[asyncio.Task[None]] = set()

    def init_consumer(self: Consumer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._read_offset = _ReadPositions(topics, self._read_offset)

    def ack_processed(self: Consumer, message: Any) -> bool:
        app = self.app
        if message.topic not in topics or (
            app.flow_control.is_active() and message.generation_id == app.consumer_generation_id
        ):
            return bool(ack(self, message))
        with ack_lock:  # the runtime's lock for its ack bookkeeping
            message.acked = True
            self._unacked_messages.discard(message)
        return False

    async def seek(self: Consumer) -> None:
        await perform_seek(self)
        mine = [tp for tp in self.assignment() if tp.topic in topics]
        try:
            first = await self.earliest_offsets(*mine) if mine else {}
        except Exception as error:  # the broker away mid-rebalance: start as before, at 0
            log.warning(
                "first offsets not read (%s); partitions without a commit start at 0", error
            )
            first = {}
        starts.clear()
        stuck.clear()
        for tp in mine:
            committed, begin = self._committed_offset.get(tp) or 0, first.get(tp, 0)
            if 0 < committed < begin:
                dropped(tp, committed, begin)
            if committed < begin or not committed:
                await self.seek(tp, begin)
            starts[tp] = max(committed, begin)

    def offset_to_commit(self: Consumer, tp: Any) -> int | None:
        if tp.topic not in topics:
            return new_offset(self, tp)  # type: ignore[no-any-return]
        with ack_lock:
            acked = self._acked.get(tp)
            committed = self._committed_offset.get(tp)
            if not acked or (committed is None and tp not in starts):
                return None  # nothing acked, or not read since it was assigned
            head = max(committed or 0, starts.get(tp, 0))
            # Kept until the commit has moved past them: a commit that fails is tried again.
            acked[:] = sorted({offset for offset in acked if offset >= head})
            self._acked_index[tp] = set(acked)
            offset = next_commit(acked, head)
        if offset is not None:
            stuck.pop(tp, None)
            return offset
        now, previous = time.monotonic(), stuck.get(tp)
        since = previous[1] if previous is not None and previous[0] == head else now
        stuck[tp] = (head, since)
        if now - since >= getattr(self, "reread_after_s", reread_after_s):
            del stuck[tp]
            task = asyncio.ensure_future(reread(self, tp, head, now - since))
            rereads.add(task)
            task.add_done_callback(rereads.discard)
        return None

    async def reread(self: Consumer, tp: Any, head: int, waited: float) -> None:
        try:
            begin = (await self.earliest_offsets(tp)).get(tp, 0)
        except Exception as error:  # tried again once the head has waited as long again
            log.warning("%s[%d]: first offset not read (%s)", tp.topic, tp.partition, error)
            return
        if head < begin:
            dropped(tp, head, begin)
            with ack_lock:
                self._acked[tp].extend(range(head, begin))
            return
        log.warning(
            "%s[%d]: offset %d unfinished %.0f s after later ones were; reading on from it again",
            tp.topic, tp.partition, head, waited,
        )  # fmt: skip
        await self.seek(tp, head)

    def dropped(tp: Any, first: int, end: int) -> None:
        log.error(
            "OFFSET GAP: %s[%d] offsets %d..%d were dropped by the broker unread",
            tp.topic, tp.partition, first, end - 1,
        )  # fmt: skip

    setattr(Consumer, "__init__", init_consumer)  # noqa: B010 (methods, replaced on purpose)
    setattr(Consumer, "ack", ack_processed)  # noqa: B010
    setattr(Consumer, "perform_seek", seek)  # noqa: B010
    setattr(Consumer, "_new_offset", offset_to_commit)  # noqa: B010
    setattr(Consumer, "reread_after_s", reread_after_s)  # noqa: B010
    setattr(Consumer, "commits_only_processed", True)  # noqa: B010


def tolerate_late_sync(leader_wait_s: float = 0.5) -> None:
    """Keep a worker whose SyncGroup reaches the local broker after the leader's from wedging.

    The local broker (librdkafka's mock cluster) declares a group stable as soon as the
    leader's SyncGroup carries every member's assignment, and then answers a follower's own
    SyncGroup with INVALID_REQUEST, where Kafka answers it with the assignment. aiokafka takes
    that as fatal and its group coordinator waits forever: a second worker that loses the race
    never starts. Read as REBALANCE_IN_PROGRESS, it rejoins and the next round settles it; and
    the leader waits ``leader_wait_s`` after assigning, so followers usually sync first. Kafka
    never sends that answer there, and the wait is once per rebalance.
    """
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    if getattr(GroupCoordinator, "tolerates_late_sync", False):
        return
    send_req, perform_assignment = GroupCoordinator._send_req, GroupCoordinator._perform_assignment

    async def send(self: GroupCoordinator, request: Any) -> Any:
        response = await send_req(self, request)
        if getattr(request, "API_KEY", None) == 14 and response.error_code == 42:  # SyncGroup
            response.error_code = 27  # INVALID_REQUEST read as REBALANCE_IN_PROGRESS
        return response

    async def assign(self: GroupCoordinator, response: Any) -> Any:
        assignment = await perform_assignment(self, response)
        await asyncio.sleep(leader_wait_s)
        return assignment

    setattr(GroupCoordinator, "_send_req", send)  # noqa: B010 (a method, replaced on purpose)
    setattr(GroupCoordinator, "_perform_assignment", assign)  # noqa: B010
    setattr(GroupCoordinator, "tolerates_late_sync", True)  # noqa: B010


def wait_for_broker(bootstrap: str, max_delay: float = 10.0) -> None:
    """Block until a bootstrap server accepts connections, retrying with backoff.

    The Kafka clients give up on a broker that is away at start; an always-on service waits
    for it instead (and says so) rather than exiting into a crash loop.
    """
    import socket
    import time

    delay, attempt = 0.5, 0
    while True:
        for server in bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=3).close()
                if attempt:
                    print(f"broker {bootstrap} reachable", file=sys.stderr, flush=True)
                return
            except (OSError, ValueError):
                continue
        attempt += 1
        log.error("broker %s unreachable (try %d); retry in %.1fs", bootstrap, attempt, delay)
        time.sleep(delay)
        delay = min(delay * 2, max_delay)


def fetch_wait(ms: int) -> None:
    """Make the stream runtime's consumers wait at most ``ms`` for data in a fetch.

    The runtime fixes it at 1.5 s, and a broker holds an empty fetch that long at each hop
    (raw, then classified), which alone puts a quiet stream's latency near 3 s. A shorter wait
    costs a few more fetch requests a second per connection while idle.
    """
    import aiokafka

    init = aiokafka.AIOKafkaConsumer.__init__
    if getattr(init, "fetch_wait_ms", None) == ms:
        return
    original = getattr(init, "original", init)

    def patched(self: Any, *topics: Any, **options: Any) -> None:
        options["fetch_max_wait_ms"] = ms
        original(self, *topics, **options)

    patched.fetch_wait_ms = ms  # type: ignore[attr-defined]
    patched.original = original  # type: ignore[attr-defined]
    aiokafka.AIOKafkaConsumer.__init__ = patched  # type: ignore[method-assign]
