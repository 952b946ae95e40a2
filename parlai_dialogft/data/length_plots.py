"""docs/images/turn_lengths.png: how long contexts and replies are, per corpus and language.

Two panels (contexts, replies), one step-histogram line per (teacher, source, language),
with the agent's --text-truncate and --label-truncate as dashed lines: whatever lies right
of a dashed line is cut. Each line is the share of *its own* examples per bin, so a small
corpus is as visible as SGD. Bins are log-spaced because lengths run from a few tokens to
over a thousand; on a linear axis the short replies would be one spike at the left.

Labels are ASCII, as in :mod:`parlai_dialogft.evaluation.report_plots` (whose figure
helper this reuses).
"""

from __future__ import annotations

from typing import Dict, List, Protocol, Sequence, Tuple

from parlai_dialogft.evaluation.report_plots import _new_figure

LengthKey = Tuple[str, str, str]  # teacher, source, lang (data_report's, which imports this module)


class TurnLengths(Protocol):
    """What :class:`parlai_dialogft.data.data_report.TurnLengths` holds."""

    contexts: List[int]
    replies: List[int]


def label(key: LengthKey) -> str:
    teacher, source, lang = key
    return f"{teacher.replace('dialogft_', '')}: {source} ({lang})"


#: Bins per factor of ten of length: fine enough for shape, coarse enough for a small corpus.
PER_DECADE = 10


def log_bins(values: Sequence[int], per_decade: int = PER_DECADE) -> List[int]:
    """Whole-token bin edges from 1 past the longest value, evenly spaced on a log axis.

    Rounded to whole tokens, since lengths are whole: unrounded, the bins below ~10 tokens
    would be narrower than one token and alternate empty and full (a comb, not a shape).
    """
    import numpy

    top = max(2, max(values) + 1)
    edges = numpy.logspace(0, numpy.log10(top), max(2, round(per_decade * numpy.log10(top))) + 1)
    return sorted({int(round(e)) for e in edges} | {top})


def shares(values: Sequence[int], edges: Sequence[int], per_decade: int = PER_DECADE) -> List[float]:
    """The share of ``values`` per bin, scaled to a bin of 1/``per_decade`` decade.

    Rounded bins near 1 token are wider than that on the log axis (1-2 is 0.3 decade), and
    would otherwise look taller than the same density further right.
    """
    import numpy

    counts, _ = numpy.histogram(numpy.maximum(values, 1), bins=edges)  # 0 tokens (empty) -> 1st bin
    widths = numpy.diff(numpy.log10(edges)) * per_decade
    return list(counts / len(values) / widths)


def _panel(ax, series: Dict[LengthKey, List[int]], limit: int, flag: str, what: str) -> List:
    from matplotlib.lines import Line2D

    edges = log_bins([v for values in series.values() for v in values])
    handles = []
    for (key, values), color in zip(series.items(), _colors(len(series))):
        ax.stairs(shares(values, edges), edges, color=color, linewidth=1.5)
        handles.append(Line2D([], [], color=color, linewidth=2, label=label(key)))
    ax.axvline(limit, color="black", linestyle="--", linewidth=1.2)
    ax.axvspan(limit, edges[-1], color="grey", alpha=0.12, linewidth=0)
    ax.annotate(f"{flag} {limit}:\ncut beyond", (limit, 1), xycoords=("data", "axes fraction"),
                xytext=(5, -8), textcoords="offset points", fontsize=9, va="top")
    ax.set_xscale("log")
    ax.set_xlim(1, edges[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"{what} length in tokens (log scale)")
    ax.set_ylabel(f"share of the line's examples per 1/{PER_DECADE} decade")
    ax.grid(alpha=0.3)
    return handles


def _colors(n: int) -> List[str]:
    return [f"C{i % 10}" for i in range(n)]


def plot_lengths(lengths: Dict[LengthKey, TurnLengths], text_truncate: int, label_truncate: int, path: str) -> bool:
    """Write the picture to ``path``; False (no file) when there is nothing to draw."""
    lengths = {key: turns for key, turns in lengths.items() if turns.contexts}
    if not lengths:
        return False
    fig, (contexts, replies) = _new_figure(2)
    fig.set_size_inches(12, 4.8)
    handles = _panel(contexts, {k: t.contexts for k, t in lengths.items()}, text_truncate, "--text-truncate", "context")
    _panel(replies, {k: t.replies for k, t in lengths.items()}, label_truncate, "--label-truncate", "reply")
    contexts.set_title("contexts: the episode so far, up to the text")
    replies.set_title("replies: the gold labels")
    fig.suptitle("Turn lengths of the train splits, in tokens of zoo:dialogft/bilingual_t5")
    fig.legend(handles=handles, loc="outside right center", fontsize=9, title="teacher: source (lang)", title_fontsize=9)
    fig.savefig(path)
    return True
