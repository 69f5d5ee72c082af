"""`relmon topics create` against the real broker."""

from __future__ import annotations

import subprocess
import sys

from aiokafka.admin import AIOKafkaAdminClient

from relmon.streaming.admin import partition_counts, topic_configs
from relmon.topics import INPUT_TOPICS, SUPPRESSIONS, contract_topics


def _run_create(bootstrap: str, prefix: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "relmon.cli",
            "topics",
            "create",
            "--bootstrap",
            bootstrap,
            "--prefix",
            prefix,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_topics_create_twice_gives_the_contract_topics(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Running `topics create` twice succeeds both times and leaves the contract's topics with
    the requested partition counts and a compacted suppression topic."""
    first = _run_create(kafka_bootstrap, topic_prefix, "--partitions", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == len(contract_topics(3))
    second = _run_create(kafka_bootstrap, topic_prefix, "--partitions", "3")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert second.stdout.count("exists") == len(contract_topics(3))

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        names = [f"{topic_prefix}{spec.name}" for spec in contract_topics(3)]
        counts = await partition_counts(admin, names)
        configs = await topic_configs(admin, f"{topic_prefix}{SUPPRESSIONS}")
        input_configs = await topic_configs(admin, f"{topic_prefix}{INPUT_TOPICS[0]}")
    finally:
        await admin.close()
    assert counts == dict.fromkeys(names, 3)
    assert configs["cleanup.policy"] == "compact"
    assert input_configs["cleanup.policy"] == "delete"


def test_topics_create_reports_a_partition_mismatch(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Asking for another partition count than the existing topics have exits 1 and says how
    to fix it, without touching the topics."""
    assert _run_create(kafka_bootstrap, topic_prefix, "--partitions", "2").returncode == 0
    again = _run_create(kafka_bootstrap, topic_prefix, "--partitions", "4")
    assert again.returncode == 1
    assert "has 2 partitions, expected 4" in again.stdout
    assert "--partitions 2" in again.stdout


def test_topics_create_names_the_unreachable_broker() -> None:
    """With no broker at the given address the command exits 1 with a message that names the
    address and says how to start a broker."""
    result = _run_create("127.0.0.1:1", "x.")
    assert result.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert "make broker" in result.stderr
