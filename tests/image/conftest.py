"""The image tests use the integration tier's broker slice (topics, producer, readers)."""

from tests.integration.conftest import cluster, http

__all__ = ["cluster", "http"]
