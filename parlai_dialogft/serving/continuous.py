"""Continuous batching for the server: requests join the running search between steps.

:class:`~.batcher.MicroBatcher` gathers requests and runs one generation call to its end; a
request arriving just after the call started waits for all of it. Here the worker thread
keeps a running batch (:class:`~parlai_dialogft.model.continuous.ContinuousGreedy`) and loops:

1. take what is waiting, up to ``--serve-max-batch`` running rows (an idle server first
   waits the micro-batcher's window, so a burst starts as one batch);
2. requests the running batch can take (one draft, the model's greedy search) join it:
   their contexts are encoded and take their first step together;
3. every running row takes one step; rows that finished leave and their requests are answered.

Requests it cannot take (``n`` > 1, sampling, or a server whose search is not plain greedy)
run as micro-batches through the :class:`~.replier.Replier` between two steps, as before:
the running rows wait for them. Replies are the same as the replier's (``tests/test_continuous.py``
for the search, ``tests/test_serving_continuous.py`` for the server): streaming, ``stop``,
``max_tokens`` and a client that leaves end or feed a row through the same
:class:`~.streaming.SearchHook` rules as in a micro-batch. A server that plays task-oriented
rounds (``--task-db``: the call, then the reply, two generations in one ``batch_act``)
micro-batches every request.

``dialogft_batch_size`` then counts rows per decoding step, and ``dialogft_batch_seconds``
times each step (a join's first step included).
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass, field
from typing import List, Optional

from parlai_dialogft.model.continuous import ContinuousGreedy, Unsupported, unsupported
from parlai_dialogft.serving.batcher import _STOP, DURATION_WEIGHT, MicroBatcher, _Job
from parlai_dialogft.serving.protocol import Prompt
from parlai_dialogft.serving.replier import Replier, Reply
from parlai_dialogft.serving.streaming import LENGTH, RowState, SearchHook

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Running:
    """One request in the running batch."""

    job: _Job
    state: RowState
    prompt_tokens: int
    joined: float = field(default_factory=time.monotonic)


class _Watcher:
    """The engine's :class:`~parlai_dialogft.model.continuous.RowWatcher`: the stream's rules."""

    def __init__(self, hook: SearchHook):
        self.hook = hook
        self.max_ts = 0  # the engine's step limit (set once it is built)

    def ending(self, owner: _Running, ts: int) -> bool:
        return self.hook.end_reason(owner.state, ts, True) is not None

    def stepped(self, owner: _Running, token: int, ts: int, ended: bool) -> None:
        channel = owner.state.channel
        if channel is not None:
            channel.steps += 1
        if not ended:
            self.hook.after_step(token, owner.state, ts, self.max_ts)


def continuous_engine(generate) -> Optional[ContinuousGreedy]:
    """A running batch for ``generate``'s agent, or None (logged) where its search cannot join one."""
    if not isinstance(generate, Replier):
        log.info("continuous batching off: requests choose adapters (--serve-lora); micro-batching")
        return None
    why = unsupported(generate.agent)
    if getattr(generate.agent, "task_db", None) is not None:
        why = "--task-db: a round is two generations in one batch_act, the call and then the reply"
    if why is not None:
        log.info("continuous batching off (%s); micro-batching", why)
        return None
    watcher = _Watcher(SearchHook.on(generate.agent))
    engine = ContinuousGreedy(generate.agent, watcher)
    watcher.max_ts = engine.max_ts
    return engine


class ContinuousBatcher(MicroBatcher[Prompt, Reply]):
    """A :class:`~.batcher.MicroBatcher` (same submit, queue limit, close) whose worker keeps a
    running batch. ``replier`` answers what the running batch cannot take."""

    def __init__(self, replier: Replier, engine: ContinuousGreedy, **kwargs):
        super().__init__(replier, **kwargs)
        self._replier = replier
        self._engine: Optional[ContinuousGreedy] = engine

    def _run(self) -> None:
        stopping = False
        while True:
            if self._engine is None:  # the model's cache cannot be joined after all
                if not stopping:
                    super()._run()
                return
            if not self._engine.size:
                if stopping:
                    return
                first = self._queue.get()
                if first is _STOP:
                    return
                jobs, stopping = self._gather(first)  # type: ignore[arg-type]
            else:
                jobs, stop = self._waiting(self.max_batch - self._engine.size)
                stopping = stopping or stop
            # A tools request is a round of one or two generations (tool_replier.py): micro-batched.
            joining = [job.item.decoding.model_search and job.item.tool_round is None for job in jobs]
            others = [job for job, joins in zip(jobs, joining) if not joins]
            if others:
                self._run_batch(others)
            self._admit([job for job, joins in zip(jobs, joining) if joins and job.future.set_running_or_notify_cancel()])
            if self._engine is not None and self._engine.size:
                size = self._engine.size
                self._timed(self._engine.step, size)

    def _waiting(self, room: int) -> "tuple[List[_Job], bool]":
        """Up to ``room`` queued jobs, without waiting; True when the stop was among them."""
        jobs: List[_Job] = []
        while len(jobs) < room:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                return jobs, True
            jobs.append(job)  # type: ignore[arg-type]
        return jobs, False

    def _admit(self, jobs: List[_Job]) -> None:
        if not jobs:
            return
        try:
            observations = self._replier.observe([job.item for job in jobs])
            valid = [i for i, obs in enumerate(observations) if obs.get("text_vec") is not None]
            owners = [_Running(jobs[i], RowState(jobs[i].item.channel, jobs[i].item.max_tokens, jobs[i].item.stop),
                               len(observations[i]["text_vec"])) for i in valid]
            batch = self._replier.agent.batchify([observations[i] for i in valid]) if valid else None
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the rest down
            log.warning("could not start %d request(s) in the running batch (%s); generating them apart",
                        len(jobs), exc)
            self._process_jobs(jobs)
            return
        if len(valid) < len(jobs):  # ParlAI answers a context with no tokens its own way
            self._process_jobs([job for i, job in enumerate(jobs) if i not in valid])
        if not owners:
            return
        for owner in owners:
            self._engine.watcher.hook.start_text(owner.state, True)
        try:
            self._timed(lambda: self._engine.admit(batch, owners), len(owners), joining=owners)
        except Unsupported as exc:  # found on the first join, before any row runs
            log.info("continuous batching off (%s); micro-batching", exc)
            self._engine = None
            self._process_jobs([owner.job for owner in owners])

    def _timed(self, run, size: int, joining: List[_Running] = ()) -> None:
        """``run()`` (a join of ``joining``, or a step) timed for the metrics; finished rows answered."""
        start = time.monotonic()
        try:
            finished = run()
        except Unsupported:
            raise
        except Exception as exc:  # noqa: BLE001 - the running batch is lost; every caller hears why
            log.exception("the running batch failed")
            for owner in {*self._engine.clear(), *joining}:
                if not owner.job.future.done():
                    owner.job.future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(size, time.monotonic() - start)
        for done in finished:
            owner: _Running = done.owner
            if done.text is None:  # only ParlAI's tree search knows this row's end: decode it there
                self._process_jobs([owner.job])
                continue
            draft = self._replier.draft(done.text, done.tokens, owner.job.item,
                                        ended_at_length=owner.state.ended_by == LENGTH)
            self._batch_s = self._reply_seconds(time.monotonic() - owner.joined)
            owner.job.future.set_result(Reply((draft,), owner.prompt_tokens))

    def _reply_seconds(self, seconds: float) -> float:
        """Running mean of a reply's time in the batch (Retry-After: one per ``max_batch`` waiting)."""
        return seconds if not self._batch_s else DURATION_WEIGHT * seconds + (1 - DURATION_WEIGHT) * self._batch_s
