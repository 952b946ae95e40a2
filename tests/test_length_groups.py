"""How a batch is cut into groups of similar length (parlai_dialogft/model/length_groups.py)."""

import itertools
import random

import pytest
import torch

from parlai_dialogft.model.length_groups import length_groups, widths


def _cost(groups, text, label, group_cost):
    return sum(len(g) * (max(text[i] for i in g) + max(label[i] for i in g)) + group_cost for g in groups)


def test_the_docstring_example():
    text, label = [40, 200, 35, 190, 60], [9, 12, 8, 20, 10]
    assert length_groups(text, label, 64) == [[2, 0, 4], [3, 1]]


def test_free_groups_put_every_row_alone_and_costly_ones_keep_the_batch_whole():
    text, label = [40, 200, 35, 190, 60], [9, 12, 8, 20, 10]
    assert sorted(map(len, length_groups(text, label, 0))) == [1] * 5
    assert length_groups(text, label, 10_000) == [[2, 0, 4, 3, 1]]


@pytest.mark.parametrize("seed", range(20))
def test_the_cuts_are_the_cheapest_of_all_cuts_of_the_sorted_rows(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 8)
    text, label = [rng.randint(1, 256) for _ in range(n)], [rng.randint(1, 64) for _ in range(n)]
    groups = length_groups(text, label, group_cost=64)
    assert sorted(i for g in groups for i in g) == list(range(n))  # every row, once
    rows = sorted(range(n), key=lambda i: (text[i], label[i]))
    every_cut = (
        [rows[a:b] for a, b in zip((0,) + cuts, cuts + (n,))]
        for k in range(n)
        for cuts in itertools.combinations(range(1, n), k)
    )
    assert _cost(groups, text, label, 64) == min(_cost(c, text, label, 64) for c in every_cut)


def test_widths_count_up_to_the_last_real_token_or_from_the_first():
    pad = 0
    right = torch.tensor([[5, 6, 0, 0], [5, 0, 7, 0], [0, 0, 0, 0]])
    assert widths(right, pad) == [2, 3, 0]  # a pad id inside a row does not end it
    left = torch.tensor([[0, 0, 5, 6], [0, 5, 0, 7], [8, 9, 5, 6]])
    assert widths(left, pad, left_padded=True) == [2, 3, 4]
