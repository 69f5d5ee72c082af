"""How the golden inputs under ``tests/golden/inputs/`` were made (run once, then frozen).

The tests never run this: the inputs are committed files, so a change to the simulator, the
benchmark generator or the test builders cannot change them. It is kept to say where each
input came from and to make new ones the same way::

    .venv/bin/python -m tests.golden.make_inputs     # writes tests/golden/inputs/*

Inputs (each replayed by ``test_golden.py``; the expected outputs are in ``expected/``):

* ``sim-year``: ``relmon simulate --supporters 400 --days 365 --seed 12 --start 2025-01-01``
  (the simulator of 2026-11-30, commit 92d0564), gzip.
* ``bench-mix``: ``benchmarks/bench_replay.py``'s generator, 6,000 events over 90 days for
  300 supporters, 2 % of them up to two days late (so the file is out of time order and is
  sorted in memory), gzip.
* ``shuffled-dups``: a second simulated year (150 supporters, seed 3), its lines shuffled,
  3 % of them repeated (byte-identical duplicates) and 1 % repeated with another body under
  the same ``event_id``; split in two inputs (odd and even lines) merged by the replay.
* ``adversarial``: a hand-made story file: duplicates, late events beyond every retention,
  events out of order across topics, opt-out/opt-in flips at the same second, a supporter
  asking for time and being chased, events exactly at, one second before and one second
  after an ``until``, the caps on consents, mandates and do-not-call requests, churn after
  contact in both orders, and lines that are not valid events (dead letters).
"""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import orjson

from relmon.testing import at, call, consent, donation, email, to_line

HERE = Path(__file__).parent / "inputs"


def _simulate(supporters: int, seed: int, start: str) -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim.jsonl"
        subprocess.run(
            [
                sys.executable, "-m", "relmon.cli", "simulate", "--supporters", str(supporters),
                "--days", "365", "--seed", str(seed), "--start", start, "--out", str(out),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return out.read_bytes().splitlines()


def _write_gz(name: str, lines: list[bytes]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    (HERE / name).write_bytes(gzip.compress(data, 9, mtime=0))


def sim_year() -> None:
    _write_gz("sim-year.jsonl.gz", _simulate(400, 12, "2025-01-01"))


def bench_mix() -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    import bench_replay  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        bench_replay.generate(path, 6_000, seed=20261130)
        lines = path.read_bytes().splitlines()
    # bench_replay picks supporters out of events // 10; fold them onto 300 for more history
    out = []
    for line in lines:
        doc = orjson.loads(line)
        n = int(doc["supporter_id"][4:]) % 300
        doc["supporter_id"] = f"sup-{n:08d}"
        out.append(orjson.dumps(doc))
    _write_gz("bench-mix.jsonl.gz", out)


def shuffled_dups() -> None:
    rnd = random.Random(20261130)
    lines = _simulate(150, 3, "2025-03-01")
    extra = []
    for line in lines:
        roll = rnd.random()
        if roll < 0.03:
            extra.append(line)
        elif roll < 0.04:
            doc = orjson.loads(line)
            doc["occurred_at"] = doc["occurred_at"].replace(":00+", ":07+", 1)
            extra.append(orjson.dumps(doc))
    lines += extra
    rnd.shuffle(lines)
    _write_gz("shuffled-dups-a.jsonl.gz", lines[0::2])
    _write_gz("shuffled-dups-b.jsonl.gz", lines[1::2])


def adversarial() -> None:
    lines: list[bytes] = []
    ev = []
    loyal = at(-900)
    # S-A: loyal donor, info_requested then chased, churn after contact (churn first, call late)
    a = "s-a"
    ev += [
        donation(at=at(-40), action="started", started=loyal, supporter_id=a),
        call(at=at(0, 11), outcome="info_requested", partner_id="p-a", supporter_id=a),
        call(at=at(3, 18, 0), outcome="declined", partner_id="p-b", supporter_id=a),
        call(at=at(10, 12), outcome="no_answer", partner_id="p-c", supporter_id=a),
        donation(at=at(12), action="cancelled", started=loyal, supporter_id=a),
    ]
    # S-B: opt-out / opt-in flips, some at the same second, on several channels
    b = "s-b"
    for i, (channel, action) in enumerate(
        [("phone", "opt_out"), ("phone", "opt_in"), ("all", "objection"), ("email", "opt_out"),
         ("all", "opt_in"), ("phone", "opt_out"), ("sms", "objection"), ("phone", "opt_in")]
    ):  # fmt: skip
        ev.append(consent(at=at(i // 2, 10), channel=channel, action=action, supporter_id=b))
    ev += [
        call(at=at(1, 10), outcome="declined", supporter_id=b),  # same second as a flip
        call(at=at(3, 15), outcome="do_not_call", supporter_id=b),
        consent(at=at(4, 9), channel="phone", action="opt_in", supporter_id=b),
        call(at=at(5, 9), outcome="busy", supporter_id=b),
    ]
    # S-C: expiry edges: a complaint (180 days), events one second before, at, after its until
    c = "s-c"
    complaint = at(0, 12)
    ev.append(call(at=complaint, outcome="complaint", supporter_id=c))
    for delta in (-1, 0, 1):
        when = complaint + timedelta(days=180, seconds=delta)
        ev.append(email(at=when, action="opened", supporter_id=c, campaign_id=f"nl-{delta}"))
    ev.append(call(at=at(0, 12) + timedelta(days=14), outcome="converted", supporter_id=c))
    for k in range(4):  # CONTACT_CAP: calls on days 20, 22, 24, then one exactly 30 days later
        ev.append(call(at=at(20 + 2 * k, 14), outcome="voicemail", supporter_id=c))
    ev.append(call(at=at(50, 14), outcome="no_answer", supporter_id=c))
    # S-D: caps: 20 consent changes, 18 mandates, 6 do_not_call requests
    d = "s-d"
    for i in range(20):
        ch = ("phone", "email", "post", "sms", "all")[i % 5]
        act = ("opt_out", "opt_in", "objection")[i % 3]
        ev.append(consent(at=at(i, 8), channel=ch, action=act, supporter_id=d))
    for i in range(18):
        ev.append(
            donation(at=at(i, 9), action="started", mandate_id=f"m-{i}", started=loyal,
                     supporter_id=d)
        )  # fmt: skip
    for i in range(6):
        ev.append(call(at=at(30 + i, 11), outcome="do_not_call", supporter_id=d))
    # S-E: fatigue and irritation: many e-mails and calls from three partners, dinner time
    e = "s-e"
    for i in range(30):
        ev.append(email(at=at(i / 3, 9), supporter_id=e, campaign_id=f"nl-{i}"))
    for i in range(9):
        ev.append(
            call(at=at(i, 18, 15), outcome=("hung_up", "declined", "busy")[i % 3],
                 partner_id=f"p-{i % 3}", supporter_id=e, sentiment=-0.5)
        )  # fmt: skip
    ev.append(email(at=at(5, 10), action="spam_complaint", supporter_id=e))
    ev.append(email(at=at(5, 11), action="unsubscribed", supporter_id=e))
    # S-F: a loyal donor whose tenure is reached later (loyalty onset wake), downgrade
    f = "s-f"
    ev += [
        donation(at=at(0), action="started", started=at(-340), supporter_id=f),
        call(at=at(1), outcome="hung_up", partner_id="p-a", supporter_id=f),
        call(at=at(2), outcome="complaint", direction="inbound", supporter_id=f),
        donation(at=at(40), action="downgraded", amount_cents_before=1500,
                 amount_cents_after=500, started=at(-340), supporter_id=f),
        call(at=at(35), outcome="converted", partner_id="p-b", supporter_id=f),
    ]  # fmt: skip
    # the events, in a scrambled order across supporters and topics
    rnd = random.Random(7)
    order = list(range(len(ev)))
    rnd.shuffle(order)
    lines += [to_line(ev[i]) for i in order]
    # duplicates: byte-identical, and the same event_id with another body
    lines.append(to_line(ev[3]))
    lines.append(to_line(ev[10]))
    dup = orjson.loads(to_line(ev[12]))
    dup["outcome"] = "converted"
    lines.append(orjson.dumps(dup))
    # late events: long after the clock, far older than every retention
    lines.append(to_line(email(at=at(-400), supporter_id=c)))
    lines.append(to_line(call(at=at(-300), outcome="converted", supporter_id=c)))
    lines.append(to_line(call(at=at(-300), outcome="no_answer", supporter_id=e)))
    lines.append(to_line(consent(at=at(-500), channel="phone", supporter_id=e)))  # applies
    lines.append(to_line(call(at=at(-200), outcome="do_not_call", supporter_id=f)))  # applies
    # lines that are not valid events, a blank line, a CRLF line
    lines += [
        b"",
        b"{not json",
        b'{"type":"call_outcome"}',
        b'{"type":"teleport","event_id":"x","supporter_id":"s-a","occurred_at":"2026-03-02T10:00:00Z"}',
        to_line(email(at=at(2), supporter_id=a)).replace(b'"sent"', b'"burned"'),
        to_line(email(at=at(2), supporter_id=a)).replace(b"+01:00", b""),
        to_line(email(at=at(2, 13), supporter_id=a)) + b"\r",
        b"[1,2,3]",
        b"\xff\xfe",
    ]
    (HERE / "adversarial.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    sim_year()
    bench_mix()
    shuffled_dups()
    adversarial()


if __name__ == "__main__":
    main()
