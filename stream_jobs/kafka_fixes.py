"""Kafka client behaviour the service needs, added to the stream runtime's clients.

Three things the stock clients do not do: wait (with backoff, reporting it) for a broker that
is away at start instead of exiting into a crash loop; re-read, after a rebalance, partitions
that have no committed offset yet (the runtime drops fetched-but-unprocessed events on a
rebalance and seeks back only to committed offsets above 0, so a young partition lost its
first messages); and keep a follower whose SyncGroup the local broker refuses from wedging.
The patches touch private methods of aiokafka 0.14 and faust-streaming 0.15; each marks the
class so it is applied once, and tests (scale-out, faults) fail if a client upgrade breaks them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


def replay_uncommitted(topics: set[str]) -> None:
    """After a rebalance, read partitions that have no committed offset from their beginning.

    A rebalance drops the events a worker had fetched but not yet processed, and the stream
    runtime seeks back only to committed offsets above 0; a partition without one kept its
    read position, past the dropped events, and they were lost (seen in the scale-out test:
    its first messages). Seeking such partitions to the start re-reads them; the exactly-once
    sink collapses what had been stored already.
    """
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "replays_uncommitted", False):
        return
    perform_seek = Consumer.perform_seek

    async def seek(self: Consumer) -> None:
        await perform_seek(self)
        for tp in self.assignment():
            if tp.topic in topics and not self._committed_offset.get(tp):
                await self.seek(tp, 0)

    setattr(Consumer, "perform_seek", seek)  # noqa: B010 (a method, replaced on purpose)
    setattr(Consumer, "replays_uncommitted", True)  # noqa: B010


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
