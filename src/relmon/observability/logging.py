"""Logging: structlog everywhere, JSON in production, readable in a terminal.

Faust's, mode's and aiokafka's stdlib logs go through the same processors, so one log line
format covers the whole worker. Only ``supporter_id`` may identify a person in a log line;
secrets never appear (settings are logged through :meth:`Settings.safe_dict`).

Every line passes a :class:`RateLimit`: per logger, level and message template (the
``%s`` template of a stdlib call, the event of a structlog one) at most ``limit`` lines a
``window_s``; the rest are counted and summed up in one line when the window ends
("suppressed 4,210 similar lines in the last 60 s: ..."). A broker outage once wrote
710,473 aiokafka errors in 40 s; with the limit it writes a readable page. CRITICAL lines
are never held back.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

SUMMARY = "_relmon_rate_summary"  # set on the summary records the limit itself writes
MAX_KEYS = 10_000  # distinct (logger, level, template) tracked; beyond, old windows go first

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


@dataclass
class _Window:
    started: float
    lines: int = 0
    held: int = 0
    logger: str = ""
    level: int = logging.INFO
    template: str = ""


class RateLimit(logging.Filter):
    """A handler filter: per logger, level and message template at most ``limit`` lines a
    ``window_s``, then one summary line per window for those held back (``limit`` 0: off)."""

    def __init__(
        self,
        handler: logging.Handler,
        limit: int = 20,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.handler = handler
        self.limit = limit
        self.window_s = window_s
        self.held_total = 0  # lines held back since start (for tests and the curious)
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY, False) or self.limit <= 0:
            return True
        if record.levelno >= logging.CRITICAL:
            return True
        template = _template(record)
        key = (record.name, record.levelno, template)
        now = self.clock()
        ended: list[_Window] = []
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window.started >= self.window_s:
                if window.held:
                    ended.append(window)
                window = None
            if window is None:
                if len(self._windows) >= MAX_KEYS:
                    ended.extend(self._sweep(now, everything=True))
                window = _Window(now, logger=record.name, level=record.levelno, template=template)
                self._windows[key] = window
            window.lines += 1
            passed = window.lines <= self.limit
            if not passed:
                window.held += 1
                self.held_total += 1
            if now - self._last_sweep >= 1.0:
                ended.extend(self._sweep(now))
        self._summarise(ended)
        return passed

    def flush(self) -> None:
        """Write the summaries of windows that have ended (the worker calls this every few
        seconds, so a flood that stopped is still summed up)."""
        with self._lock:
            ended = self._sweep(self.clock())
        self._summarise(ended)

    def _sweep(self, now: float, everything: bool = False) -> list[_Window]:
        self._last_sweep = now
        ended = []
        for key, window in list(self._windows.items()):
            if everything or now - window.started >= self.window_s:
                del self._windows[key]
                if window.held:
                    ended.append(window)
        return ended

    def _summarise(self, windows: list[_Window]) -> None:
        for window in windows:
            record = logging.LogRecord(
                window.logger,
                max(window.level, logging.WARNING),
                __file__,
                0,
                "suppressed %d similar log lines in the last %.0f s (at most %d a window, "
                "RELMON_LOG_RATE_LIMIT): %s",
                (window.held, self.window_s, self.limit, window.template[:300]),
                None,
            )
            setattr(record, SUMMARY, True)
            self.handler.handle(record)


def _template(record: logging.LogRecord) -> str:
    """What makes two records "the same line": the unformatted message."""
    msg = record.msg
    if isinstance(msg, dict):  # a structlog event on its way to the formatter
        return str(msg.get("event", ""))
    return str(msg)


_LIMIT: list[RateLimit] = []  # the one installed by configure()


def set_rate_limit(limit: int, window_s: float) -> None:
    """Change the log's rate limit (``RELMON_LOG_RATE_LIMIT``, ``RELMON_LOG_RATE_WINDOW_S``)."""
    for rate_limit in _LIMIT:
        rate_limit.limit = limit
        rate_limit.window_s = window_s


def flush_rate_limit() -> None:
    """Write the summaries of rate-limit windows that have ended."""
    for rate_limit in _LIMIT:
        rate_limit.flush()


def configure(
    log_format: Literal["auto", "json", "console"] = "auto",
    level: str = "INFO",
    *,
    rate_limit: int = 20,
    rate_window_s: float = 60.0,
) -> None:
    """Set up structlog and route the standard library's logging through it."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    limiter = RateLimit(handler, rate_limit, rate_window_s)
    handler.addFilter(limiter)
    _LIMIT[:] = [limiter]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "faust.transport", "mode.timers"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
