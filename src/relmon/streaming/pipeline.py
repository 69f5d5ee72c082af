"""The worker's processing protocol: what happens to one batch of messages, in which order.

Every batch the agent takes goes through four steps::

    1. apply    each message in order: decode, validate, apply the engine. Pure and
                synchronous; nothing raises (a message that cannot be applied becomes a
                dead letter or a re-routed copy, see relmon.streaming.processor). New states
                wait in the processor's write-back cache: one per supporter per batch.
    2. emit     send every output of the batch (suppression records, alerts, dead letters,
                re-routed messages) and wait until Kafka acknowledges each one.
    3. persist  send each changed supporter's state to the table's changelog topic, wait for
                the acknowledgements, and only then write it to the local RocksDB store.
    4. ack      acknowledge the batch's messages; Faust commits acknowledged offsets.

Batches overlap by one step: while batch N is persisted and acked (3–4, in the background),
batch N+1 is applied and emitted (1–2); N+1 is persisted only once N is acked. So one
batch waits for one acknowledged round trip, not two, and under a steady trickle the next
batch does not queue behind the previous one's changelog writes. Per batch the order is
unchanged; across batches, persists and acks happen strictly in batch order. The states
being persisted stay readable (``Processor.persisting``, between the batch's own cache and
the store), so batch N+1 is applied on top of batch N as if N were already in the store.

Why nothing is lost, whatever stops the worker and when (kill -9 included):

* Offsets are committed only for acknowledged messages, and a message is acknowledged only
  after steps 2 and 3 completed for its whole batch and for every batch before it. Anything
  not acknowledged is consumed again after a restart or a rebalance.
* Outputs leave before the state is written anywhere. A crash after step 2 leaves the
  old state, so the redelivered messages are applied again and their outputs sent again:
  the same records and alerts, with the same deterministic alert ids (harmless). A crash
  in step 3 leaves the changelog ahead of (or equal to) the local store, never behind it:
  a redelivered message found already applied is one whose outputs had left in step 2.
  With the overlap, batch N+1's outputs may have left while N was not yet persisted: a
  crash then redelivers both N and N+1, which are applied again from the old state.
* Redelivered messages may come in another order across topics than the first time (and a
  late event may have been applied then): re-deriving can then emit less than the dead
  worker emitted, and a record it sent could stand on the topic unanswered. So after every
  rebalance, until each partition passes the end offset it had when assigned (what a
  previous owner may have processed), each supporter touched is given its current decision
  as a record once (:meth:`BatchPipeline.reassert`). Its last record on the topic then
  always matches its state.
* A step that fails (broker down, an output refused) is retried with back-off, forever,
  with the batch unacknowledged: the worker reports not ready, logs at error level and
  counts the failure (``relmon_pipeline_failures_total``, ``relmon_pipeline_stalled``).
  It never skips ahead. An unexpected exception (a bug) stops the process without
  acknowledging anything (see relmon.streaming.app).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar, cast

import structlog

from relmon.domain import SupporterState
from relmon.observability.logging import get_logger
from relmon.observability.metrics import RelmonMetrics
from relmon.streaming.processor import Emit, Processor, Result

log = get_logger(__name__)
_T = TypeVar("_T")


class Incoming(Protocol):
    """One consumed message (Faust's ``Message`` has these attributes)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


# While a partition catches up (consumer lag) or applies history (an event older than
# HISTORY_AGE before the worker's clock, in the last HISTORY_HOLD_S), its expiry ticks are
# skipped: a lift at a past `until` would move the supporter's clock ahead of history still
# to come, which would then look late. Lifts due meanwhile are emitted, each at its own
# `until`, once the partition has caught up.
HISTORY_AGE = timedelta(days=1)
HISTORY_HOLD_S = 10.0

APPLY_SLICE_S = 0.004  # the longest step 1 holds the event loop before yielding
APPLY_STEP = 16  # messages applied between two looks at the clock

SendOutputs = Callable[[Sequence[Emit]], Awaitable[None]]
PersistStates = Callable[[Mapping[str, SupporterState]], Awaitable[None]]
Ack = Callable[[], Awaitable[None]]


async def _nothing_to_ack() -> None:
    return None


def _raise(exc: BaseException) -> None:
    raise exc


class BatchPipeline:
    """Runs batches through apply → emit → persist → ack, overlapping one batch's persist and
    ack with the next one's apply and emit (see the module docstring)."""

    def __init__(
        self,
        processor: Processor,
        metrics: RelmonMetrics,
        *,
        send: SendOutputs,
        persist: PersistStates,
        ticks_topic: str,
        store_items: Callable[[], Iterable[tuple[str, bytes]]],
        lagging: Callable[[int], bool] = lambda _partition: False,
        retry_first_s: float = 0.2,
        retry_max_s: float = 15.0,
        on_bug: Callable[[BaseException], None] = _raise,
    ) -> None:
        self.processor = processor
        self.metrics = metrics
        self.send = send
        self.persist = persist
        self.ticks_topic = ticks_topic
        self.store_items = store_items
        self.lagging = lagging
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.on_bug = on_bug  # an unexpected error while persisting or acking in the background
        self.stalls: dict[str, str] = {}  # step -> what it is waiting for, while failing
        self._persisting: asyncio.Future[None] | None = None  # the previous batch's 3-4
        self._rebuilding: asyncio.Future[int] | None = None  # the expiry index, after a move
        self.history_at: dict[int, float] = {}  # partition -> when it last applied history
        # (topic, partition) -> end offset when assigned; None: not known yet (all may be)
        self.redelivery_ends: dict[tuple[str, int], int] | None = None
        self.reasserted: set[str] = set()  # supporters re-asserted since the last rebalance

    @property
    def stalled(self) -> str | None:
        """What the pipeline is waiting for while a step keeps failing, else None."""
        return "; ".join(self.stalls.values()) if self.stalls else None

    async def run(
        self, messages: Sequence[Incoming], now: datetime, ack: Ack = _nothing_to_ack
    ) -> list[Emit]:
        """Apply and emit one batch (steps 1–2), then hand it to the background for steps 3–4
        (``ack`` acknowledges its messages) once the previous batch is acked. Returns what it
        sent, with every output on Kafka; :meth:`drain` waits for the last batch's ack."""
        emits = await self._apply_in_slices(messages, now)
        await self._until_done("emit", self.send, emits)
        await self.drain()  # batch N-1 persisted and acked: N may follow (in order)
        dirty = self.processor.take_dirty()
        self.processor.persisting = dirty
        self._persisting = asyncio.ensure_future(self._persist_and_ack(dirty, ack))
        return emits

    async def _apply_in_slices(self, messages: Sequence[Incoming], now: datetime) -> list[Emit]:
        """Step 1 in slices of about ``APPLY_SLICE_S``, yielding to the event loop between
        them: a batch of 500 events takes tens of milliseconds to apply, which API requests
        (answered from the same states, batch in hand included) should not wait for."""
        emits: list[Emit] = []
        start, total = 0, len(messages)
        while start < total:
            began = time.perf_counter()
            while True:  # at least one step per slice
                emits += self.apply(messages[start : start + APPLY_STEP], now)
                start += APPLY_STEP
                if start >= total or time.perf_counter() - began >= APPLY_SLICE_S:
                    break
            if start < total:
                await asyncio.sleep(0)
        return emits

    async def drain(self) -> None:
        """Wait until the batch handed to the background is persisted and acked."""
        pending = self._persisting
        if pending is not None:
            await pending
            self._persisting = None

    async def _persist_and_ack(self, dirty: Mapping[str, SupporterState], ack: Ack) -> None:
        try:
            await self._until_done("persist", self.persist, dirty)
            if self.processor.persisting is dirty:
                self.processor.persisting = {}  # in the store now
            await ack()
        except Exception as exc:  # noqa: BLE001  # not Kafka failing (retried): a bug
            self.on_bug(exc)

    def assigned(self) -> None:
        """Partitions moved: every message may be a redelivery until the ends are known,
        and the expiry index is rebuilt from the partitions now held."""
        self.redelivery_ends = None
        self.reasserted.clear()
        self.processor.expiry.built = False
        if self._rebuilding is not None:
            self._rebuilding.cancel()
            self._rebuilding = None

    def _start_rebuild(self) -> None:
        """Rebuild the expiry index (and suppression counts) in the background, once."""
        if self._rebuilding is not None and not self._rebuilding.done():
            return
        started = time.monotonic()
        task = asyncio.ensure_future(self.processor.rebuild_expiry_async(self.store_items()))
        self._rebuilding = task

        def done(t: asyncio.Future[int]) -> None:
            if t.cancelled():
                return
            if t.exception() is not None:
                self.on_bug(cast(BaseException, t.exception()))
                return
            log.info(
                "expiry index rebuilt",
                supporters_with_expiry=t.result(),
                seconds=round(time.monotonic() - started, 2),
            )

        task.add_done_callback(done)

    def may_be_redelivered(self, message: Incoming) -> bool:
        ends = self.redelivery_ends
        if ends is None:
            return True
        end = ends.get((message.topic, message.partition))
        return end is None or message.offset < end

    def apply(self, messages: Sequence[Incoming], now: datetime) -> list[Emit]:
        """Step 1: every message of the batch, in order (no I/O, nothing raises)."""
        processor = self.processor
        emits: list[Emit] = []
        touched: list[str] = []  # supporters of possibly redelivered messages
        bind = structlog.contextvars.bind_contextvars
        history_before = now - HISTORY_AGE
        try:
            for message in messages:
                # Every log line written while handling this message says where it came from.
                bind(topic=message.topic, partition=message.partition, offset=message.offset)
                if message.topic == self.ticks_topic:
                    emits += self._tick(message)
                    continue
                started = time.perf_counter()
                result = processor.handle(
                    message.topic,
                    message.partition,
                    message.offset,
                    message.key,
                    message.value,
                    now=now,
                )
                record_metrics(self.metrics, result)
                event = result.event
                if event is not None:
                    if event.occurred_at < history_before:
                        self.history_at[message.partition] = time.monotonic()
                    if result.status in ("ok", "late") and self.may_be_redelivered(message):
                        touched.append(event.supporter_id)
                if result.error_kind is not None:
                    log.warning("dead letter", error_kind=result.error_kind)
                self.metrics.observe_latency(time.perf_counter() - started)
                emits += result.emits
        finally:
            structlog.contextvars.clear_contextvars()
        if touched:
            emits += self.reassert(touched, emits)
        return emits

    def reassert(self, supporters: Iterable[str], emits: Sequence[Emit]) -> list[Emit]:
        """The current record of each supporter not re-asserted since the last rebalance and
        given no record by this batch (whose last record is then its current decision)."""
        recorded = {e.key for e in emits if e.output == "suppressions"}
        out: list[Emit] = []
        for sid in supporters:
            if sid in self.reasserted:
                continue
            self.reasserted.add(sid)
            if sid.encode() in recorded:
                continue
            emit = self.processor.current_record(sid)
            if emit is not None:
                out.append(emit)
        return out

    def _tick(self, message: Incoming) -> list[Emit]:
        """A tick for one partition: lift (or re-decide) what fell due by then."""
        processor = self.processor
        if not processor.expiry.built:
            self._start_rebuild()
            return []  # expiries wait until the index is rebuilt (in the background)
        last_history = self.history_at.get(message.partition)
        if self.lagging(message.partition) or (
            last_history is not None and time.monotonic() - last_history < HISTORY_HOLD_S
        ):
            return []  # catching up here: expiries wait (see HISTORY_AGE)
        try:
            tick_at = datetime.fromisoformat(bytes(message.value or b"").decode())
        except (UnicodeDecodeError, ValueError):
            log.warning("ignored a tick that is not an ISO time", value=repr(message.value)[:80])
            return []
        return list(processor.expire(message.partition, tick_at))

    async def _until_done(
        self, step: str, action: Callable[[_T], Awaitable[None]], arg: _T
    ) -> None:
        """Run ``action(arg)`` until it succeeds, backing off between attempts."""
        delay = self.retry_first_s
        attempt = 0
        while True:
            attempt += 1
            try:
                await action(arg)
            except Exception as exc:  # noqa: BLE001  # any failure: retry, never skip
                self.stalls[step] = f"{step}: {type(exc).__name__}: {exc}"
                self.metrics.pipeline_failure(step)
                log.error(
                    "batch stalled: will retry, nothing is acknowledged meanwhile",
                    step=step,
                    attempt=attempt,
                    retry_in_s=round(delay, 2),
                    error=f"{type(exc).__name__}: {exc}",
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if step in self.stalls:
                log.info("batch flowing again", step=step, attempts=attempt)
                del self.stalls[step]
                if not self.stalls:
                    self.metrics.pipeline_flowing()
            return


def record_metrics(metrics: RelmonMetrics, result: Result) -> None:
    """Count one handled message: its result, new reasons, alerts, dead letters."""
    event_type = result.event.type if result.event is not None else result.event_type
    metrics.event_consumed(event_type, result.status)
    if result.error_kind is not None:
        metrics.dead_letter(result.error_kind)
        return
    for code in result.new_reasons:
        metrics.decision(code)
    for alert in result.outcome.alerts if result.outcome is not None else []:
        partner = alert.contact.partner_id if alert.contact is not None else None
        if alert.kind == "churn_after_contact" and alert.contact is not None:
            lost = alert.donation.monthly_amount_lost_cents if alert.donation else 0
            metrics.churn_alert(partner, alert.contact.campaign_purpose, lost)
        elif alert.kind == "call_while_suppressed":
            metrics.call_while_suppressed(partner)
        elif alert.kind == "call_outside_window":
            w = alert.window
            metrics.call_outside_window(
                partner, w.day if w else None, w is not None and w.opens is not None
            )
