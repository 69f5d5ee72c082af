"""Producing simulated events to the contract's input topics, at a steady rate.

Each event goes to its type's topic (``relmon.calls`` …, with the topic prefix) keyed by its
``supporter_id``, as the contract requires. ``rate`` is events per second (0 = as fast as
the broker takes them); the pacing is by schedule (event *n* is due at ``n / rate`` seconds),
so a slow moment is caught up rather than lost. Cancelling the task (Ctrl-C) still flushes
what was handed to the producer before it stops.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from relmon.errors import BrokerError
from relmon.settings import Settings
from relmon.streaming.admin import CONNECT_ERRORS, unreachable
from relmon.topics import TOPIC_OF_TYPE

_BATCH = 2000  # futures awaited together, so a broker error surfaces within a batch


async def produce(
    events: Iterable[dict[str, Any]],
    settings: Settings,
    *,
    prefix: str,
    rate: float = 0.0,
    counts: Counter[str] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    start_timeout_s: float = 15.0,
) -> Counter[str]:
    """Send every event; return (and keep updating ``counts``) messages per full topic name."""

    def messages() -> Iterator[tuple[str, bytes, bytes]]:
        for event in events:
            topic = prefix + TOPIC_OF_TYPE[event["type"]]
            yield topic, event["supporter_id"].encode("utf-8"), orjson.dumps(event)
            if on_event is not None:
                on_event(event)  # runs once the message was handed to the producer

    return await produce_messages(
        messages(), settings, rate=rate, counts=counts, start_timeout_s=start_timeout_s
    )


async def produce_messages(
    messages: Iterable[tuple[str, bytes, bytes]],
    settings: Settings,
    *,
    rate: float = 0.0,
    counts: Counter[str] | None = None,
    start_timeout_s: float = 15.0,
) -> Counter[str]:
    """Send ``(full topic name, key, value)`` messages in the order given (Kafka keeps that
    order within a partition); return (and keep updating ``counts``) messages per topic.

    The producer connects before the first message is taken from ``messages``.
    """
    counts = Counter() if counts is None else counts
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), acks="all", linger_ms=10, max_batch_size=262_144
    )
    try:
        await asyncio.wait_for(producer.start(), start_timeout_s)
    except CONNECT_ERRORS as exc:
        await producer.stop()
        raise unreachable(settings, exc) from exc
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[Any]] = []
    try:
        began = loop.time()
        for n, (topic, key, value) in enumerate(messages):
            if rate > 0:
                delay = began + n / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(topic, value, key=key))
            counts[topic] += 1
            if len(pending) >= _BATCH:
                await _settle(pending, settings)
        await _settle(pending, settings)
    finally:
        await producer.stop()  # flushes what was already handed over
    return counts


async def _settle(pending: list[asyncio.Future[Any]], settings: Settings) -> None:
    try:
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise BrokerError(
            f"Kafka at {settings.kafka_bootstrap} refused a message ({type(exc).__name__}: "
            f"{exc}); do the input topics exist? Run `relmon topics create`."
        ) from exc
    pending.clear()
