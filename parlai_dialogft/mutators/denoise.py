"""Span-infilling (denoising) examples from dialogue turns: a pretraining objective.

    parlai train_model -t "dialogft_customer,dialogft_customer:mutators=dialogft_denoise" ...

Each turn of an episode (the user's ``text`` and the reply in ``labels``) becomes an
episode of its own: the turn with some spans of words replaced by one marker each as the
input, the whole turn as the reply (BART's text infilling). Most of the reply is in the
input, so the decoder learns early to read the encoder: a reply-only objective on a small
model tends to learn the replies' own language model and answer every context with the
same stock line.

A span starts and ends at a word boundary in both languages; Chinese words are jieba's
(:mod:`.segment`). The model restores whole words, never the half of a word whose other
half it can read.

Determinism as in :mod:`parlai_dialogft.mutators.noise`: the same seed and turn give the
same corrupted input, whatever the order of the data.
"""

from __future__ import annotations

import re
from typing import List, Tuple

from parlai.core.message import Message
from parlai.core.mutators import ManyEpisodeMutator, register_mutator

from parlai_dialogft.mutators.noise import CJK, _rate, text_rng
from parlai_dialogft.mutators.segment import zh_words

# Units a span is made of: a Latin word or number, a Chinese word, or another mark.
_UNIT = re.compile(f"[A-Za-z0-9']+|([{CJK}]+)|[^\\sA-Za-z0-9'{CJK}]")
MEAN_SPAN = 3  # units per masked span, on average (uniform over 1..2*MEAN_SPAN-1)
DEFAULT_RATE, DEFAULT_MARKER, DEFAULT_SEED = 0.25, "<unk>", 0


def units(text: str) -> List[Tuple[int, int]]:
    """``(start, end)`` of each unit of ``text``, in order; a run of Chinese is cut into its words."""
    spans = []
    for match in _UNIT.finditer(text):
        if match.group(1) is None:
            spans.append(match.span())
            continue
        start = match.start()
        for word in zh_words(match.group()):
            spans.append((start, start + len(word)))
            start += len(word)
    return spans


def corrupt(text: str, rng, rate: float, marker: str) -> str:
    """``text`` with about ``rate`` of its units masked, each masked span as one ``marker``.

    At least one span is masked when the text has a unit, so an input never equals its reply.
    """
    spans = units(text)
    if not spans:
        return text
    budget = max(1, round(rate * len(spans)))
    masked = [False] * len(spans)
    for _ in range(4 * budget):  # bounded: spans may overlap near the end of short texts
        if sum(masked) >= budget:
            break
        length = min(rng.randint(1, 2 * MEAN_SPAN - 1), budget - sum(masked))
        start = rng.randrange(len(spans))
        for i in range(start, min(start + length, len(spans))):
            masked[i] = True
    pieces, end = [], 0
    for i, (start, stop) in enumerate(spans):
        if masked[i] and i > 0 and masked[i - 1]:
            end = stop  # the span's marker is already written: drop this unit too
            continue
        pieces.append(text[end:start])
        pieces.append(marker if masked[i] else text[start:stop])
        end = stop
    pieces.append(text[end:])
    return "".join(pieces)


@register_mutator("dialogft_denoise")
class DenoiseMutator(ManyEpisodeMutator):
    """Every turn of an episode as its own episode: masked spans in, the whole turn out."""

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_denoise mutator")
        group.add_argument("--denoise-rate", type=_rate, default=DEFAULT_RATE, help="share of a turn's units masked")
        group.add_argument(
            "--denoise-marker", type=str, default=DEFAULT_MARKER,
            help="what a masked span is replaced by: a string the tokenizer keeps as one token "
            "(T5, BART and our zoo tokenizers have <unk>)",
        )
        group.add_argument("--denoise-seed", type=int, default=DEFAULT_SEED, help="the same seed and turn give the same input")
        return parser

    def __init__(self, opt):
        super().__init__(opt)
        # Also read when the mutator comes as a task flag (task:mutators=dialogft_denoise),
        # where ParlAI never adds its flags: the defaults above then hold.
        rate, marker, seed = opt.get("denoise_rate"), opt.get("denoise_marker"), opt.get("denoise_seed")
        self.rate = DEFAULT_RATE if rate is None else float(rate)
        self.marker = DEFAULT_MARKER if marker is None else marker
        self.seed = DEFAULT_SEED if seed is None else int(seed)

    def many_episode_mutation(self, episode: List[Message]) -> List[List[Message]]:
        episodes = []
        for message in episode:
            replies = message.get("labels") or message.get("eval_labels") or []
            field = "labels" if "labels" in message else "eval_labels"
            for turn in [message.get("text", "")] + list(replies[:1]):
                if not turn.strip():
                    continue
                rng = text_rng(self.seed, "dialogft_denoise", turn)
                episodes.append([Message({
                    "text": corrupt(turn, rng, self.rate, self.marker), field: [turn],
                })])
        return episodes
