"""ParlAI's own distributed training (`parlai multiprocessing_train`) on CPU with gloo."""

from __future__ import annotations

import json

import pytest

from test_registration import fresh_shell


@pytest.mark.slow
def test_multiprocessing_train_with_two_ranks_on_cpu(tiny_models, tmp_path):
    mf = tmp_path / "m" / "model"
    train = fresh_shell(
        ["parlai", "multiprocessing_train", "-t", "integration_tests", "-m", "dialogft_agent",
         "--hf-model", tiny_models["t5"], "-mf", str(mf), "--distributed-world-size", "2",
         "-tstep", "4", "-bs", "2", "-vme", "4", "--short-final-eval", "true",
         "--datapath", str(tmp_path / "data")],
        tmp_path, timeout=300,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert json.loads(mf.with_suffix(".trainstats").read_text())["train_steps"] == 4
    assert (tmp_path / "m" / "model.hf" / "config.json").exists()

    evaluate = fresh_shell(
        ["parlai", "eval_model", "-mf", str(mf), "-t", "integration_tests", "--num-examples", "4",
         "--datapath", str(tmp_path / "data")],
        tmp_path,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
