"""Distributed runs in subprocesses (``torchrun``, ``parlai multiprocessing_train``) with the
recording agent and the sharded teacher of :mod:`tests.support.rank_weights_agent`.

ParlAI loads both by a dotted module path, so a subprocess needs the repository root on
``PYTHONPATH`` (:func:`distributed_env` sets it); the agent goes by the same path as the
teacher, so that the module loads once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

from tests.support.processes import BIN

REPO = Path(__file__).resolve().parents[2]
AGENT = "tests.support.rank_weights_agent:RankWeightsAgent"
SHARDS = "tests.support.rank_weights_agent:RankShardsTeacher"
#: ``RANK:STEP:FLAG``: that rank of a run with ``AGENT`` creates FLAG after update STEP and
#: waits to be killed.
HOLD_ENV = "DIALOGFT_TEST_HOLD_AT_STEP"


def distributed_env(**extra: str) -> Dict[str, str]:
    """This process's environment for a distributed run: one thread, no hub, the repository
    on ``PYTHONPATH``, the venv's commands first on ``PATH``, and none of torchrun's variables
    (nor a hold) left over from the caller; then ``extra``."""
    from parlai_dialogft.training import launch

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in (*launch.TORCHRUN_VARS, HOLD_ENV):
        env.pop(name, None)
    env.update(extra)
    return env
