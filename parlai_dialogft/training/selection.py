"""Checkpoint selection that never keeps a model worse than its start (``--pref-keep-start``).

Preference training can raise its own metrics while the model gets worse at saying what people
said (``docs/preferences.md``: DPO's F1 fell below the start). So before the first step the
agent measures the start's perplexity of the gold replies of held-out examples (the first
``--pref-select-exs`` validation examples of the task ParlAI validates on, ``--evaltask`` where
given; every reply token, EOS included), writes the start's
weights to ``-mf``, and afterwards each save of ``-mf`` (ParlAI's "new best" saves and the one at
the end) measures the same perplexity again and is skipped when it is worse than the start's.
``-mf`` thus holds the start or a model whose held-out gold perplexity is no worse;
``MODEL_FILE.checkpoint`` (resuming) is never held back.

The start's perplexity is kept in ``MODEL_FILE.pref_start.json`` so that a resumed run compares
with the start, not with weights that have moved; each checked save is written down there too.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import List, Optional

from parlai_dialogft.utils.errors import UserError


def add_args(group) -> None:
    group.add_argument(
        "--pref-keep-start", type="bool", default=True,
        help="with --pref-loss, never save to -mf weights whose perplexity of the held-out gold replies is "
        "worse than the start model's (the start's weights are written to -mf first)",
    )
    group.add_argument("--pref-select-exs", type=int, default=200,
                       help="--pref-keep-start: how many validation examples (the first) measure the perplexity")


def perplexity(nll_sum: float, tokens: int) -> float:
    if tokens <= 0:
        raise UserError("--pref-keep-start: the validation examples have no reply tokens to measure; "
                        "pass --pref-keep-start false or a task with validation replies")
    return math.exp(nll_sum / tokens)


@dataclass
class StartGuard:
    """The start's held-out gold perplexity, and whether later weights may replace it."""

    path: str
    start_ppl: float
    #: Each save of -mf checked: {"ppl": ..., "kept": bool}, in order (the file's audit trail).
    decisions: List[dict] = field(default_factory=list)

    @classmethod
    def load(cls, path: str) -> Optional["StartGuard"]:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        return cls(path, float(saved["start_ppl"]), saved.get("decisions", []))

    def save(self) -> None:
        from parlai_dialogft.training.checkpoint import write_json_atomically

        write_json_atomically(self.path, {"start_ppl": self.start_ppl, "decisions": self.decisions})

    def accepts(self, ppl: float) -> bool:
        """A model may be kept when its held-out gold perplexity is no worse than the start's."""
        return ppl <= self.start_ppl

    def decide(self, ppl: float) -> bool:
        """:meth:`accepts`, written down in the file."""
        kept = self.accepts(ppl)
        self.decisions.append({"ppl": ppl, "kept": kept})
        self.save()
        return kept
