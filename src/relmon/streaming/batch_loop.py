"""The batch loop: the agent's body, and the guards that keep Faust from acking or committing
what it did not finish.

The agent (declared in :mod:`relmon.streaming.app`) gathers events into a batch while more
are already waiting in its stream's queue (at most ``batch_max``), hands the batch to the
pipeline (:mod:`relmon.streaming.pipeline`: apply → emit → persist → ack), and acks its
events only when the pipeline calls back. Acks are manual (``enable_acks = False``): nothing
is acked when the pipeline did not finish, whatever stops the agent. Faust's ``take_events``
is not used: it acks its batch in a ``finally`` even when the body failed, and its event list
can disagree with its values (an event listed twice, another never), which lost messages.

:class:`ConsumerGuard` wraps two of Faust's consumer methods:

* ``ack``: Faust itself acks a message it skips (one fetched before a rebalance), and a
  commit could then pass it before its fresh copy is processed. The guarded ack takes only
  messages this loop finished.
* ``_new_offset``: Faust's commit takes the first run of consecutive acked offsets; when the
  partition has no committed offset yet (or 0), it commits that run even if offsets before
  it were never acked (a message skipped during recovery and not fetched again). The guard
  commits only a run that starts where the partition's reading started, and remembers since
  when a partition's head has had a hole (:meth:`ConsumerGuard.stuck`).

:class:`OffsetTrack` finds a jump in a partition's offsets within what the loop received.
Input topics are neither compacted nor transactional, so a skipped offset is a message the
consumer dropped (Faust drops a refetched message below its read offset): the worker stops
before acking past it, and the next start reads again from the last commit.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from relmon.observability.logging import get_logger
from relmon.streaming.pipeline import BatchPipeline

log = get_logger(__name__)
HOLE_WAIT_S = 30.0  # a partition whose commits wait behind a hole this long: restart
EXIT_HOLE = 75  # exit status when offsets were skipped: restart and read from the commit


class ConsumerGuard:
    """Acks and commits only what the batch loop finished (see the module docstring)."""

    def __init__(
        self, consumer: Any, input_topics: set[str], starts: dict[tuple[str, int], int]
    ) -> None:
        self.consumer = consumer
        self.input_topics = input_topics
        self.finished: set[int] = set()  # ids of messages being acked by the loop
        self.starts = starts  # input partition -> earliest offset when assigned (the app's)
        self.heads: dict[tuple[str, int], float] = {}  # partition -> since when a head hole
        self._plain_ack = consumer.ack
        self._plain_new_offset = consumer._new_offset
        consumer.ack = self._ack_if_finished
        consumer._new_offset = self._new_offset

    def rebalanced(self) -> None:
        self.heads.clear()

    def stuck(self, now: float | None = None) -> list[tuple[str, int]]:
        """Partitions whose commits have waited behind a hole at their head too long."""
        now = time.monotonic() if now is None else now
        return [key for key, since in self.heads.items() if now - since > HOLE_WAIT_S]

    async def ack(self, stream: Any, held: Any) -> None:
        """Ack one finished event through the stream (the guarded consumer ack lets it by)."""
        self.finished.add(id(held.message))
        try:
            await stream.ack(held)
        finally:
            self.finished.discard(id(held.message))  # a message acked twice is acked once

    def _ack_if_finished(self, message: Any) -> bool:
        if id(message) not in self.finished:
            return False
        self.finished.discard(id(message))
        return bool(self._plain_ack(message))

    def _new_offset(self, tp: Any) -> int | None:
        consumer = self.consumer
        if tp.topic in self.input_topics:
            key = (tp.topic, tp.partition)
            committed = consumer._committed_offset[tp]
            start = committed if committed is not None else self.starts.get(key)
            acked = consumer._acked[tp]
            if acked and start is None:
                return None  # where reading started is not known yet: commit later
            if acked and start is not None and min(acked) > start:
                self.heads.setdefault(key, time.monotonic())
                return None  # a hole at the head: never commit past it
            self.heads.pop(key, None)
        return cast("int | None", self._plain_new_offset(tp))


class OffsetTrack:
    """The last offset processed per input partition since the last rebalance."""

    def __init__(self, ticks_topic: str) -> None:
        self.ticks_topic = ticks_topic
        self.last: dict[tuple[str, int], int] = {}

    def reset(self) -> None:
        self.last.clear()

    def hole(self, messages: Sequence[Any]) -> str | None:
        """The first skipped offset in ``messages`` (in arrival order), if any; records the
        batch as seen otherwise. Redeliveries (offsets at or below the last) are fine."""
        last = self.last
        for m in messages:
            if m.topic == self.ticks_topic:
                continue
            key = (m.topic, m.partition)
            before = last.get(key)
            if before is not None and m.offset > before + 1:
                return f"{m.topic}[{m.partition}]: offsets {before + 1}..{m.offset - 1}"
            if before is None or m.offset > before:
                last[key] = m.offset
        return None


async def batch_loop(
    stream: Any,
    pipeline: BatchPipeline,
    guard: ConsumerGuard,
    offsets: OffsetTrack,
    *,
    batch_max: int,
    crash: Callable[[BaseException], None],
) -> AsyncIterator[None]:
    """The agent's body: batches from ``stream`` through ``pipeline``; yields once a batch."""
    stream.enable_acks = False
    waiting = stream.channel.queue.empty

    async def ack_batch(held_events: list[Any]) -> None:
        """Step 4 of one batch (the pipeline calls it once the batch is persisted)."""
        for held in held_events:
            await guard.ack(stream, held)

    batch: list[Any] = []
    async for event in stream.events():
        batch.append(event)
        if len(batch) < batch_max and not waiting():
            continue
        messages = [held.message for held in batch]
        hole = offsets.hole(messages)
        if hole is not None:
            log.critical("offset hole: a message was skipped by the consumer", hole=hole)
            logging.shutdown()
            os._exit(EXIT_HOLE)
        try:
            await pipeline.run(messages, datetime.now(UTC), functools.partial(ack_batch, batch))
        except Exception as exc:  # noqa: BLE001  # a bug: crash() stops the process
            crash(exc)
        batch = []
        yield None
