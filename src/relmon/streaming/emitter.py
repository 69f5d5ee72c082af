"""The emitter: steps 2 and 3 of the batch protocol against Kafka and the local table.

:meth:`Emitter.send` puts a batch's outputs on their topics and returns once Kafka has
acknowledged every one; :meth:`Emitter.persist` puts each changed state on the table's
changelog, waits for the acknowledgements, then writes the local RocksDB store and records
the changelog offsets Faust's recovery resumes from. Both raise when Kafka refuses; the
pipeline (:mod:`relmon.streaming.pipeline`) retries them and never skips.

Both go straight to the producer: Faust's ``send_soon`` buffer drains one message at a time,
which a batch waiting for its acknowledgements would wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from faust.types import TP

from relmon.domain import SupporterState
from relmon.observability.logging import get_logger
from relmon.streaming.processor import Emit, partition_for

log = get_logger(__name__)
YIELD_EVERY = 100  # sends between two yields to the event loop (a batch sends up to ~1,000)


class TableStore:
    """The Faust table seen as a :class:`~relmon.streaming.processor.StateStore`.

    Reads and writes name the supporter's partition explicitly. Faust's RocksDB store would
    otherwise take the partition of the stream's *current event*, which inside a batch is
    whichever message the stream yielded last: a read would look in the wrong partition's
    database and find nothing.
    """

    def __init__(self, table: Any, partitions: int) -> None:
        self.table = table
        self.partitions = partitions

    def _db(self, key: str) -> Any:
        return self.table.data._db_for_partition(partition_for(key, self.partitions))

    def get(self, key: str) -> bytes | None:
        value = self._db(key).get(key.encode())
        return bytes(value) if value is not None else None

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        """Write to the local store only (the changelog is the caller's, before this)."""
        self.table.data._db_for_partition(partition).put(key, value)
        self.table.data._key_index[key] = partition

    def items(self) -> Iterator[tuple[str, bytes]]:
        for key, value in self.table.items():
            if value is not None:
                yield bytes(key).decode(), bytes(value)

    def set_persisted_offset(self, changelog: str, partition: int, offset: int) -> None:
        """What Faust's own changelog callback records: recovery resumes after it."""
        self.table.data.set_persisted_offset(TP(changelog, partition), offset)


class Emitter:
    """Sends outputs and persists states through the app's producer."""

    def __init__(
        self,
        producer: Callable[[], Any],
        *,
        topic_of: Mapping[str, str],
        changelog: str,
        store: TableStore,
        partitions: int,
        owned: Callable[[], set[int]],
    ) -> None:
        self.producer = producer  # the app's producer, looked up at each use (set at start)
        self.topic_of = topic_of  # output name -> topic
        self.changelog = changelog
        self.store = store
        self.partitions = partitions
        self.owned = owned  # the partitions this worker holds now

    async def send(self, emits: Sequence[Emit]) -> None:
        """Step 2: every output on Kafka, acknowledged (raises if any send fails)."""
        producer = self.producer()
        topic_of = self.topic_of
        pending = []
        for i, e in enumerate(emits, 1):
            topic = e.topic or topic_of[e.output]
            pending.append(await producer.send(topic, e.key, e.value, e.partition, None, None))
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a send rarely suspends: let requests in between
        if pending:
            await asyncio.gather(*pending)

    async def persist(self, states: Mapping[str, SupporterState]) -> None:
        """Step 3: each state to the changelog (acknowledged), then to the local store."""
        if not states:
            return
        owned = self.owned()
        writes = []
        for sid, state in states.items():
            partition = partition_for(sid, self.partitions)
            if partition not in owned:
                # revoked while this batch was in hand: its new owner consumes the batch's
                # messages again (they were never acknowledged) and persists them itself
                log.info("state not persisted: partition revoked", partition=partition)
                continue
            writes.append((partition, sid.encode(), state.to_bytes()))
        producer = self.producer()
        sent = []
        for i, (part, key, value) in enumerate(writes, 1):
            sent.append(await producer.send(self.changelog, key, value, part, None, None))
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        persisted: dict[int, int] = {}
        for meta in await asyncio.gather(*sent):
            persisted[meta.partition] = max(meta.offset, persisted.get(meta.partition, -1))
        for part, key, value in writes:
            self.store.put(key, value, part)
        for part, offset in persisted.items():
            self.store.set_persisted_offset(self.changelog, part, offset)
