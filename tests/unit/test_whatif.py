"""What-if: two policies over the same events, their suppressed calls and prevented churns."""

from __future__ import annotations

import re
from importlib import resources

from relmon.domain import Policy, default_policy
from relmon.domain.policy import parse_policy
from relmon.replay.file_replay import Replayer
from relmon.replay.report import Analysis
from relmon.replay.whatif import Tally, outcome, text_table
from relmon.testing import at, call, donation

LOYAL = at(-900)


def _strict() -> Policy:
    """The default policy with a contact cap of one call in 30 days."""
    text = resources.files("relmon.domain").joinpath("default_policy.toml").read_text("utf-8")
    text = re.sub(r'version = "[^"]+"', 'version = "strict"', text, count=1).replace(
        "calls = 3", "calls = 1"
    )
    return parse_policy(text)


EVENTS = [
    donation(at=at(-40), started=LOYAL),
    call(at=at(0), outcome="declined", campaign_purpose="service", partner_id="p-a"),
    call(at=at(2), outcome="declined", partner_id="p-b"),  # judged on the service call only
    call(at=at(3), outcome="converted", partner_id="p-c", amount_delta_cents=500),
    donation(at=at(6), action="cancelled", started=LOYAL),
]


def _run(policy: Policy, analysis: Analysis | None = None) -> Tally:
    tally = Tally(policy.version, policy)
    replayer = Replayer(policy, "t", None, None, None, observer=tally)
    for e in EVENTS:
        replayer.apply(e)
        if analysis is not None:
            analysis.event(e, int(e.occurred_at.timestamp()))
    return tally


def test_a_stricter_policy_blocks_the_call_before_the_churn_and_prevents_it() -> None:
    """Under the default only the converting day-3 call is blocked (MIN_GAP after the day-2
    call); with a cap of one call the day-2 call is blocked too. Either way a reached call
    before the churn was blocked, so it counts as prevented, and the conversion as forgone."""
    analysis = Analysis(default_policy())
    a = outcome(_run(default_policy(), analysis), analysis.call_index(), analysis.calls)
    b = outcome(_run(_strict()), analysis.call_index(), analysis.calls)

    # default: the day-3 call comes within MIN_GAP of the reached day-2 marketing call
    assert (a.calls_suppressed, a.reached, a.conversions_forgone) == (1, 1, 1)
    assert (a.churns_after_contact, a.churns_prevented) == (1, 1)  # day-3 call was blocked
    assert (b.calls_suppressed, b.conversions_forgone, b.conversion_cents_forgone) == (2, 1, 500)
    assert (b.churns_after_contact, b.churns_prevented, b.monthly_cents_kept) == (1, 1, 1500)
    table = text_table([a, b])
    assert "calls suppressed" in table.splitlines()[0]
    assert table.splitlines()[3].startswith("strict")


def test_a_churn_with_no_blocked_call_before_it_is_not_prevented() -> None:
    """A churn after an allowed service call is not prevented by any policy: service calls
    are never suppressed."""
    events = [EVENTS[0], EVENTS[1], donation(at=at(4), action="cancelled", started=LOYAL)]
    analysis = Analysis(default_policy())
    tally = Tally("b", _strict())
    replayer = Replayer(tally.policy, "t", None, None, None, observer=tally)
    for e in events:
        replayer.apply(e)
        analysis.event(e, int(e.occurred_at.timestamp()))
    result = outcome(tally, analysis.call_index(), analysis.calls)
    assert (result.churns_after_contact, result.churns_prevented, result.calls_suppressed) == (
        1,
        0,
        0,
    )


def test_each_policy_gets_a_net_figure_and_a_plain_sentence() -> None:
    """Net is the monthly amount kept minus the conversions' monthly amount forgone, in the
    table and in a sentence that says whether the policy keeps or loses money."""
    from relmon.replay.whatif import Outcome, rows, sentence

    keeps = Outcome("B (strict.toml)", "s", 120, 70, 50, 3, 1500, 40, 6, 4200)
    loses = Outcome("C (harsh.toml)", "h", 900, 300, 600, 30, 9000, 40, 7, 4900)
    assert keeps.net_monthly_cents == 2700
    assert loses.net_monthly_cents == -4100
    assert rows([keeps])[0][-1] == "+27.00"
    assert rows([loses])[0][-1] == "-41.00"
    text = sentence(keeps)
    assert text.startswith("Policy B (strict.toml) would not have made 120 of the marketing")
    assert "prevented 6 of its 40 churns after contact, keeping EUR 42.00 a month" in text
    assert text.endswith("net EUR 27.00 a month kept.")
    assert sentence(loses).endswith("net EUR 41.00 a month lost.")
