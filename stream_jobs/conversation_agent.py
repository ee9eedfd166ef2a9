"""The stream job's conversation state: a faust table keyed by conversation id.

The ``conversations`` agent reads the classified topic beside the sink. Each support turn
updates its conversation's state in a table whose changelog is partitioned like the
classified topic (both use the producer's key partitioner on the conversation id), so a
conversation's state lives with its partition: when partitions move between workers, the new
owner restores the state from the changelog before it reads on. The changed conversations'
summaries (relationship, treatment, mismatch) are written to ClickHouse in gathered batches,
like the sink's inserts (``Gather``), and only then are the events acknowledged; a crash in
between replays turns that the state takes as no-ops (turns are kept by index), and the
summary is written again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import faust

from schemas import ClassifiedMessage, DeadLetter, Settings, Topics
from stream_jobs.conversations import ConversationState, ConversationSummary, summarize
from stream_jobs.gather import Gather, GatherPolicy, Upstream
from stream_jobs.sink import SinkBackpressure

log = logging.getLogger(__name__)


class ConversationWriter(Protocol):
    def write_conversations(self, summaries: Sequence[ConversationSummary]) -> None: ...


def add_conversation_agent(
    app: faust.App,
    settings: Settings,
    classified: faust.TopicT,
    writer: ConversationWriter,
    parse: Callable[[Sequence[Any]], tuple[list[ClassifiedMessage], list[DeadLetter]]],
    counters: Any,
    policy: GatherPolicy,
    upstream: Upstream | None = None,
    on_written: Callable[[int], None] = lambda n: None,
) -> faust.types.TableT:
    """Register the table and the agent on ``app``; returns the table."""
    table = app.Table(
        "conversations",
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"),
        changelog_topic=app.topic(
            Topics(settings.topic_prefix).conversations_changelog,
            key_type=bytes,
            key_serializer="raw",
            value_serializer="json",
            partitions=settings.partitions,
        ),
    )

    async def write(summaries: list[ConversationSummary]) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            try:
                await loop.run_in_executor(None, writer.write_conversations, summaries)
                return
            except (SinkBackpressure, OSError, RuntimeError) as error:
                counters.last_error = f"conversations: {error}"
                log.warning("writing conversations failed (%s); retry in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    # Summaries wait for the gathered write; a conversation changed again meanwhile is
    # written once, in its latest state (summaries are kept by turn count, newest wins).
    pending: dict[bytes, ConversationState] = {}

    async def write_pending(events: list[Any]) -> None:
        if not pending:
            return  # these events' conversations went out with an earlier write
        states = list(pending.values())
        pending.clear()
        await write([summarize(state) for state in states])
        counters.conversations_updated += len(states)
        on_written(len(states))

    @app.agent(classified, name="conversations")
    async def conversations(stream: Any) -> None:
        gather = Gather(policy, write_pending, upstream)
        try:
            async for events in stream.take_events(policy.max_rows, policy.take_within_s):
                # Bad records are the sink agent's to dead-letter; here they are only skipped.
                messages, _ = parse(events)
                # A conversation's state goes to the changelog partition its turns came from,
                # so whoever owns that partition of the classified topic owns the state too.
                partition_of = {e.key: e.message.partition for e in events}
                changed: dict[bytes, ConversationState] = {}
                for m in messages:
                    if m.conversation_id is None:
                        continue
                    key = m.conversation_id.encode()
                    state = changed.get(key)
                    if state is None:
                        stored = table.data.get(key)
                        state = (
                            ConversationState.from_dict(stored)
                            if stored
                            else ConversationState(m.conversation_id)
                        )
                    state.add(m)
                    changed[key] = state
                for key, state in changed.items():
                    value = state.to_dict()
                    table.data[key] = value
                    table.send_changelog(partition_of[key], key, value)
                pending.update(changed)
                await gather.add(events)
        finally:
            gather.cancel()

    return table
