"""Back-off for aiokafka's reconnects and metadata refreshes while a broker is down.

aiokafka 0.14 retries a broker that refuses connections without waiting: the producer's
sender asks for a metadata refresh whenever a partition's leader is unknown, the refresh
fails at once (connection refused), the sender asks again, and each round logs "Unable
connect to node" and "Unable to update metadata" (measured: about 9,000 lines a second
under load; an open upstream pull request, aio-libs/aiokafka#1014, adds a delay). Neither
faust nor aiokafka has a setting for it (``retry_backoff_ms`` paces other loops, and faust
does not pass it on).

:func:`install` wraps two methods of :class:`aiokafka.client.AIOKafkaClient`, for every
client of the process (the worker's consumer, producer and admin clients):

* a connection to a node that just failed is not tried again before its back-off ends
  (``RELMON_KAFKA_RECONNECT_BACKOFF_MS``, doubled per failure up to
  ``RELMON_KAFKA_RECONNECT_BACKOFF_MAX_MS``, ±20 % jitter: Kafka's own
  ``reconnect.backoff.ms`` / ``reconnect.backoff.max.ms``); the caller sees the node as not
  ready, as after a failed attempt;
* a failed metadata refresh waits the same back-off before it reports the failure, so
  whoever asked again at once waits for it.

Both reset on the first success, so a broker that comes back is used at once. aiokafka is
pinned (pyproject.toml); tests/unit/test_kafka_backoff.py fails if the wrapped methods
change.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.client import AIOKafkaClient, ConnectionGroup

JITTER = 0.2


@dataclass
class Backoff:
    """The back-off bounds, shared by every client of the process."""

    base_s: float = 0.1
    max_s: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (at least 1)."""
        raw: float = min(self.max_s, self.base_s * 2.0 ** max(0, failures - 1))
        return raw * random.uniform(1 - JITTER, 1 + JITTER)


@dataclass
class _Failures:
    """One client's consecutive failures, per connection and for metadata."""

    nodes: dict[Any, tuple[int, float]] = field(default_factory=dict)  # id -> (n, retry at)
    metadata: int = 0


BACKOFF = Backoff()
_FAILURES = "_relmon_failures"


def install(base_ms: int = 100, max_ms: int = 2000) -> Backoff:
    """Wrap AIOKafkaClient once (idempotent); set the bounds (a later call changes them)."""
    BACKOFF.base_s = base_ms / 1000
    BACKOFF.max_s = max(base_ms, max_ms) / 1000
    if not getattr(AIOKafkaClient, "_relmon_backoff", False):
        AIOKafkaClient._get_conn = _paced_get_conn(AIOKafkaClient._get_conn)
        AIOKafkaClient._metadata_update = _paced_metadata_update(AIOKafkaClient._metadata_update)
        AIOKafkaClient._relmon_backoff = True
    return BACKOFF


def _failures(client: Any) -> _Failures:
    failures = client.__dict__.get(_FAILURES)
    if failures is None:
        failures = client.__dict__[_FAILURES] = _Failures()
    return failures  # type: ignore[no-any-return]


def _paced_get_conn(
    original: Callable[..., Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(original)
    async def get_conn(self: Any, node_id: Any, *args: Any, **kwargs: Any) -> Any:
        failures = _failures(self)
        key = (node_id, kwargs.get("group", ConnectionGroup.DEFAULT))
        loop = asyncio.get_running_loop()
        earlier = failures.nodes.get(key)
        if earlier is not None and loop.time() < earlier[1]:
            return None  # failed a moment ago: not yet (the node reads as not ready)
        conn = await original(self, node_id, *args, **kwargs)
        if conn is None:
            n = (earlier[0] if earlier else 0) + 1
            failures.nodes[key] = (n, loop.time() + BACKOFF.delay(n))
        else:
            failures.nodes.pop(key, None)
        return conn

    return get_conn


def _paced_metadata_update(
    original: Callable[..., Awaitable[bool]],
) -> Callable[..., Awaitable[bool]]:
    @functools.wraps(original)
    async def metadata_update(self: Any, *args: Any, **kwargs: Any) -> bool:
        ok = await original(self, *args, **kwargs)
        failures = _failures(self)
        if ok:
            failures.metadata = 0
            return ok
        failures.metadata += 1
        await asyncio.sleep(BACKOFF.delay(failures.metadata))
        return ok

    return metadata_update
