"""The hardened web server against slow, idle and too many clients, with real sockets.

The dialer API (over the small backend of test_api.py) is served by
:class:`relmon.web.server.GuardedRunner` on 127.0.0.1 with short limits, and hostile clients
are raw sockets that drip bytes, go quiet or open connection after connection. Every loop
is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import structlog
from aiohttp import web

from relmon.web.api import Api, install_routes
from relmon.web.server import GuardedRunner, GuardedServer, WebLimits
from tests.unit.test_api import Backend

FAST = WebLimits(
    header_timeout_s=1.0,
    body_timeout_s=1.0,
    request_timeout_s=1.0,
    idle_timeout_s=1.5,  # longer than the header timeout, which is what is tested here
    max_connections=20,
    max_body_bytes=64 * 1024,
)


@dataclass
class Served:
    runner: GuardedRunner
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server(self) -> GuardedServer:
        server = self.runner.server
        assert isinstance(server, GuardedServer)
        return server


async def serve(limits: WebLimits, extra: web.Application | None = None) -> Served:
    app = web.Application(client_max_size=limits.max_body_bytes)
    install_routes(app, Api(Backend(), token=None, self_url=""))

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({})

    app.router.add_get("/slow", slow)
    runner = GuardedRunner(app, limits)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return Served(runner, site.port)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    s = await serve(FAST)
    yield s
    await s.runner.cleanup()


async def read_until_closed(reader: asyncio.StreamReader, limit_s: float) -> bytes:
    """What the server sends until it closes the connection (bounded by ``limit_s``)."""
    got = b""
    async with asyncio.timeout(limit_s):
        while chunk := await reader.read(4096):
            got += chunk
    return got


async def normal_request_answers(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=5) as client:
        response = await client.get("/suppressions/S-1")
    assert response.status_code == 200
    assert response.json()["known"] is False


async def test_a_body_dripped_byte_by_byte_is_cut_after_the_body_timeout(served: Served) -> None:
    """A check whose body drips in one byte at a time gets 408 and is closed about
    body_timeout_s after its headers, while a normal request on another connection is
    answered meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        b"POST /suppressions/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    t0 = time.monotonic()

    async def drip() -> None:
        for _ in range(100):  # at most 100 bytes, 10 s
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)

    dripping = asyncio.create_task(drip())
    await normal_request_answers(served)
    answer = await read_until_closed(reader, limit_s=10)
    cut_after = time.monotonic() - t0
    dripping.cancel()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert b'"request_timeout"' in answer
    assert 0.9 <= cut_after <= 3.0, cut_after


async def test_headers_dripped_line_by_line_are_cut_after_the_header_timeout(
    served: Served,
) -> None:
    """A request whose header lines keep coming (slowloris) gets 408 and is closed about
    header_timeout_s after its first byte; the API answers others meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    t0 = time.monotonic()
    writer.write(b"GET /readyz HTTP/1.1\r\n")

    async def drip() -> None:
        for i in range(100):
            writer.write(f"X-Slow-{i}: y\r\n".encode())
            await writer.drain()
            await asyncio.sleep(0.1)

    dripping = asyncio.create_task(drip())
    await normal_request_answers(served)
    answer = await read_until_closed(reader, limit_s=10)
    cut_after = time.monotonic() - t0
    dripping.cancel()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert 0.9 <= cut_after <= 3.0, cut_after
    assert served.server.header_timeouts == 1


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    """After an answer, a keep-alive connection that sends nothing more is closed about
    idle_timeout_s later (the header timeout, longer here, plays no part)."""
    served = await serve(WebLimits(header_timeout_s=10, idle_timeout_s=1.0))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        t0 = time.monotonic()
        rest = await read_until_closed(reader, limit_s=10)
        closed_after = time.monotonic() - t0
        writer.close()
        assert rest == b""
        assert 0.9 <= closed_after <= 3.0, closed_after
    finally:
        await served.runner.cleanup()


async def test_connections_beyond_the_limit_get_503_and_one_log_line(served: Served) -> None:
    """With max_connections idle connections held open, each of 200 more connections is
    answered 503 and closed at once; the refusals are logged once, not 200 times; and
    once the held connections are gone the API answers again."""
    held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(20)]
    with structlog.testing.capture_logs() as logs:
        answers = []
        for _ in range(200):
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            answers.append(await read_until_closed(reader, limit_s=5))
            writer.close()
    assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), {a[:40] for a in answers}
    assert all(b"too_many_connections" in a for a in answers)
    assert served.server.refused == 200
    refusals = [e for e in logs if e["event"].startswith("refused connections")]
    assert len(refusals) == 1, refusals
    assert refusals[0]["setting"] == "RELMON_WEB_MAX_CONNECTIONS"
    for _reader, writer in held:
        writer.close()
    for _ in range(100):  # the server sees the held connections close (at most 5 s)
        if len(served.server.open) < FAST.max_connections:
            break
        await asyncio.sleep(0.05)
    await normal_request_answers(served)


async def test_slow_clients_under_the_limit_do_not_hold_up_a_normal_request(
    served: Served,
) -> None:
    """Fifteen clients dripping headers and bodies at once (under the connection limit)
    do not keep a normal request from being answered, and all of them are closed within
    a few seconds."""
    conns = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(15)]
    for i, (_reader, writer) in enumerate(conns):
        if i % 2:
            writer.write(
                b"POST /suppressions/check HTTP/1.1\r\nHost: t\r\nContent-Length: 99\r\n\r\n{"
            )
        else:
            writer.write(b"GET /suppressions/S-1 HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n")
    t0 = time.monotonic()
    await normal_request_answers(served)
    assert time.monotonic() - t0 < 0.5
    closed = await asyncio.gather(*(read_until_closed(r, limit_s=10) for r, _w in conns))
    assert all(c.startswith(b"HTTP/1.1 408 ") for c in closed)
    assert time.monotonic() - t0 < 4
    for _r, writer in conns:
        writer.close()


async def test_a_request_longer_than_the_request_timeout_is_answered_503(served: Served) -> None:
    """A handler still busy after request_timeout_s is cancelled and the client told 503."""
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        t0 = time.monotonic()
        response = await client.get("/slow")
    assert response.status_code == 503
    assert response.json()["error"] == "request_timeout"
    assert time.monotonic() - t0 < 3


async def test_a_body_over_the_size_limit_is_refused_413(served: Served) -> None:
    """A check body larger than max_body_bytes is refused with 413 in the API's error form."""
    body = b'{"supporter_ids": ["' + b"x" * (FAST.max_body_bytes + 10) + b'"]}'
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        response = await client.post("/suppressions/check", content=body)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
