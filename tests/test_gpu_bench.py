"""``bench/gpu.sh``, checked where no GPU is: ``--cpu`` runs its two steps (the gpu-marked
tests, then the benchmark) on the CPU with tiny models of the same architectures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu.sh"


def _env(tmp_path: Path, **extra: str) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable, RESULTS=str(tmp_path / "results"), **extra)


@pytest.mark.slow
def test_the_cpu_run_measures_both_sides_on_the_same_tokens(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "--cpu"], env=_env(tmp_path), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" in result.stdout and "failed" not in result.stdout
    saved = json.loads((tmp_path / "results" / "gpu_bench.json").read_text())
    assert saved["device"] == "cpu" and saved["tiny"] and set(saved["peaks"]) == {"fp32", "bf16"}
    by_config = defaultdict(dict)
    for run in saved["runs"]:
        by_config[(run["shape"], run["precision"])][run["side"]] = run
    assert set(by_config) == {("t5-small", "fp32"), ("t5-small", "bf16"), ("qwen2.5-0.5b", "bf16")}
    for config, sides in by_config.items():
        assert set(sides) == {"Trainer", "ours, whole batches", "ours, length groups"}, config
        # The same examples, truncated alike, on every side: the same real tokens.
        assert len({(r["steps"], r["ctx_tokens"], r["reply_tokens"]) for r in sides.values()}) == 1, config
        for side, run in sides.items():
            assert run["seconds"] > 0 and run["reply_tokens"] > 0 and 0 < run["extra"]["mfu"] < 1, (config, side)
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and "x |" in line]
    assert len(table) == len(saved["runs"])  # one row per run, each with its ratio to the Trainer


def test_usage(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "--gpu"], env=_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and result.stderr == "usage: bench/gpu.sh [--cpu]\n"


def test_without_cuda_the_benchmark_says_how_to_check_it_on_the_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_bench.py")], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("no CUDA device (for a check of this script on the CPU: --device cpu --tiny)")
