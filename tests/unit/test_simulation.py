"""`relmon simulate`: determinism, the contract's event format, and the published rates."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from relmon.cli import main
from relmon.domain import parse_event
from relmon.simulation import Simulation, SimulationParams, generate, load_params
from relmon.simulation.params import params_as_toml
from relmon.simulation.population import MONTH, Clock

AMS = ZoneInfo("Europe/Amsterdam")
START = date(2026, 1, 1)
ATTEMPTS = {"no_answer", "busy", "voicemail", "wrong_number"}
ASKING = {"upgrade", "reactivation", "acquisition", "other"}
MARKETING = ASKING | {"survey"}
COMMON = {"type", "event_id", "supporter_id", "occurred_at"}
# Contract section 1, written out here on purpose: the test must not trust the generator.
CONTRACT: dict[str, dict[str, set[Any] | None]] = {
    "call_outcome": {
        "call_id": None,
        "direction": {"outbound", "inbound"},
        "campaign_id": None,
        "campaign_purpose": {
            "upgrade", "reactivation", "acquisition", "thank_you", "service", "survey", "other",
        },
        "partner_id": None,
        "agent_id": None,
        "duration_s": None,
        "outcome": {
            "no_answer", "busy", "voicemail", "wrong_number", "converted", "declined",
            "info_requested", "callback_requested", "hung_up", "complaint", "do_not_call",
            "cancelled_donation",
        },
        "amount_delta_cents": None,
        "trigger": None,
        "sentiment": None,
    },
    "consent_change": {
        "channel": {"phone", "email", "post", "sms", "all"},
        "action": {"opt_out", "objection", "opt_in"},
        "source": {"call", "web", "email", "letter", "register", "other"},
    },
    "email_engagement": {
        "message_id": None,
        "campaign_id": None,
        "action": {
            "sent", "delivered", "opened", "clicked", "unsubscribed", "spam_complaint", "bounced",
        },
    },
    "donation_change": {
        "mandate_id": None,
        "action": {
            "started", "upgraded", "downgraded", "paused", "resumed", "cancelled", "reversed",
            "payment_failed", "one_off",
        },
        "frequency": {"monthly", "quarterly", "yearly", "one_off"},
        "amount_cents_before": None,
        "amount_cents_after": None,
        "currency": {"EUR"},
        "mandate_started_at": None,
        "channel": {"phone", "web", "bank", "post", "other"},
        "reason": None,
    },
}  # fmt: skip
TRUTH_WORDS = ("irritab", "caused_by", "reachability", "segment", "propensity", "latent")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def population() -> dict[str, Any]:
    """A year of a 12,000-supporter file (e-mail events counted, not kept) and its truth."""
    sim = Simulation(SimulationParams(), 11, 12_000, 365, START)
    kept: list[dict[str, Any]] = []
    types: Counter[str] = Counter()
    for event in sim.events():
        types[event["type"]] += 1
        if event["type"] != "email_engagement":
            kept.append(event)
    return {"events": kept, "types": types, "truth": list(sim.truth()), "sim": sim}


def _cli(tmp_path: Path, name: str, *extra: str) -> bytes:
    out = tmp_path / name
    argv = ["simulate", "--supporters", "300", "--days", "60", "--out", str(out), *extra]
    assert main(argv) == 0
    return out.read_bytes()


# --- determinism and format -----------------------------------------------------------------


def test_same_seed_gives_a_byte_identical_file(tmp_path: Path) -> None:
    """Two runs with the same seed and size write exactly the same bytes."""
    first = _cli(tmp_path, "a.jsonl", "--seed", "5")
    second = _cli(tmp_path, "b.jsonl", "--seed", "5")
    assert first == second
    assert first.count(b"\n") > 1000


def test_different_seeds_give_different_events(tmp_path: Path) -> None:
    """Another seed gives another stream, with other event ids."""
    first = _cli(tmp_path, "a.jsonl", "--seed", "5").splitlines()
    second = _cli(tmp_path, "b.jsonl", "--seed", "6").splitlines()
    assert first != second
    ids = {orjson.loads(line)["event_id"] for line in first}
    assert ids.isdisjoint(orjson.loads(line)["event_id"] for line in second)


def _small_run() -> Iterator[dict[str, Any]]:
    return generate(SimulationParams(), 3, 1500, 120, START)


def test_every_event_is_a_valid_contract_event() -> None:
    """Each event parses with the engine's strict parser, keyed by its supporter_id, and has
    exactly the contract's fields for its type with values from the contract's enums."""
    types: Counter[str] = Counter()
    for event in _small_run():
        parse_event(orjson.dumps(event), key=event["supporter_id"])
        spec = CONTRACT[event["type"]]
        assert set(event) == COMMON | set(spec), event
        for name, allowed in spec.items():
            if allowed is not None:
                assert event[name] in allowed, (name, event)
        assert 1 <= len(event["event_id"]) <= 128
        assert 1 <= len(event["supporter_id"]) <= 64
        assert datetime.fromisoformat(event["occurred_at"]).utcoffset() is not None
        types[event["type"]] += 1
    assert set(types) == set(CONTRACT)


def test_events_are_sorted_by_time_and_ids_are_unique() -> None:
    """The stream is ordered by occurred_at and no event_id repeats."""
    events = list(_small_run())
    times = [ts(e["occurred_at"]) for e in events]
    assert times == sorted(times)
    assert len({e["event_id"] for e in events}) == len(events)


def test_no_ground_truth_leaks_into_events(population: dict[str, Any]) -> None:
    """No event carries a latent trait or a churn cause, by field name or anywhere in its text."""
    allowed = {t: COMMON | set(spec) for t, spec in CONTRACT.items()}
    for event in population["events"]:
        assert set(event) <= allowed[event["type"]]
        text = orjson.dumps(event).decode().lower()
        assert not any(word in text for word in TRUTH_WORDS), event
    assert any(r["churns"] for r in population["truth"])


def test_ground_truth_file_is_separate_and_complete(tmp_path: Path) -> None:
    """--truth writes one record per supporter with traits and churn causes, apart from the
    events."""
    truth_path = tmp_path / "truth.jsonl"
    events = _cli(tmp_path, "e.jsonl", "--seed", "2", "--truth", str(truth_path))
    records = [orjson.loads(line) for line in truth_path.read_bytes().splitlines()]
    assert len(records) == 300
    assert {"supporter_id", "traits", "mandates", "churns", "irritating_calls"} <= set(records[0])
    assert 0.0 <= records[0]["traits"]["irritability"] <= 1.0
    assert b"irritability" not in events


# --- rates from the published figures -------------------------------------------------------


def _monthly_mandates(events: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    mandates: dict[str, dict[str, float | None]] = {}
    for e in events:
        if e["type"] == "donation_change" and e["frequency"] == "monthly":
            m = mandates.setdefault(
                e["mandate_id"], {"start": ts(e["mandate_started_at"]), "end": None}
            )
            if e["action"] == "cancelled":
                m["end"] = ts(e["occurred_at"])
    return mandates


def test_monthly_attrition_of_monthly_donors_is_3_to_4_5_percent(
    population: dict[str, Any],
) -> None:
    """Cancellations per month over active monthly mandates average within 3–4.5 % (Rapidata)."""
    mandates = _monthly_mandates(population["events"])
    clock = population["sim"].clock
    rates = []
    for month in range(11):
        a = clock.start_ts + month * MONTH
        b = a + MONTH
        active = [m for m in mandates.values() if m["start"] < a and (m["end"] or math.inf) >= a]
        ended = sum(1 for m in active if m["end"] is not None and m["end"] < b)
        rates.append(ended / len(active))
    mean = sum(rates) / len(rates)
    assert 0.030 <= mean <= 0.045, rates


def test_about_41_percent_of_new_monthly_givers_are_gone_within_a_year(
    population: dict[str, Any],
) -> None:
    """First-year cancellations per month of exposure give a 12-month loss near 41 % (PFRA)."""
    mandates = _monthly_mandates(population["events"])
    clock = population["sim"].clock
    exposure = cancelled = 0.0
    for m in mandates.values():
        start, end = m["start"], m["end"]
        assert start is not None
        first_year_end = start + 12 * MONTH
        lo = max(start, clock.start_ts)
        hi = min(first_year_end, clock.end_ts, end if end is not None else math.inf)
        exposure += max(0.0, hi - lo) / MONTH
        if end is not None and clock.start_ts <= end < first_year_end:
            cancelled += 1
    loss = 1 - math.exp(-12 * cancelled / exposure)
    assert 0.37 <= loss <= 0.45, loss


def _reached_asking_calls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == "call_outcome"
        and e["direction"] == "outbound"
        and e["outcome"] not in ATTEMPTS
        and e["campaign_purpose"] in ASKING
    ]


def test_acceptance_and_objection_rates_match_the_ddma_benchmark(
    population: dict[str, Any],
) -> None:
    """About 18 % of reached asking calls convert and 6.6 % end in an objection (DDMA 2023)."""
    reached = _reached_asking_calls(population["events"])
    outcomes = Counter(e["outcome"] for e in reached)
    assert len(reached) > 5000
    assert outcomes["converted"] / len(reached) == pytest.approx(0.18, abs=0.015)
    assert outcomes["do_not_call"] / len(reached) == pytest.approx(0.066, abs=0.01)


def test_objections_also_arrive_as_consent_changes_from_calls(
    population: dict[str, Any],
) -> None:
    """Part of the do_not_call outcomes come with a legal objection on channel all."""
    events = population["events"]
    dnc = sum(1 for e in events if e["type"] == "call_outcome" and e["outcome"] == "do_not_call")
    objections = [e for e in events if e["type"] == "consent_change" and e["action"] == "objection"]
    assert all(e["channel"] == "all" and e["source"] == "call" for e in objections)
    assert 0.3 * dnc <= len(objections) <= 0.7 * dnc


def _is_dinner(e: dict[str, Any]) -> bool:
    local = datetime.fromisoformat(e["occurred_at"]).astimezone(AMS)
    minutes = local.hour * 60 + local.minute
    return 17 * 60 + 30 <= minutes < 19 * 60 + 30


def test_one_partner_calls_at_dinner_time_much_more_than_the_others(
    population: dict[str, Any],
) -> None:
    """The aggressive partner's dial attempts fall at 17:30–19:30 local far more often."""
    per_partner: dict[str, list[bool]] = defaultdict(list)
    for e in population["events"]:
        if e["type"] == "call_outcome" and e["direction"] == "outbound":
            per_partner[e["partner_id"]].append(_is_dinner(e))
    share = {p: sum(v) / len(v) for p, v in per_partner.items()}
    assert share["P-03"] > 0.35
    assert all(s < 0.2 for p, s in share.items() if p != "P-03"), share


def test_several_partners_call_the_same_supporters(population: dict[str, Any]) -> None:
    """Some supporters are called by two different partners within 30 days."""
    calls: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for e in population["events"]:
        if e["type"] == "call_outcome" and e["direction"] == "outbound":
            calls[e["supporter_id"]].append((ts(e["occurred_at"]), e["partner_id"]))
    multi = sum(
        1
        for seq in calls.values()
        if any(
            p2 != p1 and t2 - t1 < 30 * 86400
            for i, (t1, p1) in enumerate(seq)
            for t2, p2 in seq[i + 1 :]
        )
    )
    assert multi / len(calls) > 0.03


def test_people_who_asked_for_time_are_called_again_too_soon(
    population: dict[str, Any],
) -> None:
    """Marketing calls within 30 days after an info_requested happen, mostly by P-03."""
    asked: dict[str, list[float]] = defaultdict(list)
    chasers: Counter[str] = Counter()
    for e in population["events"]:
        if e["type"] != "call_outcome" or e["direction"] != "outbound":
            continue
        t = ts(e["occurred_at"])
        sid = e["supporter_id"]
        if e["campaign_purpose"] in MARKETING and any(0 < t - a <= 30 * 86400 for a in asked[sid]):
            chasers[e["partner_id"]] += 1
        if e["outcome"] == "info_requested":
            asked[sid].append(t)
    assert sum(chasers.values()) > 100
    assert chasers.most_common(1)[0][0] == "P-03"


def test_inbound_calls_exist_and_arrive_in_service_hours(population: dict[str, Any]) -> None:
    """Supporters call in, only while the charity's phone line is open (08:30–20:00, Mon–Sat)."""
    inbound = [
        e
        for e in population["events"]
        if e["type"] == "call_outcome" and e["direction"] == "inbound"
    ]
    assert len(inbound) > 500
    for e in inbound:
        local = datetime.fromisoformat(e["occurred_at"]).astimezone(AMS)
        assert local.weekday() != 6
        assert (8, 30) <= (local.hour, local.minute) < (20, 0), e


def test_irritating_calls_cause_some_churn_per_the_ground_truth(
    population: dict[str, Any],
) -> None:
    """The truth attributes a small but real share of churns to irritation, each to a call."""
    churns = [c for r in population["truth"] for c in r["churns"]]
    caused = [c for c in churns if c["caused_by_irritation"]]
    assert 0.01 < len(caused) / len(churns) < 0.2
    call_ids = {e["call_id"] for e in population["events"] if e["type"] == "call_outcome"}
    assert all(c["irritating_call_id"] in call_ids for c in caused)


def test_no_irritation_effect_means_no_churn_caused_by_irritation() -> None:
    """With the multiplier at 1 and no cancelling on the call, irritation causes no churn."""
    params = SimulationParams(irritation_hazard_multiplier=1.0, irritation_cancel_on_call=0.0)
    sim = Simulation(params, 4, 3000, 180, START)
    for _ in sim.events():
        pass
    churns = [c for r in sim.truth() for c in r["churns"]]
    assert churns
    assert not any(c["caused_by_irritation"] for c in churns)


# --- clock, parameters, CLI -----------------------------------------------------------------


def test_local_times_are_right_across_the_summer_time_switch() -> None:
    """Dinner time on the day clocks go forward (29 March 2026) is still 17:30 local."""
    clock = Clock(date(2026, 3, 28), 3)
    for day in range(3):
        when = datetime.fromtimestamp(clock.at(day, 17 * 3600 + 1800), AMS)
        assert (when.hour, when.minute) == (17, 30)
        assert clock.is_dinner_time(clock.at(day, 18 * 3600))
        assert not clock.is_dinner_time(clock.at(day, 20 * 3600))


def test_show_params_round_trips_through_params(tmp_path: Path, capsys: Any) -> None:
    """The TOML printed by --show-params loads back to the defaults."""
    assert main(["simulate", "--show-params"]) == 0
    path = tmp_path / "p.toml"
    path.write_text(capsys.readouterr().out)
    assert load_params(path) == SimulationParams()
    assert params_as_toml(SimulationParams()).count("DDMA") >= 2


def test_params_file_changes_the_simulation(tmp_path: Path) -> None:
    """A --params file overriding acceptance to zero gives no converted outbound calls."""
    path = tmp_path / "p.toml"
    path.write_text("acceptance_rate = 0.0\n")
    out = tmp_path / "e.jsonl"
    argv = ["simulate", "--supporters", "500", "--days", "90", "--params", str(path)]
    assert main([*argv, "--out", str(out)]) == 0
    events = map(orjson.loads, out.read_bytes().splitlines())
    outcomes = Counter(e["outcome"] for e in events if e.get("direction") == "outbound")
    assert outcomes["converted"] == 0
    assert outcomes["declined"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "/nonexistent-dir/x.jsonl"], "cannot write --out"),
        ([], "nowhere to write"),
        (["--out", "x.jsonl", "--rate", "10"], "needs --to-kafka"),
        (["--out", "x.jsonl", "--params", "/nonexistent.toml"], "cannot read --params"),
    ],
)
def test_user_errors_say_what_is_wrong(
    argv: list[str], message: str, capsys: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Missing or unwritable outputs and misplaced options exit 1 with a clear message."""
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--supporters", "5", "--days", "2", *argv]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--supporters", "--days"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_numbers_are_usage_errors(flag: str, value: str, capsys: Any) -> None:
    """A supporter or day count that is not a positive whole number is refused by argparse."""
    with pytest.raises(SystemExit) as exc:
        main(["simulate", flag, value, "--out", "x.jsonl"])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_help_explains_and_shows_an_example(capsys: Any) -> None:
    """`relmon simulate --help` names the sources and shows example command lines."""
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    assert "DDMA" in text
    assert "relmon simulate --supporters" in text


def test_limit_stops_after_that_many_events(tmp_path: Path) -> None:
    """--limit N writes exactly N events."""
    data = _cli(tmp_path, "e.jsonl", "--limit", "123")
    assert data.count(b"\n") == 123


def test_the_default_period_ends_today() -> None:
    """Without --start the period is the --days before today (Europe/Amsterdam), so it ends
    at today's local midnight and no event is dated in the future."""
    from datetime import UTC

    from relmon.commands.simulate import check_not_future, default_start

    late_evening = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # 1 December in Amsterdam
    assert default_start(365, late_evening) == date(2025, 12, 1)
    check_not_future(default_start(365, late_evening), 365, late_evening)  # no error


def test_streaming_a_period_that_runs_into_the_future_is_refused(
    capsys: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """--to-kafka with a period ending after now exits 1 before connecting, naming the end,
    the worker's refusal and what to do instead; the same period into a file is fine."""
    from datetime import UTC, timedelta

    monkeypatch.chdir(tmp_path)
    start = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
    argv = ["simulate", "--supporters", "5", "--days", "30", "--start", start]
    assert main([*argv, "--to-kafka", "--bootstrap", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "after now" in err
    assert "more than a day ahead of its clock" in err
    assert "Leave out --start" in err
    assert "cannot reach Kafka" not in err
    assert main([*argv, "--out", "e.jsonl"]) == 0
