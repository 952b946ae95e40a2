"""Compute a batch as groups of rows of similar length, each padded only to its own longest.

A batch drawn at random from dialogue data is mostly padding: contexts grow with every turn,
so one late turn sets the width of fifteen early ones (the training benchmark's random
batches of 16 are 56% padding). Sorting the whole buffer by length first (ParlAI's
``--dynamic-batching``) removes the padding but changes what a batch *is*: every row then
comes from the same position in its dialogue, and a model trained on such batches ends an
epoch with a worse validation loss (+0.12 at the same tokens; bench/README.md).

So the batch stays as drawn, and only its computation is split: rows are sorted by length
and cut into contiguous groups, each run through the model at its own width. The loss is the
whole batch's (summed over every group's tokens, divided by the batch's token count), so the
gradient is the one the padded batch gives. Where to cut trades padding against the fixed
cost of one more forward pass, ``group_cost`` tokens per group; :func:`length_groups` finds
the cheapest cuts exactly (a batch is small: dynamic programming over its sorted rows).

    text widths  [40, 200, 35, 190, 60]   label widths [9, 12, 8, 20, 10]
    -> groups    [[2, 0, 4], [3, 1]]      (widths 60+10 and 200+20, instead of 5 x 220)
"""

from __future__ import annotations

from typing import List, Sequence

import torch

#: What one more group costs on a CPU, in tokens of work: ``python bench/group_cost.py`` times
#: training steps of a t5-small-shaped model and found a fixed 127 ms per pass against 1.07 ms
#: per token, i.e. 119 tokens, on a 2-core EPYC (bench/README.md).
CPU_GROUP_COST = 120


def widths(vec: torch.LongTensor, pad: int, left_padded: bool = False) -> List[int]:
    """Each row's width without its padding: up to the last (or from the first) real token."""
    real = vec.ne(pad)
    if left_padded:
        real = real.flip(1)
    columns = torch.arange(1, vec.size(1) + 1, device=vec.device)
    return (real.long() * columns).max(dim=1).values.tolist()


def length_groups(text_widths: Sequence[int], label_widths: Sequence[int], group_cost: float) -> List[List[int]]:
    """Row indices in groups that minimise padded tokens plus ``group_cost`` per group.

    A group's cost is its rows times (its widest text + its widest label). Groups are
    contiguous runs of the rows sorted by (text, label) width, shortest first.
    """
    rows = sorted(range(len(text_widths)), key=lambda i: (text_widths[i], label_widths[i]))
    best = [0.0] + [float("inf")] * len(rows)  # best[k]: cheapest cuts of rows[:k]
    start = [0] * (len(rows) + 1)
    for end in range(1, len(rows) + 1):
        text_max = text_widths[rows[end - 1]]  # the longest text of any group ending here
        label_max = 0
        for begin in range(end - 1, -1, -1):
            label_max = max(label_max, label_widths[rows[begin]])
            cost = best[begin] + (end - begin) * (text_max + label_max) + group_cost
            if cost < best[end]:
                best[end], start[end] = cost, begin
    groups, end = [], len(rows)
    while end:
        groups.append(rows[start[end] : end])
        end = start[end]
    return groups[::-1]
