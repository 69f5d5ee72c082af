"""The API observed: latency by route template, answers by status class, 503s while
recovering, read from the worker's registry after real requests to a real aiohttp server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from relmon.observability.metrics import HttpMetrics, status_class
from relmon.web.api import Api, install_routes
from tests.unit.test_api import Backend

SINGLE = "/suppressions/{supporter_id}"


@pytest.fixture
async def observed() -> AsyncIterator[tuple[Backend, httpx.AsyncClient, CollectorRegistry]]:
    registry = CollectorRegistry()
    backend = Backend()
    app = web.Application()
    install_routes(app, Api(backend, token=None, self_url=""), http=HttpMetrics(registry))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with httpx.AsyncClient(base_url=str(server.make_url("")), timeout=30) as client:
        yield backend, client, registry
    await server.close()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_requests_are_counted_by_route_template_and_status_class(
    observed: tuple[Backend, httpx.AsyncClient, CollectorRegistry],
) -> None:
    """Three supporters asked for one by one are one route, ``/suppressions/{supporter_id}``,
    with three 2xx answers and three latency observations; a bad id is a 4xx on the same
    route; an unknown path is ``unmatched``; no supporter id becomes a label value."""
    backend, client, registry = observed
    backend.suppress("S-1")
    for sid in ("S-1", "S-2", "S-3"):
        assert (await client.get(f"/suppressions/{sid}")).status_code == 200
    assert (await client.get(f"/suppressions/{'x' * 65}")).status_code == 400
    assert (await client.get("/nope/S-1")).status_code == 404
    ok = {"method": "GET", "route": SINGLE}
    assert sample(registry, "relmon_http_responses_total", **ok, status_class="2xx") == 3
    assert sample(registry, "relmon_http_responses_total", **ok, status_class="4xx") == 1
    assert sample(registry, "relmon_http_request_duration_seconds_count", **ok) == 4
    unmatched = {"method": "GET", "route": "unmatched", "status_class": "4xx"}
    assert sample(registry, "relmon_http_responses_total", **unmatched) == 1
    text = generate_latest(registry).decode()
    assert "S-1" not in text
    assert "S-2" not in text
    assert "/nope" not in text


async def test_503s_while_recovering_are_counted_per_route(
    observed: tuple[Backend, httpx.AsyncClient, CollectorRegistry],
) -> None:
    """While the worker is not ready, the 503 answers count as 5xx and as not ready, per
    route; once ready again the same route counts 2xx."""
    backend, client, registry = observed
    backend.ready = False
    assert (await client.get("/suppressions/S-1")).status_code == 503
    check = await client.post("/suppressions/check", json={"supporter_ids": ["S-1"]})
    assert check.status_code == 503
    assert (await client.get("/readyz")).status_code == 503
    for route in (SINGLE, "/suppressions/check", "/readyz"):
        assert sample(registry, "relmon_http_not_ready_total", route=route) == 1, route
    five = {"method": "GET", "route": SINGLE, "status_class": "5xx"}
    assert sample(registry, "relmon_http_responses_total", **five) == 1
    backend.ready = True
    assert (await client.get("/suppressions/S-1")).status_code == 200
    assert sample(registry, "relmon_http_not_ready_total", route=SINGLE) == 1
    two = {"method": "GET", "route": SINGLE, "status_class": "2xx"}
    assert sample(registry, "relmon_http_responses_total", **two) == 1


async def test_a_401_from_the_token_check_is_observed() -> None:
    """The observing middleware sits outside the token check: refused requests are counted
    as the client saw them (4xx), not lost."""
    registry = CollectorRegistry()
    app = web.Application()
    api = Api(Backend(), token=SecretStr("s3cret"), self_url="")
    install_routes(app, api, http=HttpMetrics(registry))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            assert (await client.get("/suppressions/S-1")).status_code == 401
    finally:
        await server.close()
    labels = {"method": "GET", "route": SINGLE, "status_class": "4xx"}
    assert sample(registry, "relmon_http_responses_total", **labels) == 1


def test_known_routes_exist_at_zero_and_methods_are_bounded() -> None:
    """Routes are created at 0 when installed (rate() sees the first request); a method
    outside the standard ones is counted as ``other``; status classes are 1xx-5xx."""
    registry = CollectorRegistry()
    http = HttpMetrics(registry)
    install_routes(web.Application(), Api(Backend(), token=None, self_url=""), http=http)
    labels = {"method": "POST", "route": "/suppressions/check", "status_class": "5xx"}
    assert sample(registry, "relmon_http_responses_total", **labels) == 0
    http.observe("BREW", "unmatched", 405, 0.01)
    other = {"method": "other", "route": "unmatched", "status_class": "4xx"}
    assert sample(registry, "relmon_http_responses_total", **other) == 1
    assert [status_class(s) for s in (200, 302, 404, 503, 99, 600)] == [
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "other",
        "other",
    ]


async def test_a_request_forwarded_by_another_worker_is_not_counted_twice(
    observed: tuple[Backend, httpx.AsyncClient, CollectorRegistry],
) -> None:
    """The owner of a supporter answers a forwarded request without counting it: the worker
    the dialer asked counts it once, with the time the dialer waited."""
    _backend, client, registry = observed
    forwarded = await client.get("/suppressions/S-1", headers={"X-Relmon-Forwarded": "1"})
    assert forwarded.status_code == 200
    labels = {"method": "GET", "route": SINGLE, "status_class": "2xx"}
    assert sample(registry, "relmon_http_responses_total", **labels) == 0
    assert (await client.get("/suppressions/S-1")).status_code == 200
    assert sample(registry, "relmon_http_responses_total", **labels) == 1
