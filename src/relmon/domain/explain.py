"""``Engine.explain``: the scores, the contributions behind them and the deciding facts.

Everything is JSON-ready (strings, numbers, lists, dicts), timestamps as in the outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from relmon.domain.decide import evaluate
from relmon.domain.facts import (
    ATTEMPTS,
    CHANNELS,
    CONSENT_ACTIONS,
    DONATION_ACTIONS,
    FREQUENCIES,
    LABELS,
    OUTCOMES,
    PURPOSES,
    Call,
)
from relmon.domain.outputs import encode_record, iso
from relmon.domain.rules import utc
from relmon.domain.scoring import contributions, fatigue_items, fatigue_label
from relmon.domain.state import SupporterState

if TYPE_CHECKING:
    from relmon.domain.engine import Engine


def explain(
    engine: Engine, state: SupporterState | None, supporter_id: str, at: datetime
) -> dict[str, object]:
    st = state if state is not None else SupporterState(supporter_id)
    r = engine.rules
    w = r.w
    t = int(at.timestamp())
    d = evaluate(st, r, t)
    fatigue = [
        (t_, eid, fatigue_label(label), weight, value)
        for t_, eid, label, weight, value in contributions(
            fatigue_items(st, w), t, w.f_k, w.f_horizon
        )
    ]
    irritation = [
        (t_, eid, LABELS[label], weight, value)
        for t_, eid, label, weight, value in contributions(st.irritation, t, w.i_k, w.i_horizon)
    ]
    consent: dict[str, dict[str, object]] = {}
    for c in st.consents:
        if c.t <= t:
            consent[CHANNELS[c.channel]] = {
                "action": CONSENT_ACTIONS[c.action],
                "at": _ts(c.t),
                "event_id": c.eid,
            }
    mandates: dict[str, dict[str, object]] = {}
    for m in st.mandates:
        if m.t <= t:
            mandates[m.mandate_id] = {
                "action": DONATION_ACTIONS[m.action],
                "frequency": FREQUENCIES[m.frequency],
                "amount_cents": m.amount,
                "at": _ts(m.t),
                "loyal_from": _ts(m.loyal_from),
                "event_id": m.eid,
            }
    return {
        "supporter_id": supporter_id,
        "as_of": _ts(t),
        "policy_version": r.version,
        "fatigue": {
            "score": round(d.fatigue, 6),
            "half_life_days": r.policy.fatigue.half_life_days,
            "contributions": [_contribution(c) for c in fatigue],
        },
        "irritation_risk": {
            "score": round(d.irritation, 6),
            "half_life_days": r.policy.irritation.half_life_days,
            "contributions": [_contribution(c) for c in irritation],
        },
        "loyal": d.loyal,
        "mandates": mandates,
        "consent": consent,
        "recent_calls": [_call(c) for c in st.calls if c.t <= t],
        "decision": orjson.loads(encode_record(engine.decision(st, supporter_id, at))),
    }


def _ts(t: int) -> str | None:
    return iso(utc(t))


def _contribution(c: tuple[int, str, str, float, float]) -> dict[str, object]:
    t, eid, label, weight, value = c
    return {
        "event_id": eid,
        "type": label,
        "at": _ts(t),
        "weight": round(weight, 6),
        "value": round(value, 6),
    }


def _call(c: Call) -> dict[str, object]:
    return {
        "event_id": c.eid,
        "call_id": c.call_id,
        "campaign_id": c.campaign_id,
        "campaign_purpose": PURPOSES[c.purpose],
        "partner_id": c.partner_id,
        "agent_id": c.agent_id,
        "outcome": OUTCOMES[c.outcome],
        "reached": c.outcome not in ATTEMPTS,
        "at": _ts(c.t),
    }
