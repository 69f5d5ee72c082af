"""A file replay split by supporter over several processes (``relmon replay --jobs N``).

The engine keeps one state per supporter and no event touches two supporters, so a replay
splits by supporter without changing a decision: each of N worker processes (forked) reads
every input, decodes only the lines of its supporters
(:func:`relmon.domain.decoding.shard_of`) and replays them exactly as a whole replay does
(:class:`~relmon.replay.file_replay.Replayer`, chunk by chunk). This process then merges
what they wrote into the same files, byte for byte, as one process would write.

How the parts fit together again:

* Each output carries its merge key: the key of the item that caused it, or, for an expiry,
  where the watermark passes its time (:func:`relmon.domain.batch.expiry_key`). Keys order
  every output of every worker as the one-by-one replay emits them.
* A worker's watermark only moves with its own events, so an expiry happens later in its
  reading than in one process's, but it is the same record: a supporter's state changes
  only with its own events, and a lift is decided at its own time. What no later event of
  a worker reaches, it applies once every worker is done, up to the latest event time of
  all of them (the whole replay applies no expiry after its last event, and neither does
  this).
* The report: each worker keeps the report's :class:`~relmon.replay.report.Analysis` of its
  own supporters (their call and donation events, their records), and this process adds
  the parts up (:meth:`~relmon.replay.report.Analysis.add_part`: every table made of them
  is a sum over supporters, or sorted). The alerts' tables follow the order the alerts
  come in (ties), so the workers send what the report reads of each alert
  (:func:`~relmon.replay.report.alert_view`) with its key, and this process shows them to
  its analysis in the one-by-one order.
* Bad lines are dead letters of the worker whose shard the line falls in (a line that is
  not a valid event: shard 0); they are merged by input and line number, the late events
  by key, as one process writes them.

The workers write their outputs to spool files (``marshal``, a list a chunk, each after its
size: ``marshal.load`` of a file reads it in tiny pieces) in a hidden temporary folder of the
output folder, removed at the end, and report through a pipe: a step back in time (the
worker starts again with that input sorted, and this process says so once), its latest
event time, then its counts and its part of the report's analysis. A worker that fails
sends its exception, which this process raises; one that dies is named. Either way the
other workers are stopped and no output file is written.

Cost (BENCHMARKS.md): every worker reads every line and finds its supporter id (about
0.5 µs a line), and the merge is done by one process after the workers; on two CPUs a
simulated year replays in about two thirds of the time of one process, for about a fifth
more CPU time.

A what-if (``--compare-policy``) runs both engines in each worker; each keeps its tallies
(:class:`~relmon.replay.whatif.Tally`) of its supporters, added up here. The Kafka replay
runs in one process.
"""

from __future__ import annotations

import heapq
import marshal
import multiprocessing
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from relmon.domain import Alert, SuppressionRecord, encode_record
from relmon.domain.events import Event
from relmon.errors import ConfigError, InvalidEvent, RelmonError
from relmon.replay import file_replay
from relmon.replay.file_replay import (
    EventTimeMerge,
    Item,
    Observer,
    Observers,
    PolicyChoice,
    Replayer,
    ReplayStats,
    StepBack,
    bytes_bar,
    fewer_gc_passes,
    late_section,
    make_out_dir,
)
from relmon.replay.report import AlertView, Analysis, alert_view
from relmon.replay.whatif import Tally

if TYPE_CHECKING:
    from relmon.replay.whatif import Outcome as WhatIf

# the spool files of each worker, one stream of outputs each
_STREAMS = ("records", "alerts", "late", "bad")
_ADDED = ("valid", "applied", "late", "dead_letters", "records", "alerts", "supporters", "blank")


def default_jobs() -> int:
    """The processes a file replay uses unless told: the CPUs this process may use, at
    most 4 (the merge of the parts is done by one process, and grows with them); 1 where
    processes cannot be forked."""
    if not can_fork():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def can_fork() -> bool:
    """Whether worker processes can be forked here (Linux, macOS; not Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


class _Spool:
    """One worker's spool files (``marshal``, a list of outputs at a time), by stream."""

    def __init__(self, folder: Path, shard: int) -> None:
        self.paths = {name: folder / f"{shard}.{name}" for name in _STREAMS}
        self.files: dict[str, BinaryIO] = {}
        self.start()

    def start(self) -> None:
        """Open every stream empty (again, after a step back in time)."""
        self.close()
        self.files = {name: path.open("wb") for name, path in self.paths.items()}

    def write(self, name: str, outputs: list[Any]) -> None:
        if outputs:
            data = marshal.dumps(outputs)
            self.files[name].write(len(data).to_bytes(8, "little") + data)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.files = {}


def read_stream(path: Path) -> Iterator[Any]:
    """The outputs of one spool stream, in the order written."""
    with path.open("rb") as handle:
        while size := int.from_bytes(handle.read(8), "little"):
            yield from marshal.loads(handle.read(size))  # noqa: S302 (our own spool)


class _Worker:
    """One shard of the replay, in its own process: what :func:`_work` runs."""

    def __init__(
        self,
        inputs: EventTimeMerge,
        names: list[str],
        source: str,
        policies: list[PolicyChoice],
        shard: int,
        shards: int,
        spool: _Spool,
    ) -> None:
        # the inputs as checked once for all workers (EventTimeMerge.part)
        self.inputs, self.names, self.source, self.policies = inputs, names, source, policies
        self.shard, self.shards = shard, shards
        self.spool = spool
        self.conn: Connection  # the worker's end of its pipe, given by _run
        self.bad: list[tuple[int, int, bytes]] = []
        self.first_bad: tuple[int, int, str] | None = None
        self._start()

    def _start(self) -> None:
        """The replayers (the what-if's too), from the start (again, after a step back)."""
        records: list[bytes] = []
        alerts: list[bytes] = []
        late: list[bytes] = []
        self._records, self._alerts, self._late = records, alerts, late
        self._views = _AlertViews()
        primary = self.policies[0].policy
        self.part = Analysis(primary)  # the report's analysis of this shard
        self.tallies = [Tally(p.label, p.policy) for p in self.policies]  # with a what-if
        self.first_record: tuple[Any, ...] | None = None  # the merge key of its first record
        # with a what-if: the merge key of each supporter's first outbound call, which
        # orders the report's calls by supporter as one process does (Analysis.call_index)
        self.first_calls: dict[str, tuple[Any, ...]] | None = {} if len(self.policies) > 1 else None
        watchers: list[Observer] = [self.part, self._views]
        if len(self.policies) > 1:
            watchers.append(self.tallies[0])
        self.replayer = Replayer(
            primary,
            self.source,
            records.append,
            alerts.append,
            self._dead,
            observer=Observers(*watchers),
            late=late.append,
        )
        self.others = [
            Replayer(p.policy, self.source, None, None, None, observer=tally)
            for p, tally in zip(self.policies[1:], self.tallies[1:], strict=True)
        ]

    def _dead(self, letter: bytes) -> None:
        raise AssertionError("a file replay's bad lines go to their input's sink")

    def run(self) -> None:
        merge = self.inputs.part(self.shard, self.shards, self._bad_line)
        while True:
            try:
                self._replay(merge)
                break
            except StepBack as step:
                self.conn.send(("step back", step.index, step.line))
                merge = merge.sorting(step.index)
                self.spool.start()
                self.bad.clear()
                self.first_bad = None
                self._start()
        stats = self.replayer.stats
        stats.lines, stats.blank = merge.lines, merge.blank
        clock = self.replayer._clock  # the replayer's own driver, continued
        self.conn.send(("done", self.replayer.last_at))
        last = self.conn.recv()
        if last is not None and stats.valid:
            self._finish(clock.expire_keyed(last))
            for other in self.others:
                expired = other._clock.expire_keyed(last)  # for the what-if's tally
                if expired and other.observer is not None:
                    other.observer.records([r for _, r in expired])
            self.part.finish(last)
        self.spool.close()
        # what the parent adds up (it has the policies)
        self.part.policy = None  # type: ignore[assignment]
        for tally in self.tallies:
            tally.policy = None  # type: ignore[assignment]
        message = ("stats", asdict(stats), self.replayer.first_at, self.first_bad)
        self.conn.send((*message, self.part, self.first_record, self.tallies, self.first_calls))

    def _bad_line(self, index: int, number: int, raw: bytes, exc: InvalidEvent) -> None:
        letters: list[bytes] = []
        self.replayer.dead_letter(
            raw, exc, line=number, source=self.names[index], sink=letters.append
        )
        if self.first_bad is None or (index, number) < self.first_bad[:2]:
            name = self.names[index]
            where = f"line {number}" if name == self.source else f"{name} line {number}"
            self.first_bad = (index, number, f"{where}: {exc}")
        self.bad.append((index, number, letters[0]))

    def _replay(self, merge: EventTimeMerge) -> None:
        chunk: list[Item] = []
        size = max(1, file_replay.CHUNK // self.shards)  # the same memory in all
        for run in merge.runs():
            chunk += run
            while len(chunk) >= size:
                self._apply(chunk[:size])
                del chunk[:size]
            if self.shard == 0:
                self.conn.send(("read", merge.bytes_read))
        self._apply(chunk)

    def _apply(self, chunk: list[Item]) -> None:
        first_calls = self.first_calls
        if first_calls is not None:
            for item in chunk:
                event = item[5]
                if event.type == "call_outcome" and event.direction == "outbound":
                    first_calls.setdefault(event.supporter_id, item[:5])
        done = self.replayer.apply_chunk(chunk, self.names, keyed=True)
        for other in self.others:
            other.apply_chunk(chunk)
        spool, views = self.spool, self._views
        spool.write("bad", self.bad)
        self.bad.clear()
        if self.first_record is None and done.record_keys:
            self.first_record = done.record_keys[0]
        spool.write("records", list(zip(done.record_keys, self._records, strict=True)))
        spool.write("alerts", list(zip(done.alert_keys, self._alerts, views.views, strict=True)))
        late = zip(done.late, self._late, strict=True)
        spool.write("late", [(chunk[p][:5], letter) for (p, _), letter in late])
        self._records.clear()
        self._alerts.clear()
        self._late.clear()
        views.views.clear()

    def _finish(self, expired: list[tuple[tuple[Any, ...], SuppressionRecord]]) -> None:
        """The records of the expiries after this worker's last event."""
        if not expired:
            return
        self.replayer.stats.records += len(expired)
        if self.first_record is None:
            self.first_record = expired[0][0]
        self.spool.write("records", [(key, encode_record(r)) for key, r in expired])
        if self.replayer.observer is not None:
            self.replayer.observer.records([r for _, r in expired])


class _AlertViews:
    """A worker's observer of alerts: what the report reads of each (:func:`alert_view`),
    in order, sent with the alert (the report must see alerts in the one-by-one order)."""

    event_types: frozenset[str] | None = frozenset()

    def __init__(self) -> None:
        self.views: list[AlertView] = []

    def event(self, event: Event, t: int) -> None:
        return None

    def skipped(self, counts: dict[str, int]) -> None:
        return None

    def records(self, records: list[SuppressionRecord]) -> None:
        return None

    def alerts(self, alerts: list[Alert]) -> None:
        self.views.extend(alert_view(a) for a in alerts)


def _work(worker: _Worker) -> None:
    """A worker process's body: the replay of its shard, or its exception sent."""
    try:
        with fewer_gc_passes(off=True):
            worker.run()
    except BaseException as exc:  # noqa: BLE001 (sent to the parent, which raises it)
        try:
            worker.conn.send(("error", exc))
        except Exception:  # noqa: BLE001 (an exception that does not pickle)
            worker.conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        worker.conn.close()


def replay_sharded(
    paths: list[Path],
    out: Path,
    primary: PolicyChoice,
    names: list[str],
    progress: bool,
    jobs: int,
    compare: PolicyChoice | None = None,
) -> tuple[ReplayStats, str | None, list[WhatIf]]:
    """Replay ``paths`` with ``jobs`` worker processes into ``out``, the files as one process
    writes them (module docstring); the counts, the first bad line's error, and with
    ``compare`` the what-if's rows (first the primary policy)."""
    from relmon.replay import report, whatif

    if not can_fork():
        raise ConfigError(f"--jobs {jobs}: this system cannot fork worker processes; use --jobs 1")
    started = time.perf_counter()
    policies = [primary] if compare is None else [primary, compare]
    source = ", ".join(names)
    inputs = EventTimeMerge(paths, lambda *bad: None)
    inputs.check(scan=False)  # before a process starts: a missing or binary input is refused
    make_out_dir(out)
    # the spools next to the outputs (their size is of the order of the outputs'), not in a
    # /tmp that may be memory
    with tempfile.TemporaryDirectory(prefix=".relmon-replay-", dir=out) as name:
        folder = Path(name)
        workers = [
            _Worker(inputs, names, source, policies, shard, jobs, _Spool(folder, shard))
            for shard in range(jobs)
        ]
        ends = _run(workers, inputs.total_bytes, names, progress)
        stats, first_at, last_at = _counts(ends, primary)
        analysis, tallies = _analysis(ends, policies)
        _merge(folder, jobs, out, analysis)
    stats.seconds = time.perf_counter() - started
    (out / "summary.json").write_bytes(
        orjson.dumps(stats.counts(), option=orjson.OPT_INDENT_2) + b"\n"
    )
    analysis.finish(last_at if last_at is not None else 0)
    outcomes: list[WhatIf] = []
    extra = [late_section(stats)]
    if compare is not None:
        index = analysis.call_index()
        outcomes = [whatif.outcome(t, index, analysis.calls) for t in tallies]
        extra += whatif.html_section(outcomes)
    meta = report.ReportMeta(source, stats.policy_version, stats.counts(), first_at, last_at)
    report.write_report(out / "report.html", meta, analysis, extra)
    bad = [end.first_bad for end in ends if end.first_bad is not None]
    return stats, min(bad)[2] if bad else None, outcomes


def _run(workers: list[_Worker], total: int, names: list[str], progress: bool) -> list[_End]:
    """Fork a process for each worker and follow them to their end (:func:`_drive`); on
    any error, or an interrupt, they are killed."""
    context = multiprocessing.get_context("fork")
    conns: list[Connection] = []
    processes: list[Any] = []
    ok = False
    try:
        for worker in workers:
            mine, theirs = context.Pipe()
            worker.conn = theirs
            process = context.Process(target=_work, args=(worker,), daemon=True)
            process.start()
            theirs.close()
            worker.spool.close()  # the child has its files open
            conns.append(mine)
            processes.append(process)
        ends = _drive(conns, total, names, progress)
        ok = True
    finally:
        for process in processes:
            if not ok:
                process.kill()
            process.join()
    return ends


def _counts(ends: list[_End], primary: PolicyChoice) -> tuple[ReplayStats, int | None, int | None]:
    """The whole replay's counts, first and last event time, from the workers'. Every
    worker reads every line; shard 0 counts the blank ones."""
    stats = ReplayStats(policy_version=primary.policy.version)
    stats.lines = ends[0].counts["lines"]
    for end in ends:
        for name in _ADDED:
            setattr(stats, name, getattr(stats, name) + end.counts[name])
    firsts = [end.first_at for end in ends if end.first_at is not None]
    lasts = [end.last_at for end in ends if end.last_at is not None]
    return stats, min(firsts, default=None), max(lasts, default=None)


def _analysis(ends: list[_End], policies: list[PolicyChoice]) -> tuple[Analysis, list[Tally]]:
    """The report's analysis and the what-if's tallies, the workers' parts added up; the
    alerts are shown to the analysis by :func:`_merge`."""
    analysis = Analysis(policies[0].policy)
    for end in ends:
        if end.part is not None:
            analysis.add_part(end.part)
    firsts = [(end.first_record, end.part) for end in ends if end.first_record and end.part]
    if firsts:  # the first record of all: the one with the lowest merge key
        analysis.first_record = min(firsts, key=_key)[1].first_record
    tallies = [Tally(p.label, p.policy) for p in policies]
    for end in ends:
        for tally, part in zip(tallies, end.tallies, strict=True):
            tally.add_part(part)
    if len(policies) > 1:  # the what-if's call index: the calls by supporter in one
        # process's order (each supporter at its first outbound call)
        first_calls = {sid: key for end in ends for sid, key in (end.first_calls or {}).items()}
        calls = analysis.calls
        analysis.calls = defaultdict(list)
        for sid in sorted(calls, key=first_calls.__getitem__):
            analysis.calls[sid] = calls[sid]
    return analysis, tallies


class _End:
    """What a worker reports when it is done."""

    def __init__(self) -> None:
        self.last_at: int | None = None
        self.counts: dict[str, Any] = {}
        self.first_at: int | None = None
        self.first_bad: tuple[int, int, str] | None = None
        self.part: Analysis | None = None  # the report's analysis of its supporters
        self.first_record: tuple[Any, ...] | None = None
        self.tallies: list[Tally] = []
        self.first_calls: dict[str, tuple[Any, ...]] | None = None


def _drive(conns: list[Connection], total: int, names: list[str], progress: bool) -> list[_End]:
    """Follow the workers to their end: the progress bar, the step backs (said once an
    input), the latest event time of all sent to each, then their counts."""
    ends = [_End() for _ in conns]
    said: set[int] = set()
    with bytes_bar(total, "replay", progress) as bar:
        waiting = {conn: i for i, conn in enumerate(conns)}
        while waiting:
            for conn in wait(list(waiting)):
                i = waiting[conn]  # type: ignore[index]
                message = _receive(conn, i)  # type: ignore[arg-type]
                kind = message[0]
                if kind == "read":
                    bar.update(message[1] - bar.n)
                elif kind == "step back":
                    index, line = message[1], message[2]
                    if index not in said:
                        said.add(index)
                        print(
                            f"relmon replay: {names[index]} goes back in time at line {line}: "
                            "reading it whole and sorting it, and replaying again from the "
                            "start",
                            file=sys.stderr,
                        )
                elif kind == "done":
                    ends[i].last_at = message[1]
                    del waiting[conn]  # type: ignore[arg-type]
        bar.update(total - bar.n)
    lasts = [end.last_at for end in ends if end.last_at is not None]
    last = max(lasts) if lasts else None
    for conn in conns:
        conn.send(last)
    for i, conn in enumerate(conns):
        message = _receive(conn, i)
        if message[0] != "stats":
            raise RelmonError(f"replay worker {i}: unexpected {message[0]!r} at its end")
        end = ends[i]
        _, end.counts, end.first_at, end.first_bad, end.part, end.first_record, *rest = message
        end.tallies, end.first_calls = rest
    return ends


def _receive(conn: Connection, shard: int) -> tuple[Any, ...]:
    """A worker's next message; its exception raised here, or an error if it died."""
    try:
        message: tuple[Any, ...] = conn.recv()
    except EOFError:
        raise RelmonError(
            f"replay worker {shard} of --jobs ended without finishing (killed? out of "
            "memory?); nothing was written: run again, or with --jobs 1 (one process)"
        ) from None
    if message[0] == "error":
        raise message[1]
    return message


def _key(output: tuple[Any, ...]) -> Any:
    return output[0]


def _merge(folder: Path, jobs: int, out: Path, analysis: Analysis) -> None:
    """Write the output files from the workers' spools, in the one-by-one order, and show
    the report the alerts in that order."""

    def streams(name: str) -> list[Iterator[Any]]:
        return [read_stream(folder / f"{shard}.{name}") for shard in range(jobs)]

    with (out / "suppressions.jsonl").open("wb") as handle:
        write = handle.write
        for _record_key, line in heapq.merge(*streams("records"), key=_key):
            write(line + b"\n")
    with (out / "alerts.jsonl").open("wb") as handle:
        write = handle.write

        def alerts() -> Iterator[AlertView]:
            for _alert_key, line, view in heapq.merge(*streams("alerts"), key=_key):
                write(line + b"\n")
                yield view

        analysis.alert_views(alerts())
    with (out / "dead_letters.jsonl").open("wb") as handle:
        write = handle.write
        for _index, _number, letter in heapq.merge(*streams("bad")):
            write(letter + b"\n")
        for _late_key, letter in heapq.merge(*streams("late"), key=_key):
            write(letter + b"\n")
