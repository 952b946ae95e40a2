"""A dialogft_agent that records a digest of its weights after every training step, per rank.

For ``tests/test_distributed.py``: run with ``-m rank_weights_agent:RankWeightsAgent``, this
folder on ``PYTHONPATH`` and ``DIALOGFT_TEST_WEIGHTS_DIR`` naming where each rank writes
``rank{N}.jsonl`` (one line per update: the step and the digest).
"""

from __future__ import annotations

import hashlib
import json
import os

import torch.distributed as dist

from parlai_dialogft.agents.dialogft_agent.dialogft_agent import DialogftAgent


def weights_digest(module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.removeprefix("module.").encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RankWeightsAgent(DialogftAgent):
    def train_step(self, batch):
        output = super().train_step(batch)
        rank = dist.get_rank() if dist.is_initialized() else 0
        path = os.path.join(os.environ["DIALOGFT_TEST_WEIGHTS_DIR"], f"rank{rank}.jsonl")
        with open(path, "a") as out:
            out.write(json.dumps({"step": self._number_training_updates, "digest": weights_digest(self.model)}) + "\n")
        return output
