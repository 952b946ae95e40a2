"""The probe's two pictures (matplotlib, Agg): the robustness gap and the paired bias probe.

* ``probe_gap.png``: clean and noisy score side by side, one small panel per metric, because
  perplexity, F1 and reply length share no scale;
* ``probe_bias.png``: a slopegraph per measure (sentiment, reply length): one thin line per
  prompt pair from its masculine value to its feminine value, the means in bold. Lines that
  stay flat are pairs treated alike; a tilted bold line is a gap on average.

Labels are ASCII for the reason given in :mod:`parlai_dialogft.evaluation.report_plots`
(no CJK glyphs in matplotlib's bundled fonts); the prompts themselves stay in the Markdown.
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, Sequence, Tuple

from parlai_dialogft.evaluation.report_plots import _new_figure

GAP_PNG = "probe_gap.png"
BIAS_PNG = "probe_bias.png"

CLEAN_COLOR, NOISY_COLOR = "tab:blue", "tab:orange"
MASCULINE_COLOR, FEMININE_COLOR = "tab:blue", "tab:red"
#: metric -> direction shown under its panel's title, where one is better.
BETTER = {"ppl": "lower is better", "token_acc": "higher is better", "f1": "higher is better",
          "bleu-4": "higher is better", "sacrebleu": "higher is better", "rouge-L": "higher is better"}


def plot_gap(clean: Dict[str, float], noisy: Dict[str, float], metrics: Sequence[str], path: str) -> bool:
    """Clean vs noisy bars, one panel per metric; False (no file) when there is no metric."""
    # A non-finite value (an overflowing perplexity) has no bar to draw.
    metrics = [m for m in metrics if m in clean and m in noisy and math.isfinite(clean[m]) and math.isfinite(noisy[m])]
    if not metrics:
        return False
    fig, axes = _new_figure(len(metrics))
    # _new_figure sizes panels for curves; two bars need far less width.
    fig.set_size_inches(max(4.5, 2.1 * len(metrics)), 3.4)
    for ax, name in zip(axes, metrics):
        values = [clean[name], noisy[name]]
        bars = ax.bar(["clean", "noisy"], values, color=[CLEAN_COLOR, NOISY_COLOR], width=0.6)
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], padding=2, fontsize=8)
        ax.set_title(f"{name}\n({BETTER[name]})" if name in BETTER else name, fontsize=9)
        ax.tick_params(labelsize=8)
        if min(values) >= 0:
            # Room for the value above the taller bar; two zeros (a tiny model's F1) still
            # need an axis from 0 up, not one centred on them.
            ax.set_ylim(0, max(values) * 1.18 or 1)
        else:
            ax.margins(y=0.18)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Robustness gap: clean vs noisy input", fontsize=11)
    fig.savefig(path)
    return True


Pair = Tuple[float, float]  # (masculine value, feminine value)


def _slopes(ax, pairs: Sequence[Pair], title: str, ylabel: str) -> None:
    for m, f in pairs:
        ax.plot([0, 1], [m, f], color="grey", alpha=0.35, linewidth=0.8, marker="o", markersize=2.5)
    mean_m = sum(m for m, _ in pairs) / len(pairs)
    mean_f = sum(f for _, f in pairs) / len(pairs)
    ax.plot([0, 1], [mean_m, mean_f], color="black", linewidth=3, marker="o", markersize=7,
            label=f"mean of {len(pairs)} pairs")
    for x, value, align in ((0, mean_m, "right"), (1, mean_f, "left")):
        ax.annotate(f"{value:.2f}", (x, value), xytext=(-8 if align == "right" else 8, 0),
                    textcoords="offset points", ha=align, va="center", fontsize=9)
    ax.set_xticks([0, 1], ["masculine", "feminine"])
    for tick, color in zip(ax.get_xticklabels(), (MASCULINE_COLOR, FEMININE_COLOR)):
        tick.set_color(color)
    ax.set_xlim(-0.4, 1.4)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", fontsize=8)


def plot_bias(sentiments: Sequence[Pair], lengths: Sequence[Pair], path: str) -> bool:
    """The paired slopegraphs; False (no file) when there is no pair."""
    if not sentiments:
        return False
    fig, (left, right) = _new_figure(2)
    fig.set_size_inches(9, 4.2)
    _slopes(left, sentiments, "reply sentiment per prompt pair", "sentiment (-1..1)")
    left.set_ylim(-1.15, 1.35)  # the lexicon's full range, and room for the legend
    _slopes(right, lengths, "reply length per prompt pair", "tokens")
    top = max(max(pair) for pair in lengths)
    # A tiny model may reply with nothing at all: keep an axis to draw the zeros on.
    right.set_ylim(-0.05 * max(top, 1), max(top, 1) * 1.25)
    right.yaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("Bias probe: prompts that differ only in gendered terms", fontsize=11)
    fig.savefig(path)
    return True


def draw(result, out: str) -> List[str]:
    """The pictures of ``result`` (a :class:`~parlai_dialogft.evaluation.probe.ProbeResult`)
    written under ``out``: the file names, for the Markdown to reference."""
    written = []
    if plot_gap(result.clean, result.noisy, list(result.gap), os.path.join(out, GAP_PNG)):
        written.append(GAP_PNG)
    sentiments = [(p.sentiment_m, p.sentiment_f) for p in result.pairs]
    lengths = [(float(p.len_m), float(p.len_f)) for p in result.pairs]
    if plot_bias(sentiments, lengths, os.path.join(out, BIAS_PNG)):
        written.append(BIAS_PNG)
    return written
