"""ParlAI's own distributed training (`parlai multiprocessing_train`) on CPU with gloo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.distributed import AGENT, REPO
from tests.support.processes import fresh_shell


def _digests(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_multiprocessing_train_with_two_ranks_on_cpu(tiny_models, tmp_path):
    """Two gloo ranks train on different examples and end every update with the same weights."""
    mf = tmp_path / "m" / "model"
    weights = tmp_path / "weights"
    weights.mkdir()
    train = fresh_shell(
        ["parlai", "multiprocessing_train", "-t", "integration_tests", "-m", AGENT,
         "--hf-model", tiny_models["t5"], "-mf", str(mf), "--distributed-world-size", "2",
         "-tstep", "4", "-bs", "2", "-vme", "4", "--short-final-eval", "true",
         "--datapath", str(tmp_path / "data")],
        tmp_path, timeout=300,
        env={"PYTHONPATH": str(REPO), "DIALOGFT_TEST_WEIGHTS_DIR": str(weights)},
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert json.loads(mf.with_suffix(".trainstats").read_text())["train_steps"] == 4
    rank0, rank1 = _digests(weights / "rank0.jsonl"), _digests(weights / "rank1.jsonl")
    assert [d["step"] for d in rank0] == [1, 2, 3, 4]
    assert rank0 == rank1  # DDP averaged the gradients: no rank drifted
    assert len({d["digest"] for d in rank0}) == 4  # and each update moved the weights
    assert (tmp_path / "m" / "model.hf" / "config.json").exists()

    evaluate = fresh_shell(
        ["parlai", "eval_model", "-mf", str(mf), "-m", "dialogft_agent", "-t", "integration_tests", "--num-examples", "4",
         "--datapath", str(tmp_path / "data")],
        tmp_path,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
