"""Chinese word boundaries for the mutators: jieba's dictionary segmentation, loaded on first use.

Chinese is written without spaces, so a mutator that acts on a word or between words needs
a segmenter: a filler put inside a word (``电嗯，脑``) or a masked span that ends half-way
through one is noise no speaker or typist produces.

Segmentation is deterministic (a fixed dictionary, no randomness), so it never disturbs the
mutators' seeding. jieba's HMM, which guesses new words from character statistics, is off:
it glues runs such as ``我想订`` into one "word", while the dictionary alone keeps
``我/想/订``; an unknown run falls back to single characters, the old behaviour.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    import jieba


@functools.lru_cache(maxsize=None)
def _tokenizer() -> "jieba.Tokenizer":
    """A private jieba tokenizer: words a user adds to jieba's global one never change our noise.

    Imported and built here, not at module import, so importing the mutators stays cheap
    (building the prefix dictionary takes about a second).
    """
    with warnings.catch_warnings():
        # jieba 0.42 imports pkg_resources, which setuptools deprecates with a UserWarning
        # (seen only where nothing imported pkg_resources before; ParlAI usually has).
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import jieba

    tokenizer = jieba.Tokenizer()
    # jieba logs "Building prefix dict..." at DEBUG straight to stderr; quiet it only while building.
    logger = logging.getLogger("jieba")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        tokenizer.initialize()
    finally:
        logger.setLevel(level)
    return tokenizer


def zh_words(run: str) -> List[str]:
    """The words of a run of Chinese characters, in order: ``"".join(zh_words(run)) == run``.

    >>> zh_words("我想预订一个房间")
    ['我', '想', '预订', '一个', '房间']
    """
    return list(_tokenizer().cut(run, HMM=False))
