"""From the judgments and chats of a human evaluation to tables, CSV files and a report.

The input is the two record shapes of :mod:`parlai_dialogft.human_eval.db`
(``pairwise_records``, ``chat_records``): plain dicts, so this module needs no database and
is tested on records built by hand. :func:`analyze` writes into ``out``:

========================  ==================================================================
``pairwise.csv``          per question and pair of models: wins, win rate, Wilson interval,
                          exact binomial p, Holm-adjusted p (family: the pairs of a question)
``bradley_terry.csv``     per question and model: log-strength (mean 0) and bootstrap interval
``agreement.csv``         per question: Krippendorff's alpha (nominal) over pairs judged more
                          than once, and ParlAI's majority agreement
``chat_problems.csv``     per model and category: share of bot turns marked with it
``chat_ratings.csv``      per model and rating question: n, mean, sd, 95% Student t interval
``workers.csv``           per worker: counts, check results, times, effort signals
``parlai_acute/``         ParlAI ``acute_eval/analysis.py`` files, one run per question
``report.md`` + PNGs      the same, readable, with plots
========================  ==================================================================

What is counted: onboarding and attention-check judgments never count as comparisons;
workers who failed an onboarding or attention check are left out entirely (ParlAI removes
failed onboarding workers the same way), unless ``keep_failed_workers``.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from parlai_dialogft.human_eval import formats, stats
from parlai_dialogft.human_eval.questions import ACUTE_QUESTIONS, NONE_PROBLEM, RATING_SCALE
from parlai_dialogft.utils.errors import UserError
from parlai_dialogft.utils.progress import Progress

Record = Mapping[str, Any]


@dataclass
class AnalysisOptions:
    out: str
    #: Confidence of every interval (Wilson, bootstrap, rating means).
    confidence: float = 0.95
    #: Bootstrap resamples of the Bradley-Terry fit (0: no intervals).
    bootstrap: int = 1000
    #: Seed of the bootstrap: the same data and seed give the same intervals.
    seed: int = 0
    #: Pseudo-wins each way per compared pair in the Bradley-Terry fit; None: 0 (the plain
    #: maximum-likelihood estimate) when it exists, else 0.5.
    bt_prior: Optional[float] = None
    #: Keep the judgments of workers who failed an onboarding or attention check.
    keep_failed_workers: bool = False

    def __post_init__(self):
        if not 0 < self.confidence < 1:
            raise UserError(f"--he-confidence {self.confidence}: must be between 0 and 1")
        if self.bootstrap < 0:
            raise UserError(f"--he-bootstrap {self.bootstrap}: must be 0 or more")
        if self.bt_prior is not None and self.bt_prior < 0:
            raise UserError(f"--he-bt-prior {self.bt_prior}: must be 0 or more")


# ----------------------------------------------------------------------------- selection
def failed_workers(judgments: Sequence[Record]) -> List[str]:
    """Workers with a failed onboarding or attention check (``passed_check`` False)."""
    return sorted({
        j["worker_id"] for j in judgments
        if (j["is_onboarding"] or j["is_attention_check"]) and j.get("passed_check") is False
    })


def counted_judgments(judgments: Sequence[Record], keep_failed_workers: bool = False) -> List[Record]:
    """The comparisons that count: no onboarding, no attention checks, no failed workers."""
    failed = set() if keep_failed_workers else set(failed_workers(judgments))
    return [
        j for j in judgments
        if not j["is_onboarding"] and not j["is_attention_check"] and j["worker_id"] not in failed
    ]


def _by_question(judgments: Sequence[Record]) -> Dict[str, List[Record]]:
    grouped: Dict[str, List[Record]] = defaultdict(list)
    for j in judgments:
        grouped[j["question"]].append(j)
    return dict(sorted(grouped.items()))


# ----------------------------------------------------------------------------- pairwise tables
def pairwise_table(judgments: Sequence[Record], confidence: float = 0.95) -> List[Dict[str, Any]]:
    """One row per (question, model_a, model_b): how often model_a won, with interval and tests."""
    rows = []
    for question, group in _by_question(judgments).items():
        pairs: Dict[Tuple[str, str], List[Record]] = defaultdict(list)
        for j in group:
            pairs[(j["model_a"], j["model_b"])].append(j)
        family = []
        for (a, b), items in sorted(pairs.items()):
            wins_a = sum(j["winner"] == a for j in items)
            n = len(items)
            low, high = stats.wilson_interval(wins_a, n, confidence)
            family.append({
                "question": question, "model_a": a, "model_b": b, "n": n,
                "wins_a": wins_a, "wins_b": n - wins_a, "win_rate_a": wins_a / n,
                "ci_low": low, "ci_high": high, "p": stats.binomial_test(wins_a, n),
            })
        for row, adjusted in zip(family, stats.holm([r["p"] for r in family])):
            row["p_holm"] = adjusted
        rows.extend(family)
    return rows


def _models(judgments: Sequence[Record]) -> List[str]:
    return sorted({m for j in judgments for m in (j["model_a"], j["model_b"])})


def _outcomes(judgments: Sequence[Record]) -> List[Tuple[str, str]]:
    return [(j["winner"], j["model_b"] if j["winner"] == j["model_a"] else j["model_a"]) for j in judgments]


def bradley_terry_table(judgments: Sequence[Record], options: AnalysisOptions) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(rows, notes): per question and model, the Bradley-Terry score and its bootstrap interval."""
    rows, notes = [], []
    for question, group in _by_question(judgments).items():
        models = _models(group)
        outcomes = _outcomes(group)
        wins = stats.win_matrix(outcomes, models)
        prior = options.bt_prior
        if prior is None:
            try:
                scores = stats.bradley_terry(wins)
                prior = 0.0
            except ValueError:
                prior = 0.5
                notes.append(
                    f"{question}: a model (or group) won or lost every comparison, so the "
                    "Bradley-Terry fit adds 0.5 pseudo-wins each way per compared pair."
                )
                scores = stats.bradley_terry(wins, prior=prior)
        else:
            try:
                scores = stats.bradley_terry(wins, prior=prior)
            except ValueError:
                raise UserError(
                    f"--he-bt-prior {prior}: {question} has no finite Bradley-Terry estimate "
                    "(a model won or lost every comparison); use a prior above 0"
                ) from None
        if options.bootstrap and len(models) > 1:
            with Progress(options.bootstrap, f"Bradley-Terry bootstrap: {question}", unit="draw") as progress:
                low, high, fallbacks = stats.bradley_terry_bootstrap(
                    outcomes, models, samples=options.bootstrap, confidence=options.confidence,
                    prior=prior, seed=options.seed, on_draw=progress.update,
                )
            if fallbacks:
                notes.append(
                    f"{question}: {fallbacks} of {options.bootstrap} bootstrap resamples had no "
                    "finite estimate and were fitted with 0.5 pseudo-wins."
                )
        else:
            low = high = [math.nan] * len(models)
        for i, model in enumerate(models):
            rows.append({
                "question": question, "model": model, "score": float(scores[i]),
                "ci_low": float(low[i]), "ci_high": float(high[i]),
                "wins": int(wins[i].sum()), "comparisons": int(wins[i].sum() + wins[:, i].sum()),
                "prior": prior,
            })
    return rows, notes


def agreement_table(judgments: Sequence[Record]) -> List[Dict[str, Any]]:
    """Per question: Krippendorff's alpha (nominal, unit = pair) and ParlAI's mean majority agreement."""
    rows = []
    for question, group in _by_question(judgments).items():
        units: Dict[str, List[str]] = defaultdict(list)
        for j in group:
            units[j["pair_id"]].append(j["winner"])
        multi = {u: v for u, v in units.items() if len(v) >= 2}
        majority = [a for a in map(stats.majority_agreement, units.values()) if a is not None]
        rows.append({
            "question": question, "units": len(units), "units_judged_twice_or_more": len(multi),
            "judgments_in_those_units": sum(len(v) for v in multi.values()),
            "krippendorff_alpha": stats.krippendorff_alpha(multi, "nominal"),
            "majority_agreement": sum(majority) / len(majority) if majority else math.nan,
        })
    return rows


# ----------------------------------------------------------------------------- chat tables
def chat_problem_table(chats: Sequence[Record], categories: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Per model and category: the share of annotated bot turns the worker marked with it.

    ``any_problem`` is the share of annotated bot turns with at least one category, ``none``
    the share marked "none"; a bot turn with no marks at all is not annotated and not counted.
    """
    by_model: Dict[str, List[List[str]]] = defaultdict(list)
    for chat in chats:
        by_model[chat["model"]].extend(p for p in chat["bot_turn_problems"] if p)
    seen = sorted({c for turns in by_model.values() for t in turns for c in t if c != NONE_PROBLEM})
    names = list(categories or []) + [c for c in seen if c not in (categories or [])]
    rows = []
    for model in sorted(by_model):
        turns = by_model[model]
        n = len(turns)
        for category in names + ["any_problem", NONE_PROBLEM]:
            if category == "any_problem":
                count = sum(any(c != NONE_PROBLEM for c in t) for t in turns)
            else:
                count = sum(category in t for t in turns)
            rows.append({
                "model": model, "category": category, "bot_turns": n, "count": count,
                "rate": count / n if n else math.nan,
            })
    return rows


def chat_rating_table(chats: Sequence[Record], confidence: float = 0.95) -> List[Dict[str, Any]]:
    """Per model and rating question: n, mean, sample sd and a Student t interval of the mean.

    t, not a normal z: a study rates a model in a handful of chats (see :func:`stats.mean_interval`).
    With two or three chats the t interval runs past the scale; a mean of 1-5 ratings lies
    in [1, 5], so the interval is cut there (the report then shows how little a few chats say).
    """
    values: Dict[Tuple[str, str], List[float]] = defaultdict(list)
    for chat in chats:
        for key, value in chat["ratings"].items():
            values[(chat["model"], key)].append(float(value))
    rows = []
    for (model, key), vals in sorted(values.items()):
        n = len(vals)
        low, high = stats.mean_interval(vals, confidence)
        low, high = max(low, RATING_SCALE[0]), min(high, RATING_SCALE[1])  # nan stays nan
        rows.append({"model": model, "question": key, "n": n, "mean": sum(vals) / n,
                     "sd": statistics.stdev(vals) if n > 1 else math.nan, "ci_low": low, "ci_high": high})
    return rows


# ----------------------------------------------------------------------------- workers
def worker_table(judgments: Sequence[Record], chats: Sequence[Record]) -> List[Dict[str, Any]]:
    """Per worker: what they did and the signals quality control looks at."""
    workers = sorted({j["worker_id"] for j in judgments} | {c["worker_id"] for c in chats})
    failed = set(failed_workers(judgments))
    rows = []
    for w in workers:
        mine = [j for j in judgments if j["worker_id"] == w]
        real = [j for j in mine if not j["is_onboarding"] and not j["is_attention_check"]]
        onboarding = [j for j in mine if j["is_onboarding"]]
        checks = [j for j in mine if j["is_attention_check"]]
        my_chats = [c for c in chats if c["worker_id"] == w]
        left = sum(j["winner"] == j["left_model"] for j in real)
        rows.append({
            "worker_id": w, "judgments": len(real),
            "onboarding_passed": sum(j.get("passed_check") is True for j in onboarding),
            "onboarding_failed": sum(j.get("passed_check") is False for j in onboarding),
            "attention_passed": sum(j.get("passed_check") is True for j in checks),
            "attention_failed": sum(j.get("passed_check") is False for j in checks),
            "excluded": w in failed,
            # 1.0 or 0.0 over many judgments: always the same side, a sign of not reading.
            "left_choice_share": left / len(real) if real else math.nan,
            "median_duration_s": statistics.median(j["duration_s"] for j in real) if real else math.nan,
            "mean_justification_chars": (
                sum(len(j["justification"].strip()) for j in real) / len(real) if real else math.nan
            ),
            "chats": len(my_chats),
            "median_chat_duration_s": (
                statistics.median(c["duration_s"] for c in my_chats) if my_chats else math.nan
            ),
        })
    return rows


# ----------------------------------------------------------------------------- output
def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Optional[Sequence[str]] = None) -> Path:
    columns = list(columns or (rows[0].keys() if rows else []))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_fmt(row.get(c)) for c in columns])
    return path


def _num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pvalue(p: float) -> str:
    return f"{p:.2e}" if p < 0.001 else f"{p:.3f}"


def _escape(x: Any) -> str:
    """Text from workers or pairings files must not become markup where the report is rendered."""
    return str(x).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> List[str]:
    def cell(x: Any) -> str:
        return _escape(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return lines


@dataclass
class Analysis:
    pairwise: List[Dict[str, Any]]
    bradley_terry: List[Dict[str, Any]]
    agreement: List[Dict[str, Any]]
    chat_problems: List[Dict[str, Any]]
    chat_ratings: List[Dict[str, Any]]
    workers: List[Dict[str, Any]]
    notes: List[str]
    counted: int
    excluded_workers: List[str]


def compute(judgments: Sequence[Record], chats: Sequence[Record], options: AnalysisOptions,
            categories: Optional[Sequence[str]] = None) -> Analysis:
    """Every table, nothing written."""
    counted = counted_judgments(judgments, options.keep_failed_workers)
    excluded = [] if options.keep_failed_workers else failed_workers(judgments)
    excluded_set = set(excluded)
    kept_chats = [c for c in chats if c["worker_id"] not in excluded_set]
    bt_rows, notes = bradley_terry_table(counted, options)
    return Analysis(
        pairwise=pairwise_table(counted, options.confidence),
        bradley_terry=bt_rows,
        agreement=agreement_table(counted),
        chat_problems=chat_problem_table(kept_chats, categories),
        chat_ratings=chat_rating_table(kept_chats, options.confidence),
        workers=worker_table(judgments, chats),
        notes=notes,
        counted=len(counted),
        excluded_workers=excluded,
    )


def analyze(
    judgments: Sequence[Record],
    chats: Sequence[Record],
    options: AnalysisOptions,
    question_texts: Optional[Mapping[str, str]] = None,
    categories: Optional[Sequence[str]] = None,
    pairing_lookup: Optional[Callable[[str], Optional[Mapping[str, Any]]]] = None,
) -> Path:
    """Compute everything and write the CSV files, ParlAI's files, plots and ``report.md``; returns its path."""
    from parlai_dialogft.human_eval import plots

    if not judgments and not chats:
        raise UserError("nothing to analyse: no pairwise judgments and no finished chats")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    texts = {k: v["question"] for k, v in ACUTE_QUESTIONS.items()}
    texts.update(question_texts or {})
    result = compute(judgments, chats, options, categories)

    write_csv(out / "pairwise.csv", result.pairwise,
              ["question", "model_a", "model_b", "n", "wins_a", "wins_b", "win_rate_a",
               "ci_low", "ci_high", "p", "p_holm"])
    write_csv(out / "bradley_terry.csv", result.bradley_terry,
              ["question", "model", "score", "ci_low", "ci_high", "wins", "comparisons", "prior"])
    write_csv(out / "agreement.csv", result.agreement,
              ["question", "units", "units_judged_twice_or_more", "judgments_in_those_units",
               "krippendorff_alpha", "majority_agreement"])
    write_csv(out / "chat_problems.csv", result.chat_problems,
              ["model", "category", "bot_turns", "count", "rate"])
    write_csv(out / "chat_ratings.csv", result.chat_ratings,
              ["model", "question", "n", "mean", "sd", "ci_low", "ci_high"])
    write_csv(out / "workers.csv", result.workers,
              ["worker_id", "judgments", "onboarding_passed", "onboarding_failed", "attention_passed",
               "attention_failed", "excluded", "left_choice_share", "median_duration_s",
               "mean_justification_chars", "chats", "median_chat_duration_s"])
    counted = counted_judgments(judgments, options.keep_failed_workers)
    if counted:
        formats.write_parlai_acute_results(counted, out / "parlai_acute", texts, pairing_lookup)

    figures = plots.draw_all(result, out)
    report = out / "report.md"
    report.write_text(_report(result, texts, figures, options, len(judgments), len(chats)), encoding="utf-8")
    return report


def _report(result: Analysis, texts: Mapping[str, str], figures: Mapping[str, str],
            options: AnalysisOptions, n_judgments: int, n_chats: int) -> str:
    pct = int(round(options.confidence * 100))
    lines = ["# Human evaluation", ""]
    lines.append(
        f"{n_judgments} pairwise judgments read, {result.counted} counted (onboarding, attention "
        f"checks and failed workers left out); {n_chats} finished live chats."
    )
    if result.excluded_workers:
        lines.append(f"Workers excluded for a failed check: {_escape(', '.join(result.excluded_workers))}.")
    lines.append("")
    questions = sorted({r["question"] for r in result.pairwise})
    for q in questions:
        lines += [f"## Pairwise: {_escape(q)}", "", f"> {_escape(texts.get(q, q))}", ""]
        rows = [r for r in result.pairwise if r["question"] == q]
        lines += _md_table(
            ["model A", "model B", "n", "A wins", f"A win rate [{pct}% Wilson]", "p (binomial)", "p (Holm)"],
            [[r["model_a"], r["model_b"], r["n"], r["wins_a"],
              f"{_num(r['win_rate_a'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
              _pvalue(r["p"]), _pvalue(r["p_holm"])] for r in rows],
        )
        lines.append("")
        if f"win_matrix:{q}" in figures:
            lines += [f"![win rates, {q}]({figures[f'win_matrix:{q}']})", ""]
        bt = sorted((r for r in result.bradley_terry if r["question"] == q), key=lambda r: -r["score"])
        lines += ["Bradley-Terry scores (natural log of strength, mean 0; a difference d means "
                  "odds exp(d) of winning):", ""]
        lines += _md_table(
            ["model", "score", f"{pct}% bootstrap interval", "wins / comparisons"],
            [[r["model"], _num(r["score"]), f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
              f"{r['wins']} / {r['comparisons']}"] for r in bt],
        )
        lines.append("")
        if f"bradley_terry:{q}" in figures:
            lines += [f"![Bradley-Terry, {q}]({figures[f'bradley_terry:{q}']})", ""]
        for a in (r for r in result.agreement if r["question"] == q):
            lines.append(
                f"Agreement: Krippendorff's alpha (nominal) {_num(a['krippendorff_alpha'])} over "
                f"{a['units_judged_twice_or_more']} pairs judged more than once "
                f"({a['judgments_in_those_units']} judgments); ParlAI's majority agreement "
                f"{_num(a['majority_agreement'])}."
            )
        lines.append("")
    if result.chat_problems:
        lines += ["## Live chat: problems per bot turn", ""]
        models = sorted({r["model"] for r in result.chat_problems})
        categories = list(dict.fromkeys(r["category"] for r in result.chat_problems))
        lines += _md_table(
            ["category"] + models,
            [[c] + [_num(next(r["rate"] for r in result.chat_problems
                              if r["model"] == m and r["category"] == c)) for m in models]
             for c in categories],
        )
        turns = {r["model"]: r["bot_turns"] for r in result.chat_problems}
        lines += ["", "Annotated bot turns: " + ", ".join(f"{m} {turns[m]}" for m in models) + ".", ""]
        if "problems" in figures:
            lines += [f"![problem rates]({figures['problems']})", ""]
    if result.chat_ratings:
        lines += ["## Live chat: final ratings (1-5)", ""]
        lines += _md_table(
            ["model", "question", "n", "mean", "sd", f"{pct}% interval of the mean"],
            [[r["model"], r["question"], r["n"], _num(r["mean"], 2), _num(r["sd"], 2),
              f"[{_num(r['ci_low'], 2)}, {_num(r['ci_high'], 2)}]"] for r in result.chat_ratings],
        )
        lines.append("")
        if "ratings" in figures:
            lines += [f"![ratings]({figures['ratings']})", ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    lines += [
        "## Method", "",
        f"Win rates with Wilson score intervals ({pct}%); exact two-sided binomial tests against "
        "0.5 with Holm's correction over the pairs of each question; Bradley-Terry strengths by "
        f"maximum likelihood, intervals from {options.bootstrap} bootstrap resamples of the "
        f"judgments (seed {options.seed}); Krippendorff's alpha with each pair of conversations "
        "as a unit; chat ratings with Student t intervals of the mean. Files: `pairwise.csv`, `bradley_terry.csv`, `agreement.csv`, "
        "`chat_problems.csv`, `chat_ratings.csv`, `workers.csv`, and ParlAI's ACUTE analysis "
        "files in `parlai_acute/`.", "",
    ]
    return "\n".join(lines)
