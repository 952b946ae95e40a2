"""The shipped word lists (``lists/``) and the longest-match scan the Chinese lists need."""

from __future__ import annotations

import functools
import os
from typing import Dict, Iterator, List, Tuple

LISTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lists")


def _rows(name: str) -> Iterator[List[str]]:
    path = os.path.join(LISTS_DIR, name)
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.strip() and not line.startswith("#"):
                yield line.split("\t")


@functools.lru_cache(maxsize=None)
def load_pairs(name: str) -> Tuple[Tuple[str, str], ...]:
    """Two-column rows of ``lists/<name>``, in file order."""
    return tuple((row[0], row[1]) for row in _rows(name))


@functools.lru_cache(maxsize=None)
def load_words(name: str) -> Tuple[str, ...]:
    """One-column rows of ``lists/<name>``."""
    return tuple(row[0] for row in _rows(name))


@functools.lru_cache(maxsize=None)
def load_lexicon(name: str) -> Dict[str, int]:
    """``word -> polarity`` from a two-column list whose second column is an integer."""
    return {word: int(score) for word, score in load_pairs(name)}


def both_ways(pairs) -> Dict[str, str]:
    """Masculine → feminine and back. A word listed twice keeps its first partner
    (``lady`` → ``gentleman``, not ``lord``), so the map is deterministic."""
    mapping: Dict[str, str] = {}
    for masculine, feminine in pairs:
        mapping.setdefault(masculine, feminine)
    for masculine, feminine in pairs:
        mapping.setdefault(feminine, masculine)
    return mapping


def longest_match(text: str, terms, max_len: int) -> Iterator[Tuple[int, str]]:
    """``(start, term)`` of non-overlapping ``terms`` in ``text``, longest first at each position.

    Chinese has no spaces: 其他 must win over 他 and 不好 over 好, so the scan tries the
    longest candidate at each position and jumps past whatever it matched.
    """
    i = 0
    while i < len(text):
        for length in range(min(max_len, len(text) - i), 0, -1):
            piece = text[i:i + length]
            if piece in terms:
                yield i, piece
                i += length
                break
        else:
            i += 1
