"""A client set to another security protocol than the listener gets told so, precisely.

The session's broker has a plaintext listener; relmon verbs set to SASL or TLS must say
that the listener answered with another protocol and which setting to change, not
"cannot reach Kafka ... make broker". Runs the real CLI against the real broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relmon.settings import Settings
from relmon.streaming.listener_probe import probe
from tests.integration.conftest import free_port


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELMON_")}
    return subprocess.run(
        [sys.executable, "-m", "relmon.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("protocol", "extra"),
    [
        ("SASL_PLAINTEXT", {"RELMON_SASL_USERNAME": "relmon", "RELMON_SASL_PASSWORD": "s3cret"}),
        ("SASL_SSL", {"RELMON_SASL_USERNAME": "relmon", "RELMON_SASL_PASSWORD": "s3cret"}),
        ("SSL", {}),
    ],
)
def test_a_sasl_or_tls_client_at_a_plaintext_listener_is_told_which_setting_to_change(
    kafka_bootstrap: str, topic_prefix: str, protocol: str, extra: dict[str, str]
) -> None:
    """`relmon topics create` set to SASL or TLS against the plaintext broker exits 1 saying
    the listener speaks PLAINTEXT, naming RELMON_SECURITY_PROTOCOL=PLAINTEXT, never "make
    broker", and never the password."""
    result = run(
        ["topics", "create", "--bootstrap", kafka_bootstrap, "--prefix", topic_prefix],
        RELMON_SECURITY_PROTOCOL=protocol,
        **extra,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr
    assert "speaks another security protocol" in message
    assert "it wants neither TLS nor a SASL login" in message
    assert f"while relmon is set to {protocol} (RELMON_SECURITY_PROTOCOL)" in message
    assert "RELMON_SECURITY_PROTOCOL=PLAINTEXT" in message
    assert "make broker" not in message
    assert "s3cret" not in result.stdout + message


def test_the_worker_says_the_same_at_start(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """`relmon worker` with SASL settings against the plaintext broker stops at start with
    the same precise message."""
    result = run(
        ["worker"],
        RELMON_KAFKA_BOOTSTRAP=kafka_bootstrap,
        RELMON_TOPIC_PREFIX=topic_prefix,
        RELMON_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        RELMON_SASL_MECHANISM="SCRAM-SHA-512",
        RELMON_SASL_USERNAME="relmon",
        RELMON_SASL_PASSWORD="s3cret",
        RELMON_STATE_DIR=str(tmp_path),
        RELMON_WEB_HOST="127.0.0.1",
        RELMON_WEB_PORT=str(free_port()),
    )
    assert result.returncode != 0
    assert "RELMON_SECURITY_PROTOCOL=PLAINTEXT" in result.stderr, result.stderr[-2000:]
    assert "s3cret" not in result.stdout + result.stderr


def test_the_probe_names_the_plaintext_listener_and_skips_closed_ports(
    kafka_bootstrap: str,
) -> None:
    """The probe skips a closed bootstrap address and finds the broker's listener to be
    PLAINTEXT; with only closed ports it finds nothing (then "cannot reach" is right)."""
    found = probe(f"127.0.0.1:1,{kafka_bootstrap}")
    assert found is not None
    assert (found.address, found.protocol) == (kafka_bootstrap, "PLAINTEXT")
    assert probe("127.0.0.1:1") is None
    assert Settings(kafka_bootstrap=kafka_bootstrap).security_protocol == "PLAINTEXT"
