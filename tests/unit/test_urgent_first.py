"""Objections first: the consumer hands out fetched urgent records before bulk (e-mail) ones,
and skips or reorders nothing within a partition (README, "Objections first")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from relmon.streaming.urgent_first import read_urgent_first, shorten_fetch_wait

EMAILS = "p.relmon.emails"
CONSENTS = "p.relmon.consents"
TICKS = "p.relmon-ticks"
BULK = {EMAILS, "p.relmon.history"}


class FakeConsumer:
    """Faust's ``Consumer._getmany`` over aiokafka's buffers: what was fetched per partition,
    handed out in fetch order, at most ``max_records`` per call, only for the partitions
    asked for (aiokafka's ``Fetcher.fetched_records``)."""

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self.buffers: dict[TP, list[int]] = {}  # in the order they were fetched
        self.calls: list[tuple[set[TP] | None, float]] = []
        self._getmany = self.plain

    def fetched(self, tp: TP, offsets: range) -> None:
        self.buffers.setdefault(tp, []).extend(offsets)

    async def plain(self, active_partitions: set[TP] | None, timeout: float) -> dict[TP, Any]:  # noqa: ASYNC109
        self.calls.append((None if active_partitions is None else set(active_partitions), timeout))
        out: dict[TP, list[int]] = {}
        room = self.max_records
        for tp in list(self.buffers):
            if active_partitions is not None and tp not in active_partitions:
                continue
            taken, self.buffers[tp] = self.buffers[tp][:room], self.buffers[tp][room:]
            if not self.buffers[tp]:
                del self.buffers[tp]
            if taken:
                out[tp] = taken
                room -= len(taken)
            if not room:
                break
        return out


def tps(topic: str) -> list[TP]:
    return [TP(topic, p) for p in range(4)]


async def test_urgent_records_are_handed_out_before_bulk_ones_fetched_earlier() -> None:
    consumer = FakeConsumer(max_records=500)
    for tp in tps(EMAILS):
        consumer.fetched(tp, range(1_000))
    consumer.fetched(TP(CONSENTS, 2), range(7, 9))
    read_urgent_first(consumer, BULK)
    active = {*tps(EMAILS), *tps(CONSENTS), TP(TICKS, 0)}

    records = await consumer._getmany(active_partitions=active, timeout=1.0)

    assert records == {TP(CONSENTS, 2): [7, 8]}
    assert consumer.calls == [({*tps(CONSENTS), TP(TICKS, 0)}, 0)]  # no wait for urgent ones


async def test_without_urgent_records_the_poll_is_faust_s() -> None:
    consumer = FakeConsumer(max_records=500)
    consumer.fetched(TP(EMAILS, 0), range(600))
    read_urgent_first(consumer, BULK)
    active = {*tps(EMAILS), *tps(CONSENTS)}

    records = await consumer._getmany(active_partitions=active, timeout=1.0)

    assert records == {TP(EMAILS, 0): list(range(500))}
    assert consumer.calls[-1] == (active, 1.0)


async def test_one_call_when_there_is_no_choice() -> None:
    consumer = FakeConsumer(max_records=500)
    read_urgent_first(consumer, BULK)
    only_urgent = set(tps(CONSENTS))  # e-mails paused by Faust's back-pressure
    await consumer._getmany(active_partitions=only_urgent, timeout=1.0)
    await consumer._getmany(active_partitions=set(tps(EMAILS)), timeout=1.0)
    await consumer._getmany(active_partitions=None, timeout=1.0)  # a client-only app
    assert consumer.calls == [(only_urgent, 1.0), (set(tps(EMAILS)), 1.0), (None, 1.0)]


async def test_nothing_skipped_or_reordered_within_a_partition() -> None:
    consumer = FakeConsumer(max_records=300)
    read_urgent_first(consumer, BULK)
    active = {*tps(EMAILS), *tps(CONSENTS)}
    expected: dict[TP, list[int]] = {}
    for tp in tps(EMAILS):
        consumer.fetched(tp, range(1_100))
        expected[tp] = list(range(1_100))
    seen: dict[TP, list[int]] = {}
    polls = 0
    while consumer.buffers or polls < 3:
        polls += 1
        if polls % 2:  # opt-outs trickle in while the burst is handed out
            tp = TP(CONSENTS, polls % 4)
            start = len(expected.get(tp, []))
            consumer.fetched(tp, range(start, start + 3))
            expected.setdefault(tp, []).extend(range(start, start + 3))
        records = await consumer._getmany(active_partitions=active, timeout=1.0)
        if any(tp.topic == CONSENTS for tp in records):
            assert all(tp.topic == CONSENTS for tp in records)  # never behind e-mails
        for tp, offsets in records.items():
            seen.setdefault(tp, []).extend(offsets)
    assert seen == expected


def test_fetch_wait_is_set_on_the_running_fetcher() -> None:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500)
    consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher)))
    shorten_fetch_wait(consumer, 100)
    assert fetcher._fetch_max_wait_ms == 100


def test_fetch_wait_left_alone_when_the_consumer_is_not_there() -> None:
    shorten_fetch_wait(SimpleNamespace(), 100)  # not started yet, or internals changed: no error
    shorten_fetch_wait(SimpleNamespace(_thread=SimpleNamespace(_consumer=None)), 100)
