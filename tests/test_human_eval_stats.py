"""The statistics of parlai_dialogft.human_eval against values worked by hand or printed in the literature.

The fixed table used throughout: three models, 40 judgments, drawn so that Bradley-Terry
strengths 9 : 3 : 1 fit it exactly::

    pair     n   wins of the first   win rate
    A vs B  12   9                   0.75   (= 9 / (9 + 3))
    A vs C  20  18                   0.90   (= 9 / (9 + 1))
    B vs C   8   6                   0.75   (= 3 / (3 + 1))

Wilson 95% (z = 1.959964): centre = (p + z²/2n) / (1 + z²/n),
half = z sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n):
    9/12  -> [0.4677, 0.9111];  18/20 -> [0.6990, 0.9721];  6/8 -> [0.4093, 0.9285]

Exact two-sided binomial at p = 1/2, 2 P(X <= n - k):
    9/12  -> 2 (1 + 12 + 66 + 220) / 4096         = 598 / 4096    = 0.14599609375
    18/20 -> 2 (1 + 20 + 190) / 1048576           = 422 / 1048576 = 0.000402450561523...
    6/8   -> 2 (1 + 8 + 28) / 256                 = 74 / 256      = 0.2890625

Holm over the three: sorted 0.000402 (x3), 0.145996 (x2), 0.289063 (x1, but not below the
previous) -> A-C 0.00120735..., A-B 0.2919921875, B-C 0.2919921875.

Bradley-Terry: the score equations W_i = sum_j n_ij s_i / (s_i + s_j) hold at s = (9, 3, 1):
A: 27 = 12·9/12 + 20·9/10; B: 9 = 12·3/12 + 8·3/4; C: 4 = 20·1/10 + 8·1/4. The log
strengths centred on their mean (log 27 / 3 = log 3) are (log 3, 0, -log 3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from parlai_dialogft.human_eval import stats

MODELS = ["A", "B", "C"]
OUTCOMES = (
    [("A", "B")] * 9 + [("B", "A")] * 3
    + [("A", "C")] * 18 + [("C", "A")] * 2
    + [("B", "C")] * 6 + [("C", "B")] * 2
)


def test_the_win_matrix_counts_every_judgment_once_under_its_winner():
    wins = stats.win_matrix(OUTCOMES, MODELS)
    assert wins.sum() == 40
    assert (wins + wins.T).tolist() == [[0, 12, 20], [12, 0, 8], [20, 8, 0]]  # judgments per pair
    assert wins.tolist() == [[0, 9, 18], [3, 0, 6], [2, 2, 0]]


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        # The worked table above.
        (9, 12, 0.4677, 0.9111),
        (18, 20, 0.6990, 0.9721),
        (6, 8, 0.4093, 0.9285),
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # Statistics in Medicine 17:857-872, Table I, method 3 (score, no continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_hand_and_textbook_values(k, n, low, high):
    lo, hi = stats.wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_interval_edges_and_bad_input():
    assert stats.wilson_interval(0, 10)[0] == 0.0
    assert stats.wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in stats.wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes <= n"):
        stats.wilson_interval(5, 4)


def test_normal_quantile_is_the_textbook_z():
    assert stats.normal_quantile(0.975) == pytest.approx(1.959963984540054, abs=1e-10)
    assert stats.normal_quantile(0.5) == pytest.approx(0.0, abs=1e-12)
    assert stats.normal_quantile(0.995) == pytest.approx(2.5758293035489, abs=1e-10)


@pytest.mark.parametrize(
    "k, n, expected",
    [(9, 12, 598 / 4096), (18, 20, 422 / 1048576), (6, 8, 74 / 256), (3, 12, 598 / 4096), (5, 10, 1.0)],
)
def test_binomial_test_at_one_half_is_the_exact_fraction(k, n, expected):
    assert stats.binomial_test(k, n) == pytest.approx(expected, rel=1e-12)


def test_binomial_test_matches_r_binom_test_away_from_one_half():
    # R's ?binom.test example: binom.test(c(682, 243), p = 3/4) gives p-value = 0.3825.
    assert stats.binomial_test(682, 925, p=0.75) == pytest.approx(0.3825, abs=5e-5)


def test_binomial_test_rejects_impossible_counts():
    with pytest.raises(ValueError):
        stats.binomial_test(3, 2)


def test_holm_on_the_fixed_table_keeps_order_monotone():
    raw = [stats.binomial_test(9, 12), stats.binomial_test(18, 20), stats.binomial_test(6, 8)]
    adjusted = stats.holm(raw)
    assert adjusted[1] == pytest.approx(3 * 422 / 1048576)
    # B-C's raw 0.289 x 1 would fall below A-B's 0.292: the step-down maximum lifts it.
    assert adjusted[0] == pytest.approx(2 * 598 / 4096)
    assert adjusted[2] == pytest.approx(2 * 598 / 4096)


def test_holm_textbook_example():
    # m = 4: sorted 0.005x4 = 0.02, 0.01x3 = 0.03, 0.03x2 = 0.06, 0.04x1 -> max(0.06, 0.04).
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.6, 0.9]) == [1.0, 1.0]


def test_bradley_terry_recovers_the_strengths_that_fit_the_table_exactly():
    wins = stats.win_matrix(OUTCOMES, MODELS)
    assert wins.tolist() == [[0, 9, 18], [3, 0, 6], [2, 2, 0]]
    scores = stats.bradley_terry(wins)
    assert scores == pytest.approx([math.log(3), 0.0, -math.log(3)], abs=1e-9)


def test_bradley_terry_two_models_is_the_log_odds_split_in_half():
    wins = stats.win_matrix([("x", "y")] * 7 + [("y", "x")] * 3, ["x", "y"])
    scores = stats.bradley_terry(wins)
    assert scores == pytest.approx([math.log(7 / 3) / 2, -math.log(7 / 3) / 2], abs=1e-9)


def test_bradley_terry_without_a_finite_estimate_raises_unless_a_prior_is_given():
    never_wins = stats.win_matrix([("x", "y")] * 4 + [("y", "z")] * 2 + [("z", "y")], ["x", "y", "z"])
    with pytest.raises(ValueError, match="no finite estimate"):
        stats.bradley_terry(never_wins)
    scores = stats.bradley_terry(never_wins, prior=0.5)
    assert np.all(np.isfinite(scores))
    assert scores[0] > scores[1] and scores[0] > scores[2]


def test_bootstrap_is_deterministic_under_a_seed_and_brackets_the_estimate():
    low1, high1, _ = stats.bradley_terry_bootstrap(OUTCOMES, MODELS, samples=300, seed=7)
    low2, high2, _ = stats.bradley_terry_bootstrap(OUTCOMES, MODELS, samples=300, seed=7)
    low3, _high3, _ = stats.bradley_terry_bootstrap(OUTCOMES, MODELS, samples=300, seed=8)
    assert low1.tolist() == low2.tolist() and high1.tolist() == high2.tolist()
    assert low1.tolist() != low3.tolist()
    estimate = [math.log(3), 0.0, -math.log(3)]
    assert np.all(low1 < estimate) and np.all(estimate < high1)
    # A is ahead of C beyond doubt in this table (18 of 20): their intervals do not overlap.
    assert low1[0] > high1[2]


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four
# observers, twelve units, values 1-5, missing values (None). Unit 12 has one value only.
KRIPPENDORFF_C = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def _units(table):
    n = len(next(iter(table.values())))
    return {u: [row[u] for row in table.values() if row[u] is not None] for u in range(n)}


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_the_papers_worked_example(level, published):
    assert stats.krippendorff_alpha(_units(KRIPPENDORFF_C), level) == pytest.approx(published, abs=5e-4)


def test_krippendorff_alpha_binary_example_of_the_paper():
    # Section A: two observers, ten units, binary values; alpha = 0.095.
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert stats.krippendorff_alpha({i: [a[i], b[i]] for i in range(10)}) == pytest.approx(0.095, abs=5e-4)


def test_krippendorff_alpha_perfect_and_undefined_cases():
    assert stats.krippendorff_alpha({1: ["x", "x"], 2: ["y", "y", "y"]}) == pytest.approx(1.0)
    # One value per unit: nothing pairable.
    assert math.isnan(stats.krippendorff_alpha({1: ["x"], 2: ["y"]}))
    # Everyone always says the same label: no variation to explain.
    assert math.isnan(stats.krippendorff_alpha({1: ["x", "x"], 2: ["x", "x"]}))
    with pytest.raises(ValueError, match="level"):
        stats.krippendorff_alpha({}, "ratio")


@pytest.mark.parametrize(
    "labels, expected",
    [(["a"], None), (["a", "b"], 0.0), (["a", "a"], 1.0), (["a", "a", "b"], 2 / 3), (["a", "b", "a", "b"], 0.5)],
)
def test_majority_agreement_follows_parlai_acute_analysis(labels, expected):
    assert stats.majority_agreement(labels) == (pytest.approx(expected) if expected is not None else None)
