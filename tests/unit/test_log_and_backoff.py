"""The log's rate limit and the Kafka clients' reconnect back-off, without a broker.

The rate limit is checked on a real stdlib handler writing to memory; the back-off on a
real aiokafka client whose only broker is a closed port on 127.0.0.1 (connection refused
at once, the case that flooded the log).
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataResponse_v0

from relmon.observability.logging import RateLimit
from relmon.streaming import kafka_backoff


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited(
    limit: int, window_s: float, clock: Clock | None = None
) -> tuple[logging.Logger, io.StringIO, RateLimit]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    rate_limit = RateLimit(handler, limit, window_s, clock=clock or Clock())
    handler.addFilter(rate_limit)
    logger = logging.getLogger(f"test.ratelimit.{id(stream)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    return logger, stream, rate_limit


def test_a_flood_of_one_message_is_cut_to_the_limit_and_summed_up() -> None:
    """10,000 lines of one template (arguments varying) give the first 5, then one summary
    line counting the 9,995 held back once the window ends; another template and a
    CRITICAL line are not held back by them."""
    clock = Clock()
    logger, stream, rate_limit = limited(5, window_s=60, clock=clock)
    for i in range(10_000):
        logger.error("Unable connect to node with id %s: %s", 1, f"refused {i}")
        clock.now += 0.004  # 40 s of flood
    logger.warning("Heartbeat failed for group %s", "g")
    logger.critical("stopping")
    rate_limit.flush()
    assert len(stream.getvalue().splitlines()) == 7  # the window has not ended yet
    clock.now += 21
    rate_limit.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 + 1 + 1 + 1, lines
    assert lines[:5] == [
        f"ERROR {logger.name} Unable connect to node with id 1: refused {i}" for i in range(5)
    ]
    assert lines[5].startswith("WARNING")
    assert "Heartbeat failed" in lines[5]
    assert lines[6].endswith("stopping")
    assert lines[7].startswith(
        f"ERROR {logger.name} suppressed 9995 similar log lines in the last 60 s"
    )
    assert lines[7].endswith("Unable connect to node with id %s: %s")
    assert rate_limit.held_total == 9995


def test_a_new_window_lets_lines_through_again_after_the_summary() -> None:
    """After a window ends, the next line of the template passes again, preceded by the
    summary of the window before."""
    clock = Clock()
    logger, stream, _ = limited(2, window_s=60, clock=clock)
    for _ in range(5):
        logger.warning("Got error produce response")
    clock.now += 61
    logger.warning("Got error produce response")
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2][:30] for line in lines] == [
        "Got error produce response",
        "Got error produce response",
        "suppressed 3 similar log lines",
        "Got error produce response",
    ]


def test_a_limit_of_zero_lets_everything_through() -> None:
    """RELMON_LOG_RATE_LIMIT=0 turns the limit off."""
    logger, stream, _ = limited(0, window_s=60)
    for _ in range(100):
        logger.info("same")
    assert len(stream.getvalue().splitlines()) == 100


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections are refused


async def test_a_refused_broker_is_retried_with_back_off_not_in_a_loop(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A caller asking for a refused node every 10 ms for 1.5 s makes a handful of
    connection attempts (back-off 100, 200, 400, 400 ms ±20 %), not 150: each attempt is
    one "Unable connect" error line."""
    kafka_backoff.install(base_ms=100, max_ms=400)
    client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{closed_port}")
    client.cluster.update_metadata(MetadataResponse_v0([(1, "127.0.0.1", closed_port)], []))
    caplog.set_level(logging.ERROR, logger="aiokafka")
    asks = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert await client.ready(1) is False
        asks += 1
        await asyncio.sleep(0.01)
    attempts = [r for r in caplog.records if r.getMessage().startswith("Unable connect")]
    assert asks > 50
    assert 3 <= len(attempts) <= 8, len(attempts)
    await client.close()


async def test_a_failed_metadata_refresh_waits_its_back_off(closed_port: int) -> None:
    """A metadata refresh that fails returns only after the back-off, doubling per failure,
    so a caller that asks again at once (aiokafka's sender) is paced by it."""
    kafka_backoff.install(base_ms=100, max_ms=400)
    client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{closed_port}")
    client.cluster.update_metadata(MetadataResponse_v0([(1, "127.0.0.1", closed_port)], []))
    took = []
    for _ in range(3):
        t0 = time.monotonic()
        assert await client._metadata_update(client.cluster, []) is False
        took.append(time.monotonic() - t0)
    assert 0.08 <= took[0] <= 0.3, took
    assert 0.16 <= took[1] <= 0.5, took
    assert 0.32 <= took[2] <= 0.8, took
    await client.close()
