"""The policy file: the contract's numbers by default, overridable by path, validated on load."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from relmon.domain import Engine, default_policy, load_policy
from relmon.domain.policy import parse_policy
from relmon.errors import PolicyError
from relmon.testing import at, call, run

DEFAULT_TEXT = (Path(__file__).parents[2] / "src/relmon/domain/default_policy.toml").read_text()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("loyalty.min_tenure_months", 12),
        ("churn_after_contact.window_days", 30),
        ("reasons.complaint_days", 180),
        ("reasons.deciding_in_own_time_days", 30),
        ("reasons.recent_upgrade_days", 180),
        ("reasons.min_gap_days", 14),
        ("contact_cap.calls", 3),
        ("contact_cap.window_days", 30),
        ("thresholds.fatigue", 0.7),
        ("thresholds.irritation_risk", 0.6),
        ("thresholds.irritation_risk_loyal", 0.5),
        ("fatigue.dinner_start", time(17, 30)),
        ("fatigue.dinner_end", time(19, 30)),
        ("timezone", "Europe/Amsterdam"),
    ],
)
def test_the_default_policy_has_the_contract_numbers(path: str, expected: object) -> None:
    """Every number of the contract's section 3 is the shipped default."""
    value: object = default_policy()
    for part in path.split("."):
        value = getattr(value, part)
    assert value == expected


def test_load_policy_without_a_path_is_the_default() -> None:
    """`load_policy()` gives the shipped default, with a version."""
    assert load_policy() == default_policy()
    assert default_policy().version


def test_a_policy_file_overrides_the_default(tmp_path: Path) -> None:
    """A file passed by path changes the engine's behaviour and the version it writes."""
    text = DEFAULT_TEXT.replace("min_gap_days = 14", "min_gap_days = 7")
    text = text.replace('version = "', 'version = "test-', 1)
    path = tmp_path / "policy.toml"
    path.write_text(text)
    policy = load_policy(path)
    result = run([call(at=at(0), outcome="declined")], policy=policy)
    (record,) = result.records
    assert record.policy_version == policy.version
    assert policy.version.startswith("test-")
    assert [(r.code, r.until) for r in record.reasons] == [("MIN_GAP", at(7))]
    assert Engine(policy).rules.min_gap == 7 * 86_400


def _broken(old: str, new: str) -> str:
    assert old in DEFAULT_TEXT
    return DEFAULT_TEXT.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_broken("min_gap_days = 14\n", ""), "reasons.min_gap_days: missing"),
        (_broken("calls = 3", "calls = 3\ncallz = 4"), "contact_cap.callz: unknown key"),
        (_broken("fatigue = 0.7", "fatigue = 1.7"), "thresholds.fatigue: "),
        (_broken("half_life_days = 5.0", "half_life_days = 0"), "fatigue.half_life_days: "),
        (_broken("call_reached = 0.35", "call_reached = -1"), "fatigue.call_reached: "),
        (_broken("calls = 3", 'calls = "3"'), "contact_cap.calls: "),
        (_broken('"Europe/Amsterdam"', '"Mars/Olympus"'), "timezone: unknown time zone"),
        (_broken('dinner_start = "17:30"', 'dinner_start = "dinner"'), "fatigue.dinner_start: "),
        (_broken('dinner_start = "17:30"', 'dinner_start = "20:00"'), "dinner_start must be"),
        (_broken('version = "', 'version = ""  # '), "version: "),
        (DEFAULT_TEXT + "\n[reasons\n", "not valid TOML"),
    ],
)
def test_a_bad_policy_is_rejected_naming_the_key(text: str, message: str) -> None:
    """Missing, unknown and out-of-range settings fail on load with the key in the message."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.toml")
    assert str(caught.value).startswith("p.toml: ")
    assert message in str(caught.value)


def test_a_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    """A path that does not exist is a PolicyError naming the path."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(PolicyError, match=r"nope\.toml"):
        load_policy(missing)


def test_retention_follows_the_windows() -> None:
    """Calls are kept at least as long as the longest window that reads them, plus grace."""
    rules = Engine(default_policy()).rules
    p = default_policy()
    longest = max(p.contact_cap.window_days, p.churn_after_contact.window_days, 30)
    grace = timedelta(days=p.retention.late_event_grace_days).total_seconds()
    assert rules.keep_calls >= longest * 86_400 + grace
    assert rules.keep_calls >= rules.w.f_horizon + grace
