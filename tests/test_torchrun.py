"""``torchrun`` across "nodes": two torchrun invocations on loopback, one gloo process each,
started by ``examples/torchrun_two_nodes.sh`` exactly as a user starts it on two machines
(``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` and ParlAI flags after the script's name).

What runs in each process is ``parlai_dialogft/training/launch.py``: ParlAI's distributed
training on torchrun's environment. Each end-to-end test takes about half a minute.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List

import pytest

from parlai_dialogft.training import launch
from parlai_dialogft.utils.errors import UserError
from tests.support.distributed import AGENT, HOLD_ENV, REPO, SHARDS, distributed_env
from tests.support.processes import BIN, free_port

SCRIPT = REPO / "examples" / "torchrun_two_nodes.sh"


class Job:
    """The two nodes of one job: each the example script with its NODE_RANK."""

    def __init__(self, tmp_path: Path, model_file: Path, port: int):
        self.tmp_path, self.model_file, self.port = tmp_path, model_file, port
        self.procs: List[subprocess.Popen] = []
        self.logs: List[Path] = []

    def start(self, name: str, flags: List[str], weights: Path, hold: str = "") -> None:
        weights.mkdir(parents=True, exist_ok=True)
        self.procs, self.logs = [], []
        for rank in (0, 1):
            log = self.tmp_path / f"{name}-node{rank}.log"
            env = distributed_env(NODE_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(self.port),
                                  MODEL_FILE=str(self.model_file), DIALOGFT_TEST_WEIGHTS_DIR=str(weights))
            if hold:
                env[HOLD_ENV] = hold
            with open(log, "w") as out:
                self.procs.append(subprocess.Popen(["bash", str(SCRIPT), *flags], env=env,
                                                   stdout=out, stderr=subprocess.STDOUT))
            self.logs.append(log)

    def tail(self, rank: int) -> str:
        return self.logs[rank].read_text()[-3000:]

    def wait(self, timeout: float = 300) -> List[int]:
        deadline = time.monotonic() + timeout
        return [proc.wait(timeout=max(1.0, deadline - time.monotonic())) for proc in self.procs]

    def stop(self) -> None:
        """SIGTERM: torchrun passes it on to its workers (they run in their own sessions)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def two_nodes(tmp_path: Path, model_file: Path):
    job = Job(tmp_path, model_file, free_port())
    try:
        yield job
    finally:
        job.stop()


def _digests(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _train_flags(hf_model: str, datapath: Path, **more: str) -> List[str]:
    flags = ["-m", AGENT, "--hf-model", hf_model, "--datapath", str(datapath),
             "-vme", "4", "--short-final-eval", "true"]
    for flag, value in more.items():
        flags += [flag, value]
    return flags


STEPS, BS = 4, 2


@pytest.fixture(scope="module")
def sharded_runs(tiny_models, tmp_path_factory):
    """The same training on two nodes (per-rank batch BS) and in one process (batch 2*BS).

    Data: ``RankShardsTeacher``, in order, rank r taking examples r, r+2, r+4, ...: update k
    of the two nodes trains on examples [4k, 4k+4) split across them, the batch update k of
    the single process trains on. Every example has the same number of tokens, so the mean
    of the two ranks' per-token gradients is the single process's gradient.
    Optimizer: plain SGD without clipping. Adam and clipping are blind to a gradient's scale,
    so under them DDP summing the ranks' gradients instead of averaging them would pass.
    """
    tmp_path = tmp_path_factory.mktemp("sharded")
    flags = _train_flags(tiny_models["t5"], tmp_path / "data", **{
        "-t": SHARDS, "-tstep": str(STEPS), "-lstep": "1", "-opt": "sgd", "-lr": "0.5", "--gradient-clip": "-1",
    })
    single_mf = tmp_path / "single" / "model"
    with two_nodes(tmp_path, tmp_path / "nodes" / "model") as job:
        job.start("train", [*flags, "-bs", str(BS)], tmp_path / "weights")
        # The single process alongside (one core each).
        (tmp_path / "single-weights").mkdir()
        single = subprocess.run(
            [str(BIN / "parlai"), "train_model", *flags, "-bs", str(2 * BS), "-mf", str(single_mf)],
            env=distributed_env(DIALOGFT_TEST_WEIGHTS_DIR=str(tmp_path / "single-weights")),
            capture_output=True, text=True, timeout=300,
        )
        assert single.returncode == 0, single.stdout[-3000:] + single.stderr[-3000:]
        assert job.wait() == [0, 0], job.tail(0) + job.tail(1)
    return {"tmp_path": tmp_path, "nodes": job.model_file, "single": single_mf, "weights": tmp_path / "weights"}


@pytest.mark.slow
def test_two_nodes_hold_the_same_weights_after_every_update(sharded_runs):
    rank0, rank1 = (_digests(sharded_runs["weights"] / f"rank{r}.jsonl") for r in (0, 1))
    assert [d["step"] for d in rank0] == list(range(1, STEPS + 1))
    assert rank0 == rank1
    assert len({d["digest"] for d in rank0}) == STEPS  # and each update moved the weights


@pytest.mark.slow
def test_two_nodes_train_as_one_process_with_their_global_batch(sharded_runs, tiny_models):
    """Same per-step losses (ParlAI's report gathers both ranks' examples) and the same final
    weights as one process whose batch is both ranks' batches together, to float rounding."""
    import torch
    from tests.support.rank_weights_agent import NUM_EXAMPLES, example
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["t5"])
    lengths = {(len(tokenizer(e["text"]).input_ids), len(tokenizer(e["labels"][0]).input_ids))
               for e in map(example, range(NUM_EXAMPLES))}
    assert len(lengths) == 1  # the equal token counts the comparison rests on

    def reports(model_file):
        return json.loads(Path(str(model_file) + ".trainstats").read_text())["train_reports"]

    nodes, single = reports(sharded_runs["nodes"]), reports(sharded_runs["single"])
    # ParlAI logs no report for the step it stops at.
    assert len(nodes) == len(single) == STEPS - 1
    assert [r["exs"] for r in nodes] == [r["exs"] for r in single] == [2 * BS] * (STEPS - 1)
    assert [r["loss"] for r in nodes] == pytest.approx([r["loss"] for r in single], rel=1e-6)

    def weights(model_file):
        return torch.load(model_file, map_location="cpu", weights_only=False)["model"]

    by_nodes, by_single = weights(sharded_runs["nodes"]), weights(sharded_runs["single"])
    assert by_nodes.keys() == by_single.keys()
    for name in by_nodes:
        torch.testing.assert_close(by_nodes[name], by_single[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_eval_model_under_torchrun_scores_every_example_once(sharded_runs):
    """``eval_model`` through the launcher: ParlAI shards evaluation across the ranks; the
    gathered report covers each example once and equals one process's."""
    tmp_path, model_file = sharded_runs["tmp_path"], str(sharded_runs["nodes"])
    flags = ["eval_model", "-mf", model_file, "-t", SHARDS, "--datapath", str(tmp_path / "data"),
             "--skip-generation", "true"]
    reports = {name: tmp_path / f"eval-{name}.json" for name in ("torchrun", "single")}
    torchrun = subprocess.Popen(
        [str(BIN / "torchrun"), "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(free_port()), "-m", "parlai_dialogft.training.launch", *flags,
         "--report-filename", str(reports["torchrun"])],
        env=distributed_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    single = subprocess.run([str(BIN / "parlai"), *flags, "--report-filename", str(reports["single"])],
                            env=distributed_env(), capture_output=True, text=True, timeout=300)
    output, _ = torchrun.communicate(timeout=300)
    assert torchrun.returncode == 0, output[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    from tests.support.rank_weights_agent import NUM_EXAMPLES

    gathered, alone = (json.loads(reports[name].read_text())["report"] for name in ("torchrun", "single"))
    assert gathered["exs"] == alone["exs"] == NUM_EXAMPLES
    assert gathered["loss"] == pytest.approx(alone["loss"], rel=1e-5)


KILL_STEPS, CHECKPOINT_EVERY, KILLED_AT = 12, 4, 6


@pytest.mark.slow
def test_a_job_with_a_killed_node_resumes_with_the_same_commands(tiny_models, tmp_path):
    """Node 1 dies (torchrun and its worker, SIGKILL) after update 6; the last checkpoint is
    update 4's. Node 0 fails on its own instead of waiting forever; the same two commands
    then resume from the checkpoint and finish the job, the ranks in step.

    Resumed: weights, optimizer and step counters. Not resumed, as in ParlAI's own
    ``multiprocessing_train``: the data order (``training/resume.py`` replays it for one
    process only), so the resumed steps are not compared with an uninterrupted run's.
    """
    import torch
    from tests.support.rank_weights_agent import state_digest

    model_file = tmp_path / "model"
    flags = _train_flags(tiny_models["t5"], tmp_path / "data", **{
        "-t": "integration_tests", "-bs": str(BS), "-tstep": str(KILL_STEPS),
        "-vstep": str(CHECKPOINT_EVERY), "--save-after-valid": "true",
    })
    held = tmp_path / "node1-held"
    with two_nodes(tmp_path, model_file) as job:
        job.start("first", flags, tmp_path / "first", hold=f"1:{KILLED_AT}:{held}")
        deadline = time.monotonic() + 300
        while not (held.exists() and held.read_text().strip()):  # the held worker's pid
            assert all(p.poll() is None for p in job.procs), job.tail(0) + job.tail(1)
            assert time.monotonic() < deadline, "rank 1 never reached the step it is killed at"
            time.sleep(0.2)
        node1_worker = int(held.read_text())
        os.kill(node1_worker, signal.SIGKILL)  # the machine goes: its worker...
        job.procs[1].kill()  # ...and torchrun with it
        job.procs[1].wait()
        assert job.procs[0].wait(timeout=120) != 0, job.tail(0)  # a failure, not a hang
        assert json.loads(Path(f"{model_file}.checkpoint.trainstats").read_text())["train_steps"] == CHECKPOINT_EVERY
        first = [_digests(tmp_path / "first" / f"rank{r}.jsonl") for r in (0, 1)]
        assert first[0] == first[1] and [d["step"] for d in first[0]] == list(range(1, KILLED_AT + 1))

        job.start("resumed", flags, tmp_path / "resumed")
        assert job.wait() == [0, 0], job.tail(0) + job.tail(1)

    stats = json.loads(Path(f"{model_file}.trainstats").read_text())
    assert stats["train_steps"] == KILL_STEPS
    rank0, rank1 = (_digests(tmp_path / "resumed" / f"rank{r}.jsonl") for r in (0, 1))
    assert rank0 == rank1
    # From the checkpoint on, not from the start and not from where node 0 had got to.
    assert [d["step"] for d in rank0] == list(range(CHECKPOINT_EVERY + 1, KILL_STEPS + 1))
    # Rank 0 wrote the weights every rank held at that update.
    saved = torch.load(model_file, map_location="cpu", weights_only=False)
    assert state_digest(saved["model"]) == {d["step"]: d["digest"] for d in rank0}[saved["number_training_updates"]]


def test_outside_torchrun_it_says_so_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "parlai_dialogft.training.launch", "train_model", "-t", "integration_tests"],
        env=distributed_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("parlai_dialogft.training.launch: run me under torchrun (RANK, WORLD_SIZE")


def test_an_unknown_command_is_one_line_with_the_known_ones(capsys):
    torchrun_env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    with pytest.raises(SystemExit) as exit_:
        launch.main(["trian_model", "-t", "integration_tests"], environ=torchrun_env)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "parlai_dialogft.training.launch: trian_model: not a command this launcher runs "
        "(did you mean train_model?); it runs train_model, eval_model\n"
    )


def test_the_world_size_is_torchruns():
    from parlai.scripts import multiprocessing_train

    env = launch.TorchrunEnv(rank=1, world_size=2, local_rank=0, master_addr="127.0.0.1", master_port=1)
    args = ["-t", "integration_tests", "-m", "dialogft_agent"]
    assert launch.parse_opt(multiprocessing_train.setup_args, args, env)["distributed_world_size"] == 2
    with pytest.raises(UserError, match="--distributed-world-size 3: torchrun started 2 processes"):
        launch.parse_opt(multiprocessing_train.setup_args, [*args, "--distributed-world-size", "3"], env)
    with pytest.raises(UserError, match="RANK=2 is outside WORLD_SIZE=2"):
        launch.TorchrunEnv.from_environ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                                         "MASTER_ADDR": "h", "MASTER_PORT": "1"})
