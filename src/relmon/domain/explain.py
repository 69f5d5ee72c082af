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
)
from relmon.domain.outputs import encode_record, iso
from relmon.domain.rules import utc
from relmon.domain.scoring import contributions, fatigue_items, fatigue_label
from relmon.domain.state import Fact, SupporterState

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
        (c[0], c[1], fatigue_label(c[2]), c[3], c[4])
        for c in contributions(fatigue_items(st, w), t, w.f_k, w.f_horizon)
    ]
    irritation = [
        (c[0], c[1], LABELS[c[2]], c[3], c[4])
        for c in contributions(st.irritation, t, w.i_k, w.i_horizon)
    ]
    consent: dict[str, dict[str, object]] = {}
    for ct, eid, channel, action in st.consents:
        if ct <= t:
            consent[CHANNELS[channel]] = {
                "action": CONSENT_ACTIONS[action],
                "at": _ts(ct),
                "event_id": eid,
            }
    mandates: dict[str, dict[str, object]] = {}
    for mt, eid, mandate_id, action, frequency, amount, loyal_from in st.mandates:
        if mt <= t:
            mandates[mandate_id] = {
                "action": DONATION_ACTIONS[action],
                "frequency": FREQUENCIES[frequency],
                "amount_cents": amount,
                "at": _ts(mt),
                "loyal_from": _ts(loyal_from),
                "event_id": eid,
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
        "recent_calls": [_call(c) for c in st.calls if c[0] <= t],
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


def _call(c: Fact) -> dict[str, object]:
    return {
        "event_id": c[1],
        "call_id": c[2],
        "campaign_id": c[3],
        "campaign_purpose": PURPOSES[c[4]],
        "partner_id": c[5],
        "agent_id": c[6],
        "outcome": OUTCOMES[c[7]],
        "reached": c[7] not in ATTEMPTS,
        "at": _ts(c[0]),
    }
