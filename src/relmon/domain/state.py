"""One supporter's state: a bounded set of facts, a clock, and the last decision emitted.

Modelling choices:

* The state holds *facts* (see :mod:`relmon.domain.facts` for their shapes), never scores:
  scores and decisions are pure functions of (facts, as-of time), computed by
  :mod:`relmon.domain.scoring` and :mod:`relmon.domain.decide`.
* ``clock`` is the latest event time seen (or expiry time passed to ``Engine.expire``).
  ``wake`` is the earliest time at which the decision can change by time alone (a reason's
  ``until``, or the day a mandate's tenure makes the donor loyal while the irritation risk
  is above the loyal threshold); ``next_change_at`` exposes it.
* Copy-on-write: the engine never mutates a state it was given. :meth:`copy` shares the
  fact lists, and a list is replaced (not mutated) when it changes, so an update costs only
  what it touches.
* Duplicates are recognised by the event ids the retained facts carry (``event_ids``). An
  event that leaves no fact only moves the clock, which its duplicate cannot move again, so
  it needs no memory; a fact that was forgotten (too old, see retention in the policy) is
  also refused when it comes again, because the same age rule applies on arrival (and the
  engine reports it as ``late``, like any event too old to keep). No
  separate ring of ids is kept, which keeps the state small.
* ``to_bytes`` is compact and fast: a format byte, then orjson of the fact tuples as they
  are (epoch-second ints, small-int codes, the strings once per fact). Above 1000 bytes the
  JSON is zlib-compressed (level 1, format byte 2): ids such as UUIDs dominate big states and
  compress to about half. Caches (fatigue items, the id set) are not written.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from relmon.domain.facts import Call, Churn, Consent, Contribution, MandateStatus, Stamp
from relmon.errors import RelmonError

# The first byte says how the rest is written: orjson, or zlib-compressed orjson.
_PLAIN = b"\x01"
_ZLIB = b"\x02"
COMPRESS_ABOVE: Final = 1000
FOLD_IDS: Final = 8  # ids added to a state are folded into its id set by this many

# a time after any other; below 2**62, so compiled it is a short int, compared unboxed
NEVER: Final = 1 << 61

RecordKey = tuple[bool, tuple[tuple[str, int | None, str | int], ...], int | None]


class SupporterState:
    """Facts about one supporter; see the module docstring."""

    __slots__ = (
        "_consent",
        "_eids",
        "_eids_bits",
        "_eids_new",
        "_f_fold",
        "_fatigue",
        "_i_fold",
        "_loyal",
        "calls",
        "churns",
        "clock",
        "consents",
        "emails",
        "irritation",
        "last",
        "last_at",
        "last_cause",
        "mandates",
        "markers",
        "prune_at",
        "supporter_id",
        "wake",
        "zone",
    )

    def __init__(self, supporter_id: str, source: SupporterState | None = None) -> None:
        if source is not None:
            self._copy_of(source)
            return
        self.supporter_id = supporter_id
        self.clock = 0
        self.wake: int | None = None
        self.calls: list[Call] = []
        self.irritation: list[Contribution] = []
        self.emails: list[Stamp] = []
        self.markers: tuple[list[Stamp], ...] = ([], [], [], [])
        self.consents: list[Consent] = []
        self.mandates: list[MandateStatus] = []
        self.churns: list[Churn] = []
        # the last emitted record: its key, decided_at and cause event id
        self.last: RecordKey | None = None
        self.last_at = 0
        self.last_cause: str | None = None
        # (t, IANA name) of the latest event that carried `supporter_timezone` (calling.py)
        self.zone: tuple[int, str] | None = None
        # Caches, not serialized. Each has one owner, the only module that reads or writes
        # it; each is keyed by the identity of the fact lists it was derived from (lists are
        # replaced, never changed), so none needs invalidating elsewhere.
        # relmon.domain.state: the event ids of the retained facts (duplicates)
        self._eids: frozenset[str] | None = None
        self._eids_new: tuple[str, ...] = ()  # ids added since the set was made
        self._eids_bits = 0  # bit hash(id) % 32 of each id in _eids_new: most misses, no scan
        # relmon.domain.scoring: fatigue items (a FatigueCache), the score folds (Fold)
        self._fatigue: Any = None
        self._f_fold: Any = None
        self._i_fold: Any = None
        # relmon.domain.decide: consent reasons, loyalty onset (ConsentCache, LoyaltyCache)
        self._consent: Any = None
        self._loyal: Any = None
        # a time at or before which the oldest fact expires (the engine then forgets);
        # no facts yet, so never (a state read from bytes starts at "now": see from_bytes)
        self.prune_at = NEVER

    @property
    def next_change_at(self) -> datetime | None:
        """The earliest time at which the decision can change by time alone, or None."""
        return None if self.wake is None else datetime.fromtimestamp(self.wake, UTC)

    def copy(self) -> SupporterState:
        """A shallow copy: the fact lists are shared until one side replaces one."""
        return SupporterState(self.supporter_id, self)

    def _copy_of(self, source: SupporterState) -> None:
        self.supporter_id = source.supporter_id
        self.clock = source.clock
        self.wake = source.wake
        self.calls = source.calls
        self.irritation = source.irritation
        self.emails = source.emails
        self.markers = source.markers
        self.consents = source.consents
        self.mandates = source.mandates
        self.churns = source.churns
        self.last = source.last
        self.last_at = source.last_at
        self.last_cause = source.last_cause
        self.zone = source.zone
        self._fatigue = source._fatigue
        self._f_fold = source._f_fold
        self._i_fold = source._i_fold
        self._consent = source._consent
        self._loyal = source._loyal
        self.prune_at = source.prune_at
        # the id set and the ids added since are shared: neither is ever changed
        self._eids = source._eids
        self._eids_new = source._eids_new
        self._eids_bits = source._eids_bits

    def fact_lists(self) -> tuple[list[Any], ...]:
        return (
            self.calls,
            self.irritation,
            self.emails,
            *self.markers,
            self.consents,
            self.mandates,
            self.churns,
        )

    def has_event(self, event_id: str) -> bool:
        """Whether a retained fact carries ``event_id`` (the engine's duplicate check).

        The id set answers "no" exactly and fast (most events are new). It may still hold
        the ids of facts forgotten since it was made (the engine drops old facts without
        remaking it: that cost O(facts) about every third event of a long replay), so a
        "yes", which is rare (a redelivered event), is confirmed against the facts. The ids
        added since the set was made are looked through only when the id's bit is set in
        ``_eids_bits`` (one bit an id, by hash): most new ids skip that scan.
        """
        eids = self._eids
        if eids is None:
            eids = self._eids = self.event_ids()
            self._eids_new, self._eids_bits = (), 0
        if event_id in eids or (
            self._eids_bits >> (hash(event_id) & 31) & 1 and event_id in self._eids_new
        ):
            return any(fact.eid == event_id for facts in self.fact_lists() for fact in facts)
        return False

    def event_ids(self) -> frozenset[str]:
        """The event ids of every retained fact (read from the facts)."""
        return frozenset([fact.eid for facts in self.fact_lists() for fact in facts])

    def add_event_id(self, event_id: str) -> None:
        """Note the id of an event that left a fact (on a copy owned by the engine).

        The id set is shared by the copies of a state and never changed: a new id goes into
        a short tuple of its own (copies share it too, and adding makes a new one; looked
        through with ``in``, exact like the set, and cheaper to make than a small set),
        folded into a new whole set every :data:`FOLD_IDS` ids. (Copying the whole set for
        every id added cost O(facts) per e-mail sent.) The set is made again from the facts
        when it holds many more ids than there are facts (forgotten ones).
        """
        if self._eids is None:
            return  # made from the facts, this event's among them, when next needed
        added = self._eids_new + (event_id,)  # noqa: RUF005 (compiled: one concat, no list)
        if len(added) < FOLD_IDS:
            self._eids_new = added
            self._eids_bits |= 1 << (hash(event_id) & 31)
        elif len(self._eids) > 2 * sum(map(len, self.fact_lists())) + 4 * FOLD_IDS:
            self._eids, self._eids_new, self._eids_bits = None, (), 0
        else:
            self._eids = self._eids.union(added)
            self._eids_new, self._eids_bits = (), 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SupporterState):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _COPIED)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(f)}" for f in self.fact_lists())
        return f"SupporterState({self.supporter_id!r}, clock={self.clock}, facts=[{counts}])"

    # -- serialization -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The compact serialized form (see the module docstring)."""
        doc = (
            self.supporter_id,
            self.clock,
            self.wake,
            self.calls,
            self.irritation,
            self.emails,
            self.markers,
            self.consents,
            self.mandates,
            self.churns,
            self.last,
            self.last_at,
            self.last_cause,
        )
        # the zone is written only when known: other states keep their bytes
        raw = orjson.dumps(doc if self.zone is None else (*doc, self.zone), default=_as_tuple)
        if len(raw) <= COMPRESS_ABOVE:
            return _PLAIN + raw
        return _ZLIB + zlib.compress(raw, 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> SupporterState:
        """Read what :meth:`to_bytes` wrote."""
        head = data[:1]
        if head == _PLAIN:
            doc = orjson.loads(data[1:])
        elif head == _ZLIB:
            doc = orjson.loads(zlib.decompress(data[1:]))
        else:
            raise RelmonError(f"supporter state: unknown format {head!r}")
        st = cls(doc[0])
        st.clock, st.wake = doc[1], doc[2]
        st.calls = [Call._make(f) for f in doc[3]]
        st.irritation = [Contribution._make(f) for f in doc[4]]
        st.emails = [Stamp._make(f) for f in doc[5]]
        st.markers = tuple([Stamp._make(f) for f in m] for m in doc[6])
        st.consents = [Consent._make(f) for f in doc[7]]
        st.mandates = [MandateStatus._make(f) for f in doc[8]]
        st.churns = [Churn._make(f) for f in doc[9]]
        last = doc[10]
        if last is not None:
            st.last = (last[0], tuple(tuple(x) for x in last[1]), last[2])
        st.last_at, st.last_cause = doc[11], doc[12]
        if len(doc) > 13 and doc[13] is not None:  # states written before zones have 13
            st.zone = (doc[13][0], doc[13][1])
        st.prune_at = -NEVER  # unknown here: the engine forgets and recomputes it
        return st


def _as_tuple(value: object) -> tuple[Any, ...]:
    """orjson writes plain tuples; facts are named tuples: written as the same arrays."""
    if isinstance(value, tuple):
        return tuple(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


_COPIED = (
    "supporter_id",
    "clock",
    "wake",
    "calls",
    "irritation",
    "emails",
    "markers",
    "consents",
    "mandates",
    "churns",
    "last",
    "last_at",
    "last_cause",
    "zone",
)
