"""The report's figures (matplotlib, Agg): win-rate matrix, Bradley-Terry scores, problem rates, ratings.

Each function draws one PNG from the tables of :mod:`parlai_dialogft.human_eval.analysis`
and returns its file name (relative to the report). Text is ASCII-safe on purpose, as in
:mod:`parlai_dialogft.evaluation.report_plots`: the bundled fonts have no CJK glyphs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "q"


def win_matrix(rows: Sequence[Mapping[str, Any]], question: str, path: Path) -> None:
    """Cell (row r, column c): how often r beat c, with its Wilson interval under the value."""
    models = sorted({m for r in rows for m in (r["model_a"], r["model_b"])})
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    values = [[math.nan] * k for _ in range(k)]
    labels = [[""] * k for _ in range(k)]
    for r in rows:
        a, b = index[r["model_a"]], index[r["model_b"]]
        values[a][b], values[b][a] = r["win_rate_a"], 1 - r["win_rate_a"]
        labels[a][b] = f"{r['win_rate_a']:.2f}\n[{r['ci_low']:.2f}, {r['ci_high']:.2f}]\nn={r['n']}"
        labels[b][a] = f"{1 - r['win_rate_a']:.2f}\n[{1 - r['ci_high']:.2f}, {1 - r['ci_low']:.2f}]\nn={r['n']}"
    fig, ax = plt.subplots(figsize=(1.6 * k + 2, 1.4 * k + 1.5))
    image = ax.imshow(values, cmap="RdBu", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if labels[i][j]:
                ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8)
    ax.set_xticks(range(k), models, rotation=30, ha="right")
    ax.set_yticks(range(k), models)
    ax.set_xlabel("opponent")
    ax.set_ylabel("model (row wins over column)")
    ax.set_title(f"{question}: win rate [Wilson interval]")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bradley_terry(rows: Sequence[Mapping[str, Any]], question: str, path: Path) -> None:
    ordered = sorted(rows, key=lambda r: r["score"])
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(ordered) + 1.5))
    ys = range(len(ordered))
    scores = [r["score"] for r in ordered]
    have_ci = all(not math.isnan(r["ci_low"]) for r in ordered)
    if have_ci:
        errors = [[r["score"] - r["ci_low"] for r in ordered], [r["ci_high"] - r["score"] for r in ordered]]
        ax.errorbar(scores, list(ys), xerr=errors, fmt="o", capsize=4)
    else:
        ax.plot(scores, list(ys), "o")
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(list(ys), [r["model"] for r in ordered])
    ax.set_xlabel("Bradley-Terry score (log strength, mean 0)")
    ax.set_title(f"{question}: Bradley-Terry" + (" with bootstrap intervals" if have_ci else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _grouped_bars(groups: List[str], series: Dict[str, List[float]], ylabel: str, title: str, path: Path,
                  errors: Dict[str, List[List[float]]] | None = None, ylim=None) -> None:
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(series)) / 2), 4))
    width = 0.8 / max(1, len(series))
    for s, (name, heights) in enumerate(series.items()):
        xs = [g + s * width - 0.4 + width / 2 for g in range(len(groups))]
        ax.bar(xs, heights, width, label=name, yerr=(errors or {}).get(name), capsize=3)
    ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def problem_rates(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    categories = [c for c in dict.fromkeys(r["category"] for r in rows) if c != "none"]
    models = sorted({r["model"] for r in rows})
    rate = {(r["model"], r["category"]): r["rate"] for r in rows}
    series = {m: [rate.get((m, c), math.nan) for c in categories] for m in models}
    _grouped_bars(categories, series, "share of bot turns", "Live chat: problems per bot turn", path, ylim=(0, 1))


def ratings(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    questions = list(dict.fromkeys(r["question"] for r in rows))
    models = sorted({r["model"] for r in rows})
    found = {(r["model"], r["question"]): r for r in rows}
    series, errors = {}, {}
    for m in models:
        means = [found[(m, q)]["mean"] if (m, q) in found else math.nan for q in questions]
        halves = [
            0.0 if (m, q) not in found or math.isnan(found[(m, q)]["ci_high"])
            else found[(m, q)]["ci_high"] - found[(m, q)]["mean"]
            for q in questions
        ]
        series[m], errors[m] = means, [halves, halves]
    _grouped_bars(questions, series, "mean rating (1-5)", "Live chat: final ratings", path, errors, ylim=(0, 5.5))


def draw_all(result, out: Path) -> Dict[str, str]:
    """Every figure the analysis has data for: key -> PNG file name in ``out``."""
    figures: Dict[str, str] = {}
    for question in sorted({r["question"] for r in result.pairwise}):
        name = f"win_matrix_{_slug(question)}.png"
        win_matrix([r for r in result.pairwise if r["question"] == question], question, out / name)
        figures[f"win_matrix:{question}"] = name
        bt_rows = [r for r in result.bradley_terry if r["question"] == question]
        if bt_rows:
            name = f"bradley_terry_{_slug(question)}.png"
            bradley_terry(bt_rows, question, out / name)
            figures[f"bradley_terry:{question}"] = name
    if result.chat_problems:
        problem_rates(result.chat_problems, out / "problem_rates.png")
        figures["problems"] = "problem_rates.png"
    if result.chat_ratings:
        ratings(result.chat_ratings, out / "ratings.png")
        figures["ratings"] = "ratings.png"
    return figures
