"""The dialer API on the worker's web server (aiohttp, through Faust's web driver).

Routes (contract section 4)::

    GET  /suppressions/{supporter_id}   the current record (never seen: not suppressed)
    POST /suppressions/check            {"supporter_ids": [...]} (≤ 100,000 ids)
                                        -> {"results": {id: record}}
    GET  /supporters/{supporter_id}     state, scores and the contributions behind them
    GET  /metrics                       Prometheus text format
    GET  /healthz  /readyz              liveness; readiness (only after table recovery)

A supporter's state lives on the worker that owns its partition. A request for a supporter
owned by another worker is forwarded there (one forwarded batch per owner for ``check``), so
any worker answers for every supporter. Decisions are evaluated at the wall-clock time of the
request, so an expired suppression reads as lifted even before the lift record is emitted.

Errors are JSON ``{"error": ..., "detail": ...}`` with a 4xx status for bad requests. When
``RELMON_API_TOKEN`` is set every route but the health checks needs ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relmon.domain import encode_record
from relmon.streaming.processor import partition_for

if TYPE_CHECKING:
    from relmon.streaming.app import Worker

MAX_BATCH = 100_000
CHECK_CHUNK = 2_000
MAX_ID_LENGTH = 64
FORWARDED = "X-Relmon-Forwarded"
OPEN_ROUTES = frozenset({"/healthz", "/readyz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def not_ready() -> web.Response:
    """A supporter's state is not known here right now (recovery, rebalance): never guess
    "not suppressed"; the dialer should retry (and not dial meanwhile)."""
    response = error(503, "not_ready", "state is being recovered or rebalanced; retry shortly")
    response.headers["Retry-After"] = "1"
    return response


def error(status: int, code: str, detail: str) -> web.Response:
    body = orjson.dumps({"error": code, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/json")


class NeverSeen:
    """The encoded record of a never-seen supporter, made once per request and per time."""

    PLACEHOLDER = "\x00"

    def __init__(self, engine: Any, now: datetime) -> None:
        template = encode_record(engine.decision(None, self.PLACEHOLDER, now))
        head, sep, tail = template.partition(orjson.dumps(self.PLACEHOLDER))
        if not sep:
            raise RuntimeError("the never-seen record does not carry its supporter_id")
        self.head, self.tail = head, tail

    def record(self, supporter_id: str) -> bytes:
        return self.head + orjson.dumps(supporter_id) + self.tail


class Api:
    """Request handlers bound to one running worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.token = worker.settings.api_token
        self.self_url = worker.settings.canonical_url()
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
    def _records(self, ids: list[str], now: datetime) -> dict[str, bytes]:
        """Records for many supporters; never-seen ones share one encoded template (the
        record of a never-seen supporter differs only in its id), which is most of a
        100,000-id check."""
        never_seen = NeverSeen(self.worker.engine, now)
        out: dict[str, bytes] = {}
        load = self.worker.processor.load
        for sid in ids:
            state = load(sid)
            if state is None:
                out[sid] = never_seen.record(sid)
            else:
                out[sid] = encode_record(self.worker.engine.decision(state, sid, now))
        return out

    def _owners(self) -> dict[int, str]:
        """Partition -> base URL of the worker that owns it (from the last rebalance)."""
        from relmon.streaming.app import TABLE_NAME

        owners: dict[int, str] = {}
        for host, topics in self.worker.app.router.table_metadata(TABLE_NAME).items():
            for partitions in topics.values():
                for partition in partitions:
                    owners[partition] = str(host).rstrip("/")
        return owners

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
        if self.worker.ready:
            return web.json_response({"status": "ready"})
        return error(503, "not_ready", "table recovery or a rebalance is in progress")

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.worker.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def suppression(self, request: web.Request) -> web.Response:
        return await self._single(request, lambda sid, now: self._records([sid], now)[sid])

    async def supporter(self, request: web.Request) -> web.Response:
        def explain(sid: str, now: datetime) -> bytes:
            state = self.worker.processor.load(sid)
            return orjson.dumps(self.worker.engine.explain(state, sid, now))

        return await self._single(request, explain)

    async def _single(
        self, request: web.Request, answer: Callable[[str, datetime], bytes]
    ) -> web.Response:
        try:
            sid = self._supporter_id(request)
        except ValueError as exc:
            return error(400, "bad_supporter_id", str(exc))
        if not self.worker.ready:
            return not_ready()
        owners = self._owners()
        owner = owners.get(partition_for(sid, self.worker.settings.partitions))
        if FORWARDED not in request.headers:
            if owner is None:
                return not_ready()
            if not self._is_local(owner):
                return await self._forward(request, owner, None)
        body = answer(sid, datetime.now(UTC))
        return web.Response(body=body, content_type="application/json")

    async def check(self, request: web.Request) -> web.Response:
        ids = await self._parse_check(request)
        if isinstance(ids, web.Response):
            return ids
        if not self.worker.ready:
            return not_ready()
        now = datetime.now(UTC)
        results: dict[str, bytes] = {}
        remote: dict[str, list[str]] = defaultdict(list)
        if FORWARDED in request.headers:
            local = ids
        else:
            owners = self._owners()
            partitions = self.worker.settings.partitions
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
        answers = [self._forward_check(request, owner, chunk) for owner, chunk in remote.items()]
        forwarded = await asyncio.gather(*answers)
        # In chunks, yielding to the event loop in between: a 100,000-id check must not stall
        # the worker's stream processing (or its heartbeats) for its whole duration.
        for start in range(0, len(local), CHECK_CHUNK):
            results.update(self._records(local[start : start + CHECK_CHUNK], now))
            await asyncio.sleep(0)
        for part in forwarded:
            results.update(part)
        body = (
            b'{"results":{'
            + b",".join(orjson.dumps(sid) + b":" + rec for sid, rec in results.items())
            + b"}}"
        )
        return web.Response(body=body, content_type="application/json")

    async def _forward_check(
        self, request: web.Request, owner: str, ids: list[str]
    ) -> dict[str, bytes]:
        response = await self._forward(request, owner, orjson.dumps({"supporter_ids": ids}))
        if response.status != 200 or response.body is None:
            raise web.HTTPBadGateway(reason=f"worker {owner} answered {response.status}")
        decoded = orjson.loads(response.body)  # type: ignore[arg-type]
        return {sid: orjson.dumps(rec) for sid, rec in decoded["results"].items()}

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
        for i, sid in enumerate(ids):
            if not isinstance(sid, str) or not 1 <= len(sid) <= MAX_ID_LENGTH:
                return error(
                    400,
                    "bad_supporter_id",
                    f"supporter_ids[{i}] must be a string of 1-{MAX_ID_LENGTH} characters",
                )
        return list(dict.fromkeys(ids))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def install_routes(worker: Worker) -> Api:
    api = Api(worker)
    web_app: web.Application = cast(Any, worker.app.web).web_app  # the aiohttp driver's app
    web_app.middlewares.append(api.middleware)
    router = web_app.router
    router.add_get("/healthz", api.healthz)
    router.add_get("/readyz", api.readyz)
    router.add_get("/metrics", api.metrics)
    router.add_get("/suppressions/{supporter_id}", api.suppression)
    router.add_post("/suppressions/check", api.check)
    router.add_get("/supporters/{supporter_id}", api.supporter)

    async def _close(_app: Any) -> None:
        await api.close()

    web_app.on_cleanup.append(_close)
    return api
