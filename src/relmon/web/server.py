"""The worker's HTTP server, hardened against slow, idle and too many clients.

Faust serves its web views with aiohttp, whose defaults suit a trusted caller: an idle
keep-alive connection is kept for an hour, request headers and bodies may take forever,
and connections are accepted until the process runs out of file descriptors (then asyncio
logs "socket.accept() out of system resource" for every attempt). relmon's dialer API is
called by machines on the network, so every phase of a connection is bounded here:

================  ==========================================================================
header timeout    request line and headers complete within ``header_timeout_s`` of the
                  connection opening or of the request's first byte (then ``408``, closed)
body timeout      the body read within ``body_timeout_s`` of the headers (``408``, closed);
                  at most ``max_body_bytes`` (``413``)
request timeout   a handler (deciding, streaming the answer) ends within
                  ``request_timeout_s`` (``503`` or the connection closed mid-answer)
idle timeout      a keep-alive connection without a request is closed after
                  ``idle_timeout_s`` (aiohttp's ``keepalive_timeout``)
connections       beyond ``max_connections`` open ones a new connection gets ``503`` and is
                  closed at once, logged at most once every ``REFUSAL_LOG_EVERY_S``
================  ==========================================================================

:class:`GuardedRunner` is an :class:`aiohttp.web.AppRunner` that builds all this around any
``web.Application`` (the unit tests serve the API with it); :class:`GuardedWeb` is Faust's
aiohttp driver using that runner, serving none of Faust's built-in pages (``/``,
``/router``, ``/table/...`` would show raw supporter state and the cluster's layout).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from faust.web.drivers.aiohttp import Web as FaustAiohttpWeb

from relmon.observability.logging import get_logger

if TYPE_CHECKING:
    from relmon.settings import Settings

log = get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFUSAL_LOG_EVERY_S = 10.0
FD_RESERVE = 256  # descriptors kept for Kafka connections, RocksDB files and logs
LINGER_S = 1.0  # how long an unread body is drained after the answer (aiohttp's default: 10)


@dataclass(frozen=True)
class WebLimits:
    """The bounds of the worker's HTTP server (``RELMON_WEB_*``, docs/operations.md)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    request_timeout_s: float = 60.0
    idle_timeout_s: float = 15.0
    max_connections: int = 1000
    max_body_bytes: int = 16 * 1024 * 1024
    backlog: int = 128

    @classmethod
    def from_settings(cls, settings: Settings) -> WebLimits:
        return cls(
            header_timeout_s=settings.web_header_timeout_s,
            body_timeout_s=settings.web_body_timeout_s,
            request_timeout_s=settings.web_request_timeout_s,
            idle_timeout_s=settings.web_idle_timeout_s,
            max_connections=settings.web_max_connections,
            max_body_bytes=settings.web_max_body_bytes,
            backlog=settings.web_backlog,
        )


def _raw_answer(status: str, code: str, detail: str) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 answer, for a connection no handler has."""
    body = orjson.dumps({"error": code, "detail": detail})
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if status.startswith("503"):
        head += "Retry-After: 1\r\n"
    return head.encode() + b"\r\n" + body


class GuardedHandler(RequestHandler):
    """One connection: aiohttp's handler plus the header timeout."""

    def __init__(self, manager: GuardedServer, *, loop: asyncio.AbstractEventLoop, **kw: Any):
        super().__init__(manager, loop=loop, **kw)
        self.guard = manager
        self.guard_loop = loop
        self.in_request = False  # between the headers and the end of the handler
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and not self.in_request:
            self._arm_header_timer()  # the first byte of the next request on this connection
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def request_started(self) -> None:
        """The request line and headers are in: the header timer is done."""
        self.in_request = True
        self._cancel_header_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def request_finished(self) -> None:
        self.in_request = False

    def _arm_header_timer(self) -> None:
        delay = self.guard.limits.header_timeout_s
        self._header_timer = self.guard_loop.call_later(delay, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.in_request or self.transport is None:
            return
        self.guard.header_timeouts += 1
        log.info(
            "closed a connection: request headers not complete in time",
            limit_s=self.guard.limits.header_timeout_s,
            setting="RELMON_WEB_HEADER_TIMEOUT_S",
        )
        detail = f"request headers not complete within {self.guard.limits.header_timeout_s} s"
        with contextlib.suppress(Exception):  # the peer may be gone already
            self.transport.write(_raw_answer("408 Request Timeout", "request_timeout", detail))
        self.force_close()


class _Refusal(asyncio.Protocol):
    """A connection beyond the limit: answered 503 and closed at once."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        with contextlib.suppress(Exception):
            transport.write(self.answer)  # type: ignore[attr-defined]
        transport.close()


class GuardedServer(web.Server):
    """aiohttp's protocol factory, counting open connections and refusing beyond the limit."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: WebLimits,
        loop: asyncio.AbstractEventLoop,
        max_connections: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, loop=loop, **kwargs)
        self.limits = limits
        self.max_connections = max_connections
        self.guard_loop = loop
        self.handler_kwargs = {k: v for k, v in kwargs.items() if k != "request_factory"}
        self.handler_kwargs.pop("handler_cancellation", None)
        self.open: weakref.WeakSet[GuardedHandler] = weakref.WeakSet()
        self.refused = 0  # since the server started
        self.header_timeouts = 0
        self._refused_unlogged = 0
        self._last_refusal_log = float("-inf")
        self._flush: asyncio.TimerHandle | None = None
        detail = f"more than {max_connections} open connections; retry shortly"
        self._refusal_answer = _raw_answer(
            "503 Service Unavailable", "too_many_connections", detail
        )

    def __call__(self) -> RequestHandler:  # may return a refusal (a protocol)
        if len(self.open) >= self.max_connections:
            self._note_refusal()
            return _Refusal(self._refusal_answer)  # type: ignore[return-value]
        handler = GuardedHandler(self, loop=self.guard_loop, **self.handler_kwargs)
        self.open.add(handler)
        return handler

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        if isinstance(handler, GuardedHandler):
            self.open.discard(handler)

    def _note_refusal(self) -> None:
        self.refused += 1
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= REFUSAL_LOG_EVERY_S:
            self._log_refusals(now)
        elif self._flush is None:
            wait = self._last_refusal_log + REFUSAL_LOG_EVERY_S - now
            self._flush = self.guard_loop.call_later(wait, self._flush_refusals)

    def _flush_refusals(self) -> None:
        self._flush = None
        if self._refused_unlogged:
            self._log_refusals(time.monotonic())

    def _log_refusals(self, now: float) -> None:
        log.warning(
            "refused connections: too many open (503 and closed)",
            refused=self._refused_unlogged,
            open=len(self.open),
            limit=self.max_connections,
            setting="RELMON_WEB_MAX_CONNECTIONS",
            at_most_one_line_every_s=REFUSAL_LOG_EVERY_S,
        )
        self._refused_unlogged = 0
        self._last_refusal_log = now


def connection_limit(wanted: int) -> int:
    """``wanted``, lowered (with a warning) so that open connections can never use up the
    process's file descriptors: FD_RESERVE stay free for Kafka, RocksDB and the logs."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft - FD_RESERVE:
        return wanted
    allowed = max(16, soft - FD_RESERVE)
    log.warning(
        "RELMON_WEB_MAX_CONNECTIONS is above what the file limit allows: lowered",
        wanted=wanted,
        used=allowed,
        nofile_limit=soft,
        hint="raise the limit (ulimit -n, the container's nofile) or lower the setting",
    )
    return allowed


def guard_middleware(limits: WebLimits) -> Any:
    """Bounds the body read and the handler's time; frees the connection's header timer."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        if isinstance(protocol, GuardedHandler):
            protocol.request_started()
        try:
            if request.body_exists and request.can_read_body:
                try:
                    await asyncio.wait_for(request.read(), limits.body_timeout_s)
                except TimeoutError:
                    return await _body_too_slow(request, limits)
                except web.HTTPRequestEntityTooLarge:
                    return _json_error(
                        413, "body_too_large", f"the body is over {limits.max_body_bytes} bytes"
                    )
            try:
                async with asyncio.timeout(limits.request_timeout_s):
                    return await handler(request)
            except TimeoutError:
                log.warning(
                    "request cut: it took longer than the limit",
                    path=request.path,
                    limit_s=limits.request_timeout_s,
                    setting="RELMON_WEB_REQUEST_TIMEOUT_S",
                )
                if request.protocol is not None and _prepared(request):
                    request.protocol.force_close()  # the answer was half sent: end it
                    raise
                return _json_error(
                    503,
                    "request_timeout",
                    f"the request took longer than {limits.request_timeout_s} s",
                )
        finally:
            if isinstance(protocol, GuardedHandler):
                protocol.request_finished()

    return guard


def _prepared(request: web.Request) -> bool:
    """Whether some of the answer (its headers at least) went out already."""
    return request.writer.output_size > 0 or request.writer.buffer_size > 0


def _json_error(status: int, code: str, detail: str) -> web.Response:
    body = orjson.dumps({"error": code, "detail": detail})
    return web.Response(status=status, body=body, content_type="application/json")


async def _body_too_slow(request: web.Request, limits: WebLimits) -> web.StreamResponse:
    log.info(
        "closed a connection: request body not read in time",
        path=request.path,
        limit_s=limits.body_timeout_s,
        setting="RELMON_WEB_BODY_TIMEOUT_S",
    )
    response = _json_error(
        408, "request_timeout", f"the body did not arrive within {limits.body_timeout_s} s"
    )
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()  # no lingering read of the rest of a dripped body
    return response


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server applies :class:`WebLimits` to every connection."""

    def __init__(self, app: web.Application, limits: WebLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits
        app.middlewares.insert(0, guard_middleware(limits))  # outermost: sees every request

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # runs the app's startup and freezes it
        return GuardedServer(
            base.request_handler,
            request_factory=base.request_factory,
            limits=self.limits,
            loop=asyncio.get_running_loop(),
            max_connections=connection_limit(self.limits.max_connections),
            handler_cancellation=True,  # a client that leaves cancels its request
            keepalive_timeout=self.limits.idle_timeout_s,
            lingering_time=LINGER_S,
            access_log=None,
        )


class GuardedWeb(FaustAiohttpWeb):  # faust is untyped (Any)
    """Faust's aiohttp web driver with :class:`GuardedRunner` and none of Faust's pages."""

    def __init__(self, app: Any, *, limits: WebLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits
        self._runner = GuardedRunner(self.web_app, limits)  # Faust's runner, replaced

    def _enabled_blueprints(self) -> list[tuple[str, Any]]:
        """No built-in Faust pages: ``/`` (index or sensor stats), ``/router`` (the cluster's
        layout), ``/table`` (raw table rows), ``/graph``, ``/performance``."""
        return []

    def _new_transport_tcp(self) -> web.BaseSite:
        conf = self.app.conf
        return web.TCPSite(
            self._runner,
            conf.web_bind,
            conf.web_port,
            ssl_context=conf.web_ssl_context,
            backlog=self.limits.backlog,
        )
