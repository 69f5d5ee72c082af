"""``relmon replay --input FILE.jsonl --out DIR``: the engine over a JSONL file.

What is written to ``DIR``:

* ``suppressions.jsonl``: every suppression record, in the order emitted;
* ``alerts.jsonl``: every alert;
* ``dead_letters.jsonl``: each bad line with its line number and error (``source`` is the
  input path, ``partition``/``offset`` are null);
* ``summary.json``: the counts below and the policy version (no timings, so two replays of
  the same input are byte-identical, all five files);
* ``report.html``: the analysts' report (:mod:`relmon.replay.report`), self-contained.

With ``compare`` (``--compare-policy``) a second engine under the other policy sees the same
events; only what :mod:`relmon.replay.whatif` needs is kept of its outputs, and the report
gets a what-if section.

Replay time is event time. The replay keeps a watermark, the latest ``occurred_at`` read so
far; before applying an event that moves it forward, every supporter whose decision changes
by time alone at or before the new watermark is re-decided at exactly that time (a lift,
``decided_at`` = the expiry time). Nothing expires after the last event of the input.

Blank lines are skipped and counted; every other line that cannot be decoded or validated
becomes a dead letter, and the replay goes on.
"""

from __future__ import annotations

import base64
import gc
import heapq
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

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
from relmon.domain.events import CallOutcome, ConsentChange, DonationChange, EmailEngagement
from relmon.domain.rules import utc
from relmon.errors import InputFileError, InvalidEvent

if TYPE_CHECKING:
    from relmon.replay.whatif import Outcome as WhatIf

Sink = Callable[[bytes], object]
Event = CallOutcome | ConsentChange | EmailEngagement | DonationChange


class Observer(Protocol):
    """Sees every valid event (before the engine), and every record and alert emitted."""

    def event(self, event: Event) -> None: ...

    def records(self, records: list[SuppressionRecord]) -> None: ...

    def alerts(self, alerts: list[Alert]) -> None: ...


@dataclass
class ReplayStats:
    """Counts of one replay (``seconds`` is wall time, reported but never written)."""

    lines: int = 0
    blank: int = 0
    valid: int = 0
    dead_letters: int = 0
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
    ) -> None:
        """``None`` for a sink means: do not encode those outputs at all (a what-if run)."""
        self.engine = Engine(policy)
        self.policy_version = policy.version
        self.source = source
        self.states: dict[str, SupporterState] = {}
        self.stats = ReplayStats(policy_version=policy.version)
        self._records, self._alerts, self._dead = records, alerts, dead
        self._due: list[tuple[int, str]] = []  # (wake, supporter_id), stale entries skipped
        self._watermark = -(1 << 62)
        self.observer = observer
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

    def apply(self, event: Event) -> None:
        """Apply one valid event (expiring first what its time passes)."""
        stats = self.stats
        stats.valid += 1
        t = int(event.occurred_at.timestamp())
        if self.first_at is None or t < self.first_at:
            self.first_at = t
        if self.last_at is None or t > self.last_at:
            self.last_at = t
        if t > self._watermark:
            if self._due and self._due[0][0] <= t:
                self._expire_until(t)
            self._watermark = t
        observer = self.observer
        if observer is not None:
            observer.event(event)
        sid = event.supporter_id
        state = self.states.get(sid)
        outcome = self.engine.apply(state, event)
        new = outcome.state
        if new is not state:
            if state is None:
                stats.supporters += 1
            self.states[sid] = new
            if new.wake is not None and (state is None or new.wake != state.wake):
                heapq.heappush(self._due, (new.wake, sid))
        if outcome.records:
            stats.records += len(outcome.records)
            if self._records is not None:
                for record in outcome.records:
                    self._records(encode_record(record))
            if observer is not None:
                observer.records(outcome.records)
        if outcome.alerts:
            stats.alerts += len(outcome.alerts)
            if self._alerts is not None:
                for alert in outcome.alerts:
                    self._alerts(encode_alert(alert))
            if observer is not None:
                observer.alerts(outcome.alerts)

    def _expire_until(self, t: int) -> None:
        due = self._due
        while due and due[0][0] <= t:
            wake, sid = heapq.heappop(due)
            state = self.states[sid]
            if state.wake != wake:
                continue  # superseded by a later decision
            outcome = self.engine.expire(state, utc(wake))
            self.states[sid] = outcome.state
            if outcome.state.wake is not None:
                heapq.heappush(due, (outcome.state.wake, sid))
            if not outcome.records:
                continue
            self.stats.records += len(outcome.records)
            if self._records is not None:
                for record in outcome.records:
                    self._records(encode_record(record))
            if self.observer is not None:
                self.observer.records(outcome.records)

    def dead_letter(
        self,
        raw: bytes,
        exc: InvalidEvent,
        *,
        line: int | None = None,
        source: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        """Write one dead letter: a file line (``line``) or a Kafka message (``source`` is
        then its topic, with ``partition`` and ``offset``, as the worker writes them)."""
        self.stats.dead_letters += 1
        if self.first_error is None:
            where = f"line {line}" if line is not None else f"{source}[{partition}]@{offset}"
            self.first_error = f"{where}: {exc}"
        if self._dead is None:
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
        self._dead(encode_dead_letter(letter))


@contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """Let the cyclic garbage collector run far less often while replaying.

    A replay holds one state per supporter: hundreds of thousands of small tuples and lists
    that never form cycles (reference counting frees them). With the default thresholds the
    collector walks them again and again and costs about a third of the replay's time; a
    gen-0 threshold of 100,000 makes that negligible. Restored on exit.
    """
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def read_lines(path: Path) -> Iterable[bytes]:
    """The lines of ``path`` without their line ends."""
    with path.open("rb") as handle:
        for line in handle:
            yield line.rstrip(b"\r\n")


class Observers:
    """Passes every observation on to several observers, in order."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def event(self, event: Event) -> None:
        for o in self.observers:
            o.event(event)

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

    Use as a context manager; feed lines (:meth:`feed`) or parsed events (:meth:`apply`)
    and dead letters, then :meth:`finish`.
    """

    def __init__(
        self, out: Path, primary: PolicyChoice, source: str, compare: PolicyChoice | None
    ) -> None:
        from relmon.replay.report import Analysis
        from relmon.replay.whatif import Tally

        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputFileError(
                f"{out}: cannot create the output directory: {exc.strerror or exc}"
            ) from None
        self.out = out
        self.source = source
        self._stack = ExitStack()
        self.analysis = Analysis(primary.policy)
        self.tallies = [Tally(primary.label, primary.policy)]
        if compare is not None:
            self.tallies.append(Tally(compare.label, compare.policy))
        files = [
            self._stack.enter_context((out / name).open("wb"))
            for name in ("suppressions.jsonl", "alerts.jsonl", "dead_letters.jsonl")
        ]
        self.primary = Replayer(
            primary.policy,
            source,
            *(self._writer(f) for f in files),
            observer=Observers(self.analysis, self.tallies[0]),
        )
        self.other = (
            None
            if compare is None
            else Replayer(compare.policy, source, None, None, None, observer=self.tallies[1])
        )

    @staticmethod
    def _writer(handle: BinaryIO) -> Sink:
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

    def apply(self, event: Event) -> None:
        self.primary.apply(event)
        if self.other is not None:
            self.other.apply(event)

    def finish(self, seconds: float) -> tuple[ReplayStats, list[WhatIf]]:
        """Close the files, write summary.json and report.html; the stats and the what-if."""
        from relmon.replay import report, whatif

        self._stack.close()
        stats = self.primary.stats
        stats.seconds = seconds
        (self.out / "summary.json").write_bytes(
            orjson.dumps(stats.counts(), option=orjson.OPT_INDENT_2) + b"\n"
        )
        replayer = self.primary
        self.analysis.finish(replayer.last_at if replayer.last_at is not None else 0)
        outcomes: list[WhatIf] = []
        extra: list[str] = []
        if self.other is not None:
            calls = self.analysis.call_index()
            outcomes = [whatif.outcome(t, calls, self.analysis.calls) for t in self.tallies]
            extra = whatif.html_section(outcomes)
        meta = report.ReportMeta(
            self.source, stats.policy_version, stats.counts(), replayer.first_at, replayer.last_at
        )
        report.write_report(self.out / "report.html", meta, self.analysis, extra)
        return stats, outcomes


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


def no_valid_events(stats: ReplayStats, replayer: Replayer, source: str, out: Path) -> str:
    """The message when a replay read lines but not one valid event."""
    return (
        f"{source}: none of the {stats.lines - stats.blank:,} non-blank lines is a valid event "
        f"(first: {replayer.first_error}); the dead letters are in {out / 'dead_letters.jsonl'}"
    )


def replay_file(
    input_path: str | Path,
    out_dir: str | Path,
    policy: Policy | PolicyChoice,
    *,
    progress: bool,
    compare: PolicyChoice | None = None,
    outcomes: list[WhatIf] | None = None,
) -> ReplayStats:
    """Replay one JSONL file into ``out_dir``; see the module docstring.

    With ``compare``, the what-if rows (first the primary policy) are appended to
    ``outcomes`` when given.
    """
    source = Path(input_path)
    out = Path(out_dir)
    primary = policy if isinstance(policy, PolicyChoice) else PolicyChoice("A", policy)
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise InputFileError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    if not source.is_file():
        raise InputFileError(f"{source}: not a file")
    if size == 0:
        raise InputFileError(f"{source}: the file is empty")
    check_text(source)
    started = time.perf_counter()
    with (
        fewer_gc_passes(),
        Session(out, primary, str(source), compare) as session,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc="replay",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        feed = session.feed if compare is not None else session.primary.feed
        pending = 0
        try:
            for number, line in enumerate(read_lines(source), start=1):
                feed(line, number)
                pending += len(line) + 1
                if pending >= 1 << 20:
                    bar.update(pending)
                    pending = 0
        except OSError as exc:
            raise InputFileError(f"{source}: read failed: {exc.strerror or exc}") from None
        bar.update(pending)
        stats, rows = session.finish(time.perf_counter() - started)
    if outcomes is not None:
        outcomes.extend(rows)
    if stats.valid == 0 and stats.dead_letters:
        raise InputFileError(no_valid_events(stats, session.primary, str(source), out))
    return stats
