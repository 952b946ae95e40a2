"""The few lines a reader takes in at a terminal after ``dialogft_report``: the main metrics,
each with what it means, a few exchanges, and where the full report is.

``report.md`` has everything; this is the part of it that fits on a screen. ``make demo``
ends with it.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any, Dict, List, Optional, Sequence

from parlai_dialogft.evaluation.report_eval import SplitResult, spread

#: The metrics a newcomer reads first, with one line each (the report's table has them all).
HEADLINE = (
    ("ppl", "perplexity of the reference reply: how surprised the model is (lower is better)"),
    ("f1", "word overlap with the reference reply, 0-1 (Chinese: per character)"),
    ("bleu-4", "n-gram overlap with the reference up to 4-grams, 0-1"),
    ("rouge-L", "longest common subsequence with the reference, 0-1"),
    ("dist-2", "share of distinct word pairs over all replies: variety, 0-1"),
    ("len", "mean reply length in words (Chinese: characters)"),
    # Task-oriented teachers (dialogft_customer:end_to_end), per whole dialogue or turn:
    ("inform", "share of dialogues whose offered entities meet the user's goal (MultiWOZ, CrossWOZ)"),
    ("success", "share of dialogues informed that also gave every attribute asked for (MultiWOZ)"),
    ("jga", "share of turns whose whole belief state (the model's calls) equals the gold one"),
    ("call_em", "share of the gold calls the model wrote exactly"),
)
WIDTH = 96


def _flags(decoding: Dict[str, Any]) -> str:
    return "".join(f" --{key.replace('_', '-')} {value}" for key, value in decoding.items())


def _value(name: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if name in ("ppl", "len") else f"{value:.3f}"


def text(model_file: str, report_path: str, results: Sequence[SplitResult], samples: int = 3,
         decoding: Optional[Dict[str, Any]] = None, dialogues: int = 0) -> str:
    """The summary for ``results`` (the report's evaluated splits, test last); ``decoding``:
    flags the evaluation used instead of the model's own, repeated in the chat command;
    ``dialogues``: whole dialogues were evaluated (``--report-dialogues``), not the first examples."""
    result = results[-1]
    exs = int(result.metrics.get("exs", len(result.samples)))
    scope = (f"{exs} {result.split} examples ({dialogues} whole dialogues)" if dialogues
             else f"the first {exs} {result.split} examples")
    lines: List[str] = [f"Metrics on {scope}:", ""]
    for name, meaning in HEADLINE:
        if name in result.metrics:
            lines.append(f"  {name:<8}{_value(name, result.metrics[name]):>8}   {meaning}")
    lines += ["", f"Sample exchanges ({result.split}):"]
    wrap = dict(width=WIDTH, subsequent_indent=" " * 13)
    for sample in spread(result.samples, samples):
        lines += [
            "",
            textwrap.fill(f"  user:      {sample.context[-1]}", **wrap),
            textwrap.fill(f"  reference: {sample.reference}", **wrap),
            textwrap.fill(f"  model:     {sample.reply or '(empty reply)'}", **wrap),
        ]
        if sample.call:  # the round behind the reply (--task-db)
            lines[-1:-1] = [textwrap.fill(f"  call:      {sample.call}", **wrap),
                            textwrap.fill(f"  result:    {sample.result}", **wrap)]
    lines += [
        "",
        f"Model:  {os.path.abspath(model_file)}",
        f"Report: {os.path.abspath(report_path)} (curves, every metric, more samples)",
        f"Chat:   parlai interactive -mf {os.path.abspath(model_file)}{_flags(decoding or {})}",
    ]
    return "\n".join(lines) + "\n"
