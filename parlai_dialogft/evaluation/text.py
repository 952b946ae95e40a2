"""Language-aware tokenisation for scoring replies in Chinese and English.

Word-overlap metrics are only as good as the tokens they count. ParlAI normalises text
for English and splits on whitespace, so a Chinese reply (no spaces) is one giant token;
rouge-score deletes every non-ASCII character, so a Chinese reply is empty. Here every
CJK character is one token, the convention of Chinese dialogue papers and of sacrebleu's
``zh`` tokenizer, while Latin words and numbers inside Chinese text stay whole words.

Two normalisations, one per family of metrics, so that English scores equal what the
standard tool reports:

* :func:`cjk_aware_tokenize` (token F1, ParlAI-style BLEU, dist-n, len, rep) follows
  ParlAI's ``normalize_answer``, itself SQuAD's: lowercase, punctuation removed, and in
  English the articles *a*/*an*/*the* dropped. On ASCII English it returns exactly
  ``normalize_answer(text).split()``.
* :func:`rouge_tokenize` (ROUGE) follows rouge-score's default tokenizer: lowercase,
  keep runs of ``[a-z0-9]``, articles kept. On text without CJK it returns exactly
  ``rouge_score.tokenize.tokenize(text, None)``.

Corpus BLEU does not use either: it uses sacrebleu's own ``13a``/``zh`` tokenizers
(:mod:`parlai_dialogft.evaluation.metrics`), because sacrebleu's numbers are what the field reports.

Standard library only: importing this module is cheap.
"""

from __future__ import annotations

import re
import unicodedata
from typing import List

LANGS = ("en", "zh")

# Characters scored one token each: Han ideographs (with extensions, radicals and the
# iteration marks 々〆〇) and Japanese kana, scripts written without spaces between words.
# Hangul is left out on purpose: Korean separates words with spaces.
_CJK_RANGES = (
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3005-\u3007"  # 々 〆 〇
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # Extension A
    "\u4e00-\u9fff"  # Unified Ideographs
    "\uf900-\ufaff"  # Compatibility Ideographs
    "\U00020000-\U0002fa1f"  # Extensions B-F, Compatibility Supplement
    "\U00030000-\U0003134f"  # Extension G
)
_CJK_CHAR = re.compile(f"[{_CJK_RANGES}]")

# ParlAI's ``re_punc`` and ``re_art`` (parlai/core/metrics.py), copied so that this module
# does not import ParlAI (and with it torch).
_ASCII_PUNCT = re.compile(r"[!\"#$%&()*+,-./:;<=>?@\[\]\\^`{|}~_\']")
_ARTICLES = re.compile(r"\b(a|an|the)\b")

# rouge-score keeps maximal runs of [a-z0-9] after lowercasing; we add CJK characters.
_ROUGE_TOKEN = re.compile(f"[a-z0-9]+|[{_CJK_RANGES}]")

# A Latin-script word, for language detection.
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")


def detect_lang(text: str) -> str:
    """``"zh"`` when CJK characters outnumber Latin words, else ``"en"``.

    Counting characters against words (not characters against characters) is what makes
    "我在 Starbucks 等你" Chinese and "Let's meet at 星巴克 at 5pm" English. Text with
    neither (empty, digits, emoji) is ``"en"``, the ParlAI default.
    """
    cjk_chars = len(_CJK_CHAR.findall(text))
    latin_words = len(_LATIN_WORD.findall(text))
    return "zh" if cjk_chars > 0 and cjk_chars >= latin_words else "en"


def resolve_lang(lang: str, text: str) -> str:
    """``lang`` itself, or the language detected in ``text`` when ``lang`` is ``"auto"``."""
    if lang == "auto":
        return detect_lang(text)
    if lang not in LANGS:
        raise ValueError(f"lang must be 'auto' or one of {LANGS}, got {lang!r}")
    return lang


def _strip_punctuation(text: str) -> str:
    # ASCII punctuation as ParlAI, plus every Unicode punctuation mark (，。！？、“”《》…),
    # which ParlAI keeps and which would otherwise count as tokens of a Chinese reply.
    text = _ASCII_PUNCT.sub(" ", text)
    if not text.isascii():
        text = "".join(
            " " if unicodedata.category(ch).startswith("P") else ch for ch in text
        )
    return text


def _space_out_cjk(text: str) -> str:
    return _CJK_CHAR.sub(lambda m: f" {m.group()} ", text)


def cjk_aware_tokenize(text: str, lang: str = "auto") -> List[str]:
    """Tokens for token F1, ParlAI-style BLEU, dist-n, len and rep.

    Lowercased, punctuation removed, each CJK character a token, Latin words and numbers
    whole ("iPhone14很好用" -> ["iphone14", "很", "好", "用"]). With ``lang="en"`` the
    articles a/an/the are dropped as ParlAI and SQuAD do; with ``lang="zh"`` they are kept,
    since in Chinese text a lone "A" is a name ("A座"), not an article. ``"auto"`` picks the
    language with :func:`detect_lang`.

    >>> cjk_aware_tokenize("The cat sat, didn't it?")
    ['cat', 'sat', 'didn', 't', 'it']
    >>> cjk_aware_tokenize("好的，A座3楼。")
    ['好', '的', 'a', '座', '3', '楼']
    """
    lang = resolve_lang(lang, text)
    text = _space_out_cjk(_strip_punctuation(text.lower()))
    if lang == "en":
        text = _ARTICLES.sub(" ", text)
    return text.split()


def rouge_tokenize(text: str) -> List[str]:
    """Tokens for ROUGE: rouge-score's default tokenizer, plus one token per CJK character.

    Lowercased; tokens are the maximal runs of ``[a-z0-9]`` and single CJK characters;
    everything else (punctuation, accented letters, as rouge-score does) separates tokens.
    No stemming, rouge-score's default.

    >>> rouge_tokenize("Hello, World! 你好")
    ['hello', 'world', '你', '好']
    """
    return _ROUGE_TOKEN.findall(text.lower())


class RougeTokenizer:
    """rouge_tokenize as the ``tokenizer`` object that rouge-score's RougeScorer takes."""

    def tokenize(self, text: str) -> List[str]:
        return rouge_tokenize(text)
