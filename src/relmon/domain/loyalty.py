"""Loyal donors and their churn: the policy's definitions, in one place.

The engine (mandate statuses, loyal churns, the ``churn_after_contact`` alert) and the replay
report (loyalty over time, excess churn) both call these, so they cannot disagree.

* A mandate is **active** after a change that leaves it running: ``started``, ``upgraded``,
  ``downgraded``, ``resumed`` or ``payment_failed``, monthly, with an amount after > 0.
* A donor is **loyal** at a time when an active mandate's tenure, counted in whole calendar
  months from ``mandate_started_at``, has reached ``loyalty.min_tenure_months`` by then
  (:func:`loyal_from`).
* A **churn** is ``cancelled``, ``paused``, ``reversed``, or ``downgraded`` to a lower amount;
  a **loyal churn** is the churn of a monthly mandate (amount before > 0) of a donor loyal by
  the churn itself.
* The **monthly amount lost** is the amount before (after minus before for a downgrade),
  a quarterly amount divided by 3 and a yearly one by 12, rounded to whole cents.
"""

from __future__ import annotations

from typing import Final

from relmon.domain.events import DonationChangeEvent
from relmon.domain.facts import DONATION_ACTION, MONTHLY, MandateStatus
from relmon.domain.rules import add_months

ACTIVE: Final = frozenset({"started", "upgraded", "downgraded", "resumed", "payment_failed"})
ENDING: Final = frozenset({"cancelled", "paused", "reversed"})
_ACTIVE_CODES: Final = frozenset(DONATION_ACTION[a] for a in ACTIVE)
# periods per month, to turn a quarterly or yearly amount into a monthly one
PER_MONTH: Final = {"monthly": 1.0, "quarterly": 1 / 3, "yearly": 1 / 12}


def loyal_from(started: int, tenure_months: int) -> int:
    """When a mandate started at ``started`` makes its donor loyal (epoch seconds)."""
    return add_months(started, tenure_months)


def leaves_active(ev: DonationChangeEvent) -> bool:
    """Whether the mandate is active after this change."""
    return ev.action in ACTIVE and ev.frequency == "monthly" and ev.amount_cents_after > 0


def is_active(status: MandateStatus) -> bool:
    """:func:`leaves_active` of the change a stored mandate status came from."""
    return status.action in _ACTIVE_CODES and status.frequency == MONTHLY and status.amount > 0


def is_downgrade(ev: DonationChangeEvent) -> bool:
    return ev.action == "downgraded" and ev.amount_cents_after < ev.amount_cents_before


def is_churn(ev: DonationChangeEvent) -> bool:
    """A churn: cancelled, paused, reversed, or downgraded to a lower amount."""
    return ev.action in ENDING or is_downgrade(ev)


def is_loyal_churn(ev: DonationChangeEvent, t: int, loyal_at: int) -> bool:
    """A churn of a monthly mandate of a donor loyal by the churn itself (at ``t``), where
    ``loyal_at`` is the mandate's :func:`loyal_from`."""
    return (
        is_churn(ev) and ev.frequency == "monthly" and ev.amount_cents_before > 0 and loyal_at <= t
    )


def monthly_amount_lost(action: str, frequency: str, before: int, after: int) -> int:
    """The monthly amount a churn loses, in cents (see the module docstring)."""
    lost = before - after if action == "downgraded" else before
    return round(lost * PER_MONTH.get(frequency, 0.0))
