"""The dialer API on the worker's web server (aiohttp, through Faust's web driver).

Routes (contract sections 4 and 5)::

    GET  /suppressions/{supporter_id}   the supporter's answer (below)
    POST /suppressions/check            {"supporter_ids": [...]} (≤ 100,000 ids)
                                        -> {"results": {id: answer}}
    GET  /supporters/{supporter_id}     state, scores and the contributions behind them
    GET  /metrics                       Prometheus text format
    GET  /healthz  /readyz              liveness; readiness (only after table recovery)

An answer is the supporter's current decision as on the suppression topic, with ``known``,
``blocked_purposes`` and ``next_call_at`` added (schema ``schemas/suppression_answer.json``;
``next_call_at`` is the one field computed from the request's clock: the earliest moment a
marketing call is allowed, see :mod:`relmon.domain.calling`); it comes from
the worker's current-decision view (:mod:`relmon.streaming.view`), so ``decided_at`` is the
causing event's time or the ``until`` that lifted it, never the request's time. A
suppression whose ``until`` has passed reads as lifted even before the lift record is
emitted. A never-seen supporter is ``known: false``, ``suppressed: false``.

A supporter's state lives on the worker that owns its partition. A request for a supporter
owned by another worker is forwarded there (one forwarded batch per owner for ``check``), so
any worker answers for every supporter. A long check answers in slices and yields to the
event loop between them, so single checks and stream processing are not held up by it.

The handlers reach the worker only through :class:`Backend`, so they are tested without a
broker (tests/unit/test_api.py).

Errors are JSON ``{"error": ..., "detail": ...}`` with a 4xx status for bad requests. When
``RELMON_API_TOKEN`` is set every route but the health checks needs ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, web
from aiohttp.typedefs import Middleware
from pydantic import SecretStr

from relmon.observability.metrics import HttpMetrics
from relmon.streaming.processor import partition_for

MAX_BATCH = 100_000
SLICE_S = 0.004  # the longest a request holds the event loop before yielding to others
MAX_ID_LENGTH = 64
VALIDATE_STEP = 10_000  # ids validated between two yields to the event loop
FORWARDED = "X-Relmon-Forwarded"
OPEN_ROUTES = frozenset({"/healthz", "/readyz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED_ROUTE = "unmatched"


class Backend(Protocol):
    """What the API needs from a running worker (:class:`relmon.streaming.app.Worker`)."""

    @property
    def ready(self) -> bool:
        """Recovered and settled: answers can be trusted."""
        ...

    @property
    def partitions(self) -> int: ...

    def owners(self) -> dict[int, str]:
        """Partition -> base URL of the worker that owns it (from the last rebalance)."""
        ...

    def answers(self, ids: Iterable[str], now: datetime) -> Iterator[tuple[str, bytes]]:
        """``(id, encoded answer)`` from the current-decision view, for ids it owns."""
        ...

    def explain(self, supporter_id: str, now: datetime) -> bytes:
        """State, scores and contributions, encoded (``GET /supporters/{id}``)."""
        ...

    def metrics_text(self) -> tuple[bytes, str]:
        """The Prometheus exposition and its content type."""
        ...


def not_ready() -> web.Response:
    """A supporter's state is not known here right now (recovery, rebalance): never guess
    "not suppressed"; the dialer should retry (and not dial meanwhile)."""
    response = error(503, "not_ready", "state is being recovered or rebalanced; retry shortly")
    response.headers["Retry-After"] = "1"
    return response


def error(status: int, code: str, detail: str) -> web.Response:
    body = orjson.dumps({"error": code, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/json")


class Api:
    """Request handlers bound to one worker (through :class:`Backend`)."""

    def __init__(self, backend: Backend, *, token: SecretStr | None, self_url: str) -> None:
        self.backend = backend
        self.token = token
        self.self_url = self_url
        self._session: ClientSession | None = None

    # --- middleware -------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.token is not None and request.path not in OPEN_ROUTES:
            expected = f"Bearer {self.token.get_secret_value()}"
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return error(
                    401, "unauthorized", "send the API token as 'Authorization: Bearer <token>'"
                )
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = HTTPStatus(exc.status).phrase.lower().replace(" ", "_")
            return error(exc.status, code, f"{request.method} {request.path}: {exc.reason}")

    # --- helpers ----------------------------------------------------------------------
    def _is_local(self, owner: str | None) -> bool:
        return owner is None or owner == self.self_url

    async def _forward(self, request: web.Request, owner: str, body: bytes | None) -> web.Response:
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=30))
        headers = {FORWARDED: "1", "Content-Type": "application/json"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            async with self._session.request(
                request.method, f"{owner}{request.path_qs}", data=body, headers=headers
            ) as response:
                return web.Response(
                    status=response.status,
                    body=await response.read(),
                    content_type="application/json",
                )
        except (ClientError, TimeoutError) as exc:
            raise web.HTTPBadGateway(
                reason=f"the worker owning this supporter ({owner}) did not answer"
            ) from exc

    def _supporter_id(self, request: web.Request) -> str:
        sid = request.match_info["supporter_id"]
        if not 1 <= len(sid) <= MAX_ID_LENGTH:
            raise ValueError(f"supporter_id must be 1-{MAX_ID_LENGTH} characters")
        return sid

    # --- routes -----------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.backend.ready:
            return web.json_response({"status": "ready"})
        return error(503, "not_ready", "table recovery or a rebalance is in progress")

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.backend.metrics_text()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def suppression(self, request: web.Request) -> web.Response:
        def one(sid: str, now: datetime) -> bytes:
            return next(self.backend.answers([sid], now))[1]

        return await self._single(request, one)

    async def supporter(self, request: web.Request) -> web.Response:
        return await self._single(request, self.backend.explain)

    async def _single(
        self, request: web.Request, answer: Callable[[str, datetime], bytes]
    ) -> web.Response:
        try:
            sid = self._supporter_id(request)
        except ValueError as exc:
            return error(400, "bad_supporter_id", str(exc))
        if not self.backend.ready:
            return not_ready()
        owner = self.backend.owners().get(partition_for(sid, self.backend.partitions))
        if FORWARDED not in request.headers:
            if owner is None:
                return not_ready()
            if not self._is_local(owner):
                return await self._forward(request, owner, None)
        body = answer(sid, datetime.now(UTC))
        return web.Response(body=body, content_type="application/json")

    async def check(self, request: web.Request) -> web.StreamResponse:
        ids = await self._parse_check(request)
        if isinstance(ids, web.Response):
            return ids
        if not self.backend.ready:
            return not_ready()
        now = datetime.now(UTC)
        remote: dict[str, list[str]] = defaultdict(list)
        if FORWARDED in request.headers:
            local = ids
        else:
            owners = self.backend.owners()
            partitions = self.backend.partitions
            if len(owners) < partitions:
                return not_ready()  # some partition has no known owner: do not guess
            if all(self._is_local(owner) for owner in owners.values()):
                local = ids  # this worker owns every partition: no need to hash the ids
            else:
                local = []
                for sid in ids:
                    owner = owners.get(partition_for(sid, partitions))
                    if self._is_local(owner):
                        local.append(sid)
                    else:
                        remote[str(owner)].append(sid)
        forwarded = await asyncio.gather(
            *(self._forward_check(request, owner, chunk) for owner, chunk in remote.items())
        )
        # Streamed in slices of at most SLICE_S each, yielding to the event loop in between:
        # a 100,000-id answer is some 37 MB, and neither deciding it nor joining it into one
        # body may hold up single checks, stream processing or heartbeats.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"results":{')
        first = True
        answers = self.backend.answers(local, now)
        while True:
            piece = _join_slice(answers, SLICE_S)
            if piece is None:
                break
            await response.write(piece if first else b"," + piece)
            first = False
            await asyncio.sleep(0)  # write() yields only when the socket is backed up
        for part in forwarded:
            for piece in part:
                await response.write(piece if first else b"," + piece)
                first = False
        await response.write(b"}}")
        await response.write_eof()
        return response

    async def _forward_check(self, request: web.Request, owner: str, ids: list[str]) -> list[bytes]:
        """The owner's answers for ``ids``, as ``"id":answer`` pieces of the results object."""
        response = await self._forward(request, owner, orjson.dumps({"supporter_ids": ids}))
        if response.status != 200 or response.body is None:
            raise web.HTTPBadGateway(reason=f"worker {owner} answered {response.status}")
        decoded = orjson.loads(response.body)  # type: ignore[arg-type]
        return [orjson.dumps(sid) + b":" + orjson.dumps(a) for sid, a in decoded["results"].items()]

    async def _parse_check(self, request: web.Request) -> list[str] | web.Response:
        try:
            payload = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return error(400, "malformed_json", f"the body is not JSON: {exc}")
        if not isinstance(payload, dict) or not isinstance(payload.get("supporter_ids"), list):
            return error(400, "bad_request", 'expected {"supporter_ids": ["...", ...]}')
        ids = payload["supporter_ids"]
        if len(ids) > MAX_BATCH:
            return error(413, "too_many_ids", f"{len(ids)} ids; at most {MAX_BATCH} per request")
        for start in range(0, len(ids), VALIDATE_STEP):
            chunk = ids[start : start + VALIDATE_STEP]
            if not all(type(sid) is str and 1 <= len(sid) <= MAX_ID_LENGTH for sid in chunk):
                i = next(
                    start + j
                    for j, sid in enumerate(chunk)
                    if not isinstance(sid, str) or not 1 <= len(sid) <= MAX_ID_LENGTH
                )
                return error(
                    400,
                    "bad_supporter_id",
                    f"supporter_ids[{i}] must be a string of 1-{MAX_ID_LENGTH} characters",
                )
            await asyncio.sleep(0)  # a 100,000-id body is checked in steps (see SLICE_S)
        unique: dict[str, None] = {}
        for start in range(0, len(ids), VALIDATE_STEP):  # duplicates answered once, in steps
            unique.update(dict.fromkeys(ids[start : start + VALIDATE_STEP]))
            await asyncio.sleep(0)
        return list(unique)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _join_slice(answers: Iterator[tuple[str, bytes]], budget_s: float) -> bytes | None:
    """The next ``"id":answer,...`` piece, as many answers as ``budget_s`` allows (at least
    one); None when ``answers`` is exhausted."""
    out: list[bytes] = []
    dumps = orjson.dumps
    deadline = time.perf_counter() + budget_s
    for sid, answer in answers:
        out.append(dumps(sid) + b":" + answer)
        if len(out) % 256 == 0 and time.perf_counter() > deadline:
            break
    return b",".join(out) if out else None


def route_of(request: web.Request) -> str:
    """The matched route's template (``/suppressions/{supporter_id}``), never the raw path:
    a metric label must not take a value per supporter id or per path a client invents."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def observing(http: HttpMetrics) -> Middleware:
    """A middleware timing every request and counting its answer by route and status class
    (``relmon_http_*``). Installed outermost, so 401s and errors turned into answers by the
    other middlewares are seen as the client sees them; an exception that escapes is a 500.
    A request forwarded by another worker is not counted again: the worker the client asked
    counts it, with the time and status the client got."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        if FORWARDED in request.headers:
            return await handler(request)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            http.observe(request.method, route_of(request), status, time.perf_counter() - started)

    return observe


def install_routes(web_app: web.Application, api: Api, *, http: HttpMetrics | None = None) -> Api:
    """Add the API's routes and middleware to the worker's aiohttp application; with
    ``http``, every request is observed (:func:`observing`)."""
    if http is not None:
        web_app.middlewares.insert(0, observing(http))  # first in the list: outermost
    web_app.middlewares.append(api.middleware)
    router = web_app.router
    router.add_get("/healthz", api.healthz)
    router.add_get("/readyz", api.readyz)
    router.add_get("/metrics", api.metrics)
    router.add_get("/suppressions/{supporter_id}", api.suppression)
    router.add_post("/suppressions/check", api.check)
    router.add_get("/supporters/{supporter_id}", api.supporter)
    if http is not None:
        for route in router.routes():
            if route.resource is not None and route.method != "HEAD":
                http.known_route(route.method, route.resource.canonical)

    async def _close(_app: Any) -> None:
        await api.close()

    web_app.on_cleanup.append(_close)
    return api
