"""Settings: RELMON_* variables, validation, and secrets kept out of logs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from relmon.settings import Settings


def test_settings_come_from_relmon_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting is read from its RELMON_* variable."""
    monkeypatch.setenv("RELMON_KAFKA_BOOTSTRAP", "k1:9093, k2:9093")
    monkeypatch.setenv("RELMON_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("RELMON_PARTITIONS", "12")
    monkeypatch.setenv("RELMON_WEB_PORT", "7070")
    settings = Settings()
    assert settings.kafka_bootstrap == "k1:9093,k2:9093"
    assert (settings.topic_prefix, settings.partitions, settings.web_port) == ("prod.", 12, 7070)


def test_secrets_never_appear_in_what_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SASL password and the API token are masked in safe_dict and in repr, but reach the
    Kafka client arguments."""
    monkeypatch.setenv("RELMON_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("RELMON_SASL_USERNAME", "relmon")
    monkeypatch.setenv("RELMON_SASL_PASSWORD", "hunter2-kafka")
    monkeypatch.setenv("RELMON_API_TOKEN", "tok-123456")
    settings = Settings()
    shown = f"{settings.safe_dict()} {settings!r}"
    assert "hunter2-kafka" not in shown
    assert "tok-123456" not in shown
    assert settings.safe_dict()["sasl_password"] == "**********"
    assert settings.kafka_client_kwargs()["sasl_plain_password"] == "hunter2-kafka"


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("RELMON_KAFKA_BOOTSTRAP", "localhost", "host:port"),
        ("RELMON_PARTITIONS", "0", "partitions"),
        ("RELMON_SECURITY_PROTOCOL", "TLS", "security_protocol"),
        ("RELMON_WEB_PORT", "seventy", "web_port"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, needle: str
) -> None:
    """A bad value is refused with an error that names the setting."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=needle):
        Settings()


def test_cli_reports_a_bad_setting_by_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command run with a bad RELMON_* value exits 1 naming the variable, no traceback."""
    from relmon.cli import main

    monkeypatch.setenv("RELMON_PARTITIONS", "0")
    assert main(["topics", "create"]) == 1
    err = capsys.readouterr().err
    assert "RELMON_PARTITIONS" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_a_sasl_protocol_without_a_login_is_refused_with_what_to_set(protocol: str) -> None:
    """SASL without user name and password cannot connect (aiokafka raises at the first
    client); the settings say so up front, naming the variables to set."""
    with pytest.raises(ValidationError) as error:
        Settings(security_protocol=protocol, sasl_username="relmon")
    assert "needs RELMON_SASL_USERNAME and RELMON_SASL_PASSWORD" in str(error.value)
    assert Settings(security_protocol=protocol, sasl_username="u", sasl_password="p")
