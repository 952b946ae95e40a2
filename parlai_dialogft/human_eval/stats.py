"""The statistics of a human evaluation: SciPy for the textbook tests, a few verified lines for the rest.

* :func:`wilson_interval` - score interval of a proportion (Wilson 1927), good at small n and
  near 0 or 1 where the normal approximation is not (``scipy.stats.binomtest``).
* :func:`binomial_test` - exact two-sided binomial test (``scipy.stats.binomtest``: the
  "minimum likelihood" p-value, as R's ``binom.test``).
* :func:`mean_interval` - Student t interval of a mean rating (``scipy.stats.t``): with the
  few chats a study has per model, a normal z interval would be too narrow.
* :func:`normal_quantile` - ``statistics.NormalDist``.
* :func:`holm` - Holm's step-down adjustment for testing several pairs at once.
* :func:`bradley_terry` - maximum-likelihood strengths from pairwise wins (Hunter's MM
  algorithm), :func:`bradley_terry_bootstrap` - seeded percentile intervals.
* :func:`krippendorff_alpha` - agreement for nominal, ordinal or interval values, any
  number of annotators, missing values allowed (Krippendorff 2011).

Bradley-Terry and Krippendorff's alpha stay hand-written (a few dozen lines each, checked
against published examples): the packages that compute them (``choix``, ``krippendorff``)
are test-only dependencies, used to check these functions agree with them.

SciPy is imported inside the functions that need it: the ParlAI scripts import this module
on every ``parlai`` command, and ``scipy.stats`` takes most of a second to load.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from typing import Callable, Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np


# ----------------------------------------------------------------------------- proportions
def normal_quantile(p: float) -> float:
    """The standard normal quantile z with Phi(z) = p."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile of p={p}: p must be in (0, 1)")
    return statistics.NormalDist().inv_cdf(p)


def _check_counts(name: str, successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"{name}({successes}, {n}): need 0 <= successes <= n")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Wilson score interval for ``successes`` of ``n`` (no continuity correction); (nan, nan) when n == 0."""
    from scipy.stats import binomtest

    _check_counts("wilson_interval", successes, n)
    if n == 0:  # SciPy refuses n = 0; no data, no interval
        return (math.nan, math.nan)
    low, high = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    # Clamp float dust: at 0 or n successes one end is exactly 0 or 1.
    return (max(0.0, float(low)), min(1.0, float(high)))


def binomial_test(successes: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided p-value: the total probability of outcomes no more likely than the one seen.

    SciPy's ``binomtest`` (the same p-value as R's ``binom.test``); 1.0 when n == 0, where
    SciPy refuses: no judgments are no evidence against p.
    """
    from scipy.stats import binomtest

    _check_counts("binomial_test", successes, n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial_test: p={p} must be in [0, 1]")
    if n == 0:
        return 1.0
    return min(1.0, float(binomtest(successes, n, p, alternative="two-sided").pvalue))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Tuple[float, float]:
    """Student t interval of the mean of ``values`` (n - 1 degrees of freedom); (nan, nan) when n < 2.

    Ratings of a few chats per model: t with 4 degrees of freedom is 2.78 where z is 1.96,
    so a normal interval would claim 40% more certainty than five chats give.
    """
    from scipy.stats import t

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"mean_interval: confidence={confidence} must be in (0, 1)")
    n = len(values)
    if n < 2:
        return (math.nan, math.nan)
    mean = statistics.fmean(values)
    half = float(t.ppf(1 - (1 - confidence) / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return (mean - half, mean + half)


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order.

    Sorted ascending, the i-th (0-based) of m is multiplied by (m - i); a running maximum
    keeps the adjusted values in the same order as the raw ones; capped at 1.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# ----------------------------------------------------------------------------- Bradley-Terry
def win_matrix(outcomes: Iterable[Tuple[str, str]], models: Sequence[str]) -> np.ndarray:
    """``W[i, j]`` = times ``models[i]`` beat ``models[j]``, from (winner, loser) pairs."""
    index = {m: i for i, m in enumerate(models)}
    wins = np.zeros((len(models), len(models)))
    for winner, loser in outcomes:
        wins[index[winner], index[loser]] += 1
    return wins


def _strongly_connected(wins: np.ndarray) -> bool:
    """Whether every model beat, through some chain, every other: the condition for a finite MLE."""
    k = len(wins)

    def reach(adjacency: np.ndarray) -> set:
        seen, todo = {0}, [0]
        while todo:
            i = todo.pop()
            for j in np.nonzero(adjacency[i] > 0)[0]:
                if int(j) not in seen:
                    seen.add(int(j))
                    todo.append(int(j))
        return seen

    return len(reach(wins)) == k and len(reach(wins.T)) == k


def bradley_terry(
    wins: np.ndarray, prior: float = 0.0, tol: float = 1e-12, max_iter: int = 100_000
) -> np.ndarray:
    """Bradley-Terry log-strengths (natural log, mean 0) from a win matrix.

    ``P(i beats j) = s_i / (s_i + s_j)``; the scores are ``log s`` centred on their mean,
    so a difference d between two models means odds of ``exp(d)`` for the first.

    ``prior`` adds that many pseudo-wins each way to every pair that was compared: 0 is the
    plain maximum-likelihood estimate, which exists only when the comparisons are strongly
    connected (no model, or group of models, lost or won every comparison) - otherwise
    this raises ``ValueError``. Solved with Hunter's (2004) MM update
    ``s_i <- W_i / sum_j n_ij / (s_i + s_j)``, which increases the likelihood each step.
    """
    wins = np.asarray(wins, dtype=float)
    k = len(wins)
    if k < 2:
        return np.zeros(k)
    compared = (wins + wins.T) > 0
    wins = wins + prior * compared
    if not _strongly_connected(wins):
        raise ValueError("Bradley-Terry: no finite estimate (a model or group won or lost every comparison)")
    games = wins + wins.T
    total_wins = wins.sum(axis=1)
    strengths = np.ones(k)
    for _ in range(max_iter):
        denom = (games / (strengths[:, None] + strengths[None, :])).sum(axis=1)
        updated = total_wins / denom
        updated /= np.exp(np.mean(np.log(updated)))  # fix the scale: geometric mean 1
        if np.max(np.abs(np.log(updated) - np.log(strengths))) < tol:
            strengths = updated
            break
        strengths = updated
    logs = np.log(strengths)
    return logs - logs.mean()


def bradley_terry_bootstrap(
    outcomes: Sequence[Tuple[str, str]],
    models: Sequence[str],
    samples: int = 1000,
    confidence: float = 0.95,
    prior: float = 0.0,
    fallback_prior: float = 0.5,
    seed: int = 0,
    on_draw: Optional[Callable[[], None]] = None,
) -> Tuple[np.ndarray, np.ndarray, int]:
    """Percentile bootstrap intervals of :func:`bradley_terry` scores.

    Judgments are resampled with replacement ``samples`` times from a seeded generator, so
    the same data and seed give the same intervals. A resample with no finite estimate
    under ``prior`` (a model that happened to lose every drawn comparison) is fitted with
    ``fallback_prior`` instead. Returns (lower, upper, resamples that needed the fallback).
    ``on_draw`` is called after each resample (progress of a long analysis).
    """
    rng = np.random.default_rng(seed)
    n = len(outcomes)
    if n == 0:
        nan = np.full(len(models), np.nan)
        return nan, nan.copy(), 0
    draws = np.empty((samples, len(models)))
    fallbacks = 0
    for b in range(samples):
        picked = [outcomes[i] for i in rng.integers(0, n, size=n)]
        wins = win_matrix(picked, models)
        try:
            draws[b] = bradley_terry(wins, prior=prior, tol=1e-9)
        except ValueError:
            fallbacks += 1
            draws[b] = bradley_terry(wins, prior=max(prior, fallback_prior), tol=1e-9)
        if on_draw is not None:
            on_draw()
    alpha = (1 - confidence) / 2
    return np.quantile(draws, alpha, axis=0), np.quantile(draws, 1 - alpha, axis=0), fallbacks


# ----------------------------------------------------------------------------- agreement
def _ordinal_distance(values: Sequence[float], marginals: Mapping[float, float]):
    """Krippendorff's ordinal metric: the squared count of values ranked between c and k (half ends)."""
    ranked = sorted(values)
    cumulative = {}
    for c in ranked:
        cumulative[c] = sum(marginals[g] for g in ranked if g <= c)

    def delta(c: float, k: float) -> float:
        lo, hi = min(c, k), max(c, k)
        between = cumulative[hi] - cumulative[lo] + marginals[lo]  # sum_{g=lo}^{hi} n_g
        return (between - (marginals[lo] + marginals[hi]) / 2) ** 2

    return delta


def krippendorff_alpha(units: Mapping[Hashable, Sequence[Hashable]], level: str = "nominal") -> float:
    """Krippendorff's alpha over ``units``: unit -> the values its annotators gave (missing left out).

    ``level`` is ``nominal`` (values are labels), ``ordinal`` (ranks: 1-5 ratings) or
    ``interval`` (numbers). Units with fewer than two values are not pairable and are
    ignored, as the method prescribes. ``alpha = 1 - D_o / D_e`` from the coincidence
    matrix; nan when there is nothing to compare or no variation at all.
    """
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"krippendorff_alpha: level {level!r} must be nominal, ordinal or interval")
    # Coincidences o_ck: each ordered pair of values within a unit of m values counts 1/(m-1).
    coincidence: Dict[Tuple[Hashable, Hashable], float] = defaultdict(float)
    for values in units.values():
        m = len(values)
        if m < 2:
            continue
        for a in range(m):
            for b in range(m):
                if a != b:
                    coincidence[(values[a], values[b])] += 1.0 / (m - 1)
    marginals: Dict[Hashable, float] = Counter()
    for (c, _k), count in coincidence.items():
        marginals[c] += count
    total = sum(marginals.values())
    if total <= 1:
        return math.nan
    if level == "nominal":
        def delta(c, k):
            return 0.0 if c == k else 1.0
    elif level == "interval":
        def delta(c, k):
            return (float(c) - float(k)) ** 2
    else:
        delta = _ordinal_distance(list(marginals), marginals)
    observed = sum(count * delta(c, k) for (c, k), count in coincidence.items())
    expected = sum(
        marginals[c] * marginals[k] * delta(c, k) for c in marginals for k in marginals
    ) / (total - 1)
    if expected == 0:
        return math.nan
    return 1.0 - observed / expected


def majority_agreement(labels: Sequence[Hashable]) -> Optional[float]:
    """ParlAI's per-pair ACUTE agreement: share of the majority label among a pair's judgments.

    One judgment gives None (nothing to agree with); a 1-1 split gives 0, as ParlAI's
    analysis counts it; otherwise majority / total.
    """
    counts = Counter(labels)
    n = sum(counts.values())
    if n < 2:
        return None
    top = max(counts.values())
    if n == 2 and top == 1:
        return 0.0
    return top / n
