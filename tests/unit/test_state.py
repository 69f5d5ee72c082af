"""The supporter state: compact, exact serialization, bounded size, copy-on-write."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, timedelta
from typing import Any

import pytest

from relmon.domain import Engine, SupporterState, default_policy
from relmon.errors import RelmonError
from relmon.testing import at, call, consent, donation, email, run


def _uuid(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def typical_events(seed: int = 7) -> list[Any]:
    """10 calls over four weeks, 2 consent changes, 1 mandate, 4 e-mails; UUID event ids."""
    rnd = random.Random(seed)
    events: list[Any] = [
        donation(at=at(-400), action="started", mandate_id="mnd-82731", event_id=_uuid(rnd))
    ]
    outcomes = ["no_answer", "declined", "voicemail", "hung_up", "busy"]
    for i in range(10):
        events.append(
            call(
                at=at(i * 3, 10 + i % 8),
                outcome=outcomes[i % 5],
                partner_id=["p-callfirst", "p-telemarkt"][i % 2],
                campaign_purpose="upgrade" if i % 3 else "thank_you",
                call_id=f"call-{rnd.getrandbits(40):012x}",
                event_id=_uuid(rnd),
            )
        )
    events.append(consent(at=at(4), channel="email", event_id=_uuid(rnd)))
    events.append(consent(at=at(7), channel="post", event_id=_uuid(rnd)))
    events.extend(email(at=at(i * 7), event_id=_uuid(rnd)) for i in range(4))
    return sorted(events, key=lambda e: e.occurred_at)


def test_a_typical_supporter_serializes_under_1_kb() -> None:
    """A supporter with 10 calls, 2 consents, 1 mandate and 4 e-mails takes under 1 KB."""
    state = run(typical_events()).state
    assert len(state.calls) == 10
    assert len(state.to_bytes()) < 1024


@pytest.mark.parametrize(
    "events", [typical_events(), typical_events()[:3], [email(action="opened")]]
)
def test_serialization_round_trips_exactly(events: list[Any]) -> None:
    """from_bytes(to_bytes(s)) equals s and behaves the same on the next event."""
    result = run(events)
    state = result.state
    copy = SupporterState.from_bytes(state.to_bytes())
    assert copy == state
    assert copy.to_bytes() == state.to_bytes()
    assert copy.next_change_at == state.next_change_at
    engine = result.engine
    nxt = call(at=at(30), outcome="complaint")
    a, b = engine.apply(state, nxt), engine.apply(copy, nxt)
    assert a.state == b.state
    assert a.records == b.records
    assert a.alerts == b.alerts


def test_duplicates_are_recognised_after_a_round_trip() -> None:
    """A restored state still refuses events it has already seen."""
    events = typical_events()
    result = run(events)
    restored = SupporterState.from_bytes(result.state.to_bytes())
    for event in events:
        outcome = result.engine.apply(restored, event)
        assert outcome.state is restored
        assert (outcome.records, outcome.alerts) == ([], [])


def test_unknown_format_is_refused() -> None:
    """Bytes that are not a state of a known format raise a RelmonError."""
    with pytest.raises(RelmonError, match="unknown format"):
        SupporterState.from_bytes(b"\x09[]")


def test_apply_never_changes_the_state_it_is_given() -> None:
    """Copy-on-write: the input state serializes the same before and after apply."""
    result = run(typical_events())
    state = result.state
    before = state.to_bytes()
    for event in [
        call(at=at(31)),
        consent(at=at(31, 12)),
        email(at=at(32)),
        donation(at=at(33), action="cancelled"),
    ]:
        outcome = result.engine.apply(state, event)
        assert outcome.state is not state
        assert state.to_bytes() == before


def test_state_stays_bounded_over_a_long_history() -> None:
    """Two years of frequent contact leave only recent facts: size stays flat."""
    engine = Engine(default_policy())
    state = None
    sizes = []
    start = at(0).astimezone(UTC)
    for day in range(730):
        when = start + timedelta(days=day)
        for event in (
            call(
                at=when,
                outcome=["no_answer", "declined", "hung_up"][day % 3],
                partner_id=f"p{day % 4}",
            ),
            email(at=when + timedelta(hours=1)),
            consent(
                at=when + timedelta(hours=2), channel="email", action=["opt_out", "opt_in"][day % 2]
            ),
            donation(
                at=when + timedelta(hours=3), action="payment_failed", mandate_id=f"m{day % 30}"
            ),
        ):
            state = engine.apply(state, event).state
        if day in (365, 729):
            sizes.append(len(state.to_bytes()))
    assert state is not None
    policy = default_policy()
    assert len(state.calls) <= policy.retention.max_facts_per_kind
    assert len(state.emails) <= policy.retention.max_facts_per_kind
    assert len(state.irritation) <= policy.retention.max_facts_per_kind
    assert len(state.consents) <= 16
    assert len(state.mandates) <= 16
    assert sizes[1] <= sizes[0] * 1.1
    assert min(c[0] for c in state.calls) >= state.clock - engine.rules.keep_calls


def test_old_facts_are_forgotten_and_refused() -> None:
    """Calls older than their retention are dropped, and refused (reported late) when they
    come late."""
    result = run([call(at=at(0)), email(at=at(100), action="opened")])
    assert result.state.calls == []
    late = result.engine.apply(result.state, call(at=at(1), outcome="no_answer"))
    assert late.state is result.state
    assert late.late is not None
    assert "call facts are kept" in late.late


def test_outcome_codes_cover_the_model_and_keep_their_serialized_order() -> None:
    """Every call outcome the event model accepts has a code in the state format, and the
    codes keep the order states were serialized with (reordering would corrupt stored state)."""
    from typing import get_args

    from relmon.domain import facts
    from relmon.domain.events import CallOutcomeValue

    assert set(facts.OUTCOMES) == set(get_args(CallOutcomeValue))
    assert facts.OUTCOMES[:4] == ("no_answer", "busy", "voicemail", "wrong_number")
    assert facts.OUTCOMES.index("cancelled_donation") == len(facts.OUTCOMES) - 1
