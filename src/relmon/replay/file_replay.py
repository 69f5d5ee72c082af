"""``relmon replay --input FILE.jsonl [--input FILE.jsonl ...] --out DIR``: the engine over
JSONL files, in event time.

What is written to ``DIR``:

* ``suppressions.jsonl``: every suppression record, in the order emitted;
* ``alerts.jsonl``: every alert;
* ``dead_letters.jsonl``: first each bad line, input by input (in the order given) and line by
  line, with its line number and error (``source`` is the input path, ``partition``/``offset``
  are null); then each late event (``kind: "late"``: valid, but too old to change anything),
  in the order applied;
* ``summary.json``: the counts below and the policy version (no timings, so two replays of
  the same input are byte-identical, all five files);
* ``report.html``: the analysts' report (:mod:`relmon.replay.report`), self-contained.

Event-time order (:class:`EventTimeMerge`). The engine keeps bounded state per supporter and
judges a fact against the supporter's latest event, so the order of application matters. The
inputs' valid events are applied in the order of the total key ``(occurred_at as an instant,
event_id, the raw line bytes)``: any split, concatenation or shuffle of the same lines gives
the same order, hence the same decisions and alert ids. Each input is first taken to be in
time order and streamed (events with the same instant are sorted among themselves, in a small
buffer). When a line goes back in time, the replay stops, says so on stderr, and starts
again from the start with that input read whole and sorted in memory: its lines' bytes plus
about 250 bytes a line (a 1 GB export of 3 million events needs about 2 GB); every output
file is written again from its start. An input in time order (what ``relmon simulate``, a
topic export or a log gives) is read once; one out of order costs the replay up to its first
step back once more. (``relmon backfill``, which cannot take back what it produced, reads
each input's ``occurred_at`` first instead: :meth:`EventTimeMerge.check`.) The inputs are
merged with :func:`heapq.merge`.

With ``compare`` (``--compare-policy``) a second engine under the other policy sees the same
events; only what :mod:`relmon.replay.whatif` needs is kept of its outputs, and the report
gets a what-if section.

Replay time is event time. The replay keeps a watermark, the latest ``occurred_at`` read so
far; before applying an event that moves it forward, every supporter whose decision changes
by time alone at or before the new watermark is re-decided at exactly that time (a lift,
``decided_at`` = the expiry time). Nothing expires after the last event of the input.

Supporter by supporter. The merged events are applied :data:`CHUNK` at a time, each
supporter's events of the chunk together (:meth:`Replayer.apply_chunk`): a supporter's state
then stays in the CPU's caches from one of its events to the next. On a simulated year
(23,000 supporters, a million events) the engine alone took 4.8-5.3 s instead of 6.9-7.2 s
in time order (chunks of 100,000), at the price of the chunk held in memory; chunks of
300,000 made the whole replay another 4 % faster than 200,000 for 115 MB more (BENCHMARKS.md
has the figures). The driver is :class:`relmon.domain.batch.EventTime`. Each supporter sees
its events, and its expiries, exactly as in the one-by-one order above, and
every output is emitted in that order: the files are byte-identical
(``tests/component/test_replay_chunks.py``).

Over processes. With ``jobs`` > 1 (``relmon replay --jobs N``) the replay
is split by supporter over that many processes, and their outputs merged in the same order:
:mod:`relmon.replay.sharded`.

Blank lines are skipped and counted; every other line that cannot be decoded or validated
becomes a dead letter, and the replay goes on.
"""

from __future__ import annotations

import base64
import gc
import heapq
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol

import orjson
from tqdm import tqdm

from relmon.domain import (
    Alert,
    DeadLetter,
    Engine,
    Policy,
    SupporterState,
    SuppressionRecord,
    encode_alert,
    encode_dead_letter,
    encode_record,
    parse_event,
)
from relmon.domain.batch import Chunk, EventTime
from relmon.domain.decoding import Item as Item  # re-exported: the merge item, as the tests name it
from relmon.domain.decoding import LineDecoder, shard_of
from relmon.domain.events import Event as Event  # re-exported: the replay modules import it here
from relmon.domain.events import encode_event
from relmon.domain.rules import instant
from relmon.errors import InputFileError, InvalidEvent

if TYPE_CHECKING:
    from relmon.replay.whatif import Outcome as WhatIf

Sink = Callable[[bytes], object]


class Observer(Protocol):
    """Sees every valid event (before the engine, with its epoch second ``t``), and every
    record and alert emitted.

    ``event`` is called at least for the event types in ``event_types`` (None: every type;
    empty: none), and must count any other it is given; the events it is not given are
    counted, by type, through ``skipped``. A file replay gives ``event`` only those types
    and calls ``skipped`` once a chunk (most events of a replay are e-mails, which the
    report only counts: one Python call less for each); :meth:`Replayer.apply_at` gives
    every event to an observer that wants any.
    """

    @property
    def event_types(self) -> frozenset[str] | None: ...

    def event(self, event: Event, t: int) -> None: ...

    def skipped(self, counts: dict[str, int]) -> None: ...

    def records(self, records: list[SuppressionRecord]) -> None: ...

    def alerts(self, alerts: list[Alert]) -> None: ...


_NEVER = float("inf")  # before any time: the order check starts at -_NEVER
CHUNK = 300_000  # items a file replay applies supporter by supporter (~1.2 KB each held)


def _event_hook(
    observer: Observer | None,
) -> tuple[Callable[[Event, int], None] | None, frozenset[str] | None]:
    """What the replay calls for each event, and for which types: the one observer that
    wants events, called directly (not through :class:`Observers`), or None when none
    does."""
    if observer is None:
        return None, frozenset()
    if isinstance(observer, Observers):
        return observer.event_hook()
    types = observer.event_types
    return (None if types is not None and not types else observer.event), types


@dataclass
class ReplayStats:
    """Counts of one replay (``seconds`` is wall time, reported but never written)."""

    lines: int = 0
    blank: int = 0
    valid: int = 0
    applied: int = 0  # valid events that were not late
    late: int = 0  # valid events too old to change anything (dead letters of kind "late")
    dead_letters: int = 0  # lines or messages that could not be decoded or validated
    records: int = 0
    alerts: int = 0
    supporters: int = 0
    policy_version: str = ""
    seconds: float = field(default=0.0, compare=False)

    @property
    def events_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, object]:
        data = asdict(self)
        del data["seconds"]
        return data


class Replayer:
    """Feeds lines through parse → engine, keeps the states and the event-time expiries."""

    def __init__(
        self,
        policy: Policy,
        source: str,
        records: Sink | None,
        alerts: Sink | None,
        dead: Sink | None,
        *,
        observer: Observer | None = None,
        late: Sink | None = None,
    ) -> None:
        """``None`` for a sink means: do not encode those outputs at all (a what-if run).

        Late events go to ``late`` when given, else to ``dead`` with the other dead letters.
        """
        self.engine = Engine(policy)
        self.policy_version = policy.version
        self.source = source
        self.states: dict[str, SupporterState] = {}
        self.stats = ReplayStats(policy_version=policy.version)
        self._records, self._alerts, self._dead = records, alerts, dead
        self._late = dead if late is None else late
        self._clock = EventTime(self.engine, self.states)  # the watermark and the expiries
        self.observer = observer
        self._see_event, self._see_types = _event_hook(observer)
        self.first_at: int | None = None  # earliest and latest valid event time
        self.last_at: int | None = None
        self.first_error: str | None = None

    def feed(self, line: bytes, number: int) -> Event | None:
        """Process one input line (``number`` counts from 1); the event, if it was valid."""
        stats = self.stats
        stats.lines += 1
        try:
            event = parse_event(line)
        except InvalidEvent as exc:
            if not line.strip():
                stats.blank += 1
                return None
            self.dead_letter(line, exc, line=number)
            return None
        self.apply(event)
        return event

    def apply(
        self,
        event: Event,
        raw: bytes | None = None,
        *,
        line: int | None = None,
        source: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Apply one valid event (expiring first what its time passes).

        ``raw`` and where it came from (``line`` of ``source``, or a Kafka ``source`` topic with
        ``partition`` and ``offset``) name the event in its dead letter should it be late;
        ``timestamp`` is ``event.occurred_at.timestamp()`` when the caller has it already.
        """
        t = int(instant(event.occurred_at) if timestamp is None else timestamp)
        self.apply_at(event, t, raw, line, source, partition, offset)

    def apply_at(
        self,
        event: Event,
        t: int,
        raw: bytes | None = None,
        line: int | None = None,
        source: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        """:meth:`apply` for a caller that knows the event's epoch second ``t`` already (the
        file replay's merge has it in its sort key): positional, and no ``timestamp()``.

        Run once an event, so it reads as few attributes as it can: an e-mail that changes
        no decision costs this method, the engine, and the report's event hook.
        """
        stats, clock = self.stats, self._clock
        stats.valid += 1
        if t > clock.watermark:  # the watermark is the latest time so far: last_at
            if t >= clock.next_due:
                expired: list[SuppressionRecord] = []
                clock.expire_until(t, expired)
                if expired:
                    self._emit_records(expired)
            clock.watermark = self.last_at = t
        first = self.first_at
        if first is None or t < first:
            self.first_at = t
        see = self._see_event
        if see is not None:  # one at a time, every event: cheaper than counting it apart
            see(event, t)
        elif self.observer is not None:
            self.observer.skipped({event.type: 1})
        sid = event.supporter_id
        states = self.states
        state = states.get(sid)
        outcome = self.engine.apply(state, event, t)
        new, records, alerts, late = outcome.state, outcome.records, outcome.alerts, outcome.late
        if late is None:
            stats.applied += 1
        else:
            self._late_letter(event, late, raw, line, source, partition, offset)
        if new is not state:
            states[sid] = new
            if state is None:
                stats.supporters += 1
                clock.note(sid, new.wake)
            elif new.wake != state.wake:
                clock.note(sid, new.wake)
        if records:
            self._emit_records(records)
        if alerts:
            self._emit_alerts(alerts)

    def apply_chunk(
        self, chunk: Sequence[Item], sources: Sequence[str] | None = None, *, keyed: bool = False
    ) -> Chunk:
        """Apply a run of merged items (in merge order) supporter by supporter, and emit
        what they give in exactly the order, and with exactly the content, that
        :meth:`apply_at` gives applying them one by one (``sources``: the inputs' names,
        for late events' dead letters; None: no raw line is kept). The domain's
        :meth:`~relmon.domain.batch.EventTime.apply_chunk` does the work, and says why;
        what it gave is returned (with ``keyed``, with the outputs' merge keys).
        """
        stats, clock = self.stats, self._clock
        done = clock.apply_chunk(chunk, self._see_event, self._see_types, keyed)
        if not chunk:
            return done
        if done.skipped and self.observer is not None:
            self.observer.skipped(done.skipped)
        stats.valid += len(chunk)
        stats.applied += len(chunk) - len(done.late)
        stats.supporters += done.new_supporters
        first = int(chunk[0][0])
        if self.first_at is None or first < self.first_at:
            self.first_at = first
        self.last_at = clock.watermark
        for p, reason in done.late:
            item = chunk[p]
            raw, line, source = (
                (None, None, None) if sources is None else (item[2], item[4], sources[item[3]])
            )
            self._late_letter(item[5], reason, raw, line, source, None, None)
        if done.records:
            self._emit_records(done.records)
        if done.alerts:
            self._emit_alerts(done.alerts)
        return done

    def _emit_records(self, records: list[SuppressionRecord]) -> None:
        self.stats.records += len(records)
        sink = self._records
        if sink is not None:
            for record in records:
                sink(encode_record(record))
        if self.observer is not None:
            self.observer.records(records)

    def _emit_alerts(self, alerts: list[Alert]) -> None:
        self.stats.alerts += len(alerts)
        sink = self._alerts
        if sink is not None:
            for alert in alerts:
                sink(encode_alert(alert))
        if self.observer is not None:
            self.observer.alerts(alerts)

    def _late_letter(
        self,
        event: Event,
        reason: str,
        raw: bytes | None,
        line: int | None,
        source: str | None,
        partition: int | None,
        offset: int | None,
    ) -> None:
        """Count a late event and write its dead letter (kind ``late``, the engine's reason)."""
        self.stats.late += 1
        if self._late is None:
            return
        if raw is None:
            raw = encode_event(event)
        letter = DeadLetter(
            error=f"late event, no effect: {reason}",
            kind="late",
            field="occurred_at",
            source=self.source if source is None else source,
            partition=partition,
            offset=offset,
            line=line,
            original_base64=base64.b64encode(raw).decode("ascii"),
            policy_version=self.policy_version,
        )
        self._late(encode_dead_letter(letter))

    def dead_letter(
        self,
        raw: bytes,
        exc: InvalidEvent,
        *,
        line: int | None = None,
        source: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        sink: Sink | None = None,
    ) -> None:
        """Write one dead letter: a file line (``line``, of ``source`` when given) or a Kafka
        message (``source`` is then its topic, with ``partition`` and ``offset``, as the
        worker writes them); to ``sink`` instead of the dead-letter sink when given."""
        self.stats.dead_letters += 1
        if self.first_error is None:
            if line is not None:
                where = f"line {line}" if source in (None, self.source) else f"{source} line {line}"
            else:
                where = f"{source}[{partition}]@{offset}"
            self.first_error = f"{where}: {exc}"
        out = self._dead if sink is None else sink
        if out is None:
            return
        letter = DeadLetter(
            error=str(exc),
            kind=exc.kind,
            field=exc.field,
            source=self.source if source is None else source,
            partition=partition,
            offset=offset,
            line=line,
            original_base64=base64.b64encode(raw).decode("ascii"),
            policy_version=self.policy_version,
        )
        out(encode_dead_letter(letter))


@contextmanager
def fewer_gc_passes(*, off: bool = False) -> Iterator[None]:
    """Let the cyclic garbage collector run far less often while replaying, or (``off``)
    not at all.

    A replay holds one state per supporter: hundreds of thousands of small tuples and lists
    that never form cycles (reference counting frees them). With the default thresholds the
    collector walks them again and again and costs about a third of the replay's time; a
    gen-0 threshold of 100,000 makes that small, but the passes that remain still cost:
    switched off, a file replay's loop takes about 15 % less CPU
    (200,000 events of the simulated year, four runs each, alternating). A file replay
    makes almost no cycles (29 objects found by a collection after 200,000 events, the same
    after 15,000 bad lines), so nothing piles up; a Kafka replay (the client's futures and
    tasks) keeps the collector on. Restored on exit, after moving what is alive then to the
    permanent generation (:func:`gc.freeze`): else the collector soon walks every state once
    more (about a second a million events), and they hold no cycles (reference counting
    still frees them).
    """
    before, enabled = gc.get_threshold(), gc.isenabled()
    if off:
        gc.disable()
    else:
        gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*before)
        if enabled:
            gc.enable()


def read_lines(path: Path) -> Iterable[bytes]:
    """The lines of ``path`` without their line ends."""
    with path.open("rb") as handle:
        for line in handle:
            yield line.rstrip(b"\r\n")


BadLine = Callable[[int, int, bytes, InvalidEvent], None]


class OutOfOrderError(InputFileError):
    """An input checked as in time order went back in time after all (it was changed
    between the check and the stream)."""


class StepBack(Exception):  # noqa: N818 (control flow of the replay, not an error)
    """An input streamed on trust (:meth:`EventTimeMerge.check` with ``scan=False``) went
    back in time at ``line``: the replay starts again with that input sorted
    (:meth:`EventTimeMerge.sorting`)."""

    def __init__(self, index: int, line: int) -> None:
        super().__init__(f"input {index + 1} goes back in time at line {line}")
        self.index, self.line = index, line


class EventTimeMerge:
    """The valid events of several JSONL inputs, in event time (see the module docstring).

    :meth:`check` the inputs first (it raises :class:`InputFileError` for a missing, empty or
    binary one), then iterate once. Blank lines are counted (``blank``); every other line that
    cannot be decoded or validated goes to ``on_bad(input index, line number, bytes, error)``,
    in line order within an input. ``lines`` and ``bytes_read`` grow as the inputs are read.
    """

    def __init__(
        self, paths: Sequence[str | Path], on_bad: BadLine, shard: int = 0, shards: int = 1
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.on_bad = on_bad
        # only the lines of this shard (relmon.domain.decoding.shard_of); all are counted
        self.shard, self.shards = shard, shards
        self.in_order: list[bool] = []
        self.trusted = False  # streamed inputs were not scanned: a step back raises StepBack
        self.sizes: list[int] = []
        self.lines = 0
        self.blank = 0
        self.bytes_read = 0

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def check(self, *, scan: bool = True) -> list[bool]:
        """Check every input is a readable text file; per input, whether it is in time order.

        With ``scan=False`` the inputs are not read for their order: each is taken to be in
        time order and streamed, and the first line that goes back in time raises
        :class:`StepBack` (the caller starts again with :meth:`sorting`). A replay does
        this: it saves a pass over every input in time order (a tenth of a replay's time),
        and pays for an input out of order with the work done up to its first step back.
        A backfill, which cannot take back what it produced, scans first.
        """
        self.trusted = not scan
        for path in self._distinct():
            self.sizes.append(_checked_size(path))
            self.in_order.append(self._in_time_order(path) if scan else True)
        return self.in_order

    def _distinct(self) -> list[Path]:
        """The inputs, after checking that there is one and none is given twice."""
        if not self.paths:
            raise InputFileError("no input file given")
        seen: dict[Path, int] = {}
        for i, path in enumerate(self.paths):
            key = path.resolve()
            if key in seen:
                raise InputFileError(
                    f"{path}: given twice (inputs {seen[key] + 1} and {i + 1}); each file once"
                )
            seen[key] = i
        return self.paths

    def sorting(self, index: int) -> EventTimeMerge:
        """A new merge of the same inputs, from the start, with input ``index`` read whole
        and sorted (after it raised :class:`StepBack`); the others as before."""
        again = self.part(self.shard, self.shards, self.on_bad)
        again.in_order[index] = False
        return again

    def part(self, shard: int, shards: int, on_bad: BadLine) -> EventTimeMerge:
        """A new merge of the same inputs, from the start, as checked already, of the lines
        of shard ``shard`` of ``shards`` (a replay split by supporter), bad ones to
        ``on_bad``."""
        again = EventTimeMerge(self.paths, on_bad, shard, shards)
        again.trusted = self.trusted
        again.sizes = list(self.sizes)
        again.in_order = list(self.in_order)
        return again

    @staticmethod
    def _in_time_order(path: Path) -> bool:
        """Whether the ``occurred_at`` of the file's lines never goes back (lines without one
        are ignored); stops at the first step back.

        Python's ISO parser reads every RFC 3339 form the validator accepts (``t``/``z`` once
        upper-cased), so for a valid event this is the instant :func:`parse_event` gives. A
        key given twice counts as its last value here as in :func:`parse_event`. Should a
        file change between this pass and the stream, the stream stops with
        :class:`OutOfOrderError` at the first step back.
        """
        loads, decode_error, parse = orjson.loads, orjson.JSONDecodeError, datetime.fromisoformat
        last = -_NEVER
        last_text = None
        try:
            with path.open("rb") as handle:
                for line in handle:
                    try:
                        value = loads(line)["occurred_at"]
                    except (decode_error, TypeError, KeyError):
                        continue
                    if value == last_text and type(value) is str:
                        continue
                    try:
                        d = parse(value.upper())
                    except (TypeError, AttributeError, ValueError):
                        continue
                    if d.tzinfo is None:  # without an offset it is not a valid event
                        continue
                    t = d.timestamp()
                    if t < last:
                        return False
                    last, last_text = t, value
        except OSError as exc:
            raise InputFileError(f"{path}: read failed: {exc.strerror or exc}") from None
        return True

    def __iter__(self) -> Iterator[Item]:
        if len(self.in_order) != len(self.paths):
            self.check()
        streams = [
            self._stream(i) if ordered else self._sorted(i)
            for i, ordered in enumerate(self.in_order)
        ]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams)

    def runs(self) -> Iterator[list[Item]]:
        """The merged items, as :meth:`__iter__` gives them, in runs of consecutive items: a
        replay takes them a run at a time, one step of Python a run instead of an item. An
        input streamed alone comes in its decoder's runs (about a MiB of lines each)."""
        if len(self.in_order) != len(self.paths):
            self.check()
        if self.in_order == [True]:
            yield from self._runs(0)
            return
        items = iter(self)
        while run := list(islice(items, 4096)):
            yield run

    def _lines(self, index: int) -> Iterator[tuple[int, bytes, Event]]:
        """(line number, bytes, event) of each valid line of one input, in file order."""
        path = self.paths[index]
        shard, shards = self.shard, self.shards
        try:
            with path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    self.lines += 1
                    self.bytes_read += len(line)
                    line = line.rstrip(b"\r\n")
                    if shards > 1 and shard_of(line, shards) != shard:
                        continue
                    try:
                        event = parse_event(line)
                    except InvalidEvent as exc:
                        if line.strip():
                            self.on_bad(index, number, line, exc)
                        else:
                            self.blank += 1
                        continue
                    yield number, line, event
        except OSError as exc:
            raise InputFileError(f"{path}: read failed: {exc.strerror or exc}") from None

    def _stream(self, index: int) -> Iterator[Item]:
        """An input in time order, streamed; events of one instant sorted among themselves."""
        for run in self._runs(index):
            yield from run

    def _runs(self, index: int) -> Iterator[list[Item]]:
        """:meth:`_stream`'s items, a run at a time.

        The lines are read a MiB at a time and decoded by the compiled
        :class:`~relmon.domain.decoding.LineDecoder`; the bad lines go to ``on_bad`` and
        the counts (for the progress bar) are brought up to date after each run.
        """
        path = self.paths[index]
        decoder = LineDecoder(index, self.shard, self.shards)
        lines = blank = read = 0
        try:
            with path.open("rb") as handle:
                while run := handle.readlines(1 << 20):
                    ready = decoder.feed(run)
                    self.lines += decoder.lines - lines
                    self.blank += decoder.blank - blank
                    self.bytes_read += decoder.bytes_read - read
                    lines, blank, read = decoder.lines, decoder.blank, decoder.bytes_read
                    for number, line, exc in decoder.bad:
                        self.on_bad(index, number, line, exc)
                    decoder.bad.clear()
                    if decoder.back:
                        if self.trusted:
                            raise StepBack(index, decoder.back)
                        raise OutOfOrderError(
                            f"{path} line {decoder.back}: goes back in time although the order "
                            "check found the file in time order: was it changed meanwhile?"
                        )
                    if ready:
                        yield ready
        except OSError as exc:
            raise InputFileError(f"{path}: read failed: {exc.strerror or exc}") from None
        last = decoder.finish()
        if last:
            yield last

    def _sorted(self, index: int) -> Iterator[Item]:
        """An input out of time order: read whole (bytes and key, not the parsed events), sort,
        then decode each line again as it is applied."""
        keyed = [
            (instant(e.occurred_at), e.event_id, line, index, n)
            for n, line, e in self._lines(index)
        ]
        keyed.sort(reverse=True)  # popped from the end: memory is freed as the replay goes
        while keyed:
            t, event_id, line, i, n = keyed.pop()
            yield t, event_id, line, i, n, parse_event(line)


def _checked_size(path: Path) -> int:
    """The size of an input, after checking it is a non-empty readable text file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if not path.is_file():
        raise InputFileError(f"{path}: not a file")
    if size == 0:
        raise InputFileError(f"{path}: the file is empty")
    check_text(path)
    return size


class Observers:
    """Passes every observation on to several observers, in order."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers
        # the observers that want some events (the what-if tally wants none)
        self._wanting = [o for o in observers if o.event_types is None or o.event_types]
        kinds = [o.event_types for o in self._wanting]
        self.event_types: frozenset[str] | None = (
            None if None in kinds else frozenset().union(*(k for k in kinds if k is not None))
        )

    def event(self, event: Event, t: int) -> None:
        for o in self._wanting:
            if o.event_types is None or event.type in o.event_types:
                o.event(event, t)
            else:
                o.skipped({event.type: 1})

    def skipped(self, counts: dict[str, int]) -> None:
        for o in self.observers:
            o.skipped(counts)

    def event_hook(
        self,
    ) -> tuple[Callable[[Event, int], None] | None, frozenset[str] | None]:
        """The one observer's ``event`` and types when only one wants events (the
        report's, in a replay), else :meth:`event` and the union; None when none does."""
        if not self._wanting:
            return None, frozenset()
        if len(self._wanting) == 1:
            return self._wanting[0].event, self._wanting[0].event_types
        return self.event, self.event_types

    def records(self, records: list[SuppressionRecord]) -> None:
        for o in self.observers:
            o.records(records)

    def alerts(self, alerts: list[Alert]) -> None:
        for o in self.observers:
            o.alerts(alerts)


@dataclass(frozen=True)
class PolicyChoice:
    """A policy and how the report names it (``A: default``, ``B: strict.toml``)."""

    label: str
    policy: Policy


class Session:
    """One replay into ``out``: the files, the analysis, and the what-if engine if any.

    Use as a context manager; feed lines (:meth:`feed`), parsed events (:meth:`apply`) or
    merged input lines (:meth:`apply_merged`, :meth:`bad_line`), then :meth:`finish`.

    With ``inputs`` (a file replay) the dead letters are kept in temporary files, one per
    input and one for the late events, and ``dead_letters.jsonl`` is assembled from them in
    that order by :meth:`finish`: the merge reads the inputs interleaved, the file does not.
    """

    def __init__(
        self,
        out: Path,
        primary: PolicyChoice,
        source: str,
        compare: PolicyChoice | None,
        *,
        inputs: Sequence[str] | None = None,
    ) -> None:
        from relmon.replay.report import Analysis
        from relmon.replay.whatif import Tally

        make_out_dir(out)
        self.out = out
        self.source = source
        self.inputs = list(inputs) if inputs is not None else []
        self._stack = ExitStack()
        self.analysis = Analysis(primary.policy)
        self.tallies = [Tally(primary.label, primary.policy)]
        if compare is not None:
            self.tallies.append(Tally(compare.label, compare.policy))
        records, alerts = (
            self._writer(self._stack.enter_context((out / name).open("wb")))
            for name in ("suppressions.jsonl", "alerts.jsonl")
        )
        self._spools: list[IO[bytes]] = []
        late: Sink | None = None
        if inputs is None:
            dead = self._writer(self._stack.enter_context((out / "dead_letters.jsonl").open("wb")))
        else:
            self._spools = [
                self._stack.enter_context(tempfile.TemporaryFile(prefix="relmon-dead-"))  # noqa: SIM115
                for _ in range(len(self.inputs) + 1)
            ]
            self._bad = [self._writer(spool) for spool in self._spools]
            dead, late = self._bad[0], self._bad[-1]
        self.primary = Replayer(
            primary.policy,
            source,
            records,
            alerts,
            dead,
            observer=Observers(self.analysis, self.tallies[0]),
            late=late,
        )
        self.other = (
            None
            if compare is None
            else Replayer(compare.policy, source, None, None, None, observer=self.tallies[1])
        )

    @staticmethod
    def _writer(handle: BinaryIO | IO[bytes]) -> Sink:
        write = handle.write
        return lambda b: write(b + b"\n")

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def feed(self, line: bytes, number: int) -> None:
        event = self.primary.feed(line, number)
        if event is not None and self.other is not None:
            self.other.apply(event)

    def apply(
        self,
        event: Event,
        t: int,
        raw: bytes | None = None,
        source: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        """Apply one event of a Kafka replay at its epoch second ``t`` (the read sorted by
        it already); ``raw``: the message's value, ``source``, ``partition``, ``offset``:
        where it was read, for a late event's dead letter."""
        self.primary.apply_at(event, t, raw, None, source, partition, offset)
        if self.other is not None:
            self.other.apply_at(event, t)

    def apply_merged(self, runs: Iterable[list[Item]], tick: Callable[[], object]) -> None:
        """Apply the merged input lines of a file replay, in their order, given in runs
        (:meth:`EventTimeMerge.runs`); ``tick()`` after each run (the progress bar).

        The items are applied :data:`CHUNK` at a time, supporter by supporter
        (:meth:`Replayer.apply_chunk`), by each engine (the what-if's too).
        """
        sources = self.inputs

        def apply(chunk: list[Item]) -> None:
            self.primary.apply_chunk(chunk, sources)
            if self.other is not None:
                self.other.apply_chunk(chunk)

        chunk: list[Item] = []
        for run in runs:
            chunk += run
            while len(chunk) >= CHUNK:
                apply(chunk[:CHUNK])
                del chunk[:CHUNK]
            tick()
        apply(chunk)

    def bad_line(self, index: int, number: int, raw: bytes, exc: InvalidEvent) -> None:
        """A line of input ``index`` that cannot be decoded or validated (a file replay)."""
        self.primary.dead_letter(
            raw, exc, line=number, source=self.inputs[index], sink=self._bad[index]
        )

    def _write_dead_letters(self) -> None:
        if not self._spools:
            return
        with (self.out / "dead_letters.jsonl").open("wb") as dead:
            for spool in self._spools:
                spool.seek(0)
                shutil.copyfileobj(spool, dead, 1 << 20)

    def finish(self, seconds: float) -> tuple[ReplayStats, list[WhatIf]]:
        """Close the files, write summary.json and report.html; the stats and the what-if."""
        from relmon.replay import report, whatif

        self._write_dead_letters()
        self._stack.close()
        stats = self.primary.stats
        stats.seconds = seconds
        (self.out / "summary.json").write_bytes(
            orjson.dumps(stats.counts(), option=orjson.OPT_INDENT_2) + b"\n"
        )
        replayer = self.primary
        self.analysis.finish(replayer.last_at if replayer.last_at is not None else 0)
        outcomes: list[WhatIf] = []
        extra: list[str] = [late_section(stats)]
        if self.other is not None:
            calls = self.analysis.call_index()
            outcomes = [whatif.outcome(t, calls, self.analysis.calls) for t in self.tallies]
            extra += whatif.html_section(outcomes)
        meta = report.ReportMeta(
            self.source, stats.policy_version, stats.counts(), replayer.first_at, replayer.last_at
        )
        report.write_report(self.out / "report.html", meta, self.analysis, extra)
        return stats, outcomes


def make_out_dir(out: Path) -> None:
    """Create the output folder (and its parents), or say why it cannot be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(
            f"{out}: cannot create the output directory: {exc.strerror or exc}"
        ) from None


def bytes_bar(total: int, desc: str, progress: bool) -> tqdm[Any]:
    """The progress bar of a pass over input files: bytes read of ``total``, on stderr
    (off unless ``progress``)."""
    return tqdm(
        total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, file=sys.stderr
    )


def late_text(stats: ReplayStats) -> str:
    """``N late events had no effect`` (the count of events too old to change anything)."""
    noun = "event" if stats.late == 1 else "events"
    return f"{stats.late:,} late {noun} had no effect"


def late_section(stats: ReplayStats) -> str:
    """The report's paragraph on late events."""
    from html import escape

    return (
        "<h2>Late events</h2>"
        f'<p class="explain" id="late-events">{escape(late_text(stats))}: valid events too old '
        "to change any supporter's decision or scores when they were applied. Each is in "
        "dead_letters.jsonl with kind &quot;late&quot; and the reason; they are not counted "
        f"as applied ({stats.applied:,} of {stats.valid:,} valid events were).</p>"
    )


def check_text(source: Path) -> None:
    """Refuse a file that is clearly not JSON lines (binary, compressed), with a clear error."""
    try:
        with source.open("rb") as handle:
            head = handle.read(65_536)
    except OSError as exc:
        raise InputFileError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    if head[:2] == b"\x1f\x8b":
        raise InputFileError(f"{source}: gzip-compressed; decompress it first (gunzip)")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise InputFileError(
            f"{source}: not a text file (a NUL byte at offset {nul}); "
            "expected JSON lines, one event a line"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            raise InputFileError(
                f"{source}: not UTF-8 text (invalid byte at offset {exc.start}); "
                "expected JSON lines, one event a line"
            ) from None
    table = _looks_like_a_table(head)
    if table is not None:
        raise InputFileError(
            f"{source}: looks like {table} (first line: {_first_line(head)!r}), not JSON lines; "
            "expected one JSON object a line, e.g. "
            '{"type": "call_outcome", "event_id": ..., "supporter_id": ..., ...}: '
            "convert the export first (see schemas/ for every event's fields)"
        )


def _first_line(head: bytes) -> str:
    line = next((ln for ln in head.splitlines() if ln.strip()), b"")
    text = line.decode("utf-8", "replace").strip()
    return text if len(text) <= 80 else text[:79] + "…"


def _looks_like_a_table(head: bytes) -> str | None:
    """``"CSV"`` or ``"TSV"`` when the first two non-blank lines are not JSON objects but
    rows split by the same separator (a spreadsheet export), else None."""
    lines = [ln.strip() for ln in head.splitlines()[:50] if ln.strip()][:2]
    if not lines or any(ln.startswith(b"{") for ln in lines):
        return None
    for sep, name in ((b",", "CSV"), (b";", "CSV"), (b"\t", "TSV")):
        if all(ln.count(sep) >= 1 for ln in lines):
            return name
    return None


def no_valid_events(stats: ReplayStats, first_error: str | None, source: str, out: Path) -> str:
    """The message when a replay read lines but not one valid event."""
    return (
        f"{source}: none of the {stats.lines - stats.blank:,} non-blank lines is a valid event "
        f"(first: {first_error}); the dead letters are in {out / 'dead_letters.jsonl'}"
    )


def replay_file(
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    policy: Policy | PolicyChoice,
    *,
    progress: bool,
    compare: PolicyChoice | None = None,
    outcomes: list[WhatIf] | None = None,
    jobs: int = 1,
) -> ReplayStats:
    """Replay one or more JSONL files, merged in event time, into ``out_dir``; see the
    module docstring.

    With ``compare``, the what-if rows (first the primary policy) are appended to
    ``outcomes`` when given. With ``jobs`` > 1 the replay is split by supporter over that
    many processes (:mod:`relmon.replay.sharded`): the same files and rows.
    """
    paths = [Path(inputs)] if isinstance(inputs, str | Path) else [Path(p) for p in inputs]
    out = Path(out_dir)
    primary = policy if isinstance(policy, PolicyChoice) else PolicyChoice("A", policy)
    names = [str(p) for p in paths]
    source = ", ".join(names)
    if jobs > 1:
        from relmon.replay.sharded import replay_sharded

        stats, first_error, rows = replay_sharded(
            paths, out, primary, names, progress, jobs, compare
        )
        if outcomes is not None:
            outcomes.extend(rows)
        if stats.valid == 0 and stats.dead_letters:
            raise InputFileError(no_valid_events(stats, first_error, source, out))
        return stats
    started = time.perf_counter()
    merge = EventTimeMerge(paths, lambda *bad: None)
    merge.check(scan=False)  # before anything is written; inputs streamed on trust
    while True:
        try:
            replayer, rows = _replay_merged(merge, out, primary, source, compare, names, progress)
            break
        except StepBack as step:  # start again, that input read whole and sorted
            print(
                f"relmon replay: {names[step.index]} goes back in time at line {step.line}: "
                "reading it whole and sorting it, and replaying again from the start",
                file=sys.stderr,
            )
            merge = merge.sorting(step.index)
    stats = replayer.stats
    stats.seconds = time.perf_counter() - started
    if outcomes is not None:
        outcomes.extend(rows)
    if stats.valid == 0 and stats.dead_letters:
        raise InputFileError(no_valid_events(stats, replayer.first_error, source, out))
    return stats


def _replay_merged(
    merge: EventTimeMerge,
    out: Path,
    primary: PolicyChoice,
    source: str,
    compare: PolicyChoice | None,
    names: list[str],
    progress: bool,
) -> tuple[Replayer, list[WhatIf]]:
    """One replay of the merged inputs into ``out`` (its files written from the start): the
    primary replayer and the what-if rows; :class:`StepBack` when an input streamed on trust
    goes back in time."""
    started = time.perf_counter()
    with (
        fewer_gc_passes(off=True),
        Session(out, primary, source, compare, inputs=names) as session,
    ):
        merge.on_bad = session.bad_line
        with bytes_bar(merge.total_bytes, "replay", progress) as bar:
            shown = 0

            def tick() -> None:
                nonlocal shown
                if merge.bytes_read - shown >= 1 << 20:
                    bar.update(merge.bytes_read - shown)
                    shown = merge.bytes_read

            session.apply_merged(merge.runs(), tick)
            bar.update(merge.bytes_read - shown)
        stats = session.primary.stats
        stats.lines, stats.blank = merge.lines, merge.blank
        _, rows = session.finish(time.perf_counter() - started)
        return session.primary, rows
