"""A training run killed at any moment continues, with the same command, as if never killed.

The end-to-end test kills real ``parlai train_model`` processes with SIGKILL: once inside
a checkpoint write (the test hook ``DIALOGFT_TEST_PAUSE_IN_SAVE`` holds the save between
writing the temporary file and renaming it), and once between two checkpoints. The
resumed run must end with the weights, per-step losses, learning rates and validation
loss of an uninterrupted run of the same length, and leave no partial file behind.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from parlai_dialogft.training import checkpoint

PARLAI = os.path.join(os.path.dirname(sys.executable), "parlai")
STEPS = 12
VALIDATE_EVERY = 4


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop(checkpoint.PAUSE_ENV, None)
    env.update(extra)
    return env


def _train_args(model_file, hf_model, datapath):
    # A checkpoint at each validation (steps 4 and 8), a training report at every step.
    return [
        PARLAI, "train_model", "-t", "integration_tests", "-m", "dialogft_agent",
        "--hf-model", hf_model, "-mf", model_file, "--datapath", datapath,
        "-tstep", str(STEPS), "-bs", "4", "-vstep", str(VALIDATE_EVERY), "-vme", "4",
        "--save-after-valid", "true", "-lstep", "1", "--seed", "7",
    ]


def _start(args, log_path, **env):
    log = open(log_path, "w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_env(**env)), log


def _wait_for(predicate, proc, what, limit_s=300):
    """Poll until predicate() holds; a safety limit, not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert proc.poll() is None, f"training exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {limit_s}s"
        time.sleep(0.2)


def _kill(proc, log):
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    assert proc.returncode == -signal.SIGKILL


def _checkpoint_steps(model_file):
    path = model_file + ".checkpoint.trainstats"
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return json.load(f)["train_steps"]  # never torn: written atomically


def _stats(model_file):
    with open(model_file + ".trainstats") as f:
        return json.load(f)


def _weights(model_file):
    import torch

    return torch.load(model_file, map_location="cpu", weights_only=False)["model"]


def _assert_no_partial_files(folder):
    leftovers = [p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                 if p.endswith((checkpoint.TMP_SUFFIX, ".tmp"))]
    assert leftovers == []
    for path in glob.glob(os.path.join(folder, "**", "*.json"), recursive=True) + glob.glob(
        os.path.join(folder, "*.trainstats")
    ) + glob.glob(os.path.join(folder, "*.opt")):
        with open(path) as f:
            json.load(f)  # every JSON file parses


@pytest.mark.slow  # real training runs, several of them
def test_a_run_killed_inside_a_checkpoint_write_resumes_to_the_run_it_would_have_been(tiny_models, tmp_path):
    import torch

    hf_model, datapath = tiny_models["t5"], str(tmp_path / "data")
    reference_mf, crashed_mf = str(tmp_path / "ref" / "model"), str(tmp_path / "crash" / "model")
    flag = tmp_path / "inside-the-write"

    # The uninterrupted run, alongside the crashing one (one core each).
    reference, reference_log = _start(_train_args(reference_mf, hf_model, datapath), tmp_path / "ref.log")

    # 1. Killed inside the second checkpoint write (step 8): the new bundle is a temporary
    #    file, the step-4 checkpoint still complete.
    first, log = _start(_train_args(crashed_mf, hf_model, datapath), tmp_path / "first.log",
                        **{checkpoint.PAUSE_ENV: f"2:{flag}"})
    _wait_for(flag.exists, first, "the second checkpoint write")
    _kill(first, log)
    assert os.path.exists(crashed_mf + ".checkpoint" + checkpoint.TMP_SUFFIX)
    state = checkpoint.read_resume_state(crashed_mf + ".checkpoint")
    assert state["trainstats"]["train_steps"] == VALIDATE_EVERY
    # A kill after the bundle's rename but before .trainstats: stale counters on disk. The
    # bundle is the commit point, so the resumed run must not believe them.
    with open(crashed_mf + ".checkpoint.trainstats", "w") as f:
        json.dump({"parleys": 0, "train_steps": 0}, f)

    # 2. The same command again, killed between checkpoints (after the step-8 one).
    second, log = _start(_train_args(crashed_mf, hf_model, datapath), tmp_path / "second.log")
    _wait_for(lambda: _checkpoint_steps(crashed_mf) >= 2 * VALIDATE_EVERY, second, "the step-8 checkpoint")
    _kill(second, log)
    assert "redrawing the 4 batches already trained on" in (tmp_path / "second.log").read_text()

    # 3. And again, to the end.
    third = subprocess.run(_train_args(crashed_mf, hf_model, datapath), env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert reference.wait(timeout=600) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    reference_log.close()

    _assert_no_partial_files(str(tmp_path / "crash"))
    ref, crashed = _stats(reference_mf), _stats(crashed_mf)
    assert crashed["train_steps"] == ref["train_steps"] == STEPS
    # Same batches in the same order: the loss of every step is the same; same schedule.
    assert [r["loss"] for r in crashed["train_reports"]] == [r["loss"] for r in ref["train_reports"]]
    assert [r["lr"] for r in crashed["train_reports"]] == [r["lr"] for r in ref["train_reports"]]
    assert [r["loss"] for r in crashed["valid_reports"]] == [r["loss"] for r in ref["valid_reports"]]
    assert crashed["final_valid_report"]["loss"] == ref["final_valid_report"]["loss"]
    ref_weights, crashed_weights = _weights(reference_mf), _weights(crashed_mf)
    assert ref_weights.keys() == crashed_weights.keys()
    assert all(torch.equal(ref_weights[k], crashed_weights[k]) for k in ref_weights)

    # The model loads as every ParlAI script loads it.
    from parlai.core.agents import create_agent_from_model_file

    agent = create_agent_from_model_file(crashed_mf, {"datapath": datapath})
    assert agent.opt["hf_model"] == hf_model


def test_a_failed_bundle_write_leaves_the_previous_model_whole(tiny_models, tmp_path, monkeypatch):
    """A save that dies while writing the weights (disk full, kill) leaves the old files."""
    import torch

    from tests.support.agents import make_agent

    model_file = str(tmp_path / "m" / "model")
    agent = make_agent(tiny_models["gpt2"], model_file=model_file, datatype="train")
    agent.save(model_file)
    before = {name: open(os.path.join(tmp_path, "m", name), "rb").read()
              for name in ("model", "model.opt", "model.dict")}

    def dies_halfway(obj, path):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with torch.no_grad():
        next(agent.model.parameters()).add_(1.0)  # the new save would differ
    with pytest.raises(OSError, match="No space left"):
        agent.save(model_file)
    for name, content in before.items():
        assert open(os.path.join(tmp_path, "m", name), "rb").read() == content
    monkeypatch.undo()
    assert os.path.exists(model_file + checkpoint.TMP_SUFFIX)
    # The next training start loads the old model and clears the leftover.
    reloaded = make_agent(tiny_models["gpt2"], model_file=model_file, datatype="train")
    assert not os.path.exists(model_file + checkpoint.TMP_SUFFIX)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.model.state_dict().values(),
                                                 torch.load(model_file, weights_only=False)["model"].values()))


def test_the_hf_folder_is_complete_after_every_save(tiny_models, tmp_path, monkeypatch):
    """``MODEL.hf/`` files are replaced one by one; a save dying midway leaves the old set."""
    from tests.support.agents import make_agent

    model_file = str(tmp_path / "model")
    agent = make_agent(tiny_models["t5"], model_file=model_file, datatype="train")
    agent.save(model_file)
    hf_dir = model_file + ".hf"
    files = sorted(os.listdir(hf_dir))
    assert {"config.json", "dialogft.json"} <= set(files)

    real_replace, calls = os.replace, []

    def replace_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # .opt, then the folder's first file, then its second
            raise KeyboardInterrupt  # stands for the kill
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        agent.save(model_file)
    monkeypatch.undo()
    assert sorted(os.listdir(hf_dir)) == files
    from transformers import AutoConfig, AutoTokenizer

    AutoConfig.from_pretrained(hf_dir)
    AutoTokenizer.from_pretrained(hf_dir)


@pytest.mark.slow  # real training runs, several of them
def test_without_seed_the_drawn_seed_is_kept_and_reproduces_the_run(tiny_models, tmp_path):
    """No --seed: the first start draws one, the bundle keeps it, the resumed run uses it;
    ``--seed`` with that number reproduces the whole run."""
    from parlai.scripts.train_model import TrainModel

    def train(model_file, steps, **seed):
        TrainModel.main(task="integration_tests", model="dialogft_agent", hf_model=tiny_models["t5"],
                        model_file=str(model_file), datapath=str(tmp_path / "data"), max_train_steps=steps,
                        batchsize=4, validation_every_n_steps=2, validation_max_exs=4, save_after_valid=True,
                        log_every_n_steps=1, **seed)
        with open(str(model_file) + ".trainstats") as f:
            return [r["loss"] for r in json.load(f)["train_reports"]]

    model_file = tmp_path / "unseeded" / "model"
    train(model_file, 3)
    drawn = checkpoint.read_resume_state(str(model_file) + ".checkpoint")["seed"]
    resumed = train(model_file, 5)
    assert checkpoint.read_resume_state(str(model_file) + ".checkpoint")["seed"] == drawn
    seeded = train(tmp_path / "seeded" / "model", 5, seed=drawn)
    # The second run resumed from the step-2 checkpoint (ParlAI prefers it to MODEL) and
    # retrained step 3 on the same batch; ParlAI logs no report for the step it stops at.
    assert len(resumed) == 4
    assert resumed == seeded
