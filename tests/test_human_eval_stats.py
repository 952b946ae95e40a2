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

Beyond the table: the hand-written Bradley-Terry and Krippendorff's alpha agree with the
``choix`` and ``krippendorff`` packages on random data; the SciPy-backed Wilson interval,
binomial test and t interval match their closed forms on grids of inputs.
"""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist

import choix  # test-only: the reference for bradley_terry
import krippendorff  # test-only: the reference for krippendorff_alpha
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
    with pytest.raises(ValueError, match="p must be in"):
        stats.normal_quantile(1.0)


def _wilson_by_formula(k, n, confidence):
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p, denom = k / n, 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_interval_is_the_score_formula_on_a_grid(confidence):
    # Every k of every n up to 40, at three confidences: the formula in this file's docstring.
    for n in range(1, 41):
        for k in range(n + 1):
            low, high = _wilson_by_formula(k, n, confidence)
            assert stats.wilson_interval(k, n, confidence) == pytest.approx((low, high), abs=1e-12), (k, n)


def test_wilson_interval_ends_are_exact_at_zero_and_all_successes():
    for n in (1, 2, 7, 50):
        assert stats.wilson_interval(0, n)[0] == 0.0 and 0.0 < stats.wilson_interval(0, n)[1] < 1.0
        assert stats.wilson_interval(n, n)[1] == 1.0 and 0.0 < stats.wilson_interval(n, n)[0] < 1.0
    with pytest.raises(ValueError, match=r"wilson_interval\(-1, 3\): need 0 <= successes <= n"):
        stats.wilson_interval(-1, 3)


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
    with pytest.raises(ValueError, match=r"binomial_test\(3, 2\): need 0 <= successes <= n"):
        stats.binomial_test(3, 2)
    with pytest.raises(ValueError, match="must be in"):
        stats.binomial_test(1, 2, p=1.5)


def test_binomial_test_without_judgments_is_no_evidence():
    assert stats.binomial_test(0, 0) == 1.0
    assert stats.binomial_test(0, 0, p=0.3) == 1.0


def _minimum_likelihood_p(k, n, p):
    """The two-sided p-value in exact rationals: every outcome no more likely than k (R's 1e-7 slack)."""
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    limit = pmf[k] * Fraction(10**7 + 1, 10**7)
    return float(min(Fraction(1), sum(q for q in pmf if q <= limit)))


@pytest.mark.parametrize("p", [Fraction(1, 2), Fraction(1, 10), Fraction(3, 10), Fraction(3, 4)])
def test_binomial_test_is_the_exact_minimum_likelihood_p_value_on_a_grid(p):
    for n in range(1, 31):
        for k in range(n + 1):
            assert stats.binomial_test(k, n, float(p)) == pytest.approx(_minimum_likelihood_p(k, n, p), rel=1e-9), (k, n)


# Student t quantiles t(0.975, df) and t(0.995, df), as printed in every table.
T_TABLE = {(0.95, 1): 12.706, (0.95, 2): 4.303, (0.95, 4): 2.776, (0.95, 9): 2.262, (0.95, 29): 2.045,
           (0.99, 4): 4.604, (0.99, 9): 3.250}


@pytest.mark.parametrize("confidence, df", sorted(T_TABLE))
def test_mean_interval_is_the_t_interval_with_n_minus_one_degrees_of_freedom(confidence, df):
    values = [float(v % 5 + 1) for v in range(df + 1)]  # ratings 1..5, repeating
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    low, high = stats.mean_interval(values, confidence)
    assert (low + high) / 2 == pytest.approx(mean)
    assert (high - low) / 2 / (sd / math.sqrt(n)) == pytest.approx(T_TABLE[(confidence, df)], abs=5e-4)


def test_mean_interval_of_few_ratings_is_wider_than_a_normal_one():
    # Five chats rated 1..5: mean 3, sd sqrt(2.5); t(0.975, 4) = 2.776445 where z = 1.959964.
    low, high = stats.mean_interval([1, 2, 3, 4, 5])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert (low, high) == pytest.approx((3 - half, 3 + half), abs=1e-5)
    assert high - 3 > 1.959964 * math.sqrt(2.5) / math.sqrt(5) + 0.5


def test_mean_interval_edges():
    assert all(math.isnan(x) for x in stats.mean_interval([]))
    assert all(math.isnan(x) for x in stats.mean_interval([4.0]))  # one rating: no spread to measure
    assert stats.mean_interval([3, 3, 3]) == (3.0, 3.0)  # no spread: nothing to be unsure about
    with pytest.raises(ValueError, match="confidence"):
        stats.mean_interval([1, 2], confidence=95)


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


def _random_comparisons(seed, models=5, all_pairs=True):
    """(winner, loser) index pairs in which every compared pair has a win each way: a finite MLE."""
    rng = np.random.default_rng(seed)
    outcomes = []
    for i in range(models):
        for j in range(i + 1, models):
            if all_pairs or j == i + 1 or rng.random() < 0.5:
                n = int(rng.integers(2, 20))
                w = int(rng.integers(1, n))
                outcomes += [(i, j)] * w + [(j, i)] * (n - w)
    return outcomes


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("all_pairs", [True, False])
@pytest.mark.parametrize("prior", [0, 1, 2])
def test_bradley_terry_agrees_with_choix(seed, all_pairs, prior):
    # choix has no pseudo-win prior; ``prior`` pseudo-wins each way per compared pair are the
    # same likelihood as that many more real comparisons each way, which choix does see.
    models = 5
    outcomes = _random_comparisons(seed, models, all_pairs)
    compared = {tuple(sorted(o)) for o in outcomes}
    augmented = outcomes + [o for i, j in sorted(compared) for o in [(i, j), (j, i)] * prior]
    wins = np.zeros((models, models))
    for winner, loser in outcomes:
        wins[winner, loser] += 1
    theirs = choix.mm_pairwise(models, augmented, tol=1e-12, max_iter=100_000)
    assert stats.bradley_terry(wins, prior=prior) == pytest.approx(theirs - theirs.mean(), abs=1e-7)


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


def _random_ratings(seed):
    """A (coders x units) table of 1-5 ratings with about a third missing (nan), as a study has."""
    rng = np.random.default_rng(seed)
    table = rng.integers(1, 6, size=(int(rng.integers(2, 6)), int(rng.integers(8, 40)))).astype(float)
    if seed % 2:  # half the tables agree more than chance, so alpha is not always near 0
        table[1:] = np.where(rng.random(table[1:].shape) < 0.6, table[0], table[1:])
    table[rng.random(table.shape) < 0.3] = np.nan
    return table


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_alpha_agrees_with_the_krippendorff_package(seed, level):
    table = _random_ratings(seed)
    units = {u: [int(v) for v in table[:, u] if not math.isnan(v)] for u in range(table.shape[1])}
    theirs = krippendorff.alpha(reliability_data=table, level_of_measurement=level)
    assert stats.krippendorff_alpha(units, level) == pytest.approx(theirs, abs=1e-9)


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
