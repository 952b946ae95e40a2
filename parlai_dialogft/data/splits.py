"""Deterministic train/valid/test splits by dialogue id, for data without an official split.

A dialogue goes to a split by a hash of its id, never turn by turn, so no dialogue is in two
splits, and the assignment does not depend on file order, Python's hash seed or the machine.
Exact copies of a dialogue (Taskmaster-4 has a few) follow their first copy, so a copy
cannot leak from train into test; the cleaning step then drops the copies as duplicates.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Dict, Hashable, Iterable, List, Sequence, Tuple, TypeVar

T = TypeVar("T")

SPLITS = ("train", "valid", "test")
# Percent of dialogues per split; the table in docs/data.md says which corpus uses which.
THREE_WAY = (("train", 80), ("valid", 10), ("test", 10))
TWO_WAY = (("train", 90), ("valid", 10))  # an upstream split cut in two; test is upstream's


def bucket(key: str) -> int:
    """A stable number in [0, 100) for ``key``."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


def split_of(key: str, shares: Sequence[Tuple[str, int]] = THREE_WAY) -> str:
    point = bucket(key)
    total = 0
    for name, share in shares:
        total += share
        if point < total:
            return name
    raise ValueError(f"split shares {shares} do not add up to 100")


def assign(
    items: Iterable[T],
    key: Callable[[T], str],
    content: Callable[[T], Hashable],
    shares: Sequence[Tuple[str, int]] = THREE_WAY,
) -> Dict[str, List[T]]:
    """Group ``items`` by split of ``key(item)``; equal ``content`` follows its first copy."""
    first_key: Dict[Hashable, str] = {}
    groups: Dict[str, List[T]] = {name: [] for name, _ in shares}
    for item in items:
        canonical = first_key.setdefault(content(item), key(item))
        groups[split_of(canonical, shares)].append(item)
    return groups
