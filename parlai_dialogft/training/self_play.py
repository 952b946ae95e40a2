"""Self-play preference pairs, as in SPIN (Chen et al., 2024): for each example of a task,
the reference reply is chosen and the model's own sampled reply is rejected.

    parlai dialogft_self_play -mf MODEL -t dialogft_customer --out pairs.jsonl --sp-max-exs 2000
    parlai train_model -t dialogft_preferences --pref-datapath pairs.jsonl -m dialogft_agent \\
        --init-model MODEL --pref-loss dpo -mf MODEL2

A pair teaches something only where the model's reply differs from the reference: pairs
whose two replies are near-equal (token F1 at or above ``max_f1``, the metric's own
tokenisation, so Chinese is compared by character) are skipped, as are empty sampled
replies, and both are counted. The file is TRL's conversational preference format, which
``-t dialogft_preferences`` reads.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable

from parlai_dialogft.data.preference_records import paired
from parlai_dialogft.evaluation.metrics import precision_recall_f1
from parlai_dialogft.evaluation.report_eval import Sample
from parlai_dialogft.evaluation.text import cjk_aware_tokenize
from parlai_dialogft.model.chat_format import to_messages
from parlai_dialogft.utils.errors import UserError
from parlai_dialogft.utils.jsonl import write_jsonl

NEAR_EQUAL = "near-equal replies (token F1 >= --sp-max-f1)"
EMPTY = "empty sampled replies"


@dataclass
class SelfPlayOptions:
    model_file: str
    task: str
    out: str
    split: str = "train"
    max_exs: int = 1000
    max_f1: float = 0.8
    # The model's own sampled replies: what it says, not its single most likely line.
    decoding: Dict[str, object] = field(default_factory=lambda: {"inference": "nucleus", "topp": 0.9})
    batchsize: int = 16
    seed: int = 0


@dataclass
class Summary:
    written: int = 0
    skipped: Counter = field(default_factory=Counter)

    def __str__(self) -> str:
        skipped = ", ".join(f"{n} {why}" for why, n in self.skipped.items()) or "none"
        return f"{self.written} pairs written; skipped: {skipped}"


def f1(a: str, b: str) -> float:
    return precision_recall_f1(cjk_aware_tokenize(a), cjk_aware_tokenize(b))[2]


def pairs(samples: Iterable[Sample], max_f1: float, summary: Summary) -> Iterable[dict]:
    """TRL conversational records from evaluated samples (context, reference, the model's reply)."""
    for sample in samples:
        if not sample.reply.strip():
            summary.skipped[EMPTY] += 1
            continue
        if f1(sample.reply, sample.reference) >= max_f1:
            summary.skipped[NEAR_EQUAL] += 1
            continue
        summary.written += 1
        yield paired(to_messages(sample.context), sample.reference, sample.reply)


def check(options: SelfPlayOptions) -> None:
    zoo = options.model_file.startswith("zoo:")  # ParlAI installs it when the agent loads
    if not options.model_file or not (zoo or os.path.exists(options.model_file)):
        raise UserError(f"-mf {options.model_file}: no such model file")
    if not options.task:
        raise UserError("-t/--task is required: the task whose examples the model replies to")
    if not options.out:
        raise UserError("--out is required: the preference file to write (JSONL)")
    if not 0 < options.max_f1 <= 1:
        raise UserError(f"--sp-max-f1 {options.max_f1}: must be in (0, 1]")
    if options.max_exs <= 0:
        raise UserError(f"--sp-max-exs {options.max_exs}: must be positive")


def run(options: SelfPlayOptions) -> Summary:
    import torch

    from parlai_dialogft.evaluation.report_eval import evaluate_split, load_generator

    check(options)
    agent, opt = load_generator(options.model_file, options.task, options.batchsize, **options.decoding)
    torch.manual_seed(options.seed)  # the sampled replies, reproducibly
    # train:evalmode: the training examples once, in file order (not shuffled, not looped).
    split = "train:evalmode" if options.split == "train" else options.split
    samples = evaluate_split(agent, opt, split, options.max_exs, "dialogft_self_play").samples
    summary = Summary()
    os.makedirs(os.path.dirname(os.path.abspath(options.out)), exist_ok=True)
    write_jsonl(options.out, pairs(samples, options.max_f1, summary))
    return summary
