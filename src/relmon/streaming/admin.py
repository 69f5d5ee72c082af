"""Creating and checking the contract's topics with aiokafka's admin client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError

from relmon.errors import BrokerError
from relmon.settings import Settings
from relmon.streaming import kafka_backoff, listener_probe
from relmon.topics import TopicSpec

TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicStatus:
    """What `topics create` found or did for one topic."""

    name: str
    partitions: int
    action: str  # "created" | "exists"
    problem: str | None = None


# What a Kafka client's start() raises when the cluster cannot be reached in time.
CONNECT_ERRORS = (TimeoutError, KafkaConnectionError, KafkaError, OSError)


def unreachable(settings: Settings, exc: BaseException) -> BrokerError:
    """The one message every verb gives when a Kafka client cannot start, with what to do.

    Before blaming the network it asks the bootstrap addresses what they speak
    (:mod:`relmon.streaming.listener_probe`): a listener that answers with another security
    protocol than ``RELMON_SECURITY_PROTOCOL``, or wants a SASL login relmon does not send,
    gets a message saying which setting to change.
    """
    listener = listener_probe.probe(settings.kafka_bootstrap, settings.sasl_mechanism)
    if listener is not None:
        return BrokerError(mismatch(settings, listener, exc))
    return BrokerError(
        f"cannot reach Kafka at {settings.kafka_bootstrap} ({type(exc).__name__}: {exc}). "
        "Start a local broker with `make broker`, or pass --bootstrap / set "
        "RELMON_KAFKA_BOOTSTRAP to your cluster."
    )


def mismatch(settings: Settings, listener: listener_probe.Listener, exc: BaseException) -> str:
    """What to change when ``listener`` answered but the client still could not start."""
    ours = settings.security_protocol
    theirs = listener.protocol
    where = f"Kafka at {listener.address}"
    if theirs == "not Kafka":
        return (
            f"{where} accepts connections but does not answer as a Kafka broker (neither in "
            "plain bytes nor over TLS). Check RELMON_KAFKA_BOOTSTRAP / --bootstrap: is "
            "that the broker's listener port?"
        )
    offered = ", ".join(listener.mechanisms)
    if theirs != ours:
        hints = {
            "PLAINTEXT": "it wants neither TLS nor a SASL login",
            "SASL_PLAINTEXT": f"it wants a SASL login ({offered}) without TLS",
            "SSL": "it wants TLS, without a SASL login",
            "SASL_SSL": f"it wants TLS and a SASL login ({offered})",
        }
        login = (
            " and RELMON_SASL_MECHANISM, RELMON_SASL_USERNAME, RELMON_SASL_PASSWORD"
            if theirs.startswith("SASL")
            else ""
        )
        return (
            f"{where} answers, but speaks another security protocol: {hints[theirs]}, "
            f"while relmon is set to {ours} (RELMON_SECURITY_PROTOCOL). Either set "
            f"RELMON_SECURITY_PROTOCOL={theirs}{login} to use this listener, or point "
            "RELMON_KAFKA_BOOTSTRAP / --bootstrap at the cluster's "
            f"{ours} listener (usually another port). Client error: "
            f"{type(exc).__name__}: {exc}"
        )
    if (
        theirs.startswith("SASL")
        and listener.mechanisms
        and (settings.sasl_mechanism not in listener.mechanisms)
    ):
        return (
            f"{where} speaks {theirs} as configured but offers the SASL mechanisms "
            f"{offered}, not {settings.sasl_mechanism}: set RELMON_SASL_MECHANISM to one of "
            "them."
        )
    what = (
        "the SASL login was refused: check RELMON_SASL_USERNAME and RELMON_SASL_PASSWORD"
        if theirs.startswith("SASL")
        else "the TLS handshake failed: check that the broker's certificate is signed by a "
        "CA this machine trusts (the system store, or SSL_CERT_FILE)"
        if theirs == "SSL"
        else "the broker did not let the client start"
    )
    return (
        f"{where} speaks {theirs} as configured, but {what}. Client error: "
        f"{type(exc).__name__}: {exc}"
    )


async def _admin(settings: Settings, timeout_s: float) -> AIOKafkaAdminClient:
    kafka_backoff.install(
        settings.kafka_reconnect_backoff_ms, settings.kafka_reconnect_backoff_max_ms
    )
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs(), request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except CONNECT_ERRORS as exc:
        await admin.close()
        raise unreachable(settings, exc) from exc
    return admin


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each existing topic among ``names``.

    Only topics that already exist are described: a metadata request naming a missing topic
    would make a broker with ``auto.create.topics.enable`` create it with default settings.
    """
    present = set(await admin.list_topics())
    wanted = [name for name in names if name in present]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def topic_configs(admin: AIOKafkaAdminClient, name: str) -> dict[str, str]:
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    configs: dict[str, str] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                configs[entry["config_names"]] = entry["config_value"]
    return configs


async def create_topics(
    settings: Settings,
    specs: list[TopicSpec],
    *,
    replication_factor: int,
    prefix: str,
    timeout_s: float = 15.0,
) -> list[TopicStatus]:
    """Create every topic in ``specs`` that does not exist yet; report the others.

    An existing topic with another partition count is reported as a problem, not changed:
    changing the partition count of a keyed topic moves supporters between partitions.
    """
    admin = await _admin(settings, timeout_s)
    try:
        names = [spec.full_name(prefix) for spec in specs]
        existing = await partition_counts(admin, names)
        missing = [s for s in specs if s.full_name(prefix) not in existing]
        created: set[str] = set()
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.full_name(prefix),
                        s.partitions,
                        replication_factor,
                        topic_configs=dict(s.configs),
                    )
                    for s in missing
                ]
            )
            errors = _topic_errors(response.to_object())
            for name, (code, message) in errors.items():
                if code == 0:
                    created.add(name)
                elif code != TOPIC_ALREADY_EXISTS:  # a concurrent creator won the race: fine
                    raise BrokerError(f"Kafka refused to create topic {name}: {message} ({code})")
            existing.update(await partition_counts(admin, names))
        statuses = []
        for spec in specs:
            name = spec.full_name(prefix)
            count = existing.get(name, spec.partitions)
            problem = None
            if count != spec.partitions:
                problem = (
                    f"has {count} partitions, expected {spec.partitions}; input topics must be "
                    "co-partitioned, so recreate it or pass --partitions "
                    f"{count}"
                )
            statuses.append(
                TopicStatus(name, count, "created" if name in created else "exists", problem)
            )
        return statuses
    finally:
        await admin.close()


def _topic_errors(obj: dict[str, Any]) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for entry in obj.get("topic_errors") or obj.get("topics") or []:
        name = entry.get("topic") or entry.get("name")
        out[str(name)] = (int(entry["error_code"]), str(entry.get("error_message") or ""))
    return out
