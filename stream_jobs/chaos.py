"""Chaos drill: kill the worker mid-stream, restart it, and count what was lost or doubled.

``run_chaos`` sends N real messages (the shipped datasets, re-identified under a run-specific
source so a drill never mixes with other data) while the worker is killed with SIGKILL K times
at random points and restarted; then it waits until the stream is drained and checks, through
the service's SQL endpoint, that every message is stored exactly once and that every aggregate
(minute, hour, day counts and the author timeline) equals what the stored rows say. On the
embedded defaults the broker runs in its own process, so killing the worker loses nothing in
flight; against a deployment, ``kill_command`` (for example a ``kubectl delete pod``) does the
killing and the orchestrator the restarting.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import Publisher
from schemas import Envelope, Topics

if TYPE_CHECKING:
    from stream_jobs.testing import LocalStack

Sql = Callable[[str], list[dict[str, Any]]]
GRAINS = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay"}


@dataclass
class ChaosReport:
    """The drill's outcome; ``ok`` only when nothing was lost, doubled or miscounted."""

    run: str
    sent: int
    stored_rows: int
    distinct_ids: int
    duplicates: int
    lost: int
    unexpected: int
    aggregate_mismatches: dict[str, int]
    kills: int
    kills_mid_stream: int
    seconds: float
    restart_seconds: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.duplicates
            or self.lost
            or self.unexpected
            or any(self.aggregate_mismatches.values())
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def drill_envelopes(run: str, n: int) -> Iterator[Envelope]:
    """N envelopes from the shipped datasets, with ids and source unique to this run."""
    from stream_jobs.service import demo_records

    source = f"chaos-{run}"
    real = [r for r in demo_records() if isinstance(r, Envelope)]
    for i, env in zip(range(n), itertools.cycle(real), strict=False):
        yield env.model_copy(update={"id": f"{source}:{i}", "source": source})


def http_sql(url: str) -> Sql:
    """A function running SQL on the service's endpoint, rows as dicts."""

    def run(query: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": query, "default_format": "JSONEachRow"})
        with urllib.request.urlopen(f"{url}/?{params}", timeout=120) as response:
            return [json.loads(line) for line in response.read().splitlines() if line.strip()]

    return run


def send(broker: str, topics: Topics, envelopes: list[Envelope], rate: float) -> None:
    with Publisher(broker, topics) as publisher:
        start = time.monotonic()
        for i, env in enumerate(envelopes):
            publisher.publish(env)
            ahead = i / rate - (time.monotonic() - start)
            if ahead > 0.005:
                time.sleep(ahead)
        publisher.flush()


def verify(sql: Sql, database: str, source: str, sent_ids: set[str]) -> dict[str, Any]:
    """Rows, distinct ids, losses and per-aggregate mismatches of one drill's source."""
    where = f"source = '{source}'"
    [totals] = sql(
        f"SELECT count() AS rows, uniqExact(id) AS ids FROM {database}.messages WHERE {where}"
    )
    stored = {r["id"] for r in sql(f"SELECT DISTINCT id FROM {database}.messages WHERE {where}")}
    mismatches: dict[str, int] = {}
    keys = "brand, label, source, kind, bucket"
    for grain, fn in GRAINS.items():
        [row] = sql(
            f"SELECT count() AS n FROM (SELECT {keys}, count() AS c FROM ("
            f"SELECT brand, label, source, kind, {fn}(toDateTime(created_at, 'UTC')) AS bucket "
            f"FROM {database}.messages WHERE {where}) GROUP BY {keys}) AS m "
            f"FULL OUTER JOIN (SELECT {keys}, sum(messages) AS s FROM {database}.counts_{grain} "
            f"WHERE {where} GROUP BY {keys}) AS a USING ({keys}) WHERE c != s"
        )
        mismatches[f"counts_{grain}"] = int(row["n"])
    [authors] = sql(
        f"SELECT (SELECT count() FROM {database}.author_labels WHERE {where}) AS timeline, "
        f"(SELECT count() FROM {database}.messages WHERE {where} AND author != '' "
        "AND role = 'customer') AS expected"
    )
    mismatches["author_labels"] = abs(int(authors["timeline"]) - int(authors["expected"]))
    return {
        "stored_rows": int(totals["rows"]),
        "distinct_ids": int(totals["ids"]),
        "duplicates": int(totals["rows"]) - int(totals["ids"]),
        "lost": len(sent_ids - stored),
        "unexpected": len(stored - sent_ids),
        "aggregate_mismatches": mismatches,
    }


def wait_drained(sql: Sql, database: str, source: str, expect: int, timeout: float) -> None:
    """Until the run's distinct ids reach ``expect``, or the count stops moving for long."""
    deadline, last, still_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            [row] = sql(
                f"SELECT uniqExact(id) AS n FROM {database}.messages WHERE source = '{source}'"
            )
        except OSError:
            time.sleep(1)  # the service is restarting
            continue
        n = int(row["n"])
        if n >= expect:
            return
        if n != last:
            last, still_since = n, time.monotonic()
        elif time.monotonic() - still_since > 60:
            return  # nothing moves: report what is there rather than wait forever
        time.sleep(0.5)


@dataclass
class Target:
    """Where the drill runs: how to reach SQL and the broker, how to kill and restart."""

    broker: str
    sql: Sql
    kill: Callable[[], None]
    restart: Callable[[], None]
    database: str = "relradar"
    topics: Topics = field(default_factory=Topics)


def drill(
    target: Target,
    messages: int,
    kills: int,
    rate: float = 1000.0,
    seed: int | None = None,
    timeout: float = 600.0,
) -> ChaosReport:
    """Send, kill and restart ``kills`` times at random points, drain, verify."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8] if seed is None else f"s{seed}-{uuid.uuid4().hex[:4]}"
    envelopes = list(drill_envelopes(run, messages))
    source = f"chaos-{run}"
    started = time.monotonic()
    sender = threading.Thread(
        target=send, args=(target.broker, target.topics, envelopes, rate), daemon=True
    )
    sender.start()
    restarts: list[float] = []
    mid_stream = 0
    for _ in range(kills):
        time.sleep(rng.uniform(1.0, 6.0))  # let the worker get going, then cut it off anywhere
        stored = _stored(target, source)
        mid_stream += int(stored is not None and stored < messages)
        target.kill()
        t0 = time.monotonic()
        target.restart()
        restarts.append(round(time.monotonic() - t0, 1))
    sender.join()
    wait_drained(target.sql, target.database, source, messages, timeout)
    result = verify(target.sql, target.database, source, {e.id for e in envelopes})
    return ChaosReport(
        run=run,
        sent=messages,
        kills=kills,
        kills_mid_stream=mid_stream,
        seconds=round(time.monotonic() - started, 1),
        restart_seconds=restarts,
        **result,
    )


def _stored(target: Target, source: str) -> int | None:
    try:
        [row] = target.sql(
            f"SELECT count() AS n FROM {target.database}.messages WHERE source = '{source}'"
        )
        return int(row["n"])
    except OSError:
        return None


def local_drill(
    root: Path, messages: int, kills: int, rate: float, seed: int | None, classifier: str
) -> ChaosReport:
    """The drill on the embedded defaults: broker and service as real local processes."""

    with LocalStack(root, classifier=classifier) as stack:
        return drill(local_target(stack), messages, kills, rate, seed)


def local_target(stack: LocalStack) -> Target:
    """A running local stack as a drill target: SIGKILL the service, start it again."""
    assert stack.broker is not None
    return Target(
        broker=stack.broker.address,
        sql=http_sql(stack.url),
        kill=lambda: stack.stop_service(kill=True),
        restart=stack.start_service,
    )


def remote_target(broker: str, http: str, kill_command: str | None, database: str) -> Target:
    """A deployment's drill target: the operator's command kills, the orchestrator restarts."""

    def kill() -> None:
        if kill_command:
            subprocess.run(kill_command, shell=True, check=True)  # the operator's own command

    return Target(broker=broker, sql=http_sql(http), kill=kill, restart=lambda: None,
                  database=database)  # fmt: skip
