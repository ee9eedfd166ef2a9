"""Per-client rate limiting of the HTTP endpoint: one token bucket per client key.

Each client (the web layer decides what a client is: its token, or its peer address) has a
bucket of ``burst`` requests that refills at ``rate`` per second; a request takes one, and a
request that finds the bucket empty is refused with how long until one is back (the
``Retry-After``). Buckets are kept for the ``max_clients`` most recent clients only, so a flood
from many addresses cannot grow memory without bound; a forgotten client comes back with a full
bucket. The clock is injectable, so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets keyed by client; ``rate`` 0 turns limiting off."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate, self.burst, self.clock, self.max_clients = rate, burst, clock, max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, client: str) -> float:
        """Take one request for ``client``: 0.0 if allowed, else seconds until it would be."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[client] = bucket  # most recent last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate
