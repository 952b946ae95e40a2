"""The reference model's log-probabilities, computed once before preference training.

DPO and KTO compare the policy with the model training started from. Keeping that second
model and running it on every batch would double the cost of each step on a CPU; its
log-probabilities never change, so they are computed once per example, before the first
step, and read back from a file (``MODEL_FILE.pref_ref.json``) at every step, on resume
and in later runs on the same data.

An example is known by a hash of its token ids (context, and the replies scored), so the
cache follows the examples, not their order, and a change of tokenizer, truncation or data
is a miss, never a wrong hit. A miss during training is an error: by then the weights have
moved and can no longer stand in for the reference.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence

from parlai_dialogft.utils.errors import UserError


def example_key(*sequences: Sequence[int]) -> str:
    digest = hashlib.sha1()
    for ids in sequences:
        digest.update(b"|" + ",".join(str(int(i)) for i in ids).encode())
    return digest.hexdigest()


class ReferenceLogps:
    """key -> the reference's summed log-probability of each scored reply of an example."""

    def __init__(self, path: str, values: Optional[Dict[str, List[float]]] = None):
        self.path = path
        self.values: Dict[str, List[float]] = values or {}

    @classmethod
    def load(cls, path: str) -> Optional["ReferenceLogps"]:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return cls(path, json.load(f)["logps"])

    def save(self) -> None:
        from parlai_dialogft.training.checkpoint import replace_atomically

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"logps": self.values}, f)

        replace_atomically(self.path, write)

    def add(self, keys: Iterable[str], rows: Iterable[Sequence[float]]) -> None:
        for key, row in zip(keys, rows):
            self.values[key] = [float(v) for v in row]

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def lookup(self, keys: Sequence[str]) -> List[List[float]]:
        missing = [k for k in keys if k not in self.values]
        if missing:
            raise UserError(
                f"--pref-ref-cache {self.path}: {len(missing)} example(s) of this batch have no reference "
                "log-probabilities (the data, tokenizer or truncation changed since they were computed); "
                "delete the file and start again from the reference weights to recompute it"
            )
        return [self.values[k] for k in keys]
