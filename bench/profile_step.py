"""Where one training step of ours spends its time: data, forward (attention, feed-forward,
output projection, loss), backward, clipping, optimizer, and what no operator accounts for.

The model and examples are bench/training.py's (t5-small or GPT-2-small shape, random
init, 32k vocabulary; batches of 16 from dialogft_customer train). The agent is built as
``parlai train_model`` builds it, with the same options as that bench's ParlAI side; each
step is run as ParlAI's ``BatchWorld`` runs it: ``observe`` of 16 examples by the agent's
copies, then ``batch_act`` (``batchify``, ``train_step``, metrics); observing and
``batchify`` are the "data" part. Forward time is split by forward hooks on the model's
attention, feed-forward and output-projection modules (inclusive wall time); backward,
clipping and the optimizer by wrapping the agent's ``backward`` and ``update_params`` and
the optimizer's ``step``. ``torch.profiler`` then gives the operators' own time over the same
steps; the step's wall time minus that is time in Python and dispatch, outside any operator.

    python bench/profile_step.py --arch t5 --steps 4
    python bench/profile_step.py --arch gpt2 --steps 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import training  # noqa: E402  (bench/training.py: data and model)

#: Module classes whose forward time is reported, by the name they end with.
PARTS = {"Attention": "attention", "LayerFF": "feed-forward", "MLP": "feed-forward"}


def build_agent(model_dir: str, work: str):
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser

    parser = ParlaiParser(True, True)
    opt = parser.parse_args([
        "-m", "dialogft_agent", "--hf-model", model_dir, "-mf", os.path.join(work, "model"),
        "-bs", str(training.BATCH), "-lr", str(training.LR), "--optimizer", "adamw",
        "--gradient-clip", str(training.CLIP), "--text-truncate", str(training.TEXT_TRUNCATE),
        "--label-truncate", str(training.LABEL_TRUNCATE), "--datapath", os.path.join(work, "data"),
    ])
    opt["datatype"] = "train"
    return create_agent(opt, requireModelExists=False)


class Clock:
    """Inclusive wall seconds per label, summed over calls (nested labels each count)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.depth = defaultdict(int)
        self.started = {}

    def wrap(self, obj, name: str, label: str) -> None:
        original = getattr(obj, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        setattr(obj, name, timed)

    def hook(self, module, label: str) -> None:
        """Forward time of ``module`` under ``label``; a module inside another of the same label
        (T5's layer wrapping its attention) does not count twice."""
        def enter(*_):
            if not self.depth[label]:
                self.started[label] = time.perf_counter()
            self.depth[label] += 1

        def leave(*_):
            self.depth[label] -= 1
            if not self.depth[label]:
                self.seconds[label] += time.perf_counter() - self.started[label]

        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["t5", "gpt2"], default="t5")
    parser.add_argument("--steps", type=int, default=4, help="profiled steps (after 2 warm-up steps)")
    parser.add_argument("--examples", type=int, default=320, help="pool the batches are drawn from, in order")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from parlai.core.message import Message
    from torch.profiler import ProfilerActivity, profile

    work = tempfile.mkdtemp(prefix="bench_profile_")
    pairs = training.customer_pairs("train", args.examples, seed=0)
    model_dir = training.build_model(args.arch, os.path.join(work, "hf"), [t for pair in pairs for t in pair] * 3)
    agent = build_agent(model_dir, work)
    hf = agent.model.hf
    clock = Clock()
    for module in hf.modules():
        name = type(module).__name__
        label = next((part for suffix, part in PARTS.items() if name.endswith(suffix)), None)
        if label:
            clock.hook(module, label)
    clock.hook(hf.get_output_embeddings(), "output projection")
    clock.wrap(agent, "batchify", "data (observe + batchify)")
    clock.wrap(agent, "compute_loss", "forward + loss")
    clock.wrap(agent, "backward", "backward")
    clock.wrap(agent, "update_params", "clip + optimizer")
    clock.wrap(agent.optimizer, "step", "optimizer step")

    clones = [agent.clone() for _ in range(training.BATCH)]

    def step(n: int) -> None:
        start = time.perf_counter()
        rows = pairs[n * training.BATCH: (n + 1) * training.BATCH]
        observed = [clone.observe(Message({"text": c, "labels": [r], "episode_done": True}))
                    for clone, (c, r) in zip(clones, rows)]
        clock.seconds["data (observe + batchify)"] += time.perf_counter() - start
        agent.batch_act(observed)  # batchify, train_step, metrics: as ParlAI's BatchWorld
        for clone in clones:
            clone.reset()

    for n in range(2):  # warm-up
        step(n)
    clock.seconds.clear()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for n in range(2, 2 + args.steps):
            step(n)
    wall = time.perf_counter() - start
    events = prof.key_averages()
    in_ops = sum(e.self_cpu_time_total for e in events) / 1e6  # every operator's own time, once
    per = wall / args.steps
    print(f"\n{args.arch}, {args.steps} steps of {training.BATCH} (after 2 warm-up steps), "
          f"{torch.get_num_threads()} torch threads: {per:.2f} s per step (profiler on)\n")
    print("| part | s per step | share of the step |")
    print("|---|---|---|")
    order = ["data (observe + batchify)", "forward + loss", "attention", "feed-forward", "output projection",
             "backward", "clip + optimizer", "optimizer step"]
    for label in order:
        if label in clock.seconds:
            indent = "  " if label in ("attention", "feed-forward", "output projection", "optimizer step") else ""
            print(f"| {indent}{label} | {clock.seconds[label] / args.steps:.3f} | {clock.seconds[label] / wall:.0%} |")
    print(f"| outside any operator (Python, dispatch) | {(wall - in_ops) / args.steps:.3f} | {(wall - in_ops) / wall:.0%} |")
    print("\nOperators by own time (all steps):\n")
    print(events.table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
