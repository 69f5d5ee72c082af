"""The dialer API's validation, auth, answers and forwarding, without a broker.

The handlers run on a real aiohttp server on 127.0.0.1 and are called with a real HTTP
client; the worker behind them is a small :class:`relmon.web.api.Backend` over a real
current-decision view (an in-memory store instead of the Faust table).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from relmon.domain import Engine, load_policy
from relmon.streaming.processor import Processor, partition_for
from relmon.testing import call, consent, to_line
from relmon.web.api import MAX_BATCH, Api, install_routes

PARTITIONS = 4
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class DictStore(dict[str, bytes]):
    """An in-memory StateStore."""


class Backend:
    """The worker as the API sees it: a processor's view, readiness and partition owners."""

    def __init__(self, owners: dict[int, str] | None = None, delay_s: float = 0.0) -> None:
        self.processor = Processor(Engine(load_policy()), DictStore(), partitions=PARTITIONS)
        self.ready = True
        self.partitions = PARTITIONS
        # every partition owned here (by the server whose self_url is "") unless told
        self._owners = owners if owners is not None else dict.fromkeys(range(PARTITIONS), "")
        self.delay_s = delay_s  # per answer, to make a long check

    def owners(self) -> dict[int, str]:
        return self._owners

    def answers(self, ids: Iterable[str], now: datetime) -> Iterator[tuple[str, bytes]]:
        for pair in self.processor.view.answers(ids, now):
            if self.delay_s:
                time.sleep(self.delay_s)
            yield pair

    def explain(self, supporter_id: str, now: datetime) -> bytes:
        state = self.processor.load(supporter_id)
        return orjson.dumps(self.processor.engine.explain(state, supporter_id, now))

    def metrics_text(self) -> tuple[bytes, str]:
        return b"relmon_up 1\n", "text/plain; version=0.0.4"

    def suppress(self, sid: str, opt_out: bool = False) -> dict[str, Any]:
        """A declined upgrade call (suppressed for some days) or a phone opt-out (suppressed
        indefinitely), persisted; the record it emitted."""
        event = (
            consent(at=T0, supporter_id=sid, event_id=f"o-{sid}")
            if opt_out
            else call(at=T0, supporter_id=sid, event_id=f"e-{sid}")
        )
        result = self.processor.handle(
            "relmon.calls",
            partition_for(sid, PARTITIONS),
            0,
            sid.encode(),
            to_line(event),
        )
        store: DictStore = self.processor.store  # type: ignore[assignment]
        store.update({k: s.to_bytes() for k, s in self.processor.take_dirty().items()})
        (record,) = [orjson.loads(e.value) for e in result.emits if e.output == "suppressions"]
        return record  # type: ignore[no-any-return]


async def serve(backend: Backend, token: str | None = None, url: str = "") -> TestServer:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    secret = SecretStr(token) if token else None
    install_routes(app, Api(backend, token=secret, self_url=url))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def api() -> AsyncIterator[tuple[Backend, httpx.AsyncClient]]:
    backend = Backend()
    server = await serve(backend)
    async with httpx.AsyncClient(base_url=str(server.make_url("")), timeout=30) as client:
        yield backend, client
    await server.close()


async def test_known_and_never_seen_supporters_are_told_apart(
    api: tuple[Backend, httpx.AsyncClient],
) -> None:
    """A held supporter's answer is its record as on the topic plus ``known: true`` and the
    marketing purposes it blocks, with no ``next_call_at`` while opted out; a never-seen one
    is ``known: false``, not suppressed, with nothing decided. The batch check gives the
    same answers."""
    backend, client = api
    record = backend.suppress("S-1", opt_out=True)
    got = (await client.get("/suppressions/S-1")).json()
    assert got.pop("known") is True
    assert got.pop("blocked_purposes") == [
        "acquisition",
        "other",
        "reactivation",
        "survey",
        "upgrade",
    ]
    assert got.pop("next_call_at") is None  # opted out: suppressed with no end
    assert got == record
    never = (await client.get("/suppressions/S-2")).json()
    assert (never["known"], never["suppressed"], never["decided_at"]) == (False, False, None)
    both = await client.post("/suppressions/check", json={"supporter_ids": ["S-1", "S-2", "S-1"]})
    results = both.json()["results"]
    assert list(results) == ["S-1", "S-2"]  # duplicates answered once
    assert results["S-1"]["decided_at"] == record["decided_at"]
    assert results["S-2"]["known"] is False


async def test_decided_at_is_never_the_request_time(
    api: tuple[Backend, httpx.AsyncClient],
) -> None:
    """Asked twice, a second apart, the answer is the same but for ``next_call_at`` (the
    one field computed from the request's clock): the decision's time, not the request's."""
    backend, client = api
    backend.suppress("S-1")
    first = orjson.loads((await client.get("/suppressions/S-1")).content)
    await asyncio.sleep(1.1)
    second = orjson.loads((await client.get("/suppressions/S-1")).content)
    first.pop("next_call_at")
    second.pop("next_call_at")
    assert second == first


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{nope", 400, "malformed_json"),
        (b'{"ids": []}', 400, "bad_request"),
        (b'{"supporter_ids": "S-1"}', 400, "bad_request"),
        (b'{"supporter_ids": ["S-1", 7]}', 400, "bad_supporter_id"),
        (b'{"supporter_ids": [""]}', 400, "bad_supporter_id"),
        (orjson.dumps({"supporter_ids": ["x" * 65]}), 400, "bad_supporter_id"),
        (orjson.dumps({"supporter_ids": ["S"] * (MAX_BATCH + 1)}), 413, "too_many_ids"),
    ],
)
async def test_bad_check_requests_get_a_precise_4xx(
    api: tuple[Backend, httpx.AsyncClient], body: bytes, status: int, code: str
) -> None:
    """Each malformed batch check is refused with its own status, code and detail."""
    _backend, client = api
    response = await client.post("/suppressions/check", content=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]


async def test_a_bad_id_in_the_path_is_refused(api: tuple[Backend, httpx.AsyncClient]) -> None:
    """An id over 64 characters is a 400 that says the limit."""
    _backend, client = api
    response = await client.get(f"/suppressions/{'x' * 65}")
    assert response.status_code == 400
    assert "1-64" in response.json()["detail"]


async def test_not_ready_is_a_503_with_retry_after(api: tuple[Backend, httpx.AsyncClient]) -> None:
    """While the worker recovers, no answer is guessed: 503 with Retry-After, single and
    batch alike; readiness says so too."""
    backend, client = api
    backend.ready = False
    for response in (
        await client.get("/suppressions/S-1"),
        await client.post("/suppressions/check", json={"supporter_ids": ["S-1"]}),
        await client.get("/readyz"),
    ):
        assert response.status_code == 503
    assert (await client.get("/suppressions/S-1")).headers["Retry-After"] == "1"


async def test_the_token_guards_every_route_but_health() -> None:
    """With a token set: none, a wrong one, lower-case ``bearer`` and a token in the query
    all get 401; the right one gets the answer; health checks stay open."""
    backend = Backend()
    server = await serve(backend, token="s3cret")
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/suppressions/S-1")).status_code == 401
            for header in ("Bearer nope", "bearer s3cret", "s3cret"):
                got = await client.get("/suppressions/S-1", headers={"Authorization": header})
                assert got.status_code == 401, header
            assert (await client.get("/suppressions/S-1?token=s3cret")).status_code == 401
            ok = await client.get("/suppressions/S-1", headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200
            assert ok.json()["known"] is False
    finally:
        await server.close()


async def test_a_check_is_split_between_the_workers_that_own_the_ids() -> None:
    """Ids owned by another worker are forwarded there in one batch and merged into one
    answer; a single check for such an id is forwarded too."""
    other = Backend()
    other_server = await serve(other)
    other_url = str(other_server.make_url("")).rstrip("/")
    mine = "me"
    theirs = [p for p in range(PARTITIONS) if p % 2]
    owners = {p: (other_url if p in theirs else mine) for p in range(PARTITIONS)}
    backend = Backend(owners)
    server = await serve(backend, url=mine)
    ids = [f"S-{i}" for i in range(40)]
    remote = [sid for sid in ids if partition_for(sid, PARTITIONS) in theirs]
    assert remote
    assert len(remote) < len(ids)
    for sid in remote:
        other.suppress(sid, opt_out=True)  # only the owner holds them
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            results = (
                await client.post("/suppressions/check", json={"supporter_ids": ids})
            ).json()["results"]
            assert set(results) == set(ids)
            assert {sid for sid in ids if results[sid]["known"]} == set(remote)
            single = (await client.get(f"/suppressions/{remote[0]}")).json()
            assert single["known"] is True
            assert single["suppressed"] is True
    finally:
        await server.close()
        await other_server.close()


async def test_a_long_check_does_not_hold_up_single_checks() -> None:
    """A check that takes seconds answers in slices: a single check sent after it started
    is answered before it ends."""
    backend = Backend(delay_s=0.0001)
    server = await serve(backend)
    ids = [f"S-{i}" for i in range(20_000)]  # about 2 s of answers
    finished: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("")), timeout=60) as client:

            async def big() -> None:
                response = await client.post("/suppressions/check", json={"supporter_ids": ids})
                assert len(response.json()["results"]) == len(ids)
                finished.append("big")

            async def single() -> None:
                await asyncio.sleep(0.3)
                assert (await client.get("/suppressions/S-1")).status_code == 200
                finished.append("single")

            await asyncio.gather(big(), single())
    finally:
        await server.close()
    assert finished == ["single", "big"]


async def test_a_due_expiry_reads_as_lifted_before_the_lift_is_emitted(
    api: tuple[Backend, httpx.AsyncClient],
) -> None:
    """Once every reason's ``until`` has passed (T0 is long ago), the answer is the lift at
    its ``until``, not the stale suppression."""
    backend, client = api
    record = backend.suppress("S-1")
    got = (await client.get("/suppressions/S-1")).json()
    assert got["suppressed"] is False
    assert got["decided_at"] == record["until"]
    assert datetime.fromisoformat(got["decided_at"]) < datetime.now(UTC) - timedelta(days=1)
