"""Token streaming out of ParlAI's search, and ending a row's search early.

ParlAI's ``TorchGeneratorAgent._generate`` builds one tree-search object per batch row with
``self._treesearch_factory`` and calls each one's ``advance(logprobs, step)`` once per time
step, until every row is done. :class:`SearchHook` wraps those two methods on one agent
*instance* (ParlAI's classes are untouched, other agents unaffected): each search object it
builds reports every step to the :class:`RowState` the replier gave that row, and can be told
to end:

* **streaming**: a row that keeps one hypothesis (greedy, sampling, or a beam of width 1) has
  its reply so far after every step, so its new text goes to its request's
  :class:`ReplyChannel` at once. A wider beam does not know its best hypothesis until the
  search ends: such a reply streams at the end.
* **ending early**: before a step, a row that should end gets every token but END masked out,
  so its search finishes on that step with what it has (ParlAI's own way of finishing a
  hypothesis; its rescoring and bookkeeping are unchanged). A row ends when its client has
  gone (:meth:`ReplyChannel.cancel`), when its text contains a ``stop`` string, or when it has
  ``max_tokens`` tokens (the last two only with one hypothesis: a beam's hypotheses are cut
  after the search, as its best is not known before). The batch is one tensor, so a row that
  ended still rides along until the whole batch is done; a batch whose rows all ended stops.

The text of a row is decoded from all its token ids at each step, as the dictionary's
``vec2txt`` decodes the finished reply, so joined deltas are the reply: a multi-byte
character split over byte tokens is held back until it is whole, whitespace at the end until
something follows it (the reply is stripped), and the tail that could be the start of a stop
string until it is known not to be one.

A task-oriented round (``--task-db``, :mod:`parlai_dialogft.tod.agent_mixin`) is two
generations in one ``batch_act``, and the agent says which one runs (its ``round_step``):
the call's rows are watched for a client that leaves and nothing else (no text, no ``stop``,
no ``max_tokens``: those are the reply's); the reply's text is streamed without the
``SYSTEM: `` it starts with, and its ``max_tokens`` count the tokens after it.

Greedy search (the common case) does not go through each row's ``advance``: the agent steps
the whole batch at once (``model/fast_search.py``). The hook is that step's
:class:`~parlai_dialogft.model.fast_search.StepWatcher` too: it is asked which rows end before
each step and told each row's token after it, and does for each row what it does in
``advance`` (the same masking to END, the same counts and text), so a reply, its stream and
its early end do not depend on which loop ran the search.

**Constrained rows** (tools, ``response_format``: :mod:`parlai_dialogft.model.constrained`):
a row whose :class:`RowState` carries a constraint has the scores of every token its grammar
refuses set to minus infinity before each step, in either loop, and the grammar is told each
token chosen. Only rows that keep one hypothesis are constrained (the replier decodes them
greedily or by sampling).

Threads: the search runs in the batcher's worker thread; :meth:`ReplyChannel.publish` hands
each delta to the request's event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from typing import AsyncIterator, Callable, Iterator, List, Optional, Sequence

from parlai.utils.torch import neginf

from parlai_dialogft.model import fast_search

#: Why a row's search was ended before the model ended it (the ``dialogft_stopped_early`` label).
DISCONNECT, STOP, LENGTH = "disconnect", "stop", "length"

_CLOSED = object()


class ReplyChannel:
    """One request's line to the generating thread: its cancel flag, and its text as it comes.

    Made by the HTTP side per request. With an event loop, :meth:`publish` (worker thread)
    queues text deltas that :meth:`deltas` (the loop) yields until :meth:`close`. Without
    one, nobody listens to text: the channel only carries the cancel flag and the counts.
    """

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop] = None):
        self._loop = loop
        self._queue: Optional["asyncio.Queue[object]"] = asyncio.Queue() if loop is not None else None
        self._cancelled = threading.Event()
        self.steps = 0  # search steps run for this request's rows (all its rows summed)
        self.ended_by: Optional[str] = None  # DISCONNECT, STOP or LENGTH when its search was ended early

    @property
    def listens(self) -> bool:
        return self._queue is not None

    def cancel(self) -> None:
        """The client has gone: its rows end at their next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def publish(self, delta: str) -> None:
        self._send(delta)

    def close(self) -> None:
        """No more deltas (the reply is done, or failed, or was dropped)."""
        self._send(_CLOSED)

    def _send(self, item: object) -> None:
        if self._loop is None or self._queue is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is left to read
            pass

    async def deltas(self) -> AsyncIterator[str]:
        if self._queue is None:
            return
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                return
            yield item  # type: ignore[misc]


class TextStream:
    """Token ids in, text deltas out: the deltas joined are the decoded reply (stripped, and
    cut before the first stop string it contains, as the replier cuts it).

    With ``hidden_prefix`` (a round's ``SYSTEM:``), a text that starts with it is sent without
    it, as the agent's reply is; while the text could still become it, nothing is sent.
    ``hidden`` counts the tokens the prefix took (0 when the text turned out not to start
    with it; None while that is not known).
    """

    def __init__(self, decode: Callable[[List[int]], str], stops: Sequence[str] = (), sent: str = "",
                 hidden_prefix: str = ""):
        self._decode = decode
        self._stops = tuple(stops)
        self._prefix = hidden_prefix
        self.ids: List[int] = []
        self.sent = sent  # text already sent for this row (a search run again sends only what is new)
        self.stopped = False  # a stop string has appeared: the text is final
        self.hidden: Optional[int] = None if hidden_prefix else 0

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self._visible(self._decode(self.ids).lstrip())
        if text is None:
            return ""
        found = [at for at in (text.find(stop) for stop in self._stops) if at >= 0]
        if found:
            self.stopped = True
            ready = text[: min(found)]
        else:
            # An incomplete character decodes as U+FFFD until its last byte comes.
            ready = text.rstrip().rstrip("\ufffd").rstrip()
            ready = ready[: len(text) - self._maybe_stop(text)]
        if not ready.startswith(self.sent):
            return ""  # decoding changed text already sent (rare); the replier's final text settles it
        delta, self.sent = ready[len(self.sent):], ready
        return delta

    def _visible(self, text: str) -> Optional[str]:
        """``text`` without the hidden prefix; None while it may yet become the prefix."""
        if not self._prefix:
            return text
        if text.startswith(self._prefix):
            rest = text[len(self._prefix):].lstrip()
            if self.hidden is None:  # this token ended the prefix; it is the reply's if it also began it
                self.hidden = len(self.ids) - (1 if rest else 0)
            return rest
        if self.hidden is None and self._prefix.startswith(text):
            return None
        self._prefix, self.hidden = "", self.hidden or 0  # not the prefix: all of it is the reply
        return text

    def _maybe_stop(self, text: str) -> int:
        """Length of the longest end of ``text`` that a stop string starts with."""
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:k]):
                    return k
        return 0


class RowState:
    """What the hook knows of one batch row: its request's channel and limits, and its text."""

    def __init__(self, channel: Optional[ReplyChannel], max_tokens: Optional[int] = None,
                 stops: Sequence[str] = (), stream: bool = True, constraint=None):
        self.channel = channel
        self.constraint = constraint  # a model.constrained.RowConstraint, or None
        self.max_tokens = max_tokens
        self.stops = tuple(stops)
        self.stream = stream  # publish deltas (one draft asked for; else drafts are chosen at the end)
        self.hidden_prefix = ""  # a round's reply: what its text starts with that the user does not see
        self.text: Optional[TextStream] = None
        self.ended_by: Optional[str] = None

    def unseen(self) -> "RowState":
        """This row for a generation the user does not see (a round's call): only a client
        that leaves ends it; it sends no text and counts its steps on the same channel."""
        return RowState(self.channel, stream=False)

    def start_text(self, decode: Callable[[List[int]], str]) -> None:
        """A new text for a search that starts (again): what was sent stays sent."""
        self.text = TextStream(decode, self.stops, sent=self.text.sent if self.text is not None else "",
                               hidden_prefix=self.hidden_prefix)

    @property
    def hidden_tokens(self) -> int:
        """Tokens so far the user does not see: a round's ``SYSTEM:``, or what may yet become it."""
        if self.text is None or not self.hidden_prefix:
            return 0
        return len(self.text.ids) if self.text.hidden is None else self.text.hidden

    def end_reason(self, step: int, one_hypothesis: bool) -> Optional[str]:
        if self.channel is not None and self.channel.cancelled:
            return DISCONNECT
        if one_hypothesis:
            if self.text is not None and self.text.stopped:
                return STOP
            if self.max_tokens is not None and step - self.hidden_tokens >= self.max_tokens:
                return LENGTH
        return None


class SearchHook:
    """Installed on one agent; :meth:`watching` gives the rows of the next ``batch_act``."""

    def __init__(self, agent):
        self._agent = agent  # its round_step says which generation of a round runs (--task-db)
        self._generate = agent._generate
        self._factory = agent._treesearch_factory
        self.factory = self._factory  # StepWatcher: the searches the batch-wide step fills
        self._start, self._end = agent.START_IDX, agent.END_IDX
        tokenizer = getattr(agent.dict, "hf_tokenizer", None)
        # The same decoding as the dictionary's vec2txt, before its strip.
        self._decode: Callable[[List[int]], str] = (
            (lambda ids: tokenizer.decode(ids, skip_special_tokens=True)) if tokenizer is not None
            else agent.dict.vec2txt)
        self._rows: Optional[Sequence[RowState]] = None
        self._batch_rows: List[RowState] = []
        self._max_ts = 0
        self._fast_before: Optional[list] = None  # per row (steps, channel's ended_by) before a batch-wide search
        agent._generate = self._watched_generate
        agent._treesearch_factory = self._watched_factory
        agent.__dict__[fast_search.WATCHER] = self  # greedy keeps its batch-wide step

    @classmethod
    def on(cls, agent) -> "SearchHook":
        """The agent's hook, installed once however many repliers wrap it."""
        hook = agent.__dict__.get("_dialogft_search_hook")
        if hook is None:
            hook = agent.__dict__["_dialogft_search_hook"] = cls(agent)
        return hook

    @contextmanager
    def watching(self, rows: Sequence[RowState]) -> Iterator[None]:
        """``rows[i]`` is the ``i``-th observation of the ``batch_act`` run inside."""
        self._rows = rows
        try:
            yield
        finally:
            self._rows = None

    def _watched_generate(self, batch, beam_size, max_ts, prefix_tokens=None):
        if self._rows is None:
            return self._generate(batch, beam_size, max_ts, prefix_tokens=prefix_tokens)
        # Batch rows are the observations ParlAI found valid, in order.
        indices = batch.valid_indices.tolist() if batch.valid_indices is not None else range(batch.batchsize)
        rows = [self._rows[i] for i in indices]
        step = getattr(self._agent, "round_step", None)  # a round: every row of the batch_act is one
        if step is not None and not step.shown:
            rows = [row.unseen() for row in rows]
        elif step is not None:
            for row in rows:
                row.hidden_prefix = step.hidden_prefix
        self._batch_rows, self._max_ts = rows, max_ts
        try:
            return self._generate(batch, beam_size, max_ts, prefix_tokens=prefix_tokens)
        finally:
            self._batch_rows, self._fast_before = [], None

    def _watched_factory(self, device, verbose=False):
        search = self._factory(device, verbose=verbose)
        if self._batch_rows:
            self._watch(search, self._batch_rows.pop(0))
        return search

    # --- ParlAI's loop: one search per row, advanced one by one ----------------------------------

    def _watch(self, search, row: RowState) -> None:
        one = search.beam_size == 1
        self.start_text(row, one)
        advance = search.advance

        def step(logprobs, ts):
            reason = self.end_reason(row, ts, one)
            if reason is None and one and row.constraint is not None:
                row.constraint.mask(logprobs[0])
            if reason is not None:
                search.min_length = 0  # END must be allowed now
                logprobs.fill_(neginf(logprobs.dtype))
                logprobs[:, search.eos] = 0
            advance(logprobs, ts)
            if row.channel is not None:
                row.channel.steps += 1
            if one and reason is None:
                if row.constraint is not None:
                    row.constraint.advance(int(search.outputs[-1][0]))
                self.after_step(int(search.outputs[-1][0]), row, ts)

        search.advance = step

    # --- the batch-wide greedy step (fast_search.StepWatcher) --------------------------------------

    def ending(self, ts: int, live: List[bool]) -> List[bool]:
        rows = self._batch_rows
        if not rows:
            return [False] * len(live)
        if self._fast_before is None:  # the search's first step
            self._fast_before = [(row.channel.steps, row.channel.ended_by) if row.channel is not None else None
                                 for row in rows]
            for row in rows:
                self.start_text(row, True)
        return [alive and self.end_reason(row, ts, True) is not None for row, alive in zip(rows, live)]

    def constrain(self, ts: int, logprobs, live: List[bool], ended: List[bool]) -> None:
        """Before step ``ts``: each live constrained row's scores masked by its grammar."""
        for i, (row, alive, end) in enumerate(zip(self._batch_rows, live, ended)):
            if alive and not end and row.constraint is not None:
                row.constraint.mask(logprobs[i])

    def stepped(self, ts: int, tokens: List[int], live: List[bool], ended: List[bool]) -> None:
        for row, token, alive, end in zip(self._batch_rows, tokens, live, ended):
            if not alive:
                continue
            if row.channel is not None:
                row.channel.steps += 1
            if not end:
                if row.constraint is not None:
                    row.constraint.advance(token)
                self.after_step(token, row, ts)

    def abandon(self) -> None:
        """ParlAI's loop runs the search again: the counts go back, the text sent stays sent."""
        for row, before in zip(self._batch_rows, self._fast_before or ()):
            row.ended_by = None
            if row.constraint is not None:
                row.constraint.reset()
            if row.text is not None:
                row.start_text(self._decode)
            if before is not None:
                row.channel.steps, row.channel.ended_by = before
        self._fast_before = None

    # --- every loop (ParlAI's, the batch-wide step, continuous batching) -----------------------

    def start_text(self, row: RowState, one: bool) -> None:
        # A round's reply always: its max_tokens and its token count leave the hidden prefix out.
        if one and (row.stops or row.hidden_prefix or (row.stream and row.channel is not None and row.channel.listens)):
            row.start_text(self._decode)

    @staticmethod
    def end_reason(row: RowState, ts: int, one: bool) -> Optional[str]:
        """Why the row ends before step ``ts`` (None: it goes on); once ended, it stays ended."""
        reason = row.ended_by or row.end_reason(ts, one)
        if reason is not None:
            row.ended_by = reason
            if row.channel is not None and row.channel.ended_by is None:
                row.channel.ended_by = reason
        return reason

    def after_step(self, token: int, row: RowState, ts: int, max_ts: Optional[int] = None) -> None:
        # At the last step ParlAI writes END over an unfinished hypothesis' token: not sent.
        last = (self._max_ts if max_ts is None else max_ts) - 1
        if token in (self._end, self._start) or ts >= last or row.text is None:
            return
        delta = row.text.push(token)
        if delta and row.stream and row.channel is not None:
            row.channel.publish(delta)
