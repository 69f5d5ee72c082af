"""The current-decision view: what the API answers, decided from the states, without Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest

from relmon.domain import Engine, encode_unknown_answer, load_policy
from relmon.domain.calling import calendar_for, next_call_at
from relmon.domain.events import MARKETING_PURPOSES
from relmon.simulation import SimulationParams, generate
from relmon.streaming.processor import Processor, partition_for
from relmon.testing import call, to_line

PARTITIONS = 4
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CALENDAR = calendar_for(load_policy())
ANSWER_ONLY = ("known", "blocked_purposes", "next_call_at")


class DictStore(dict[str, bytes]):
    """An in-memory StateStore."""


def make_processor() -> Processor:
    return Processor(Engine(load_policy()), DictStore(), partitions=PARTITIONS)


def persist(processor: Processor) -> None:
    store: DictStore = processor.store  # type: ignore[assignment]
    store.update({sid: state.to_bytes() for sid, state in processor.take_dirty().items()})


def feed(processor: Processor, event: dict[str, Any], offset: int = 0) -> list[dict[str, Any]]:
    """Handle one event on its supporter's partition; the suppression records it emitted."""
    sid = event["supporter_id"]
    result = processor.handle(
        "relmon.calls", partition_for(sid, PARTITIONS), offset, sid.encode(), orjson.dumps(event)
    )
    assert result.error_kind is None, result.emits
    return [orjson.loads(e.value) for e in result.emits if e.output == "suppressions"]


def declined_upgrade_call(eid: str, at: datetime, sid: str = "S-1") -> dict[str, Any]:
    """A declined outbound upgrade call (suppresses for some days), as the producer sends it."""
    return orjson.loads(to_line(call(at=at, supporter_id=sid, event_id=eid)))  # type: ignore[no-any-return]


def simulated(supporters: int = 400, days: int = 90) -> Iterator[dict[str, Any]]:
    yield from generate(SimulationParams(), 11, supporters, days, date(2026, 1, 1))


def test_a_known_supporters_answer_is_its_last_record_as_on_the_topic() -> None:
    """Over a simulated quarter, every supporter's answer at its latest event time is the
    last suppression record emitted for it (reasons, until, decided_at, cause; scores too,
    within what facts forgotten since can move), followed by ``known: true`` and the
    purposes it blocks and ``next_call_at`` (inside a calling window, not before the request
    nor the record's ``until``, null only when suppressed with no end); one never suppressed
    is answered at its latest event time, not suppressed."""
    processor = make_processor()
    last: dict[str, dict[str, Any]] = {}
    clock: dict[str, datetime] = {}
    for i, event in enumerate(simulated()):
        for record in feed(processor, event, i):
            last[event["supporter_id"]] = record
        clock[event["supporter_id"]] = datetime.fromisoformat(event["occurred_at"])
        if i % 50 == 0:
            persist(processor)  # answers come from the cache and from the store alike
    assert len(last) > 50, "the simulated quarter should suppress many supporters"
    never_suppressed = 0
    for sid, at in clock.items():
        answer = orjson.loads(processor.view.answer(sid, at))
        assert answer.pop("known") is True
        blocked = answer.pop("blocked_purposes")
        assert blocked == (sorted(MARKETING_PURPOSES) if answer["suppressed"] else [])
        nxt = answer.pop("next_call_at")
        if answer["suppressed"] and answer["until"] is None:
            assert nxt is None, sid
        else:
            when = datetime.fromisoformat(nxt)
            assert when >= at.replace(microsecond=0), sid
            assert answer["until"] is None or when >= datetime.fromisoformat(answer["until"])
            assert CALENDAR.inside(None, int(when.timestamp())), sid
        if sid in last:
            scores = ("fatigue", "irritation_risk")
            for name in scores:
                assert abs(answer.pop(name) - last[sid][name]) < 0.01, (sid, name)
            assert answer == {k: v for k, v in last[sid].items() if k not in scores}, sid
        else:
            never_suppressed += 1
            assert answer["suppressed"] is False
            assert datetime.fromisoformat(answer["decided_at"]) == at.astimezone(UTC)
    assert never_suppressed > 0


def test_a_due_expiry_is_answered_as_the_lift_the_timer_will_emit() -> None:
    """After a suppression's ``until``, the answer is the lift decided at that ``until``
    (before the timer emits it), and it is the very record the timer then emits."""
    processor = make_processor()
    (suppressed,) = feed(processor, declined_upgrade_call("e1", T0))
    persist(processor)
    until = datetime.fromisoformat(suppressed["until"])
    before = orjson.loads(processor.view.answer("S-1", until - timedelta(seconds=1)))
    assert before["suppressed"] is True
    assert before["decided_at"] == suppressed["decided_at"]

    after = orjson.loads(processor.view.answer("S-1", until + timedelta(hours=1)))
    assert after["suppressed"] is False
    assert datetime.fromisoformat(after["decided_at"]) == until
    assert after["blocked_purposes"] == []
    assert processor.store == {"S-1": processor.store["S-1"]}  # the store was not touched
    assert not processor.dirty

    processor.rebuild_expiry(processor.store.items())
    lifted = list(processor.expire(HOME, until + timedelta(hours=1)))
    assert [orjson.loads(e.value) for e in lifted] == [
        {k: v for k, v in after.items() if k not in ANSWER_ONLY}
    ]


HOME = partition_for("S-1", PARTITIONS)


def test_an_answer_is_forgotten_when_the_state_changes() -> None:
    """A held answer is not served once a new event changed the supporter's state."""
    processor = make_processor()
    (first,) = feed(processor, declined_upgrade_call("e1", T0))
    assert orjson.loads(processor.view.answer("S-1", T0))["decided_at"] == first["decided_at"]
    later = T0 + timedelta(days=2)
    records = feed(processor, declined_upgrade_call("e2", later), offset=1)
    answer = orjson.loads(processor.view.answer("S-1", later))
    assert answer["decided_at"] == records[-1]["decided_at"] != first["decided_at"]


@pytest.mark.parametrize("sid", ["S-404", 'quote"and\\slash', "ü-ñ", "x" * 64])
def test_a_never_seen_supporter_is_unknown_and_not_suppressed(sid: str) -> None:
    """Never seen: ``known: false``, not suppressed, nothing decided (``decided_at`` null),
    nothing blocked, callable at the next calling moment; the shared template gives exactly
    the encoder's bytes, escapes included."""
    processor = make_processor()
    raw = processor.view.answer(sid, T0)
    policy = processor.engine.policy
    assert raw == encode_unknown_answer(sid, policy.version, next_call_at(policy, None, T0))
    answer = orjson.loads(raw)
    assert answer["supporter_id"] == sid
    assert (answer["known"], answer["suppressed"], answer["decided_at"]) == (False, False, None)
    assert answer["blocked_purposes"] == []
    assert len(processor.view) == 0  # nothing is held for ids never seen


async def test_warm_decides_every_held_supporter_once() -> None:
    """Warming after a rebalance decides each stored supporter once; later answers come from
    what it holds (the same bytes as deciding afresh)."""
    processor = make_processor()
    for i, event in enumerate(simulated(supporters=60, days=30)):
        feed(processor, event, i)
    persist(processor)
    processor.rebuild_expiry(processor.store.items())
    assert len(processor.view) == 0
    now = T0 + timedelta(days=400)
    decided = await processor.view.warm(list(processor.store), now)
    assert decided == len(processor.store) == len(processor.view)
    fresh = make_processor()
    fresh.store.update(processor.store)  # type: ignore[attr-defined]
    for sid in processor.store:
        assert processor.view.answer(sid, now) == fresh.view.answer(sid, now)


def test_next_call_at_waits_for_the_until_and_the_next_window() -> None:
    """A supporter suppressed until a moment outside calling hours may be called at the next
    window's opening after it: here a call declined on Friday 20 March 2026 at 22:30 local
    (MIN_GAP, 14 days) ends on Friday 3 April at 23:30 CEST (Good Friday, a holiday), so the
    next call is Saturday 4 April at 10:00 CEST (Saturday hours, summer time); asked at any
    moment before the until, the answer is the same."""
    processor = make_processor()
    at = datetime(2026, 3, 20, 21, 30, tzinfo=UTC)  # 22:30 CET
    (record,) = feed(processor, declined_upgrade_call("e1", at))
    assert record["suppressed"] is True
    for asked in (at, at + timedelta(days=5)):
        answer = orjson.loads(processor.view.answer("S-1", asked))
        assert answer["until"] == record["until"]
        assert answer["next_call_at"] == "2026-04-04T08:00:00Z"


def test_next_call_at_uses_the_supporters_zone() -> None:
    """A supporter whose events carry ``supporter_timezone`` gets windows in that zone."""
    processor = make_processor()
    event = orjson.loads(
        to_line(
            call(
                at=datetime(2026, 1, 5, 12, tzinfo=UTC),
                supporter_id="S-2",
                event_id="z1",
                campaign_purpose="service",
            )
        )
    )
    event["supporter_timezone"] = "America/Curacao"
    feed(processor, event)
    asked = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)  # 08:00 in Curacao, 13:00 in Amsterdam
    answer = orjson.loads(processor.view.answer("S-2", asked))
    assert answer["suppressed"] is False
    assert answer["next_call_at"] == "2026-01-06T13:00:00Z"
    unknown = orjson.loads(processor.view.answer("S-404", asked))
    assert unknown["next_call_at"] == "2026-01-06T12:00:00Z"
