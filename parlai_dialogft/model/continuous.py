"""Continuous batching for greedy search: rows join and leave a running batch between steps.

A micro-batch (``serving/batcher.py``) runs one search to its end: a request that arrives
a moment after the batch started waits for all of it, and rows that finished early ride
along as padding. Here the batch is a running set of rows, each at its own step: between
two decoding steps, finished rows leave and waiting requests join, so the batch stays full
under load (vLLM's and ``transformers serve``'s iteration-level scheduling).

Each row is decoded exactly as ParlAI's greedy search decodes it alone (and as
``fast_search.greedy_generate`` does for a batch): the same activation, temperature, minimum
length, the same float32 running score; its finished tokens go through a ``GreedySearch``
filled by ``fast_search._fill``, so ``get_rescored_finished`` and ``_v2t`` give the reply
text as ``batch_act`` would.

Joining is cache surgery, done once per join and per leave, not per step:

* **decoder-only models** (``hf_model.CausalModel``): each row's KV cache, attention mask
  and positions are left-padded to the longest row's length and stacked; positions are
  the row's own (the model takes ``position_ids``), and padding is masked, so a row's
  logits do not depend on its neighbours.
* **T5-family seq2seq models**: the encoder states, their mask and the cross-attention cache
  are right-padded to the longest context; the decoder's self-attention cache is left-padded
  with a decoder mask (``incr_state["decoder_mask"]``, which ``Seq2SeqModel.decoder`` passes
  on). T5's positions are relative, so left padding moves nothing. Models with absolute
  decoder positions (BART) would see shifted positions: not supported.

Anything else (beam search, sampling, blocking, sliding-window or quantized caches) is not
this module's: :func:`unsupported` says why, and the caller batches those another way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional, Protocol, Tuple

import torch
from parlai.utils.torch import neginf
from transformers.cache_utils import DynamicCache, DynamicLayer, EncoderDecoderCache

from parlai_dialogft.model import fast_search

#: seq2seq architectures whose decoder positions are relative (left padding changes nothing).
RELATIVE_SEQ2SEQ = frozenset({"t5", "mt5", "umt5", "longt5"})


class Unsupported(Exception):
    """This agent or model cannot be continuously batched (the message says why)."""


class RowWatcher(Protocol):
    """The caller's view of each row's search (rows are the ``owner`` objects given to :meth:`admit`)."""

    def ending(self, owner: Any, ts: int) -> bool:
        """Before step ``ts`` of the row: end it now (its step picks END)."""

    def stepped(self, owner: Any, token: int, ts: int, ended: bool) -> None:
        """After step ``ts``: the row's token; ``ended`` when it was ended on this step."""


@dataclass
class Finished:
    owner: Any
    #: As ParlAI's eval_step gives it (``_v2t`` of the best hypothesis); None when every token
    #: scored minus infinity: only ParlAI's tree search knows what to do then (decode it there).
    text: Optional[str]
    tokens: int  # tokens generated, START and END not counted (ParlAI's gen_n_toks - 2)
    steps: int  # search steps the row took


@dataclass
class _Row:
    owner: Any
    tokens: List[int] = field(default_factory=list)
    scores: List[float] = field(default_factory=list)  # float32 running sums, one per step
    ended: bool = False  # the watcher ended it (its last step picked END)


def unsupported(agent) -> Optional[str]:
    """Why ``agent``'s search cannot run here, or None when it can."""
    if not fast_search.supports(agent, agent.beam_size, None) or agent.opt.get("inference", "greedy") != "greedy":
        return "only plain greedy search joins a running batch"
    if agent.dict.is_seq2seq:
        model_type = getattr(agent.dict.config, "model_type", "")
        if model_type not in RELATIVE_SEQ2SEQ:
            return f"{model_type} decoders have absolute positions (T5-family seq2seq models only)"
    return None


class ContinuousGreedy:
    """A running batch of greedy searches; :meth:`admit` rows, :meth:`step` them all.

    Only one thread may call it (it owns the model while it runs).
    """

    def __init__(self, agent, watcher: RowWatcher, max_ts: Optional[int] = None):
        why = unsupported(agent)
        if why is not None:
            raise Unsupported(why)
        self.agent = agent
        self.model = agent.bare_model()
        self.watcher = watcher
        self.max_ts = max_ts or agent.label_truncate or 256  # ParlAI's eval_step limit
        self.seq2seq = agent.dict.is_seq2seq
        self._rows: List[_Row] = []
        self._encoder_states: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self._incr_state: Optional[dict] = None
        self._scores: Optional[torch.Tensor] = None  # (B,) float32
        self._last: Optional[torch.Tensor] = None  # (B, 1) each row's newest token
        search = fast_search._factory(agent)("cpu", verbose=False)
        self._eos, self._bos, self._min_length = search.eos, search.bos, search.min_length

    @property
    def size(self) -> int:
        return len(self._rows)

    # --- joining ---------------------------------------------------------------------------

    def admit(self, batch, owners: List[Any]) -> List[Finished]:
        """Start the rows of ``batch`` (``agent.batchify`` of one observation per owner) and
        take their first step; returns those that finished on it."""
        if len(owners) != batch.batchsize:
            raise ValueError(f"{len(owners)} owners for a batch of {batch.batchsize}")
        with torch.no_grad(), self.agent._autocast():
            encoder_states = self.model.encoder(*self.agent._encoder_input(batch))
            device = batch.text_vec.device
            decoder_input = self.agent._get_initial_decoder_input(batch.batchsize, 1, device)
            logits, incr_state = self.model.decoder(decoder_input, encoder_states, None)
        self._check_cache(incr_state)
        rows = [_Row(owner) for owner in owners]
        if self.seq2seq:  # left padding of the decoder cache needs its mask (Seq2SeqModel.decoder extends it)
            incr_state["decoder_mask"] = torch.ones(len(rows), 1, dtype=torch.bool, device=device)
        scores = torch.zeros(len(rows), dtype=torch.float32, device=device)
        if not self._rows:
            self._rows, self._encoder_states, self._incr_state, self._scores = rows, encoder_states, incr_state, scores
            first = slice(0, len(rows))
        else:
            start = len(self._rows)
            self._rows += rows
            self._encoder_states, self._incr_state = self._join(encoder_states, incr_state)
            self._scores = torch.cat([self._scores, scores])
            first = slice(start, start + len(rows))
        return self._advance(logits, first)

    def _check_cache(self, incr_state: Optional[dict]) -> None:
        cache = None if incr_state is None else incr_state.get("cache")
        caches = [cache.self_attention_cache, cache.cross_attention_cache] if isinstance(
            cache, EncoderDecoderCache) else [cache]
        for part in caches:
            if not isinstance(part, DynamicCache) or any(type(layer) is not DynamicLayer for layer in part.layers):
                raise Unsupported(f"the model's cache ({type(cache).__name__}) cannot be padded and joined")

    def _join(self, encoder_states, incr_state) -> Tuple[Any, dict]:
        old = self._incr_state
        if not self.seq2seq:
            width = max(old["mask"].size(1), incr_state["mask"].size(1))
            _join_cache(old["cache"], incr_state["cache"], width, left=True)
            return None, {
                "cache": old["cache"],
                "mask": torch.cat([_pad(old["mask"], width, True), _pad(incr_state["mask"], width, True)]),
                # Only each row's newest position is read (the next is one more).
                "positions": torch.cat([old["positions"][:, -1:], incr_state["positions"][:, -1:]]),
            }
        (hidden, mask), (new_hidden, new_mask) = self._encoder_states, encoder_states
        context = max(mask.size(1), new_mask.size(1))
        states = (torch.cat([_pad(hidden, context, False), _pad(new_hidden, context, False)]),
                  torch.cat([_pad(mask, context, False), _pad(new_mask, context, False)]))
        cache, new_cache = old["cache"], incr_state["cache"]
        width = max(old["decoder_mask"].size(1), incr_state["decoder_mask"].size(1))
        _join_cache(cache.self_attention_cache, new_cache.self_attention_cache, width, left=True)
        _join_cache(cache.cross_attention_cache, new_cache.cross_attention_cache, context, left=False)
        decoder_mask = torch.cat([_pad(old["decoder_mask"], width, True), _pad(incr_state["decoder_mask"], width, True)])
        return states, {"cache": cache, "decoder_mask": decoder_mask}

    # --- stepping --------------------------------------------------------------------------

    def step(self) -> List[Finished]:
        """One decoding step for every running row; returns the rows that finished on it."""
        if not self._rows:
            return []
        with torch.no_grad(), self.agent._autocast():
            logits, self._incr_state = self.model.decoder(self._last, self._encoder_states, self._incr_state)
        return self._advance(logits, slice(0, len(self._rows)))

    def _advance(self, logits: torch.Tensor, part: slice) -> List[Finished]:
        """Choose the next token of the rows in ``part`` from their ``logits`` (rows of ``part``)."""
        agent, eos = self.agent, self._eos
        rows = self._rows[part]
        score = self.model.output(logits[:, -1:, :]).view(len(rows), -1)
        if agent.temperature != 1.0:
            score = score / agent.temperature
        logprobs = agent._generation_activation(score)  # (b, V), fp32
        for i, row in enumerate(rows):
            ts = len(row.tokens)
            if ts < self._min_length:
                logprobs[i, eos] = neginf(logprobs.dtype)
            if self.watcher.ending(row.owner, ts):  # END is the only choice left
                logprobs[i] = neginf(logprobs.dtype)
                logprobs[i, eos] = 0
                row.ended = True
        best, tokens = logprobs.max(1)
        scores = self._scores[part] + best
        self._scores[part] = scores
        finished, leaving = [], []
        for i, (row, token, total) in enumerate(zip(rows, tokens.tolist(), scores.tolist())):
            ts = len(row.tokens)
            row.tokens.append(token)
            row.scores.append(total)
            if math.isinf(total):  # every token scored -inf: ParlAI's tree search has its own bookkeeping
                finished.append(Finished(row.owner, None, 0, ts))
                leaving.append(part.start + i)
                continue
            self.watcher.stepped(row.owner, token, ts, row.ended)
            if token == eos or len(row.tokens) >= self.max_ts:
                finished.append(self._finish(row, ended=token == eos))
                leaving.append(part.start + i)
        # Rows of an admission are appended after the running ones.
        last = tokens.view(-1, 1)
        self._last = last if part.start == 0 else torch.cat([self._last, last])
        if leaving:
            self._leave(leaving)
        return finished

    def _finish(self, row: _Row, ended: bool) -> Finished:
        search = fast_search._factory(self.agent)(torch.device("cpu"), verbose=False)
        n = len(row.tokens)
        fast_search._fill(search, torch.tensor(row.tokens), torch.tensor(row.scores, dtype=torch.float32), n,
                          ended, self._bos)
        tokens = search.get_rescored_finished()[0][0]
        return Finished(row.owner, self.agent._v2t(tokens), max(len(tokens) - 2, 0), n)

    # --- leaving ---------------------------------------------------------------------------

    def clear(self) -> List[Any]:
        """Drop every running row (after a failed step); returns their owners."""
        owners = [row.owner for row in self._rows]
        self._rows = []
        self._encoder_states = self._incr_state = self._scores = self._last = None
        return owners

    def _leave(self, gone: List[int]) -> None:
        gone = set(gone)
        keep = [i for i in range(len(self._rows)) if i not in gone]
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._encoder_states = self._incr_state = self._scores = self._last = None
            return
        index = torch.tensor(keep, device=self._scores.device)
        self._scores, self._last = self._scores[index], self._last[index]
        state = self._incr_state
        state["cache"].reorder_cache(index)
        if not self.seq2seq:
            mask = state["mask"][index]
            cut = _leading_padding(mask)  # columns no remaining row uses
            _crop_front(state["cache"], cut)
            state["mask"], state["positions"] = mask[:, cut:], state["positions"][index][:, -1:]
            return
        decoder_mask = state["decoder_mask"][index]
        cut = _leading_padding(decoder_mask)
        _crop_front(state["cache"].self_attention_cache, cut)
        state["decoder_mask"] = decoder_mask[:, cut:]
        hidden, mask = (tensor[index] for tensor in self._encoder_states)
        context = max(int(mask.sum(1).max()), 1)  # contexts are right-padded: drop columns nobody uses
        self._encoder_states = (hidden[:, :context], mask[:, :context])
        _crop_back(state["cache"].cross_attention_cache, context)


def _pad(tensor: torch.Tensor, width: int, left: bool) -> torch.Tensor:
    """``tensor`` (B, W, ...) padded with zeros (False) along dim 1 to ``width``."""
    missing = width - tensor.size(1)
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[1] = missing
    pad = tensor.new_zeros(shape)
    return torch.cat([pad, tensor] if left else [tensor, pad], 1)


def _join_cache(cache: DynamicCache, new: DynamicCache, width: int, left: bool) -> None:
    """``new``'s rows appended to ``cache``'s, both padded to ``width`` positions (dim 2)."""
    for layer, added in zip(cache.layers, new.layers):
        for name in ("keys", "values"):
            ours, theirs = getattr(layer, name).transpose(1, 2), getattr(added, name).transpose(1, 2)
            setattr(layer, name, torch.cat([_pad(ours, width, left), _pad(theirs, width, left)]).transpose(1, 2)
                    .contiguous())


def _leading_padding(mask: torch.Tensor) -> int:
    used = mask.any(0).nonzero()
    return int(used[0]) if len(used) else 0


def _crop_front(cache: DynamicCache, cut: int) -> None:
    if cut:
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys[:, :, cut:].contiguous(), layer.values[:, :, cut:].contiguous()


def _crop_back(cache: DynamicCache, width: int) -> None:
    for layer in cache.layers:
        if layer.keys.size(2) > width:
            layer.keys, layer.values = layer.keys[:, :, :width].contiguous(), layer.values[:, :, :width].contiguous()
