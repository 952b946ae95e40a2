"""Sharded training (``--hf-fsdp true``, :mod:`parlai_dialogft.training.sharding`) on CPU:
two gloo ranks of one thread each under ``torchrun``, against one unsharded process.

The sharded job trains 2 updates, saves, and is started again to 4: the second run loads the
saved (whole) weights and optimizer state into shards. Its final model file must hold what
one process, unsharded and uninterrupted, holds after the same 4 updates: the same weights
and the same optimizer buffers, under the same names. So must the files of one process
resuming the sharded run's update-2 files, and of a sharded run resuming one process's: the
files are the same whoever wrote them. Then the sharded run's file evaluates without FSDP.

Data: ``RankShardsTeacher`` (64 examples, each with the same number of tokens), batch 32 per
rank and 64 in one process: every update trains on the whole set, so the data order, which a
resumed distributed run does not restore, does not matter. SGD with momentum, no clipping:
the momentum buffers are optimizer state a resume must restore, and plain SGD is not blind
to a gradient's scale (DDP/FSDP summing instead of averaging would show).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from parlai_dialogft.training import sharding
from parlai_dialogft.utils.errors import UserError
from tests.support.distributed import SHARDS, distributed_env
from tests.support.processes import BIN, free_port

STEPS, BS = 4, 32


def _flags(hf_model: str, tmp_path: Path, steps: int, bs: int):
    return ["-m", "dialogft_agent", "--hf-model", hf_model, "-t", SHARDS, "--datapath", str(tmp_path / "data"),
            "-bs", str(bs), "-tstep", str(steps), "-opt", "sgd", "--momentum", "0.9", "-lr", "0.5",
            "--gradient-clip", "-1", "-vme", "4", "--short-final-eval", "true"]


def _torchrun(flags, log: Path) -> subprocess.CompletedProcess:
    command = [str(BIN / "torchrun"), "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), "-m", "parlai_dialogft.training.launch", "train_model", *flags]
    result = subprocess.run(command, env=distributed_env(), capture_output=True, text=True, timeout=300)
    log.write_text(result.stdout + result.stderr)
    return result


def _one_process(flags, log: Path) -> None:
    result = subprocess.run([str(BIN / "parlai"), "train_model", *flags], env=distributed_env(), capture_output=True,
                            text=True, timeout=300)
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-4000:]


def _copy_model(model_file: Path, to: Path) -> Path:
    """The files of a saved model under another folder (the model file, .opt, .dict, .hf/...)."""
    import shutil

    to.mkdir(parents=True)
    for path in model_file.parent.iterdir():
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, to / path.name)
    return to / model_file.name


@pytest.fixture(scope="module")
def runs(tiny_models, tmp_path_factory):
    """Four ways to 4 updates: sharded throughout (saved and resumed at 2), one process
    throughout, one process resuming the sharded run's update-2 files, sharded resuming one
    process's update-2 files."""
    tmp_path = tmp_path_factory.mktemp("fsdp")
    hf_model = tiny_models["t5"]
    paths = {name: tmp_path / name / "model" for name in ("sharded", "single", "single_to_sharded")}
    logs = []

    def sharded(model_file: Path, steps: int) -> None:
        logs.append(tmp_path / f"{model_file.parent.name}-{steps}.log")
        result = _torchrun([*_flags(hf_model, tmp_path, steps, BS), "-mf", str(model_file), "--hf-fsdp", "true"],
                           logs[-1])
        assert result.returncode == 0, logs[-1].read_text()[-4000:]

    sharded(paths["sharded"], STEPS // 2)
    paths["sharded_to_single"] = _copy_model(paths["sharded"], tmp_path / "sharded_to_single")
    sharded(paths["sharded"], STEPS)
    _one_process([*_flags(hf_model, tmp_path, STEPS, 2 * BS), "-mf", str(paths["single"])], tmp_path / "single.log")
    _one_process([*_flags(hf_model, tmp_path, STEPS // 2, 2 * BS), "-mf", str(paths["single_to_sharded"])],
                 tmp_path / "single_to_sharded-first.log")
    sharded(paths["single_to_sharded"], STEPS)
    _one_process([*_flags(hf_model, tmp_path, STEPS, 2 * BS), "-mf", str(paths["sharded_to_single"])],
                 tmp_path / "sharded_to_single-resumed.log")
    resumed = {"sharded": logs[1], "single_to_sharded": logs[2],
               "sharded_to_single": tmp_path / "sharded_to_single-resumed.log"}
    return {"tmp_path": tmp_path, "logs": logs, "resumed": resumed, **paths}


def _bundle(model_file: Path):
    import torch

    return torch.load(model_file, map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_each_rank_holds_half_of_the_weights(runs):
    """Sharded for real: by T5's own layer class, rank 0 holding its half of the parameters
    (ParlAI logs only rank 0's information lines), at the start and for the final evaluation."""
    for log in runs["logs"][:2]:  # the sharded run, then its resumption
        lines = re.findall(r"--hf-fsdp: (\d+) x T5Block and the rest sharded across 2 ranks; "
                           r"rank 0 holds ([\d,]+) of ([\d,]+) parameters", log.read_text())
        assert len(lines) == 2, log.read_text()[-3000:]
        for units, held, total in lines:
            held, total = int(held.replace(",", "")), int(total.replace(",", ""))
            assert int(units) == 4  # 2 encoder + 2 decoder blocks
            assert total / 2 <= held < total / 2 + 1000  # a row or so of rounding per tensor


@pytest.mark.slow
@pytest.mark.parametrize("way", ["sharded", "sharded_to_single", "single_to_sharded"])
def test_saved_and_resumed_shards_hold_what_unsharded_training_holds(runs, way):
    """Sharded, then resumed sharded or in one process, or one process resumed sharded:
    the model file holds what one process holds after the same updates."""
    import torch

    # Resumed, not trained afresh (which would end with the same weights too).
    assert f"Loading existing model params from {runs[way]}" in runs["resumed"][way].read_text()
    sharded, single = _bundle(runs[way]), _bundle(runs["single"])
    assert sharded["number_training_updates"] == single["number_training_updates"] == STEPS
    assert json.loads(Path(f"{runs[way]}.trainstats").read_text())["train_steps"] == STEPS
    # Whole tensors under the unsharded names: no DTensors, no shards, no wrapper prefixes.
    assert list(sharded["model"]) == list(single["model"])
    for name, tensor in sharded["model"].items():
        assert type(tensor) is torch.Tensor and tensor.shape == single["model"][name].shape, name
        torch.testing.assert_close(tensor, single["model"][name], rtol=1e-5, atol=1e-6, msg=name)
    # The optimizer as torch.optim saves it, buffer by buffer in the same order.
    assert sharded["optimizer"]["param_groups"] == single["optimizer"]["param_groups"]
    assert sharded["optimizer"]["state"].keys() == single["optimizer"]["state"].keys()
    for index, state in sharded["optimizer"]["state"].items():
        buffer = state["momentum_buffer"]
        assert type(buffer) is torch.Tensor
        torch.testing.assert_close(buffer, single["optimizer"]["state"][index]["momentum_buffer"],
                                   rtol=1e-5, atol=1e-6, msg=str(index))


@pytest.mark.slow
def test_the_saved_model_evaluates_without_fsdp(runs):
    """``parlai eval_model`` in one process, no distributed flags: the same loss as the
    unsharded model's (the two hold the same weights)."""
    from tests.support.rank_weights_agent import NUM_EXAMPLES

    tmp_path = runs["tmp_path"]
    losses = {}
    for name in ("sharded", "single"):
        report = tmp_path / f"eval-{name}.json"
        result = subprocess.run(
            [str(BIN / "parlai"), "eval_model", "-mf", str(runs[name]), "-t", SHARDS, "--datapath",
             str(tmp_path / "data"), "--skip-generation", "true", "--report-filename", str(report)],
            env=distributed_env(), capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        saved = json.loads(report.read_text())["report"]
        assert saved["exs"] == NUM_EXAMPLES
        losses[name] = saved["loss"]
    assert losses["sharded"] == pytest.approx(losses["single"], rel=1e-5)


def test_parlais_own_sharded_backends_are_refused_with_the_flag_to_use():
    for backend in sharding.PARLAI_SHARDED:
        with pytest.raises(UserError, match=f"--ddp-backend {backend}: .*; use --hf-fsdp true"):
            sharding.check_options({"ddp_backend": backend})
    with pytest.raises(UserError, match="--hf-fsdp true with --fp16 true: .* use --hf-bf16 true"):
        sharding.check_options({"ddp_backend": "ddp", "hf_fsdp": True, "fp16": True})
    sharding.check_options({"ddp_backend": "ddp", "hf_fsdp": True, "fp16": False})


def test_the_flag_keeps_parlai_from_wrapping_the_model():
    """ParlAI wraps in DDP for ``ddp`` and in its FSDP1 for ``zero2``/``zero3``: neither."""
    opt = {"ddp_backend": "ddp", "hf_fsdp": True}
    sharding.claim_backend(opt)
    assert opt["ddp_backend"] == sharding.BACKEND not in ("ddp", *sharding.PARLAI_SHARDED)
    untouched = {"ddp_backend": "ddp", "hf_fsdp": False}
    sharding.claim_backend(untouched)
    assert untouched["ddp_backend"] == "ddp"
    assert not sharding.requested(opt)  # one process: nothing to shard with


def test_the_layers_are_the_models_own_unsplittable_blocks(tiny_models):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    t5 = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["t5"])
    qwen = AutoModelForCausalLM.from_pretrained(tiny_models["qwen2"])
    assert sharding.layer_class_names(t5) == ["T5Block"]
    assert sharding.layer_class_names(qwen) == ["Qwen2DecoderLayer"]
    assert len(sharding._units(qwen, sharding.layer_class_names(qwen))) == qwen.config.num_hidden_layers


def test_optimizer_state_by_name_becomes_torchs_by_index():
    by_name = {"state": {"b": {"step": 1}, "a": {"step": 2}},
               "param_groups": [{"lr": 0.1, "params": ["a", "b"]}, {"lr": 0.2, "params": ["c"]}]}
    assert sharding._by_index(by_name) == {
        "state": {1: {"step": 1}, 0: {"step": 2}},
        "param_groups": [{"lr": 0.1, "params": [0, 1]}, {"lr": 0.2, "params": [2]}],
    }


# --- evaluation on gathered weights (two gloo ranks in spawned processes) ----------------------


def _evaluate_unequally_then_train(rank: int, port: int, model_dir: str, out: str, gather: bool) -> None:
    """Rank r generates 2 + 4r tokens on shards gathered for evaluation (the ranks' forward
    passes do not pair up), then both ranks train one step on shards again."""
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForSeq2SeqLM

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    inputs = torch.tensor([[5, 6, 7, 8, 1]])
    new = 2 + 4 * rank
    with torch.no_grad():
        alone = model.generate(inputs, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    sharding.shard(model, model)
    if gather:
        sharding.for_evaluation(model)
    with torch.no_grad():
        sharded = model.generate(inputs, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    sharding.for_training(model)
    model.train()
    loss = model(input_ids=inputs, labels=torch.tensor([[9, 10, 1]])).loss
    loss.backward()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"alone": alone.tolist(), "sharded": sharded.tolist()}))
    dist.destroy_process_group()


def _two_ranks(tiny_models, tmp_path: Path, gather: bool, timeout: float = 120):
    import torch.multiprocessing as mp

    context = mp.start_processes(_evaluate_unequally_then_train, nprocs=2, join=False, start_method="spawn",
                                 args=(free_port(), tiny_models["t5"], str(tmp_path), gather))
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=2):
            if time.monotonic() > deadline:
                raise TimeoutError("the ranks hung")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


def test_evaluation_on_gathered_weights_lets_ranks_generate_unequal_lengths(tiny_models, tmp_path):
    _two_ranks(tiny_models, tmp_path, gather=True)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["sharded"] == result["alone"]
        assert len(result["alone"][0]) == 1 + 2 + 4 * rank  # decoder start + the new tokens


def test_without_gathering_generation_on_shards_fails(tiny_models, tmp_path):
    """What :func:`sharding.for_evaluation` is for: outside the root's forward (generate
    calls the encoder itself), the root's weights are shards."""
    import torch.multiprocessing as mp

    with pytest.raises((mp.ProcessRaisedException, TimeoutError)):
        _two_ranks(tiny_models, tmp_path, gather=False, timeout=60)
