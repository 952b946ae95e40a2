"""Test helpers for distributed runs: an agent that records its weights per rank, and a
teacher whose ranks see known shards of the data. ParlAI loads both by module path in the
subprocesses it starts (:mod:`tests.support.distributed` has the paths and the environment).

* ``RankWeightsAgent``: a dialogft_agent that records a digest of its weights after every
  training step, per rank. Run with ``-m tests.support.rank_weights_agent:RankWeightsAgent``,
  the repository root on ``PYTHONPATH`` and ``DIALOGFT_TEST_WEIGHTS_DIR`` naming where each
  rank writes ``rank{N}.jsonl`` (one line per update: the step and the digest).
  ``DIALOGFT_TEST_HOLD_AT_STEP=RANK:STEP:FLAG`` makes that rank, right after update STEP,
  create FLAG and wait to be killed: a test kills a "node" at a known step.
* ``RankShardsTeacher``: ``-t tests.support.rank_weights_agent:RankShardsTeacher`` (ParlAI's
  loader needs a dotted module path for a teacher).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import time

import torch.distributed as dist
from parlai.core.params import ParlaiParser
from parlai.core.teachers import DialogTeacher
from parlai.utils.data import DatatypeHelper
from parlai.utils.distributed import get_rank, num_workers

from parlai_dialogft.agents.dialogft_agent.dialogft_agent import DialogftAgent
from tests.support.distributed import HOLD_ENV


def state_digest(state_dict) -> str:
    """One hash of every tensor, by name (DDP's ``module.`` prefix removed)."""
    digest = hashlib.sha256()
    for name, tensor in sorted((k.removeprefix("module."), v) for k, v in state_dict.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def weights_digest(module) -> str:
    return state_digest(module.state_dict())


def _hold_if_asked(rank: int, step: int) -> None:
    spec = os.environ.get(HOLD_ENV)
    if not spec:
        return
    hold_rank, hold_step, flag = spec.split(":", 2)
    if (int(hold_rank), int(hold_step)) == (rank, step):
        with open(flag, "w") as f:
            f.write(str(os.getpid()))
        while True:  # until the test kills this process
            time.sleep(1)


class RankWeightsAgent(DialogftAgent):
    def train_step(self, batch):
        output = super().train_step(batch)
        rank = dist.get_rank() if dist.is_initialized() else 0
        path = os.path.join(os.environ["DIALOGFT_TEST_WEIGHTS_DIR"], f"rank{rank}.jsonl")
        with open(path, "a") as out:
            out.write(json.dumps({"step": self._number_training_updates, "digest": weights_digest(self.model)}) + "\n")
        _hold_if_asked(rank, self._number_training_updates)
        return output


#: Words the tiny models' tokenizer knows (tests/support/models.py's TEXTS). The first word of
#: each side stays first: byte-level BPE splits a word without its leading space otherwise.
_CONTEXT_WORDS = ["hello", "how", "can", "help", "you", "today"]
_REPLY_WORDS = ["sure", "book", "table", "cheap", "hotel", "centre"]
NUM_EXAMPLES = 64


def example(i: int):
    """Example ``i``: a permutation of fixed words behind a fixed first word, so that every
    example has the same number of tokens (each rank's loss is a per-token mean; equal counts
    make the mean of the ranks' gradients the gradient of the global batch)."""
    rng = random.Random(i)
    context, reply = _CONTEXT_WORDS[1:], _REPLY_WORDS[1:]
    rng.shuffle(context)
    rng.shuffle(reply)
    return {"text": " ".join(_CONTEXT_WORDS[:1] + context), "labels": [" ".join(_REPLY_WORDS[:1] + reply)]}


class RankShardsTeacher(DialogTeacher):
    """Training examples in a fixed order, rank r of W taking examples r, r+W, r+2W, ...

    With per-rank batch size B, update k of a W-rank run trains on examples
    [k*W*B, (k+1)*W*B): the batch update k of one process with batch size W*B trains on.
    Validation and test are the whole set (ParlAI shards evaluation itself).
    """

    @classmethod
    def add_cmdline_args(cls, parser: ParlaiParser, partial_opt=None) -> ParlaiParser:
        return parser

    def __init__(self, opt, shared=None):
        opt = copy.deepcopy(opt)
        opt["datafile"] = DatatypeHelper.fold(opt["datatype"])
        self.id = "rank_shards"
        super().__init__(opt, shared)
        self.random = False  # in order, also in training

    def setup_data(self, fold):
        training = DatatypeHelper.is_training(self.opt["datatype"])
        rank, workers = (get_rank(), num_workers()) if training else (0, 1)
        for i in range(NUM_EXAMPLES):
            if i % workers == rank:
                yield example(i), True
