"""Unlikelihood training against stock and repetitive replies (``--pref-loss unlikelihood``).

ParlAI's answer to dull, repetitive replies (Welleck et al., 2019; Li et al., 2020, "Don't Say
That!", ``projects/dialogue_unlikelihood``): keep MLE on the gold reply and add, on a reply the
model should not give, ``-log(1 - p(token))`` for the tokens that make it bad. ParlAI's agents
decode a reply at each step to find those tokens; here the reply is the example's rejected one
(the model's own decoding the data recorded, e.g. one of its stock replies: ``bench/preference.py``),
so a step costs one teacher-forced pass more and no search. Its tokens are penalised where they
lie in an n-gram (``--pref-ul-ngram``, ParlAI's 4) that

* is **overused**: its share of the rejected replies' n-grams exceeds its share of the gold
  replies' n-grams (the human distribution) by ``--pref-ul-threshold`` or more, both counted
  over the last ``--pref-ul-window`` batches (ParlAI's vocabulary unlikelihood, uniform
  weighting, measured on n-grams so that a stock phrase is caught, not each common word);
* **repeats the context** (ParlAI's context repetition) or an earlier n-gram of the same reply
  (its label repetition).

Never penalised: the tokens the rejected reply shares with the gold one from its start (under the
same prefix they are gold tokens, and pushing them down would fight the MLE term), and its end
token (stopping is not what makes a reply stock). The loss is

    NLL per token of the gold replies + alpha * mean over penalised tokens of -log(1 - p(token))

and examples without a rejected reply add only to the first term.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Deque, Iterable, List, Sequence, Set, Tuple

import torch

Ngram = Tuple[int, ...]

#: ParlAI's floor under 1 - p (fp32), so that a token of probability 1 costs a finite loss.
CLAMP_MIN = 1e-20


def add_args(group) -> None:
    group.add_argument("--pref-ul-alpha", type=float, default=1.0,
                       help="unlikelihood: weight of the penalty on the rejected reply's tokens against the gold MLE")
    group.add_argument("--pref-ul-ngram", type=int, default=4,
                       help="unlikelihood: n of the n-grams counted as overused or repeated (ParlAI's 4)")
    group.add_argument("--pref-ul-threshold", type=float, default=1e-3,
                       help="unlikelihood: an n-gram is overused when its share of the rejected replies' n-grams "
                       "exceeds its share of the gold replies' by this much (ParlAI's 1e-3)")
    group.add_argument("--pref-ul-window", type=int, default=32,
                       help="unlikelihood: the n-gram shares are counted over this many recent batches (ParlAI's 32)")


def ngrams(tokens: Sequence[int], n: int) -> List[Ngram]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


class NgramUsage:
    """N-gram counts of the rejected (model) and gold (human) replies of the last ``window`` batches."""

    def __init__(self, n: int, window: int):
        self.n = n
        self.batches: Deque[Tuple[Counter, Counter]] = deque(maxlen=max(1, window))

    def add(self, model_replies: Iterable[Sequence[int]], gold_replies: Iterable[Sequence[int]]) -> None:
        self.batches.append((Counter(g for r in model_replies for g in ngrams(r, self.n)),
                             Counter(g for r in gold_replies for g in ngrams(r, self.n))))

    def overused(self, threshold: float) -> Set[Ngram]:
        model, gold = Counter(), Counter()
        for m, g in self.batches:
            model.update(m)
            gold.update(g)
        model_total, gold_total = sum(model.values()), sum(gold.values())
        if not model_total:
            return set()
        return {g for g, c in model.items()
                if c / model_total - (gold[g] / gold_total if gold_total else 0.0) >= threshold}


def penalised(rejected: Sequence[int], gold: Sequence[int], context: Sequence[int], overused: Set[Ngram],
              n: int) -> List[bool]:
    """Which tokens of ``rejected`` (END and padding stripped) the unlikelihood term pushes down."""
    marked = [False] * len(rejected)
    in_context = set(ngrams(context, n))
    seen: Set[Ngram] = set()
    for i, gram in enumerate(ngrams(rejected, n)):
        if gram in overused or gram in in_context or gram in seen:
            marked[i:i + n] = [True] * n
        seen.add(gram)
    shared = 0
    while shared < min(len(rejected), len(gold)) and rejected[shared] == gold[shared]:
        shared += 1
    marked[:shared] = [False] * shared
    return marked


def token_penalty(token_logps: torch.Tensor) -> torch.Tensor:
    """``-log(1 - p)`` of each token from its log-probability, elementwise."""
    return -torch.log(torch.clamp(1.0 - token_logps.exp(), min=CLAMP_MIN))


def loss(gold_logps: torch.Tensor, gold_keep: torch.Tensor, rejected_logps: torch.Tensor, mask: torch.Tensor,
         alpha: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, per-example penalty sums, per-example penalised token counts).

    ``gold_logps`` (B, T) the gold tokens' log-probabilities where ``gold_keep``; ``rejected_logps``
    (B, T') the rejected tokens', ``mask`` (B, T') the tokens :func:`penalised` marked.
    """
    nll = -(gold_logps * gold_keep).sum() / gold_keep.sum().clamp(min=1)
    penalty = token_penalty(rejected_logps) * mask  # (B, T')
    per_example = penalty.sum(dim=1)
    counts = mask.sum(dim=1)
    return nll + alpha * per_example.sum() / counts.sum().clamp(min=1), per_example.detach(), counts
