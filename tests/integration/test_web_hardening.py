"""A real `relmon worker` against hostile HTTP clients on 127.0.0.1.

Short limits (2 s header and body timeouts, 40 connections) so that the test sees every
guard act: bodies and headers dripped byte by byte, idle connections beyond the limit, a
burst of connections, and Faust's own pages. A normal request is answered while the slow
clients are held. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from .conftest import Cluster

LIMITS = {
    "RELMON_WEB_HEADER_TIMEOUT_S": "2",
    "RELMON_WEB_BODY_TIMEOUT_S": "2",
    "RELMON_WEB_IDLE_TIMEOUT_S": "3",
    "RELMON_WEB_MAX_CONNECTIONS": "40",
}
COMMITTED_OPENAPI = Path(__file__).parents[2] / "schemas" / "openapi.json"
FAUST_PAGES = (
    "/",
    "/router/",
    "/table/",
    "/table/supporter-state/S-1/",
    "/graph/",
    "/performance/",
)


async def until_closed(reader: asyncio.StreamReader, limit_s: float) -> bytes:
    got = b""
    async with asyncio.timeout(limit_s):
        while chunk := await reader.read(4096):
            got += chunk
    return got


async def test_faust_pages_are_not_served_with_or_without_a_token(cluster: Cluster) -> None:
    """Faust's pages (index, router, raw table rows, graph, performance) are 404 on a worker
    without a token, and 401 then 404 on one with a token: never their content. The
    worker serves schemas/openapi.json at /openapi.json, behind the token."""
    open_worker = cluster.worker(state="open", **LIMITS).start()
    locked = cluster.worker(state="locked", token="t0ken", **LIMITS).start()
    open_worker.wait_ready()
    locked.wait_ready()
    async with httpx.AsyncClient(timeout=10) as http:
        for page in FAUST_PAGES:
            answer = await http.get(open_worker.url + page)
            assert answer.status_code == 404, (page, answer.text[:200])
            assert answer.json()["error"] == "not_found"
            anonymous = await http.get(locked.url + page)
            assert anonymous.status_code == 401, (page, anonymous.text[:200])
            authorised = await http.get(locked.url + page, headers=locked.headers())
            assert authorised.status_code == 404, (page, authorised.text[:200])
        # the API's own description is served, behind the token like the API
        assert (await http.get(locked.url + "/openapi.json")).status_code == 401
        served = await http.get(locked.url + "/openapi.json", headers=locked.headers())
        assert served.json() == json.loads(COMMITTED_OPENAPI.read_text())


async def test_slow_idle_and_too_many_clients_do_not_starve_the_worker(cluster: Cluster) -> None:
    """Against a real worker: a dripped body and dripped headers are cut (408) about 2 s
    after they start, while a normal request is answered meanwhile; 300 connections at once
    leave at most 40 open, the rest get 503, with at most two log lines about it and no
    accept() error; the server closes the idle ones; then the API answers again."""
    worker = cluster.worker(**LIMITS).start()
    worker.wait_ready()
    port = worker.port

    body_r, body_w = await asyncio.open_connection("127.0.0.1", port)
    body_w.write(
        b"POST /suppressions/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000\r\n\r\n"
    )
    head_r, head_w = await asyncio.open_connection("127.0.0.1", port)
    head_w.write(b"GET /suppressions/S-1 HTTP/1.1\r\nHost: t\r\n")
    t0 = time.monotonic()

    async def drip() -> None:
        for i in range(100):  # one byte (body) and one header line every 0.2 s, 20 s at most
            for writer, data in ((body_w, b" "), (head_w, f"X-{i}: y\r\n".encode())):
                if not writer.is_closing():
                    writer.write(data)
            await asyncio.sleep(0.2)

    dripping = asyncio.create_task(drip())
    async with httpx.AsyncClient(timeout=5) as http:
        normal = await http.get(f"{worker.url}/suppressions/S-1")
    assert normal.status_code == 200
    assert time.monotonic() - t0 < 1.5  # answered while both slow clients are held
    body_answer, head_answer = await asyncio.gather(
        until_closed(body_r, 10), until_closed(head_r, 10)
    )
    cut_after = time.monotonic() - t0
    dripping.cancel()
    body_w.close()
    head_w.close()
    assert body_answer.startswith(b"HTTP/1.1 408 "), body_answer[:100]
    assert head_answer.startswith(b"HTTP/1.1 408 "), head_answer[:100]
    assert 1.8 <= cut_after <= 5.0, cut_after

    # 300 connections at once, held open without a request
    conns = []
    for _ in range(300):
        conns.append(await asyncio.open_connection("127.0.0.1", port))
    answers = await asyncio.gather(*(until_closed(r, 10) for r, _w in conns))
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503 ")]
    timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408 ")]
    assert len(refused) >= 300 - 40, len(refused)
    assert len(refused) + len(timed_out) == 300  # the idle ones closed by the server too
    for _r, w in conns:
        w.close()
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"{worker.url}/suppressions/S-1")).status_code == 200

    log = [json.loads(line) for line in worker.log_tail(3000).splitlines() if line.startswith("{")]
    refusal_lines = [e for e in log if e["event"].startswith("refused connections")]
    assert 1 <= len(refusal_lines) <= 2, refusal_lines
    assert sum(e["refused"] for e in refusal_lines) <= len(refused)
    assert not [e for e in log if "out of system resource" in e["event"]]
    print(
        f"drip cut after {cut_after:.1f} s; 300 connections: {len(refused)} refused (503), "
        f"{len(timed_out)} closed idle (408); {len(refusal_lines)} refusal log line(s)"
    )
