"""Input-noise mutators for robustness training and testing, English and Chinese.

    parlai display_data -t dialogft_customer --mutators dialogft_typos+dialogft_fillers --noise-rate 0.2
    parlai train_model -t dialogft_customer -m dialogft_agent --mutators dialogft_typos ...

Each mutator perturbs one kind of thing, so they compose with ``+``:

==========================  ==========================================================
``dialogft_typos``          a Latin word or a CJK character gets one edit: adjacent
                            swap, drop, keyboard-neighbour insert/substitute (Latin);
                            drop, doubling, adjacent swap (CJK)
``dialogft_case_punct``     a word's casing changes (lower/UPPER/Title); a punctuation
                            mark is dropped or doubled
``dialogft_width``          a character flips width: ASCII to full-width (``a`` → ``ａ``),
                            Chinese punctuation to ASCII (``，`` → ``,``)
``dialogft_script_variant`` a simplified Chinese word is written in traditional script,
                            by OpenCC's ``s2t`` phrase tables (头发 → 頭髮, 发展 → 發展)
``dialogft_fillers``        a filler word goes in front of a word (``um``, ``you know``;
                            ``嗯``, ``那个``), never inside a Chinese word
==========================  ==========================================================

``--noise-rate`` is the probability that one unit (word, character, mark) is touched.
Chinese words are jieba's (:mod:`.segment`): the script variant converts whole words and a
filler goes between words, as a writer or speaker would, never ``电嗯，脑``.
Only the input ``text`` changes unless ``--noise-fields`` names more, so a model trained
with noise still learns clean replies and a noisy evaluation still scores against the
clean references. The teachers' NFKC cleaning runs before mutators, so full-width noise
reaches the model.

Determinism: each text gets its own RNG seeded by ``--noise-seed``, the mutator's name and
the text itself. The same input is perturbed the same way whatever the batch size, the
number of workers or the order of the data, and two mutators never draw the same numbers.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import random
import re
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

from parlai.core.message import Message
from parlai.core.mutators import MessageMutator, register_mutator

from parlai_dialogft.mutators.segment import zh_words

if TYPE_CHECKING:
    import opencc

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{CJK}]")
_CJK_RUN = re.compile(f"[{CJK}]+")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
# A Latin word or number, or a run of Chinese that :func:`zh_words` cuts into words.
_WORD = re.compile(f"[A-Za-z0-9']+|[{CJK}]+")
# A mark between digits (4.5, 1,000) is part of a number, not punctuation to play with.
_PUNCT = re.compile(r"(?<!\d)[,.](?!\d)|[!?;:，。！？；：、]")

# Rows of a QWERTY keyboard: a typo hits a key next to the intended one.
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: Dict[str, str] = {}
for _row in _KEY_ROWS:
    for _i, _key in enumerate(_row):
        _NEIGHBOURS[_key] = _row[max(0, _i - 1):_i] + _row[_i + 1:_i + 2]

# Full-width forms are ASCII shifted by 0xFEE0 (U+FF01..U+FF5E); the ideographic space is U+3000.
_FULLWIDTH_OFFSET = 0xFEE0
# Chinese punctuation typed with an English keyboard layout.
_ZH_TO_ASCII_PUNCT = {"，": ",", "。": ".", "！": "!", "？": "?", "；": ";", "：": ":", "（": "(", "）": ")"}

EN_FILLERS = ("um", "uh", "like", "you know", "well", "I mean", "so")
ZH_FILLERS = ("嗯", "呃", "那个", "就是", "然后", "这个")

FIELDS = ("text", "labels", "eval_labels")


def _rate(value: str) -> float:
    """argparse type: a probability, so a typo like ``--noise-rate 10`` fails at parse time."""
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a probability between 0 and 1")
    return rate


def _fields(value: str) -> List[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in FIELDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{value!r}: fields are a comma-separated subset of {', '.join(FIELDS)}")
    return names


def add_noise_args(parser) -> None:
    """The flags every noise mutator shares; added once however many mutators are used."""
    if "--noise-rate" in getattr(parser, "_option_string_actions", {}):
        return
    group = parser.add_argument_group("dialogft noise mutators")
    group.add_argument(
        "--noise-rate", type=_rate, default=0.1,
        help="probability that one unit (word, character, punctuation mark) is perturbed",
    )
    group.add_argument("--noise-seed", type=int, default=0, help="seed; the same seed and text give the same noise")
    group.add_argument(
        "--noise-fields", type=_fields, default=["text"],
        help="comma-separated fields to perturb: text (default), labels, eval_labels",
    )


def text_rng(seed: int, name: str, text: str) -> random.Random:
    """An RNG that depends only on the seed, the mutator and the text (not on data order)."""
    digest = hashlib.sha256(f"{seed}\0{name}\0{text}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _map_matches(pattern: re.Pattern, text: str, rng: random.Random, rate: float, edit: Callable) -> str:
    """Replace each match of ``pattern`` by ``edit(match, rng)`` with probability ``rate``."""

    def maybe(match: re.Match) -> str:
        # Draw for every unit, touched or not, so one unit's fate never shifts another's.
        return edit(match.group(), rng) if rng.random() < rate else match.group()

    return pattern.sub(maybe, text)


def latin_typo(word: str, rng: random.Random) -> str:
    """One keyboard typo: swap two letters, drop one, or hit a neighbouring key."""
    ops = ["insert", "substitute"] + (["swap", "drop"] if len(word) > 1 else [])
    op = rng.choice(ops)
    i = rng.randrange(len(word))
    if op == "swap":
        i = min(i, len(word) - 2)
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "drop":
        return word[:i] + word[i + 1:]
    neighbours = _NEIGHBOURS.get(word[i].lower(), "e")
    key = rng.choice(neighbours)
    key = key.upper() if word[i].isupper() else key
    if op == "insert":
        return word[:i + 1] + key + word[i + 1:]
    return word[:i] + key + word[i + 1:]


def _perturb_typos(text: str, rng: random.Random, rate: float) -> str:
    text = _map_matches(_LATIN_WORD, text, rng, rate, latin_typo)
    # CJK typos: an input method drops a character, doubles it, or swaps it with the next.
    chars = list(text)
    out: List[str] = []
    i = 0
    while i < len(chars):
        ch = chars[i]
        if _CJK_CHAR.match(ch) and rng.random() < rate:
            op = rng.choice(("drop", "double", "swap"))
            if op == "drop":
                i += 1
                continue
            if op == "double":
                out += [ch, ch]
                i += 1
                continue
            if i + 1 < len(chars) and _CJK_CHAR.match(chars[i + 1]):
                out += [chars[i + 1], ch]
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def _recase(word: str, rng: random.Random) -> str:
    return rng.choice((word.lower(), word.upper(), word.capitalize()))


def _punct_noise(mark: str, rng: random.Random) -> str:
    return rng.choice(("", mark + mark))


def _perturb_case_punct(text: str, rng: random.Random, rate: float) -> str:
    text = _map_matches(_LATIN_WORD, text, rng, rate, _recase)
    return _map_matches(_PUNCT, text, rng, rate, _punct_noise)


def flip_width(ch: str) -> str:
    """Full-width for printable ASCII, ASCII for Chinese punctuation, else unchanged."""
    if ch in _ZH_TO_ASCII_PUNCT:
        return _ZH_TO_ASCII_PUNCT[ch]
    if ch == " ":
        return "\u3000"
    if "!" <= ch <= "~":
        return chr(ord(ch) + _FULLWIDTH_OFFSET)
    return ch


def _perturb_width(text: str, rng: random.Random, rate: float) -> str:
    return "".join(flip_width(ch) if rng.random() < rate else ch for ch in text)


@functools.lru_cache(maxsize=None)
def _s2t() -> "opencc.OpenCC":
    """OpenCC's simplified → traditional converter, built on first use (imports stay cheap)."""
    import opencc

    return opencc.OpenCC("s2t")


def to_traditional(word: str) -> str:
    """``word`` in traditional characters, by OpenCC's phrase tables: 头发 → 頭髮 but 发展 → 發展."""
    return _s2t().convert(word)


def _perturb_script(text: str, rng: random.Random, rate: float) -> str:
    # Word by word: a traditional form often depends on the word (后天 → 後天, 皇后 stays),
    # and a writer who uses traditional script converts whole words, not every other character.
    def convert(match: re.Match) -> str:
        return "".join(to_traditional(w) if rng.random() < rate else w for w in zh_words(match.group()))

    return _CJK_RUN.sub(convert, text)


def _perturb_fillers(text: str, rng: random.Random, rate: float) -> str:
    def with_filler(word: str, fillers: Sequence[str], comma: str) -> str:
        return rng.choice(fillers) + comma + word if rng.random() < rate else word

    def add_fillers(match: re.Match) -> str:
        word = match.group()
        if _CJK_CHAR.match(word):  # a run of Chinese: a filler may go in front of each of its words
            return "".join(with_filler(w, ZH_FILLERS, "，") for w in zh_words(word))
        return with_filler(word, EN_FILLERS, ", ")

    return _WORD.sub(add_fillers, text)


class NoiseMutator(MessageMutator):
    """Perturbs the chosen fields of each message with :meth:`perturb`."""

    name = ""

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        add_noise_args(parser)
        return parser

    def __init__(self, opt):
        super().__init__(opt)
        self.rate = float(opt.get("noise_rate", 0.1))
        self.seed = int(opt.get("noise_seed", 0))
        fields = opt.get("noise_fields", ["text"])
        self.fields = _fields(fields) if isinstance(fields, str) else list(fields)

    def perturb(self, text: str, rng: random.Random) -> str:
        raise NotImplementedError

    def apply(self, text: str) -> str:
        """The noisy version of ``text`` (the same every time for the same seed)."""
        if self.rate <= 0.0 or not text:
            return text
        return self.perturb(text, text_rng(self.seed, self.name, text))

    def message_mutation(self, message: Message) -> Message:
        for field in self.fields:
            if field not in message:
                continue
            value = message[field]
            if isinstance(value, str):
                message.force_set(field, self.apply(value))
            else:  # labels are a list or tuple of strings
                message.force_set(field, type(value)(self.apply(v) for v in value))
        return message


@register_mutator("dialogft_typos")
class TyposMutator(NoiseMutator):
    """Keyboard typos in Latin words; dropped, doubled or swapped Chinese characters."""

    name = "dialogft_typos"

    def perturb(self, text, rng):
        return _perturb_typos(text, rng, self.rate)


@register_mutator("dialogft_case_punct")
class CasePunctMutator(NoiseMutator):
    """Random casing of words; dropped or doubled punctuation (ASCII and Chinese)."""

    name = "dialogft_case_punct"

    def perturb(self, text, rng):
        return _perturb_case_punct(text, rng, self.rate)


@register_mutator("dialogft_width")
class WidthMutator(NoiseMutator):
    """Half-/full-width variants: ASCII to full-width, Chinese punctuation to ASCII."""

    name = "dialogft_width"

    def perturb(self, text, rng):
        return _perturb_width(text, rng, self.rate)


@register_mutator("dialogft_script_variant")
class ScriptVariantMutator(NoiseMutator):
    """Simplified Chinese words written in traditional script, whole words at a time."""

    name = "dialogft_script_variant"

    def perturb(self, text, rng):
        return _perturb_script(text, rng, self.rate)


@register_mutator("dialogft_fillers")
class FillersMutator(NoiseMutator):
    """Spoken-style filler words in front of words, English or Chinese (jieba's words)."""

    name = "dialogft_fillers"

    def perturb(self, text, rng):
        return _perturb_fillers(text, rng, self.rate)


NOISE_MUTATORS = ("dialogft_typos", "dialogft_case_punct", "dialogft_width", "dialogft_script_variant", "dialogft_fillers")


def noise_mutator(name: str, rate: float = 0.1, seed: int = 0, fields: Optional[List[str]] = None) -> NoiseMutator:
    """A noise mutator outside ParlAI's option parsing (the probe and the tests use it)."""
    from parlai.core.mutators import MUTATOR_REGISTRY

    opt = {"noise_rate": rate, "noise_seed": seed, "noise_fields": fields or ["text"]}
    return MUTATOR_REGISTRY[name](opt)
