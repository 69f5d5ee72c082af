"""The batch protocol (apply → emit → persist → ack) against a model of Kafka and the store.

The model keeps what survives a kill -9: the output topics, the changelog, the local store
and the committed offset. A crash is injected at every point of the protocol in turn; the
worker then restarts from what survived (on the same volume, or with an empty one) and
consumes again from the committed offset. Whatever the crash point, every opt-out must have
its suppressed record on the output topic and be in the changelog.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from relmon.domain import Engine, SupporterState, load_policy
from relmon.observability.metrics import RelmonMetrics
from relmon.streaming.pipeline import BatchPipeline
from relmon.streaming.processor import Emit, Processor, partition_for

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
PARTITIONS = 4
BATCH = 3


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Killed(BaseException):
    """kill -9: nothing after it runs (not an Exception, so no retry catches it)."""


async def run_all(pipeline: BatchPipeline, messages: Sequence[Msg], now: datetime) -> None:
    """One batch through every step, its persist and ack included."""
    await pipeline.run(messages, now)
    await pipeline.drain()


@dataclass
class World:
    """What outlives the worker process: topics, changelog, local store, committed offset."""

    outputs: list[Emit] = field(default_factory=list)
    changelog: dict[str, bytes] = field(default_factory=dict)
    local: dict[str, bytes] = field(default_factory=dict)
    committed: int = 0
    steps: int = 0
    crash_at: int | None = None
    dead: bool = False
    trace: list[str] = field(default_factory=list)  # emit / persist / ack, as they happen

    def step(self) -> None:
        """One point of the protocol where the process may die; once dead, nothing runs."""
        self.steps += 1
        if self.steps == self.crash_at:
            self.dead = True
        if self.dead:
            raise Killed


def opt_out(offset: int, i: int) -> Msg:
    """A phone opt-out of supporter S-<i> at ``offset`` of partition 0 (its supporter's)."""
    sid = f"S-{i}"
    assert partition_for(sid, PARTITIONS) == 0
    body = {
        "type": "consent_change",
        "event_id": f"o-{i}",
        "supporter_id": sid,
        "occurred_at": (T0 + timedelta(minutes=i)).isoformat(),
        "channel": "phone",
        "action": "opt_out",
        "source": "web",
    }
    return Msg("relmon.consents", 0, offset, sid.encode(), json.dumps(body).encode())


def opt_outs(n: int) -> list[Msg]:
    """``n`` opt-outs of distinct supporters, all on partition 0 (so the model needs one
    committed offset)."""
    ids = [i for i in range(10 * n) if partition_for(f"S-{i}", PARTITIONS) == 0][:n]
    return [opt_out(offset, i) for offset, i in enumerate(ids)]


def make_pipeline(world: World, store: dict[str, bytes]) -> BatchPipeline:
    processor = Processor(Engine(load_policy()), store, partitions=PARTITIONS)

    # Every step yields to the event loop, so that the next batch's apply and emit run
    # interleaved with the previous batch's persist and ack, as they do on Kafka.
    async def send(emits: Sequence[Emit]) -> None:
        for emit in emits:
            await asyncio.sleep(0)
            world.step()
            world.outputs.append(emit)
            world.trace.append("emit")

    async def persist(states: Mapping[str, SupporterState]) -> None:
        for sid, state in states.items():
            await asyncio.sleep(0)
            world.step()
            world.changelog[sid] = state.to_bytes()
            await asyncio.sleep(0)
            world.step()
            world.local[sid] = state.to_bytes()
            world.trace.append("persist")

    return BatchPipeline(
        processor,
        RelmonMetrics(CollectorRegistry()),
        send=send,
        persist=persist,
        ticks_topic="ticks",
        store_items=lambda: iter(store.items()),
    )


def consume(world: World, messages: list[Msg], store: dict[str, bytes]) -> None:
    """One worker life: batches from the committed offset until the end or a kill. The next
    batch is taken as soon as the pipeline returns (its persist and ack still under way)."""

    async def life() -> None:
        pipeline = make_pipeline(world, store)
        start = world.committed
        while start < len(messages):
            batch = messages[start : start + BATCH]
            end = start + len(batch)

            async def ack(start: int = start, end: int = end) -> None:
                world.step()  # between the batch persisted and its ack
                assert world.committed == start, "batches acked out of order"
                world.committed = end
                world.trace.append("ack")

            await pipeline.run(batch, T0 + timedelta(days=1), ack)
            start = end
        await pipeline.drain()

    asyncio.run(life())


def suppressed_ids(world: World) -> set[str]:
    return {
        json.loads(e.value)["supporter_id"]
        for e in world.outputs
        if e.output == "suppressions" and json.loads(e.value)["suppressed"]
    }


@pytest.mark.parametrize("empty_volume", [False, True])
def test_a_kill_at_any_point_loses_no_opt_out(empty_volume: bool) -> None:
    """For every point of the protocol a kill -9 can hit, a restart (same volume, or state
    from the changelog alone) still puts every opt-out on the topic and in the changelog."""
    messages = opt_outs(7)
    expected = {m.key.decode() for m in messages if m.key}
    total_points = World()
    consume(total_points, messages, {})
    assert total_points.steps > 20
    # the model overlaps batches as the worker does: a batch is emitted while the one
    # before it is persisted but not yet acked
    trace = "".join(step[0] for step in total_points.trace)
    assert re.search("pe+p*a", trace), trace
    for crash_at in range(1, total_points.steps + 1):
        world = World(crash_at=crash_at)
        with pytest.raises(Killed):
            consume(world, messages, world.local)
        world.crash_at, world.dead = None, False  # a new process
        restored = dict(world.changelog) if empty_volume else world.local
        consume(world, messages, restored)
        assert suppressed_ids(world) == expected, f"crash at step {crash_at}"
        assert set(world.changelog) == expected, f"crash at step {crash_at}"


def test_a_failing_send_is_retried_and_never_skipped() -> None:
    """When Kafka refuses the outputs, the batch is retried (reported as stalled and counted)
    until they are sent, and its state is persisted only after that."""
    messages = opt_outs(2)
    store: dict[str, bytes] = {}
    processor = Processor(Engine(load_policy()), store, partitions=PARTITIONS)
    metrics = RelmonMetrics(CollectorRegistry())
    sent: list[Emit] = []
    failures = 3
    seen_stalled: list[str | None] = []
    stalled_gauge: list[float | None] = []
    stalled_reason: list[str | None] = []

    async def send(emits: Sequence[Emit]) -> None:
        nonlocal failures
        stalled_gauge.append(metrics.registry.get_sample_value("relmon_pipeline_stalled"))
        stalled_reason.append(pipeline.stalled)
        if failures:
            failures -= 1
            raise ConnectionError("broker unreachable")
        sent.extend(emits)

    async def persist(states: Mapping[str, SupporterState]) -> None:
        assert sent, "state persisted before the outputs were sent"
        seen_stalled.append(pipeline.stalled)
        store.update({sid: s.to_bytes() for sid, s in states.items()})

    pipeline = BatchPipeline(
        processor,
        metrics,
        send=send,
        persist=persist,
        ticks_topic="ticks",
        store_items=lambda: iter(store.items()),
        retry_first_s=0.001,
    )

    asyncio.run(run_all(pipeline, messages, T0 + timedelta(days=1)))
    assert stalled_gauge == [0, 1, 1, 1]
    assert stalled_reason[0] is None
    assert all(r == "emit: ConnectionError: broker unreachable" for r in stalled_reason[1:])
    assert len(sent) == 2
    assert set(store) == {m.key.decode() for m in messages if m.key}
    assert seen_stalled == [None]
    assert metrics.registry.get_sample_value("relmon_pipeline_stalled") == 0
    failed = metrics.registry.get_sample_value("relmon_pipeline_failures_total", {"step": "emit"})
    assert failed == 3


def test_a_redelivery_in_another_order_cannot_leave_a_stale_record() -> None:
    """A worker applies a reached call (MIN_GAP) and sends its record, then dies before
    persisting; its successor gets the call after a later e-mail (another order across
    topics), when MIN_GAP has already ended, and would emit nothing. Re-asserting the
    supporter's current decision after the rebalance makes the topic end with the truth."""
    from relmon.testing import at, call, email, to_line

    sid = next(f"S-{i}" for i in range(100) if partition_for(f"S-{i}", PARTITIONS) == 0)
    reached = call(at=at(0), outcome="declined", supporter_id=sid)
    later = email(at=at(20), action="opened", supporter_id=sid)
    call_msg = Msg("relmon.calls", 0, 0, sid.encode(), to_line(reached))
    email_msg = Msg("relmon.emails", 0, 0, sid.encode(), to_line(later))
    world = World()
    first = make_pipeline(world, world.local)

    async def send_only(batch: list[Msg]) -> None:
        await first.send(first.apply(batch, at(30)))  # killed before persist

    asyncio.run(send_only([call_msg]))
    assert [json.loads(e.value)["suppressed"] for e in world.outputs] == [True]

    second = make_pipeline(world, world.local)
    second.assigned()
    asyncio.run(run_all(second, [email_msg], at(30)))
    asyncio.run(run_all(second, [call_msg], at(30)))
    records = [json.loads(e.value) for e in world.outputs if e.output == "suppressions"]
    assert records[-1]["suppressed"] is False
    state = SupporterState.from_bytes(world.changelog[sid])
    assert state.last is None or state.last[0] is False


def test_a_skipped_input_offset_is_found_and_redeliveries_are_not_holes() -> None:
    """Input offsets have no gaps, so a jump within a partition is a message the consumer
    dropped; an offset at or below the last one (a redelivery) and ticks are not holes."""
    from relmon.streaming.batch_loop import OffsetTrack

    track = OffsetTrack("ticks")
    assert track.hole([Msg("c", 0, 5, None, b""), Msg("c", 0, 6, None, b"")]) is None
    assert track.hole([Msg("c", 0, 3, None, b""), Msg("c", 1, 40, None, b"")]) is None
    assert track.hole([Msg("ticks", 0, 99, None, b""), Msg("c", 0, 7, None, b"")]) is None
    assert track.hole([Msg("c", 0, 10, None, b"")]) == "c[0]: offsets 8..9"
    track.reset()
    assert track.hole([Msg("c", 0, 50, None, b"")]) is None


def test_the_next_batch_is_applied_on_top_of_the_one_being_persisted() -> None:
    """Batch N+1 is applied while batch N is still being persisted: a supporter's call in
    N+1 must build on the opt-out of N (read from the states being persisted), or the
    opt-out would vanish from the supporter's state when N+1 is persisted."""
    from relmon.testing import call, to_line

    (opt,) = opt_outs(1)
    sid = opt.key.decode() if opt.key else ""
    later = call(at=T0 + timedelta(hours=3), outcome="no_answer", supporter_id=sid)
    call_msg = Msg("relmon.calls", 0, 0, sid.encode(), to_line(later))
    world = World()
    store: dict[str, bytes] = {}
    pipeline = make_pipeline(world, world.local)

    async def two_batches() -> None:
        await pipeline.run([opt], T0 + timedelta(days=1))
        assert sid in pipeline.processor.persisting  # N's persist has not finished
        await pipeline.run([call_msg], T0 + timedelta(days=1))
        await pipeline.drain()

    asyncio.run(two_batches())
    store = world.local
    state = SupporterState.from_bytes(store[sid])
    assert {"o-" + sid.removeprefix("S-"), later.event_id} <= set(state.event_ids())
    decision = pipeline.processor.engine.decision(state, sid, T0 + timedelta(days=1))
    assert "OPTED_OUT" in {r.code for r in decision.reasons}
    assert not pipeline.processor.persisting  # cleared once in the store


def test_a_long_batch_is_applied_in_slices_with_the_same_outputs() -> None:
    """Applying a batch lets other tasks (API requests) run between slices of a few
    milliseconds, and sends exactly what applying it in one go sends."""
    messages = opt_outs(400)
    now = T0 + timedelta(days=1)
    in_one_go = make_pipeline(World(), {}).apply(messages, now)

    world = World()
    pipeline = make_pipeline(world, {})
    turns = 0
    running = True

    async def other_task() -> None:
        nonlocal turns
        while running:
            turns += 1
            await asyncio.sleep(0)

    async def main() -> None:
        nonlocal running
        other = asyncio.ensure_future(other_task())
        await asyncio.sleep(0)
        before = turns
        sliced = await pipeline._apply_in_slices(messages, now)
        during = turns - before
        running = False
        await other
        assert sliced == in_one_go
        assert during > 1, "the batch held the event loop for its whole length"

    import relmon.streaming.pipeline as module

    module_slice = module.APPLY_SLICE_S
    module.APPLY_SLICE_S = 0.0  # every step its own slice, whatever the machine's speed
    try:
        asyncio.run(main())
    finally:
        module.APPLY_SLICE_S = module_slice
