"""Objections first: an opt-out, objection or do-not-call never waits behind bulk e-mails.

Consent changes and call outcomes are few and urgent; e-mail engagement is many and rarely
decisive. Where an opt-out used to wait behind an e-mail burst (measured with
``benchmarks/bench_skew.py burst``): not in the agent's stream buffer (nearly empty: the
worker is bound by delivery, and a smaller buffer or a second agent for e-mails did not
help) but in the consumer, in two places this module changes:

* aiokafka hands out fetched records per partition in the order they arrived, so a consent
  came after up to ``consumer_max_fetch_size`` of e-mails per e-mail partition
  (:func:`read_urgent_first`), and
* Faust creates its consumer with ``fetch_max_wait_ms=1500``, so behind a burst a fetch that
  held only idle partitions kept every partition of that broker waiting 1.5 s
  (:func:`shorten_fetch_wait`).

Both work inside Faust's consumer: one agent, the batch protocol, acks and commits are
unchanged, and nothing is skipped or reordered within a partition.
"""

from __future__ import annotations

from typing import Any

from faust.types import TP

from relmon.observability.logging import get_logger

log = get_logger(__name__)


def read_urgent_first(consumer: Any, bulk_topics: set[str]) -> None:
    """Objections first: each poll hands out what was fetched for the urgent topics (every
    input topic but the bulk ones, and the ticks) before any e-mail.

    aiokafka keeps what it fetched per partition and hands it out in the order it arrived;
    a partition is fetched again only once its records are all handed out. Behind an e-mail
    burst, a consent fetched now came after up to `consumer_max_fetch_size` of e-mails per
    e-mail partition, and waited until the worker had applied all of them (1-3 s behind a
    burst, whatever the stream buffer's size: the agent's queue was nearly empty, the
    worker is bound by delivery, not by the queue). Here each poll first asks aiokafka,
    without waiting, for the urgent partitions' records only; only when there are none does
    it ask for all active partitions, as Faust does. Nothing is skipped or reordered within
    a partition: the bulk records stay in aiokafka's buffer for the next poll (the position
    of a partition moves only with the records handed out), so offsets, acks and commits
    are as before. A flood on the urgent topics delays e-mails, which is the point.
    """
    plain = consumer._getmany  # Faust: Consumer._getmany(active_partitions, timeout)

    async def getmany(active_partitions: set[TP] | None, timeout: float) -> Any:  # noqa: ASYNC109
        if active_partitions:
            urgent = {tp for tp in active_partitions if tp.topic not in bulk_topics}
            if urgent and len(urgent) < len(active_partitions):
                records = await plain(active_partitions=urgent, timeout=0)
                if records:
                    return records
        return await plain(active_partitions=active_partitions, timeout=timeout)

    consumer._getmany = getmany


def shorten_fetch_wait(consumer: Any, max_wait_ms: int) -> None:
    """Let the broker hold a fetch request at most ``max_wait_ms`` when it has no data.

    aiokafka sends one fetch request at a time per broker, for the partitions whose fetched
    records are all handed out; Faust creates its consumer with ``fetch_max_wait_ms=1500``
    (not a setting). Behind a burst, when every e-mail and consent partition still has
    records in hand, the request holds only idle partitions (calls, donations, ticks), the
    broker holds it 1.5 s, and no partition of that broker is fetched meanwhile: opt-outs
    waited 1.2-1.9 s in clusters (bench_skew.py burst, BENCHMARKS.md). The value is read
    for each request, so setting it on the running fetcher takes effect at the next one.
    """
    thread = getattr(consumer, "_thread", None)  # Faust's ConsumerThread
    client = getattr(thread, "_consumer", None)  # its aiokafka.AIOKafkaConsumer
    fetcher = getattr(client, "_fetcher", None)  # created when the consumer started
    if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        log.warning("fetch wait not shortened: Faust's or aiokafka's consumer has changed")
        return
    fetcher._fetch_max_wait_ms = max_wait_ms
