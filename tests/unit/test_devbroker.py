"""The local broker's helpers that need no broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from relmon import devbroker


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id starting with "-" would read as an option to kafka-storage ("--cluster-id:
    expected one argument", seen once in a benchmark's broker start): it is drawn again."""
    draws: Iterator[uuid.UUID] = iter(
        [uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))]
    )
    monkeypatch.setattr(devbroker.uuid, "uuid4", lambda: next(draws))
    cluster_id = devbroker._cluster_id()
    assert not cluster_id.startswith("-")
    assert len(cluster_id) == 22
    assert next(draws, None) is None  # the first draw, "-AAAA…", was refused
