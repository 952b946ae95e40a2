"""Micro-batching: concurrent requests become one generation call, in one worker thread.

Generating for 16 prompts at once costs little more than for one (the model runs the same
number of steps on a wider tensor), so under load the server waits a moment to gather
requests. The rule: the worker takes the oldest request, then everything already queued,
then waits for more while they keep coming: until ``max_wait_s`` passes without a new one,
up to ``max_batch``, and never longer than ``BURST_WAITS`` times ``max_wait_s`` from taking
the first. A lone request therefore waits ``max_wait_s``; a busy server adds nothing, because
requests pile up while the previous batch generates. The window stays open through a burst
because clients answered by one batch come back one after the other, each a few
milliseconds behind the last (their streams end, they reconnect): with a fixed window the
stragglers miss it and wait a whole generation for a small batch of their own.

The worker thread is the only one that touches the model (torch is not re-entrant per
model, and ParlAI agents keep per-call state). Callers get a ``concurrent.futures.Future``;
asyncio code awaits it with ``asyncio.wrap_future``. :meth:`MicroBatcher.close` finishes
every request already accepted before the thread ends (graceful shutdown).

A caller that gives up cancels its future: while the request still waits in the queue it is
dropped and never generated for. Once its batch has started the future cannot be cancelled
(the batch is one call); the item itself may carry a way to stop its part of the work (the
serving app's prompts carry a :class:`~.streaming.ReplyChannel`), and its result goes nowhere.

More than ``max_queue`` waiting requests and :meth:`MicroBatcher.submit` refuses the next
with :class:`QueueFull`, which carries how long the queue should take to clear (from the
recent batch durations), for the caller's ``Retry-After``.

No web framework here: this module is plain threads and queues.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Generic, List, Optional, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """``max_queue`` requests are already waiting: the caller should answer 429, asking the
    client to come back in ``retry_after_s`` seconds (an estimate; at least 1)."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Closed(Exception):
    """The batcher is shutting down and accepts no new work."""


@dataclass
class _Job(Generic[T, R]):
    item: T
    future: "Future[R]" = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


_STOP = object()

#: The longest wait for a batch, in ``max_wait_s``, however steadily requests keep arriving.
BURST_WAITS = 4

#: Weight of the newest batch in the running mean of batch durations (Retry-After's estimate).
DURATION_WEIGHT = 0.2


class MicroBatcher(Generic[T, R]):
    """Run ``process(items) -> results`` (same length, same order) on batches of submissions.

    ``on_batch(size, seconds)`` is called after each batch (for metrics). When ``process``
    raises on a batch of several, each item is retried alone, so one bad request fails only
    itself.
    """

    def __init__(self, process: Callable[[Sequence[T]], List[R]], max_batch: int = 16,
                 max_wait_s: float = 0.01, max_queue: int = 1024,
                 on_batch: Optional[Callable[[int, float], None]] = None, name: str = "dialogft-batcher"):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._process = process
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_s)
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: "queue.Queue[object]" = queue.Queue()
        self._lock = threading.Lock()  # orders submit() against close()
        self._closed = False
        self._batch_s = 0.0  # running mean of recent batch durations (0 until the first)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # --- callers' side ---------------------------------------------------------------------

    def start(self) -> "MicroBatcher[T, R]":
        self._thread.start()
        return self

    @property
    def depth(self) -> int:
        """Requests waiting for a batch (not the one generating now)."""
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, item: T) -> "Future[R]":
        job: _Job[T, R] = _Job(item)
        with self._lock:
            if self._closed:
                raise Closed("the server is shutting down")
            waiting = self._queue.qsize()
            if waiting >= self.max_queue:
                raise QueueFull(f"{waiting} requests are already waiting (the limit)", self.clear_in_s(waiting))
            self._queue.put(job)
        return job.future

    def clear_in_s(self, waiting: int) -> int:
        """Whole seconds until ``waiting`` queued requests and the batch running now are done."""
        batches = 1 + math.ceil(waiting / self.max_batch)
        return max(1, math.ceil(batches * self._batch_s))

    def close(self, timeout: Optional[float] = None) -> bool:
        """Stop accepting work, finish everything accepted, then stop the thread.

        False when ``timeout`` passed first: requests were still being generated for.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)  # behind every accepted job: FIFO drains them first
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the worker thread -----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stopping = self._gather(first)
            self._run_batch(batch)

    def _gather(self, first: "_Job[T, R]") -> "tuple[List[_Job[T, R]], bool]":
        """``first`` and the jobs that join it within the window; True when the stop came too."""
        batch = [first]
        started = time.monotonic()
        deadline, last_call = started + self.max_wait_s, started + BURST_WAITS * self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = min(deadline, last_call) - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True  # run this last batch, then leave
            batch.append(job)  # type: ignore[arg-type]
            deadline = time.monotonic() + self.max_wait_s  # one more came: wait for the next
        return batch, False

    def _run_batch(self, batch: List[_Job[T, R]]) -> None:
        # A client that gave up (cancelled future) is not worth generating for.
        self._process_jobs([job for job in batch if job.future.set_running_or_notify_cancel()])

    def _process_jobs(self, live: List[_Job[T, R]]) -> None:
        """``process`` on running jobs; each job's future gets its result or its exception."""
        if not live:
            return
        start = time.monotonic()
        try:
            results = self._process([job.item for job in live])
            if len(results) != len(live):
                raise RuntimeError(f"process returned {len(results)} results for {len(live)} items")
        except Exception as exc:  # noqa: BLE001 - every failure must reach its caller
            if len(live) == 1:
                live[0].future.set_exception(exc)
            else:
                log.warning("a batch of %d failed (%s); retrying each alone", len(live), exc)
                for job in live:
                    self._run_alone(job)
            return
        finally:
            self._took(len(live), time.monotonic() - start)
        for job, result in zip(live, results):
            job.future.set_result(result)

    def _took(self, size: int, seconds: float) -> None:
        """A batch of ``size`` took ``seconds``: the running mean for Retry-After, and metrics."""
        self._batch_s = seconds if not self._batch_s else (
            DURATION_WEIGHT * seconds + (1 - DURATION_WEIGHT) * self._batch_s)
        if self._on_batch is not None:
            self._on_batch(size, seconds)

    def _run_alone(self, job: _Job[T, R]) -> None:
        try:
            job.future.set_result(self._process([job.item])[0])
        except Exception as exc:  # noqa: BLE001
            job.future.set_exception(exc)
