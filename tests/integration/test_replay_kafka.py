"""`relmon replay --from-kafka`: a time range of the real broker's input topics."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from relmon.cli import main
from relmon.testing import at, call, consent, donation, email, to_line
from relmon.topics import CALLS, DONATIONS, TOPIC_OF_TYPE

from .conftest import Cluster

STORY = [
    donation(at=at(-30), action="started", started=at(-900)),
    call(at=at(0), outcome="info_requested", partner_id="p-a"),
    call(at=at(1), outcome="declined", partner_id="p-b"),
    donation(at=at(5), action="cancelled", started=at(-900)),
    consent(at=at(6), supporter_id="s-0002"),
    email(at=at(40), action="opened", supporter_id="s-0003"),
]
SINCE, UNTIL = at(-31), at(10)  # everything but the day-40 e-mail


def _ms(event: Any) -> int:
    return int(event.occurred_at.timestamp() * 1000)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _iso(t: Any) -> str:
    return str(t.astimezone(tz=None).isoformat())


async def _produce(cluster: Cluster, bad: list[tuple[str, bytes, bytes, int]]) -> None:
    """Each event to its topic keyed by supporter, stamped with its occurred_at."""
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    await producer.start()
    try:
        for event in STORY:
            await producer.send_and_wait(
                cluster.topic(TOPIC_OF_TYPE[event.type]),
                to_line(event),
                key=event.supporter_id.encode(),
                timestamp_ms=_ms(event),
            )
        for topic, key, value, ts in bad:
            await producer.send_and_wait(cluster.topic(topic), value, key=key, timestamp_ms=ts)
    finally:
        await producer.stop()


async def _cli(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


async def test_a_kafka_range_replays_like_the_file_and_keeps_dead_letters(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Replaying a range of the topics gives the same records and alerts as a file replay of
    the events in that range, plus a dead letter (topic, partition, offset) per bad message."""
    inside = _ms(STORY[2]) + 1000
    await _produce(
        cluster,
        [
            (CALLS, b"s-0001", b'{"type": "call_outcome", "event_id": "x"', inside),
            (DONATIONS, b"s-other", to_line(STORY[0]), inside),  # key differs from supporter
            (CALLS, b"s-0001", b"late and broken", _ms(STORY[-1])),  # outside the range
        ],
    )
    out = tmp_path / "kafka"
    args = ["--since", _iso(SINCE), "--until", _iso(UNTIL), "--no-progress"]
    kafka = ["--bootstrap", cluster.bootstrap, "--prefix", cluster.prefix]
    assert await _cli("replay", "--from-kafka", *args, *kafka, "--out", str(out)) == 0

    in_range = [e for e in STORY if SINCE <= e.occurred_at < UNTIL]
    source = tmp_path / "in_range.jsonl"
    source.write_bytes(b"".join(to_line(e) + b"\n" for e in in_range))
    file_out = tmp_path / "file"
    assert await _cli("replay", "--input", str(source), "--out", str(file_out)) == 0
    for name in ("suppressions.jsonl", "alerts.jsonl"):
        assert (out / name).read_bytes() == (file_out / name).read_bytes(), name
    assert [a["kind"] for a in _jsonl(out / "alerts.jsonl")] == [
        "call_while_suppressed",
        "churn_after_contact",
    ]

    dead = _jsonl(out / "dead_letters.jsonl")
    assert sorted((d["source"], d["kind"]) for d in dead) == [
        (cluster.topic(CALLS), "json"),
        (cluster.topic(DONATIONS), "key_mismatch"),
    ]
    assert all(d["partition"] is not None and d["offset"] is not None for d in dead)
    assert all(d["line"] is None for d in dead)
    broken = next(d for d in dead if d["kind"] == "json")
    assert base64.b64decode(broken["original_base64"]).startswith(b'{"type": "call_outcome"')
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert (summary["valid"], summary["dead_letters"]) == (len(in_range), 2)
    report = (out / "report.html").read_text()
    assert cluster.topic(CALLS) in report


async def test_an_empty_range_is_a_clear_error(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A range with no messages exits 1 naming the range and the topics, and writes nothing."""
    await _produce(cluster, [])
    since, until = STORY[0].occurred_at - timedelta(days=400), STORY[0].occurred_at
    code = await _cli(
        "replay",
        "--from-kafka",
        "--since",
        since.date().isoformat(),
        "--until",
        _iso(until - timedelta(days=300)),
        "--bootstrap",
        cluster.bootstrap,
        "--prefix",
        cluster.prefix,
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"no events between {since.date().isoformat()}T00:00:00Z and" in err
    assert cluster.topic(CALLS) in err
    assert not (tmp_path / "o").exists()


async def test_timeline_reads_one_supporter_from_kafka(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`relmon timeline --from-kafka` tells the supporter's story from the topics: the
    calls, the churn and its alert, and writes the page."""
    await _produce(cluster, [])
    page = tmp_path / "t.html"
    code = await _cli(
        "timeline",
        "s-0001",
        "--from-kafka",
        "--since",
        _iso(SINCE),
        "--until",
        _iso(UNTIL),
        "--bootstrap",
        cluster.bootstrap,
        "--prefix",
        cluster.prefix,
        "--out",
        str(page),
        "--no-progress",
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ALERT churn_after_contact (p-b)" in printed
    assert "donation cancelled" in printed
    assert "<svg" in page.read_text()


async def test_the_help_example_finds_a_simulation_streamed_today(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The help's example works: a simulated year streamed now (events dated over the past
    year) is found whole by `--since <today's date>`, because the range selects messages by
    when they were produced, not by occurred_at."""
    from datetime import UTC, datetime

    sim = ["simulate", "--supporters", "40", "--seed", "3", "--prefix", cluster.prefix]
    assert await _cli(*sim, "--to-kafka", "--bootstrap", cluster.bootstrap) == 0
    assert await _cli(*sim, "--out", str(tmp_path / "sim.jsonl")) == 0
    expected = len((tmp_path / "sim.jsonl").read_bytes().splitlines())
    today = datetime.now(UTC).date().isoformat()
    out = tmp_path / "today"
    kafka = ["--bootstrap", cluster.bootstrap, "--prefix", cluster.prefix, "--no-progress"]
    assert await _cli("replay", "--from-kafka", "--since", today, "--out", str(out), *kafka) == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["valid"] == expected
    assert summary["dead_letters"] == 0
