"""The largest values the event models accept go through the engine and encode."""

from __future__ import annotations

from datetime import UTC, timedelta

import orjson

from relmon.domain import encode_alert, encode_record, parse_event
from relmon.domain.events import MAX_AMOUNT_CENTS, MAX_DURATION_S
from relmon.testing import InputEvent, at, call, donation, run, to_line


def test_a_churn_of_the_largest_amount_raises_an_alert_that_encodes() -> None:
    """A loyal donor's churn at the amount bound, after a reached call, gives an encodable alert."""
    started = at(0).astimezone(UTC) - timedelta(days=800)
    events: list[InputEvent] = [
        donation(at=at(0), action="started", started=started, amount_cents_before=MAX_AMOUNT_CENTS),
        call(at=at(1), outcome="converted", amount_delta_cents=MAX_AMOUNT_CENTS,
             duration_s=MAX_DURATION_S),
        donation(at=at(2), action="downgraded", started=started,
                 amount_cents_before=MAX_AMOUNT_CENTS, amount_cents_after=0, frequency="yearly"),
        donation(at=at(3), action="cancelled", started=started, frequency="monthly",
                 amount_cents_before=MAX_AMOUNT_CENTS, mandate_id="m-2"),
    ]  # fmt: skip
    result = run(parse_event(to_line(e)) for e in events)
    churns = [a for a in result.alerts if a.kind == "churn_after_contact"]
    assert churns
    for alert in churns:
        decoded = orjson.loads(encode_alert(alert))
        assert decoded["donation"]["monthly_amount_lost_cents"] <= MAX_AMOUNT_CENTS
    for record in result.records:
        encode_record(record)
