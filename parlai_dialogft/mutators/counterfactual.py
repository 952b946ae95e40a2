"""Counterfactual data augmentation for gender bias: swap gendered words and names.

    parlai train_model -t dialogft_customer --mutators dialogft_counterfactual ...
    parlai display_data -t dialogft_customer --mutators dialogft_counterfactual --cf-mode swap

Counterfactual data augmentation (Lu et al. 2018; Dinan et al. 2020, "Queens are Powerful
Too") trains on each dialogue and on its copy with every gendered term swapped, so that the
data no longer tells the model that, say, the husband books the taxi and the wife asks
about the shops. ``--cf-mode augment`` (the default) yields every episode and, when a swap
changed something, its swapped copy right after it; ``swap`` yields the swapped version
only (the probe's view). Text and labels are swapped alike: the copy must stay a coherent
dialogue.

The swapper works on English word by word (case kept: ``He`` → ``She``; names only when
capitalised) and on Chinese by longest match, so 其他 ("other") and 吉他 ("guitar") are
left alone while 他们 becomes 她们. English ``her`` is ambiguous (``his`` or ``him``): it
becomes ``his`` before a word and ``him`` before punctuation or the end.
"""

from __future__ import annotations

import argparse
import re
from typing import Dict, List

from parlai.core.message import Message
from parlai.core.mutators import ManyEpisodeMutator, register_mutator

from parlai_dialogft.mutators.wordlists import both_ways, load_pairs, load_words, longest_match

MODES = ("augment", "swap")
SWAP_FIELDS = ("text", "labels", "eval_labels", "label_candidates")

_EN_WORD = re.compile(r"[A-Za-z]+")
_NEXT_WORD = re.compile(r"\s*[A-Za-z0-9]")


def _keep_case(source: str, target: str) -> str:
    if source.isupper() and len(source) > 1:
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


class GenderSwapper:
    """Swaps gendered words (and, optionally, names) in English and Chinese text."""

    def __init__(self, names: bool = True):
        self.en_words = both_ways(load_pairs("en_gender_pairs.tsv"))
        # "her" → his/him is decided by context in swap_en; the table's first partner is a default.
        self.en_names = both_ways(load_pairs("en_names.tsv")) if names else {}
        zh_pairs = load_pairs("zh_gender_pairs.tsv") + (load_pairs("zh_names.tsv") if names else ())
        self.zh_words = both_ways(zh_pairs)
        protected = load_words("zh_protected.txt")
        # A protected word maps to itself: the longest match takes it whole, and keeps it.
        self.zh_terms: Dict[str, str] = {**self.zh_words, **{w: w for w in protected}}
        self.zh_max = max(len(t) for t in self.zh_terms)

    def swap_en(self, text: str) -> str:
        def swap(match: re.Match) -> str:
            word = match.group()
            if word in self.en_names:  # names are case-sensitive: "Will" is not "will"
                return self.en_names[word]
            lower = word.lower()
            if lower == "her":
                before_word = _NEXT_WORD.match(text, match.end()) is not None
                return _keep_case(word, "his" if before_word else "him")
            if lower in self.en_words:
                return _keep_case(word, self.en_words[lower])
            return word

        return _EN_WORD.sub(swap, text)

    def swap_zh(self, text: str) -> str:
        out: List[str] = []
        last = 0
        for start, term in longest_match(text, self.zh_terms, self.zh_max):
            out.append(text[last:start])
            out.append(self.zh_terms[term])
            last = start + len(term)
        out.append(text[last:])
        return "".join(out)

    def swap(self, text: str) -> str:
        """``text`` with every listed gendered term replaced by its counterpart."""
        return self.swap_zh(self.swap_en(text))

    def has_gendered_term(self, text: str) -> bool:
        return self.swap(text) != text


def _mode(value: str) -> str:
    if value not in MODES:
        raise argparse.ArgumentTypeError(f"{value!r}: choose one of {', '.join(MODES)}")
    return value


@register_mutator("dialogft_counterfactual")
class CounterfactualMutator(ManyEpisodeMutator):
    """Adds (or substitutes) the gender-swapped copy of every episode that has a gendered term."""

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_counterfactual mutator")
        group.add_argument(
            "--cf-mode", type=_mode, default="augment",
            help="augment: each episode and its swapped copy; swap: the swapped episode only",
        )
        group.add_argument("--cf-names", type="bool", default=True, help="swap given names too (en_names.tsv, zh_names.tsv)")
        return parser

    def __init__(self, opt):
        super().__init__(opt)
        self.mode = opt.get("cf_mode", "augment")
        self.swapper = GenderSwapper(names=bool(opt.get("cf_names", True)))

    def _swap_message(self, message: Message) -> Message:
        swapped = message.copy()
        for field in SWAP_FIELDS:
            value = message.get(field)
            if isinstance(value, str):
                swapped.force_set(field, self.swapper.swap(value))
            elif isinstance(value, (list, tuple)):
                swapped.force_set(field, type(value)(self.swapper.swap(v) for v in value))
        return swapped

    def many_episode_mutation(self, episode: List[Message]) -> List[List[Message]]:
        swapped = [self._swap_message(m) for m in episode]
        changed = any(s != m for s, m in zip(swapped, episode))
        if self.mode == "swap":
            return [swapped]
        return [episode, swapped] if changed else [episode]
