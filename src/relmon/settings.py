"""One typed settings object, read from ``RELMON_*`` environment variables.

Nothing else in relmon reads ``os.environ``. Secrets are :class:`pydantic.SecretStr`, so they
print as ``**********`` in logs and reprs; :meth:`Settings.safe_dict` is what may be logged.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Runtime settings of every relmon process (worker, CLI, tests)."""

    model_config = SettingsConfigDict(env_prefix="RELMON_", extra="ignore", frozen=True)

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="comma-separated host:port list of Kafka brokers"
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, validate_default=True)
    topic_prefix: str = Field(default="", description="prepended to every topic name")
    partitions: int = Field(default=8, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=16)
    web_host: str = "0.0.0.0"  # noqa: S104 - the API must be reachable from dialers
    web_port: int = Field(default=6066, ge=1, le=65535)
    policy_file: Path | None = None
    state_dir: Path = Path(".relmon-state")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    api_token: SecretStr | None = None
    worker_id: str = Field(default="relmon", description="Faust app id = consumer group id")
    web_advertised_url: str | None = Field(
        default=None,
        description="URL other workers use to reach this one (default http://<hostname>:<port>)",
    )
    batch_max: int = Field(default=500, ge=1, le=10_000, description="events per agent batch")
    # Objections first (README): opt-outs never wait behind bulk e-mail traffic
    urgent_first: bool = Field(
        default=True, description="hand out fetched urgent records before bulk (e-mail) ones"
    )
    max_poll_records: int = Field(
        default=500, ge=1, le=100_000, description="fetched records handed out per poll"
    )
    fetch_max_wait_ms: int = Field(
        default=100, ge=1, le=1500, description="longest a broker holds an idle fetch"
    )
    expiry_interval_s: float = Field(default=5.0, gt=0, le=60)
    broker_session_timeout_s: float = Field(default=30.0, ge=6, le=300)
    # The web server's bounds (relmon.web.server, docs/operations.md "Hardening")
    web_header_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="request line and headers must arrive within"
    )
    web_body_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="a request body must arrive within"
    )
    web_request_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="longest a request may be handled"
    )
    web_idle_timeout_s: float = Field(
        default=15.0, gt=0, le=3600, description="idle keep-alive connections closed after"
    )
    web_max_connections: int = Field(
        default=1000, ge=1, le=1_000_000, description="open connections beyond: 503 and closed"
    )
    web_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024**3)
    web_backlog: int = Field(default=128, ge=1, le=65535, description="listen() backlog")
    # Kafka clients: back-off between failed connections / metadata refreshes to a broker
    kafka_reconnect_backoff_ms: int = Field(default=100, ge=1, le=60_000)
    kafka_reconnect_backoff_max_ms: int = Field(default=2000, ge=1, le=300_000)
    # The log's rate limit: per logger and message, at most this many lines per window
    log_rate_limit: int = Field(
        default=20, ge=0, le=1_000_000, description="lines per logger+message a window; 0: off"
    )
    log_rate_window_s: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("sasl_password")
    @classmethod
    def _sasl_has_a_login(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        protocol = str(info.data.get("security_protocol", ""))
        if protocol.startswith("SASL") and not (value and info.data.get("sasl_username")):
            raise ValueError(
                f"RELMON_SECURITY_PROTOCOL={protocol} needs RELMON_SASL_USERNAME and "
                "RELMON_SASL_PASSWORD (or set PLAINTEXT / SSL)"
            )
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        bad = [h for h in hosts if ":" not in h or not h.rsplit(":", 1)[1].isdigit()]
        if not hosts or bad:
            raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return ",".join(hosts)

    def canonical_url(self) -> str:
        if self.web_advertised_url:
            return self.web_advertised_url.rstrip("/")
        return f"http://{socket.gethostname()}:{self.web_port}"

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context()
        return kwargs

    def safe_dict(self) -> dict[str, Any]:
        """The settings as they may appear in a log line: secrets masked."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = "**********"
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out
