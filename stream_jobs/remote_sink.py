"""Writing to the store through the service that holds it: ``RemoteSink`` and ``POST /sink``.

The embedded ClickHouse can be opened by one process only, so extra workers on the embedded
defaults send their sink batches to the store-owning service instead. ``RemoteSink`` has the
local sink's contract (``write(batch) -> WriteResult``, ``repair() -> int``, the ``Sink``
protocol both satisfy): it POSTs the batch as JSON lines of classified messages to the owner's
``/sink`` route, which runs its own exactly-once ``ClickHouseSink.write`` and answers
``{written, replays, conflicts: [{id, reason, index}]}``; a 503 (the owner's store is failing)
comes back as ``SinkBackpressure`` with the owner's ``Retry-After``, as does an unreachable
owner, so the worker holds its batch and retries exactly as with a local store; a refused
token is retried too (nothing is dead-lettered for a configuration error). Conversation
summaries go the same way (``POST /sink/conversations``), and ``repair`` to
``POST /sink/repair``. The owner serialises every write (its own sink's and each worker's)
with ``SerialSink``: the sink looks stored ids up before inserting, and two writes
interleaving there could both insert one id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from schemas import ClassifiedMessage, Label
from schemas.envelope import describe_error
from stream_jobs.conversations import ConversationSummary
from stream_jobs.sink import SinkBackpressure, SinkError, WriteResult
from stream_jobs.store import StoreError

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Statuses whose batch will never be accepted as it is: retrying would only stall the stream.
BAD_BATCH = {400, 413, 422}


class Sink(Protocol):
    """What the sink agent writes through: a local ``ClickHouseSink`` or a ``RemoteSink``."""

    def write(self, batch: Sequence[ClassifiedMessage]) -> WriteResult: ...

    def repair(self) -> int: ...

    def write_conversations(self, summaries: Sequence[ConversationSummary]) -> None: ...


class SerialSink:
    """A sink whose writes and repairs run one at a time, whichever thread or worker asks."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._lock = threading.Lock()

    def write(self, batch: Sequence[ClassifiedMessage]) -> WriteResult:
        with self._lock:
            return self.sink.write(batch)

    def repair(self) -> int:
        with self._lock:
            return self.sink.repair()

    def write_conversations(self, summaries: Sequence[ConversationSummary]) -> None:
        with self._lock:
            self.sink.write_conversations(summaries)


class RemoteError(Exception):
    """The store service answered with an error status, or could not be reached (no status)."""

    def __init__(self, message: str, status: int | None, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RemoteSink:
    """Writes batches through the store-owning service's ``POST /sink``."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 120.0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        base_retry: float = 0.5,
        max_retry: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_request_bytes = max_request_bytes
        self.base_retry = base_retry
        self.max_retry = max_retry
        self.failures = 0

    def write(self, batch: Sequence[ClassifiedMessage]) -> WriteResult:
        """Store the batch's new messages; raises ``SinkBackpressure`` while the owner can't.

        A batch larger than one request is sent in parts; when a later part fails, the whole
        batch is retried and the parts already stored come back as replays, never as rows.
        """
        result = WriteResult()
        for start, count, body in self._parts(batch):
            try:
                answer = self._post("/sink", body, "application/x-ndjson")
            except RemoteError as error:
                if error.status in BAD_BATCH:
                    raise SinkError(f"store service refused the batch: {error}") from error
                self.failures += 1
                backoff = min(self.max_retry, self.base_retry * 2 ** min(self.failures - 1, 10))
                retry_after = error.retry_after if error.retry_after is not None else backoff
                log.warning("remote sink write failed (%s); retry in %.1fs", error, retry_after)
                raise SinkBackpressure(str(error), retry_after) from error
            part = batch[start : start + count]
            result.written += int(answer["written"])
            result.replays += int(answer["replays"])
            result.conflicts.extend(_conflicts(part, answer["conflicts"]))
        self.failures = 0
        return result

    def repair(self) -> int:
        """Have the owner re-send its latest noted batches; ``StoreError`` when it can't."""
        try:
            return int(self._post("/sink/repair", b"", "application/json")["repaired"])
        except RemoteError as error:
            raise StoreError(f"store service repair failed: {error}") from error

    def write_conversations(self, summaries: Sequence[ConversationSummary]) -> None:
        """Store conversation summaries through the owner; ``SinkBackpressure`` when it can't."""
        body = json.dumps([s.as_json() for s in summaries]).encode()
        try:
            self._post("/sink/conversations", body, "application/json")
        except RemoteError as error:
            raise SinkBackpressure(str(error), error.retry_after or self.base_retry) from error

    def _parts(self, batch: Sequence[ClassifiedMessage]) -> Iterator[tuple[int, int, bytes]]:
        """(first index, messages, NDJSON body) per request, each under the size cap."""
        lines: list[bytes] = []
        size, start = 0, 0
        for i, message in enumerate(batch):
            line = message.model_dump_json().encode() + b"\n"
            if lines and size + len(line) > self.max_request_bytes:
                yield start, len(lines), b"".join(lines)
                lines, size, start = [], 0, i
            lines.append(line)
            size += len(line)
        if lines:
            yield start, len(lines), b"".join(lines)

    def _post(self, path: str, body: bytes, content_type: str) -> dict[str, Any]:
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as error:
            reason, retry_after = _error_of(error)
            message = f"{error.code} from {self.url}{path}: {reason}"
            raise RemoteError(message, error.code, retry_after) from error
        except (OSError, ValueError) as error:
            message = f"store service {self.url} unreachable: {error}"
            raise RemoteError(message, None, None) from error


def _error_of(error: urllib.error.HTTPError) -> tuple[str, float | None]:
    """An error answer's reason and how long it asked to wait (JSON body, else the header)."""
    text = error.read().decode("utf-8", errors="replace")[:500]
    try:
        body = json.loads(text)
        reason, retry_after = str(body.get("error", text)), body.get("retry_after_s")
    except (ValueError, AttributeError):
        reason, retry_after = text.strip(), None
    if retry_after is None and (error.headers.get("Retry-After") or "").isdigit():
        retry_after = error.headers["Retry-After"]
    return reason, None if retry_after is None else float(retry_after)


def _conflicts(
    part: Sequence[ClassifiedMessage], answered: list[dict[str, Any]]
) -> list[tuple[ClassifiedMessage, str]]:
    """The owner's conflicts as (message, reason), the message taken back from the batch."""
    found = []
    for conflict in answered:
        index = conflict.get("index")
        if isinstance(index, int) and 0 <= index < len(part) and part[index].id == conflict["id"]:
            message = part[index]
        else:
            message = next(m for m in part if m.id == conflict["id"])
        found.append((message, str(conflict["reason"])))
    return found


def parse_batch(body: bytes) -> list[ClassifiedMessage]:
    """A ``/sink`` body's messages; ``ValueError`` naming the first bad line."""
    batch = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            batch.append(ClassifiedMessage.model_validate_json(line))
        except ValidationError as error:
            raise ValueError(f"line {number}: {describe_error(error)}") from None
    return batch


def add_sink_routes(app: web.Application, sink: Sink) -> None:
    """``POST /sink`` and ``POST /sink/repair`` on the store owner's HTTP endpoint."""

    async def write(request: web.Request) -> web.Response:
        try:
            batch = parse_batch(await request.read())
        except ValueError as error:
            return web.json_response({"error": str(error)}, status=400)
        try:
            result = await _blocking(sink.write, batch)
        except SinkBackpressure as pressure:
            return _unavailable(str(pressure), pressure.retry_after)
        except SinkError as error:
            return web.json_response({"error": str(error)}, status=422)
        position = {id(m): i for i, m in enumerate(batch)}
        conflicts = [
            {"id": m.id, "reason": reason, "index": position.get(id(m))}
            for m, reason in result.conflicts
        ]
        return web.json_response(
            {
                "messages": len(batch),
                "written": result.written,
                "replays": result.replays,
                "conflicts": conflicts,
            }
        )

    async def conversations(request: web.Request) -> web.Response:
        try:
            summaries = [summary_of(item) for item in json.loads(await request.read())]
        except (ValueError, TypeError, KeyError) as error:
            return web.json_response({"error": f"bad conversation summary: {error}"}, status=400)
        try:
            await _blocking(sink.write_conversations, summaries)
        except SinkBackpressure as pressure:
            return _unavailable(str(pressure), pressure.retry_after)
        return web.json_response({"written": len(summaries)})

    async def repair(_: web.Request) -> web.Response:
        try:
            repaired = await _blocking(sink.repair)
        except StoreError as error:
            return _unavailable(f"repair: {error}", 1.0)
        return web.json_response({"repaired": repaired})

    app.router.add_post("/sink", write)
    app.router.add_post("/sink/repair", repair)
    app.router.add_post("/sink/conversations", conversations)


def summary_of(item: dict[str, Any]) -> ConversationSummary:
    """A conversation summary back from its ``as_json`` form."""
    treatment = item["treatment"]
    return ConversationSummary(
        conversation_id=str(item["conversation_id"]),
        brand=str(item["brand"]),
        customer=str(item["customer"]),
        customer_relationship=Label(item["customer_relationship"]),
        treatment=Label(treatment) if treatment else None,
        mismatch=bool(item["mismatch"]),
        mismatch_kind=item["mismatch_kind"],
        customer_labels=[Label(x) for x in item["customer_labels"]],
        treatments=[Label(x) for x in item["treatments"]],
        turns=int(item["turns"]),
        started_at=datetime.fromisoformat(item["started_at"]),
        updated_at=datetime.fromisoformat(item["updated_at"]),
    )


async def _blocking(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _unavailable(reason: str, retry_after: float) -> web.Response:
    seconds = max(1, math.ceil(retry_after))
    return web.json_response(
        {"error": f"store unavailable: {reason}", "retry_after_s": retry_after},
        status=503,
        headers={"Retry-After": str(seconds)},
    )
