"""Every error relmon raises on purpose derives from :class:`RelmonError`.

The tree::

    RelmonError
    ├── ConfigError          a setting, policy file or CLI argument is wrong
    │   └── PolicyError      the policy TOML is missing a number or has one out of range
    ├── InvalidEvent         an input event cannot be decoded or validated (goes to the DLQ)
    ├── InputFileError       a replay input file is missing, unreadable or empty
    └── BrokerError          Kafka is unreachable or refused an admin request

Each carries a message written for the person who has to act on it: what is wrong and,
where we know, what to do about it.
"""

from __future__ import annotations


class RelmonError(Exception):
    """Root of every error relmon raises on purpose."""


class ConfigError(RelmonError):
    """A setting, policy file or command-line argument is wrong."""


class PolicyError(ConfigError):
    """The policy file is missing a value, has an unknown key or a value out of range."""


class InvalidEvent(RelmonError):  # noqa: N818 - reads as "an invalid event" at raise sites
    """An input event cannot be decoded or validated.

    ``field`` names the offending field (dotted path) when there is one, ``kind`` is a short
    machine-readable error class used as a metric label (``json``, ``validation``,
    ``key_mismatch``, ``encoding``).
    """

    def __init__(self, message: str, *, field: str | None = None, kind: str = "validation") -> None:
        super().__init__(message)
        self.field = field
        self.kind = kind


class InputFileError(RelmonError):
    """A replay input is missing, unreadable or empty."""


class BrokerError(RelmonError):
    """Kafka is unreachable or refused an admin request."""
