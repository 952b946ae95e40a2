"""Greedy search for a whole batch at once, with ParlAI's results.

ParlAI's ``TorchGeneratorAgent._generate`` keeps one ``GreedySearch`` per example and, at
every step, advances them one by one: a Python loop of about fifteen small tensor
operations per example, then two ``torch.cat`` over the examples. At batch 64 that loop
costs as much as a sizeable part of the model's own step on a CPU. Greedy search needs no
tree: each step is one ``max`` over the batch's log-probabilities. This module runs that
step for every row at once and then leaves, for each example, a ``GreedySearch`` in the state
advancing it one step at a time would have left (its outputs, scores, finished hypothesis),
so ``get_rescored_finished`` and everything that reads the searches afterwards (ParlAI's
``eval_step`` n-best texts, our tests) see the same objects with the same contents.

The encoder pass of a search (seq2seq models) can also be cheaper: at batch 64 it was half
of a greedy search's time, mostly spent on context padding. :func:`grouped_encode` runs it
in length groups, as training does (``length_groups.py``): rows of similar length
together, each group trimmed to its own longest context. Padded positions then hold zeros
instead of whatever the encoder wrote there; the cross-attention masks them either way.

Only plain greedy search takes the batch-wide step; anything that needs a search per example falls
back to ParlAI's loop (see :func:`supports`): beam search, n-gram or block-list blocking,
prefix tokens, per-token details, reranking, or a ``_treesearch_factory`` replaced on the
agent by someone who watches each search's ``advance``.

The serving stream (``serving/streaming.py``) replaces that factory too, but it also installs a
:class:`StepWatcher` on the agent (the instance attribute :data:`WATCHER`): the batch-wide step
then runs, tells the watcher each row's new token after every step, and before every step
asks it which rows must end now; those get every token but END masked out, as the stream
masks a search it ends in ParlAI's loop.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Protocol, Tuple

import torch
from parlai.core.torch_generator_agent import GreedySearch, _HypothesisTail
from parlai.utils.torch import neginf

from parlai_dialogft.model import length_groups

#: The agent instance attribute that holds a :class:`StepWatcher` (set by the serving stream).
WATCHER = "_dialogft_step_watcher"


class StepWatcher(Protocol):
    """Watches the batch-wide greedy step of one agent, row by row (batch rows, in order)."""

    #: The agent's own tree-search factory, under the watcher's replacement.
    factory: Callable

    def ending(self, ts: int, live: List[bool]) -> List[bool]:
        """Before step ``ts`` (the model has scored it): the rows to end now (only ``live`` ones)."""

    def stepped(self, ts: int, tokens: List[int], live: List[bool], ended: List[bool]) -> None:
        """After step ``ts``: each row's token; ``live`` rows took the step, ``ended`` were ended on it."""

    def abandon(self) -> None:
        """The steps reported are void: ParlAI's loop runs the search again from the start."""


def watcher_of(agent) -> Optional[StepWatcher]:
    return vars(agent).get(WATCHER)


def supports(agent, beam_size: int, prefix_tokens: Optional[torch.Tensor]) -> bool:
    """Whether the agent's search for this call may be run for the whole batch at once."""
    if beam_size != 1 or prefix_tokens is not None:
        return False
    watcher = watcher_of(agent)
    if watcher is None and "_treesearch_factory" in vars(agent):
        return False  # a replaced factory watches each search, and no watcher takes the batch-wide step
    search = _factory(agent)("cpu", verbose=False)
    return (
        type(search) is GreedySearch  # a subclass may choose its paths otherwise
        and search.block_ngram <= 0
        and search.context_block_ngram <= 0
        and not agent.beam_block_list
        and not agent.show_token_details
        and not hasattr(agent, "_rerank_beams")
    )


def _factory(agent) -> Callable:
    watcher = watcher_of(agent)
    return watcher.factory if watcher is not None else agent._treesearch_factory


class NeedsTreeSearch(Exception):
    """A row's every token scored minus infinity: ParlAI's bookkeeping for that case is its own."""


def greedy_generate(agent, model, batch, max_ts: int) -> Tuple[list, List[GreedySearch]]:
    """``TorchGeneratorAgent._generate``'s result for greedy search, stepping all rows at once.

    Returns ``(beam_preds_scores, searches)`` like ParlAI, or raises :class:`NeedsTreeSearch`
    (before any result is kept) where only the tree search's own bookkeeping is exact; a
    :class:`StepWatcher` on the agent is then told to :meth:`~StepWatcher.abandon` its steps.
    """
    encoder_states = model.encoder(*agent._encoder_input(batch))
    dev = batch.text_vec.device if batch.text_vec is not None else batch.label_vec.device
    bsz = batch.batchsize
    watcher = watcher_of(agent)
    searches = [_factory(agent)(dev, verbose=False) for _ in range(bsz)]
    eos, bos, min_length = searches[0].eos, searches[0].bos, searches[0].min_length
    decoder_input = agent._get_initial_decoder_input(bsz, 1, dev)  # (B, 1)
    incr_state = None
    # Per row: score after each step (float32, as ParlAI's running sums), and how many steps
    # it took; a row is advanced until it picks EOS, then only fed EOS (as ParlAI feeds a
    # finished search's last output).
    scores = torch.zeros(bsz, dtype=torch.float32, device=dev)
    step_tokens, step_scores = [], []
    steps = torch.zeros(bsz, dtype=torch.long, device=dev)
    done = torch.zeros(bsz, dtype=torch.bool, device=dev)
    eos_fill = torch.full((bsz,), eos, dtype=torch.long, device=dev)
    for ts in range(max_ts):
        if bool(done.all()):
            break
        score, incr_state = model.decoder(decoder_input, encoder_states, incr_state)
        score = model.output(score[:, -1:, :]).view(bsz, -1)  # (B, V)
        if agent.temperature != 1.0:
            score.div_(agent.temperature)
        logprobs = agent._generation_activation(score)  # (B, V), fp32
        if ts < min_length:  # rows still advancing have taken exactly ts steps
            logprobs[:, eos] = neginf(logprobs.dtype)
        if watcher is not None:
            live = (~done).tolist()
            ended = [bool(end) and alive for end, alive in zip(watcher.ending(ts, live), live)]
            if any(ended):  # END is the only choice left (whatever the minimum length)
                rows = torch.tensor([row for row, end in enumerate(ended) if end], device=dev)
                logprobs[rows] = neginf(logprobs.dtype)
                logprobs[rows, eos] = 0
            constrain = getattr(watcher, "constrain", None)  # grammars of constrained rows (serving)
            if constrain is not None:
                constrain(ts, logprobs, live, ended)
        best, tokens = logprobs.max(1)
        if bool(torch.isneginf(best[~done]).any()):
            if watcher is not None:
                watcher.abandon()
            raise NeedsTreeSearch()
        scores = torch.where(done, scores, best + scores)
        tokens = torch.where(done, eos_fill, tokens)
        step_tokens.append(tokens)
        step_scores.append(scores)
        steps += (~done).long()
        done = done | tokens.eq(eos)
        if watcher is not None:
            watcher.stepped(ts, tokens.tolist(), live, ended)
        # Greedy keeps every row where it is: the cache needs no reordering.
        decoder_input = torch.cat([decoder_input, tokens.unsqueeze(-1)], dim=-1)

    token_table = torch.stack(step_tokens, 1) if step_tokens else torch.empty(bsz, 0, dtype=torch.long)
    score_table = torch.stack(step_scores, 1) if step_scores else torch.empty(bsz, 0)
    for row, search in enumerate(searches):
        _fill(search, token_table[row], score_table[row], int(steps[row]), bool(done[row]), bos)
    n_best = [search.get_rescored_finished() for search in searches]
    return [n_best_list[0] for n_best_list in n_best], searches


def _fill(search: GreedySearch, tokens: torch.Tensor, scores: torch.Tensor, n: int, ended: bool, bos: int) -> None:
    """Leaves ``search`` as ``n`` calls of ``advance`` choosing ``tokens[:n]`` would have."""
    zero = torch.zeros(1, dtype=torch.long, device=tokens.device)
    search.outputs = [search.outputs[0]] + list(tokens[:n].clone().view(-1, 1).unbind(0))
    search.all_scores = [search.all_scores[0]] + list(scores[:n].view(-1, 1).unbind(0))
    search.bookkeep = [zero] * n
    if n:
        search.scores = search.all_scores[-1]
    search.partial_hyps = torch.cat([torch.tensor([[bos]]), tokens[:n].view(1, -1).cpu()], 1)
    if ended:  # the last step chose EOS: one finished hypothesis, and the search is done
        search.finished = [_HypothesisTail(timestep=n, hypid=0, score=search.all_scores[-1][0], tokenid=search.eos,
                                           token_details=None)]
        search.n_best_counter = 1
        search.eos_top, search.eos_top_ts = True, n


def grouped_encode(encoder, text_vec: torch.LongTensor, mask: torch.BoolTensor, pad: int,
                   group_cost: float) -> torch.Tensor:
    """(B, S, C) encoder states of right-padded contexts, computed in length groups.

    ``group_cost``: the fixed cost of one more pass in tokens of padding (the training
    constant, ``length_groups.CPU_GROUP_COST``); one group is the plain padded pass.
    """
    text_widths = length_groups.widths(text_vec, pad)
    groups = length_groups.length_groups(text_widths, [0] * len(text_widths), group_cost)
    if len(groups) == 1:
        return encoder(input_ids=text_vec, attention_mask=mask)[0]
    hidden = None
    for rows in groups:
        width = max(max(text_widths[i] for i in rows), 1)
        index = torch.tensor(rows, device=text_vec.device)
        states = encoder(input_ids=text_vec[index, :width], attention_mask=mask[index, :width])[0]  # (G, W, C)
        if hidden is None:
            hidden = states.new_zeros(text_vec.size(0), text_vec.size(1), states.size(-1))
        hidden[index, :width] = states
    return hidden
