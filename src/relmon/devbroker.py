"""A real single-node Apache Kafka broker (KRaft) for development and tests.

The broker's jars come from Maven Central through ``kafka/pom.xml``; this module fetches them
when missing, formats the storage with ``kafka.tools.StorageTool`` and starts ``kafka.Kafka``
with settings sized for a 2-core machine. Everything lives in one *home* folder (config, data,
log, pid file), so several brokers (``make run``'s and the test session's) can coexist on
different ports.

    python -m relmon.devbroker start --home .broker --port 9092
    python -m relmon.devbroker stop --home .broker

``start`` returns once the broker answers a metadata request; ``stop`` ends the process whose
pid it recorded (never one found by name). Both are idempotent.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIB = REPO_ROOT / "kafka" / "lib"
POM = REPO_ROOT / "kafka" / "pom.xml"
MAVEN_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies"
BROKER_JAR_GLOB = "kafka_2.13-*.jar"

SERVER_PROPERTIES = """\
# Single-node KRaft broker for relmon development and tests (written by relmon.devbroker).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
# one node: every replication factor is 1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
default.replication.factor=1
min.insync.replicas=1
# fast group joins for tests and a small footprint on 2 cores
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
num.partitions=8
auto.create.topics.enable=true
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=33554432
log.segment.bytes=104857600
log.retention.hours=168
"""

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=WARN
"""

JVM_OPTS = [
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]


# Brokers started by this process, kept so that `stop` can reap them (no zombies, no
# "subprocess still running" warnings when the Popen object would be collected).
_CHILDREN: dict[Path, subprocess.Popen[bytes]] = {}


class BrokerStartError(RuntimeError):
    """The broker did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class BrokerHome:
    """The folder of one broker: config, data, log and pid file."""

    path: Path
    port: int = 9092
    lib: Path = DEFAULT_LIB

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.path / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.path / "broker.log"

    @property
    def data_dir(self) -> Path:
        return self.path / "data"


def ensure_jars(lib: Path = DEFAULT_LIB, *, quiet: bool = False) -> None:
    """Fetch the broker's jars with Maven unless they are already there."""
    if lib.is_dir() and any(lib.glob(BROKER_JAR_GLOB)) and any(lib.glob("reload4j-*.jar")):
        return
    if not quiet:
        print(f"relmon: fetching Kafka's jars from Maven Central into {lib} ...", file=sys.stderr)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        f"-DoutputDirectory={lib}",
        "-DincludeScope=runtime",
        MAVEN_PLUGIN,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(lib.glob(BROKER_JAR_GLOB)):
        raise BrokerStartError(
            "Maven could not fetch Kafka's jars (is Maven Central reachable?):\n"
            + (result.stdout + result.stderr)[-4000:]
        )


def running_pid(home: BrokerHome) -> int | None:
    """The pid recorded in ``home`` if that process is alive and is this home's broker."""
    try:
        pid = int(home.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if "kafka.Kafka" not in cmdline or str(home.path.resolve()) not in cmdline:
        return None  # the pid was reused by another process: not ours
    return pid


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _cluster_id() -> str:
    """A random Kafka cluster id (base64url of 16 bytes). One that starts with "-" reads as
    an option to kafka-storage's argument parser ("--cluster-id: expected one argument",
    about 1 start in 32), so it is drawn again, as Kafka's own Uuid.randomUuid does."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _java_cmd(home: BrokerHome, main: str, *args: str, heap: list[str] | None = None) -> list[str]:
    log4j = f"-Dlog4j.configuration=file:{home.path.resolve() / 'log4j.properties'}"
    return ["java", *(heap or JVM_OPTS), log4j, "-cp", f"{home.lib}/*", main, *args]


def _write_config(home: BrokerHome) -> Path:
    home.path.mkdir(parents=True, exist_ok=True)
    props = home.path / "server.properties"
    props.write_text(
        SERVER_PROPERTIES.format(
            port=home.port, controller_port=home.controller_port, data=home.data_dir.resolve()
        )
    )
    (home.path / "log4j.properties").write_text(
        LOG4J_PROPERTIES.format(log=home.log_file.resolve())
    )
    return props


def _format_storage(home: BrokerHome, props: Path) -> None:
    if (home.data_dir / "meta.properties").exists():
        return
    cmd = _java_cmd(
        home,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        _cluster_id(),
        "-c",
        str(props),
        "--ignore-formatted",
        heap=["-Xmx256m"],
    )
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerStartError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def log_tail(home: BrokerHome, lines: int = 40) -> str:
    texts = []
    for path in (home.path / "broker.out", home.log_file):
        if path.exists():
            texts.append(f"--- {path} (last {lines} lines) ---")
            texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(texts) or "(the broker wrote no log)"


async def _metadata_ok(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.describe_cluster()
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        await admin.close()
    return True


def wait_ready(home: BrokerHome, timeout_s: float) -> None:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        child = _CHILDREN.get(home.path)
        # A child we just forked may not have exec'd java yet, so ask it rather than /proc.
        alive = child.poll() is None if child is not None else running_pid(home) is not None
        if not alive:
            raise BrokerStartError("the broker process exited during start-up\n" + log_tail(home))
        if accepts_connections(home.port) and asyncio.run(_metadata_ok(home.bootstrap)):
            return
        time.sleep(0.5)
    raise BrokerStartError(
        f"the broker did not answer on {home.bootstrap} within {timeout_s:.0f}s\n" + log_tail(home)
    )


def start(home: BrokerHome, *, timeout_s: float = 90.0) -> bool:
    """Start the broker unless it already runs. Returns True if this call started it."""
    if running_pid(home) is not None:
        wait_ready(home, timeout_s)
        return False
    if accepts_connections(home.port):
        raise BrokerStartError(
            f"port {home.port} is already taken by another process; stop it or choose another "
            "port (RELMON_BROKER_PORT)"
        )
    ensure_jars(home.lib)
    props = _write_config(home)
    _format_storage(home, props)
    with (home.path / "broker.out").open("ab") as out:
        proc = subprocess.Popen(
            _java_cmd(home, "kafka.Kafka", str(props)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the terminal of `make broker`
            cwd=home.path,
        )
    _CHILDREN[home.path] = proc
    home.pid_file.write_text(f"{proc.pid}\n")
    try:
        wait_ready(home, timeout_s)
    except BrokerStartError:
        stop(home)
        raise
    return True


def stop(home: BrokerHome, *, timeout_s: float = 30.0) -> bool:
    """Stop the broker recorded in ``home``. Returns True if one was running."""
    pid = running_pid(home)
    if pid is None:
        home.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and running_pid(home) is not None:
        time.sleep(0.2)
    if running_pid(home) is not None:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    child = _CHILDREN.pop(home.path, None)
    if child is not None:
        child.wait(timeout=10)
    home.pid_file.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m relmon.devbroker",
        description="Start or stop a single-node Kafka broker for development and tests.",
    )
    parser.add_argument("action", choices=["start", "stop", "status", "jars"])
    parser.add_argument(
        "--home",
        type=Path,
        default=REPO_ROOT / ".broker",
        help="folder for config, data, log and pid (default: .broker)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=9092,
        help="client port; the controller uses port+1 (default: 9092)",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for start-up")
    args = parser.parse_args(argv)
    home = BrokerHome(args.home.resolve(), args.port)
    try:
        if args.action == "jars":
            ensure_jars(home.lib)
            print(f"Kafka jars ready in {home.lib}")
        elif args.action == "start":
            started = start(home, timeout_s=args.timeout)
            verb = "started" if started else "already running"
            print(f"Kafka broker {verb} on {home.bootstrap} (log: {home.log_file})")
        elif args.action == "stop":
            print("Kafka broker stopped" if stop(home) else "no Kafka broker was running here")
        else:
            pid = running_pid(home)
            print(f"running, pid {pid}, on {home.bootstrap}" if pid else "not running")
            return 0 if pid else 3
    except BrokerStartError as exc:
        print(f"relmon broker: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
