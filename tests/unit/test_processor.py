"""The worker's per-message logic (decode → apply → persist → emit) without Kafka or Faust."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relmon.domain import Engine, SupporterState, load_policy
from relmon.streaming.processor import Processor, partition_for

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOME = partition_for("S-1", 4)  # the partition that owns supporter S-1


def call(eid: str, at: datetime, outcome: str = "declined", sid: str = "S-1") -> dict[str, Any]:
    return {
        "type": "call_outcome",
        "event_id": eid,
        "supporter_id": sid,
        "occurred_at": at.isoformat(),
        "call_id": f"c-{eid}",
        "direction": "outbound",
        "campaign_id": "C1",
        "campaign_purpose": "upgrade",
        "partner_id": "P-1",
        "agent_id": None,
        "duration_s": 60,
        "outcome": outcome,
    }


class DictStore(dict[str, bytes]):
    """An in-memory StateStore."""


@pytest.fixture
def processor() -> Processor:
    return Processor(Engine(load_policy()), DictStore(), partitions=4)


def handle(processor: Processor, body: bytes, key: bytes | None = b"S-1", offset: int = 0) -> Any:
    return processor.handle("relmon.calls", HOME, offset, key, body)


def persist(processor: Processor) -> None:
    """What the pipeline's persist step does, for a dict store."""
    store: DictStore = processor.store  # type: ignore[assignment]
    store.update({sid: state.to_bytes() for sid, state in processor.take_dirty().items()})


def test_valid_event_is_persisted_and_its_suppression_emitted(processor: Processor) -> None:
    """A reached marketing call caches the supporter's new state for the pipeline to persist
    (not the store: outputs leave first) and emits a suppression record keyed by
    supporter_id."""
    result = handle(processor, json.dumps(call("e1", T0)).encode())
    assert result.error_kind is None
    assert "S-1" in processor.dirty
    assert not processor.store  # type: ignore[truthy-bool]
    records = [e for e in result.emits if e.output == "suppressions"]
    assert len(records) == 1
    assert records[0].key == b"S-1"
    assert json.loads(records[0].value)["suppressed"] is True


@pytest.mark.parametrize(
    ("body", "key", "kind", "needle"),
    [
        (b'{"type": "call_outcome",', b"S-1", "json", ""),
        (
            json.dumps({**call("e1", T0), "outcome": "shouted"}).encode(),
            b"S-1",
            "validation",
            "outcome",
        ),
        (json.dumps(call("e1", T0)).encode(), b"\xff\xfe", "encoding", "key"),
        (b"\xff\xfe not utf-8", b"S-1", "encoding", ""),
    ],
)
def test_bad_messages_become_dead_letters(
    processor: Processor, body: bytes, key: bytes, kind: str, needle: str
) -> None:
    """Each kind of bad input becomes exactly one dead letter with its kind, the reason, the
    source coordinates and the original bytes; no state is written."""
    result = handle(processor, body, key=key, offset=17)
    assert result.error_kind == kind
    assert [e.output for e in result.emits] == ["dlq"]
    letter = json.loads(result.emits[0].value)
    assert (letter["source"], letter["partition"], letter["offset"]) == ("relmon.calls", HOME, 17)
    assert base64.b64decode(letter["original_base64"]) == body
    assert letter["original_size"] == len(body)
    assert letter["original_truncated"] is False
    assert needle in letter["error"]
    assert not processor.dirty


def test_redelivered_event_emits_nothing(processor: Processor) -> None:
    """The same event delivered twice (at-least-once) emits its records and alerts once."""
    body = json.dumps(call("e1", T0)).encode()
    first = handle(processor, body)
    again = handle(processor, body, offset=1)
    assert first.emits
    assert again.emits == []


def test_expiry_emits_a_lift_once_the_until_has_passed(processor: Processor) -> None:
    """A MIN_GAP suppression is indexed for expiry, nothing is lifted before its until, and a
    lift is emitted (once) after it."""
    handle(processor, json.dumps(call("e1", T0)).encode())
    persist(processor)
    state = SupporterState.from_bytes(processor.store.get("S-1") or b"")
    assert state.next_change_at is not None
    partition = partition_for("S-1", 4)
    assert list(processor.expire(partition, state.next_change_at - timedelta(seconds=1))) == []
    lifts = list(processor.expire(partition, state.next_change_at + timedelta(seconds=1)))
    assert [json.loads(e.value)["suppressed"] for e in lifts] == [False]
    assert list(processor.expire(partition, state.next_change_at + timedelta(days=1))) == []


def test_expiry_index_is_rebuilt_from_stored_states(processor: Processor) -> None:
    """After a restart the expiry index is rebuilt from the states in the store."""
    handle(processor, json.dumps(call("e1", T0)).encode())
    persist(processor)
    fresh = Processor(processor.engine, processor.store, partitions=4)
    assert fresh.rebuild_expiry(iter(processor.store.items())) == 1  # type: ignore[attr-defined]


def test_partition_matches_kafkas_default_partitioner() -> None:
    """Supporter ids map to the partition producers' default partitioner picks for the key,
    which is how the worker finds the owner of a supporter and its due expiries."""
    from aiokafka.partitioner import DefaultPartitioner

    for sid in ("S-1", "S-000042", "donor-xyz", "ü-unicode"):
        for n in (1, 4, 8, 12):
            expected = DefaultPartitioner()(sid.encode(), list(range(n)), list(range(n)))
            assert partition_for(sid, n) == expected


def test_event_far_in_the_future_is_a_dead_letter(processor: Processor) -> None:
    """An event dated more than a day ahead of the worker's clock is refused with a reason,
    so it cannot make the supporter's real events look too old to count."""
    ahead = call("e-future", T0 + timedelta(days=400))
    body = json.dumps(ahead).encode()
    result = processor.handle("relmon.calls", HOME, 5, b"S-1", body, now=T0)
    assert result.error_kind == "future"
    assert "ahead of the worker's clock" in json.loads(result.emits[0].value)["error"]
    assert not processor.dirty
    ok = processor.handle(
        "relmon.calls", HOME, 6, b"S-1", json.dumps(call("e2", T0)).encode(), now=T0
    )
    assert ok.error_kind is None


def test_an_engine_failure_becomes_a_dead_letter(processor: Processor) -> None:
    """If the engine raises on an event, that event is dead-lettered with the reason instead
    of stopping the worker, and the next event is processed."""

    class Exploding:
        policy = processor.engine.policy

        def apply(self, state: object, event: object) -> object:
            raise ValueError("year 10000 is out of range")

    broken = Processor(Exploding(), DictStore(), partitions=4)  # type: ignore[arg-type]
    result = broken.handle("relmon.calls", HOME, 9, b"S-1", json.dumps(call("e1", T0)).encode())
    assert result.error_kind == "processing"
    assert "year 10000 is out of range" in json.loads(result.emits[0].value)["error"]


def test_expiry_after_downtime_decides_each_lift_at_its_until(processor: Processor) -> None:
    """A tick long after a suppression ended emits the lift dated at the reason's until, not at
    the tick's wall-clock time."""
    handle(processor, json.dumps(call("e1", T0)).encode())
    persist(processor)
    state = SupporterState.from_bytes(processor.store.get("S-1") or b"")
    due = state.next_change_at
    assert due is not None
    lifts = [
        json.loads(e.value)
        for e in processor.expire(partition_for("S-1", 4), due + timedelta(days=30))
    ]
    assert [(r["suppressed"], r["decided_at"]) for r in lifts] == [
        (False, due.isoformat().replace("+00:00", "Z"))
    ]


@pytest.mark.parametrize(
    ("key", "partition", "why"),
    [
        (None, HOME, "no key"),
        (b"S-2", HOME, "is not its supporter_id"),
        (b"S-1", (HOME + 1) % 4, f"partition {(HOME + 1) % 4}, not its supporter's"),
    ],
)
def test_misrouted_messages_are_sent_to_their_supporters_partition(
    processor: Processor, key: bytes | None, partition: int, why: str, capsys: Any
) -> None:
    """A message without a key, with another key, or on another partition than its
    supporter's is not applied where it is: it is re-sent unchanged to the same topic, keyed
    by its supporter_id, on the supporter's partition (and applied when that copy arrives)."""
    body = json.dumps(
        {"type": "consent_change", "event_id": "o1", "supporter_id": "S-1",
         "occurred_at": T0.isoformat(), "channel": "phone", "action": "opt_out",
         "source": "web"}
    ).encode()  # fmt: skip
    result = processor.handle("relmon.consents", partition, 3, key, body)
    assert result.status == "rerouted"
    assert [(e.output, e.topic, e.partition, e.key, e.value) for e in result.emits] == [
        ("reroute", "relmon.consents", HOME, b"S-1", body)
    ]
    assert not processor.dirty
    assert why in capsys.readouterr().out
    copy = processor.handle("relmon.consents", HOME, 9, b"S-1", body)
    assert copy.status == "ok"
    assert json.loads(copy.emits[0].value)["reasons"][0]["code"] == "OPTED_OUT"


def test_a_dead_letter_never_exceeds_what_kafka_accepts(processor: Processor) -> None:
    """An invalid message too large to carry whole in a dead letter keeps its coordinates,
    error, size and SHA-256 and as much of the original as fits under the limit."""
    import hashlib

    from relmon.streaming.processor import MAX_DEAD_LETTER_BYTES

    body = b"A" * 990_000
    result = processor.handle("relmon.calls", 1, 44, b"X", body)
    letter_bytes = result.emits[0].value
    assert len(letter_bytes) <= MAX_DEAD_LETTER_BYTES
    letter = json.loads(letter_bytes)
    kept = base64.b64decode(letter["original_base64"])
    assert 0 < len(kept) < len(body)
    assert body.startswith(kept)
    assert len(letter_bytes) > MAX_DEAD_LETTER_BYTES - 16  # as much as fits, not a token
    assert letter["original_truncated"] is True
    assert letter["original_size"] == len(body)
    assert letter["original_sha256"] == hashlib.sha256(body).hexdigest()
    assert (letter["source"], letter["partition"], letter["offset"]) == ("relmon.calls", 1, 44)
    assert letter["kind"] == "json"


def test_state_changes_in_one_batch_are_cached_once_per_supporter(processor: Processor) -> None:
    """Several events of one supporter in a batch read each other's state from the write-back
    cache, and the batch persists one state per supporter holding all of them."""
    handle(processor, json.dumps(call("e1", T0)).encode())
    handle(processor, json.dumps(call("e2", T0 + timedelta(hours=1))).encode(), offset=1)
    dirty = processor.take_dirty()
    assert list(dirty) == ["S-1"]
    assert {"e1", "e2"} <= set(dirty["S-1"].event_ids())
    assert processor.dirty == {}


def test_a_corrupt_stored_state_dead_letters_the_event_instead_of_stopping(
    processor: Processor,
) -> None:
    """If a supporter's stored state cannot be decoded, that supporter's event becomes a
    processing dead letter (kept for re-publishing) and the next supporter is processed."""
    processor.store["S-1"] = b"\x00 not a state"  # type: ignore[index]
    result = handle(processor, json.dumps(call("e1", T0)).encode())
    assert result.error_kind == "processing"
    assert base64.b64decode(json.loads(result.emits[0].value)["original_base64"]).startswith(b"{")
    other = call("e2", T0, sid="S-3")
    ok = processor.handle(
        "relmon.calls", partition_for("S-3", 4), 1, b"S-3", json.dumps(other).encode()
    )
    assert ok.status == "ok"


async def test_the_expiry_index_is_rebuilt_in_slices_to_the_same_result() -> None:
    """The background rebuild (after a rebalance) yields to the event loop while it reads
    the states, and ends with the same expiry index and suppression counts as the one-go
    rebuild; a state a batch changed meanwhile (not yet stored) wins over the stored one."""
    import asyncio

    source = Processor(Engine(load_policy()), DictStore(), partitions=4)
    sids = [f"S-{i}" for i in range(60)]
    for i, sid in enumerate(sids):
        body = json.dumps(call(f"e{i}", T0 + timedelta(minutes=i), sid=sid)).encode()
        assert source.handle("relmon.calls", partition_for(sid, 4), i, sid.encode(), body).emits
    persist(source)
    stored = dict(source.store)  # type: ignore[call-overload]

    one_go = Processor(Engine(load_policy()), DictStore(stored), partitions=4)
    assert one_go.rebuild_expiry(stored.items()) == len(sids)

    sliced = Processor(Engine(load_policy()), DictStore(stored), partitions=4)
    later = T0 + timedelta(days=1)
    newer = sliced.handle(
        "relmon.calls", HOME, 99, b"S-1", json.dumps(call("e-new", later)).encode()
    )
    assert newer.error_kind is None
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while not sliced.expiry.built:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.ensure_future(count_turns())
    assert await sliced.rebuild_expiry_async(stored.items(), slice_s=0.0) == len(sids)
    await counter
    assert turns > 10  # it let the loop run between states
    expected = {p: dict(d) for p, d in one_go.expiry.due.items()}
    expected[HOME]["S-1"] = sliced.dirty["S-1"].wake  # type: ignore[assignment]
    assert sliced.expiry.due == expected
    assert one_go.suppressions.snapshot() == sliced.suppressions.snapshot()


def test_a_dead_letter_is_counted_under_its_type_when_the_type_was_readable(
    processor: Processor,
) -> None:
    """A future-dated call and a call with a bad field are counted as call_outcome dead
    letters in relmon_events_consumed_total; only a message whose type cannot be read is
    counted as unknown."""
    from prometheus_client import CollectorRegistry

    from relmon.observability.metrics import RelmonMetrics
    from relmon.streaming.pipeline import record_metrics

    registry = CollectorRegistry()
    metrics = RelmonMetrics(registry)
    future = json.dumps(call("e-f", T0 + timedelta(days=30))).encode()
    bad_field = json.dumps({**call("e-b", T0), "duration_s": -5}).encode()
    for n, body in enumerate((future, bad_field, b"not json", b'{"type": 5}')):
        record_metrics(metrics, processor.handle("relmon.calls", HOME, n, b"S-1", body, now=T0))

    def consumed(event_type: str) -> float | None:
        labels = {"type": event_type, "result": "dead_letter"}
        return registry.get_sample_value("relmon_events_consumed_total", labels)

    assert consumed("call_outcome") == 2
    assert consumed("unknown") == 2
