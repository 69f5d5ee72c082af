"""A keyed JSON message through the real broker with aiokafka."""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from relmon.settings import Settings
from relmon.streaming.admin import create_topics
from relmon.topics import CALLS, contract_topics


async def test_keyed_json_message_round_trips_through_the_broker(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A JSON event produced with a supporter key is consumed back with the same key and body."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    await create_topics(settings, contract_topics(2), replication_factor=1, prefix=topic_prefix)
    topic = f"{topic_prefix}{CALLS}"
    body = {"type": "call_outcome", "event_id": "e-1", "supporter_id": "S-42"}

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(body).encode(), key=b"S-42")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"{topic_prefix}reader",
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert message.key == b"S-42"
    assert json.loads(message.value) == body
