"""The plots of ``dialogft_report`` as PNG files (matplotlib, Agg): training curves from
``MODEL.trainstats``, and reply length against reference length.

ParlAI's ``train_model`` rewrites ``MODEL.trainstats`` at every log and validation: a JSON
object whose ``train_reports`` (one per ``--log-every-n-steps``/``-secs``) and
``valid_reports`` (one per validation) are flat metric dicts, each with
``total_train_updates``. That is all the history a model keeps, so it is all we plot.

Labels, titles and legends are ASCII on purpose: matplotlib's bundled DejaVu fonts have no
CJK glyphs, and a task or model name in Chinese would render as empty boxes. Names in other
scripts belong in the Markdown, which renders any text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

#: Validation metrics worth a line next to --validation-metric: all lie in [0, 1].
OVERLAP_METRICS = ("f1", "bleu-4", "rouge-L")
#: Plotted on their own figure, never with the overlap metrics (other scale).
LOSS_METRICS = ("loss", "ppl")

Series = Dict[str, List[float]]  # metric -> values, aligned with ``updates``


@dataclass
class Curves:
    """What ``MODEL.trainstats`` holds, as x/y series."""

    train_updates: List[float] = field(default_factory=list)
    train: Series = field(default_factory=dict)
    valid_updates: List[float] = field(default_factory=list)
    valid: Series = field(default_factory=dict)
    train_time_s: Optional[float] = None
    train_steps: Optional[int] = None
    best_valid: Optional[float] = None

    @property
    def empty(self) -> bool:
        return not self.train_updates and not self.valid_updates


def _series(reports: Sequence[dict]):
    """(updates, {metric: values}): a metric missing from a report is a NaN there."""
    updates = [float(r.get("total_train_updates", i + 1)) for i, r in enumerate(reports)]
    names = sorted({k for r in reports for k, v in r.items() if isinstance(v, (int, float))})
    return updates, {n: [float(r.get(n, float("nan"))) for r in reports] for n in names}


def load_curves(model_file: str) -> Optional[Curves]:
    """The curves of ``model_file``, or None when it has no (readable) trainstats."""
    path = model_file + ".trainstats"
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            stats = json.load(f)
    except (OSError, ValueError):
        return None
    curves = Curves(
        train_time_s=stats.get("train_time"),
        train_steps=stats.get("train_steps"),
        best_valid=stats.get("best_valid"),
    )
    curves.train_updates, curves.train = _series(stats.get("train_reports") or [])
    curves.valid_updates, curves.valid = _series(stats.get("valid_reports") or [])
    return curves


def metric_mode(metric: str, mode: Optional[str]) -> str:
    """"min" or "max": ParlAI's train_model rule for --validation-metric-mode."""
    if metric in ("loss", "ppl", "mean_rank"):
        return "min"
    if metric in ("accuracy", "hits@1", "hits@5", "f1", "bleu"):
        return "max"
    return mode or "max"


def kept_update(curves: Curves, metric: str, mode: str) -> Optional[float]:
    """The update whose weights ``-mf`` holds: train_model saves only on a new best.

    None when no validation recorded the metric (then the last weights were saved).
    """
    best, kept = None, None
    for update, value in zip(curves.valid_updates, curves.valid.get(metric, [])):
        if value != value:  # NaN: not recorded at this validation
            continue
        if best is None or (value > best if mode == "max" else value < best):
            best, kept = value, update
    return kept


def _new_figure(panels: int):
    # The object API with an explicit Agg canvas: no pyplot global state, no GUI backend
    # chosen from the environment (a headless server has no display).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * panels, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _line(ax, xs, ys, label: str, marker: str = "") -> bool:
    points = [(x, y) for x, y in zip(xs, ys) if y == y]  # drop NaN
    if not points:
        return False
    # A lone point needs a marker to be visible at all.
    ax.plot(*zip(*points), label=label, marker=marker or ("o" if len(points) == 1 else ""))
    return True


def plot_loss(curves: Curves, path: str) -> bool:
    """Loss and perplexity, train and valid, over updates. False when nothing to draw."""
    fig, axes = _new_figure(2)
    drawn = False
    for ax, name in zip(axes, LOSS_METRICS):
        drawn |= _line(ax, curves.train_updates, curves.train.get(name, []), "train")
        drawn |= _line(ax, curves.valid_updates, curves.valid.get(name, []), "valid", marker="o")
        ax.set_xlabel("updates")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(name)
        ax.set_title(f"{name} (lower is better)")
        if name == "ppl":
            ax.set_yscale("log")  # early perplexities dwarf the rest on a linear axis
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if drawn:
        fig.savefig(path)
    return drawn


def plot_validation(
    curves: Curves, validation_metric: str, path: str, kept: Optional[float] = None
) -> List[str]:
    """The validation metric and the overlap metrics over updates; returns what it drew.

    ``kept``: the update whose weights were saved, drawn as a dashed line.
    """
    wanted = [validation_metric] + [m for m in OVERLAP_METRICS if m != validation_metric]
    names = [m for m in wanted if m in curves.valid and m not in LOSS_METRICS]
    if not names:
        return []
    fig, (ax,) = _new_figure(1)
    drawn = [n for n in names if _line(ax, curves.valid_updates, curves.valid[n], n, marker="o")]
    if kept is not None:
        ax.axvline(kept, color="grey", linestyle="--", label="weights kept")
    ax.set_xlabel("updates")
    ax.set_ylabel("score on the validation sample")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"validation (model selected by {validation_metric})")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend()
        fig.savefig(path)
    return drawn


def plot_reply_lengths(lengths: Dict[str, List[Sequence[int]]], path: str) -> bool:
    """Reply length against reference length, one panel per split.

    ``lengths``: split -> [(reference tokens, reply tokens), ...]. A model that answers
    with stock lines shows as a flat band; one that stops early, as points under the
    diagonal. False when nothing to draw.
    """
    splits = [name for name, pairs in lengths.items() if pairs]
    if not splits:
        return False
    fig, axes = _new_figure(len(splits))
    top = max(max(max(pair) for pair in lengths[name]) for name in splits) + 1
    for ax, name in zip(axes, splits):
        reference, reply = zip(*lengths[name])
        ax.scatter(reference, reply, s=12, alpha=0.5, label=f"{len(reference)} replies")
        ax.plot([0, top], [0, top], color="grey", linestyle="--", label="same length")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("reference length (tokens)")
        ax.set_ylabel("model reply length (tokens)")
        ax.set_title(f"{name}: reply vs reference length")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    fig.savefig(path)
    return True
