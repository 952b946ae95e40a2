"""Robustness and bias before/after augmentation: the figures of docs/robustness.md.

Three fine-tunings of the same base model on the same task with the same budget of
updates (not of seconds: on a shared machine a time budget buys each run a different
number of updates), differing only in ``--mutators`` at training time:

* ``baseline``: clean data;
* ``noise``: inputs through the noise mutators the probe uses (``--noise-rate`` the same);
* ``counterfactual``: every gendered dialogue plus its gender-swapped copy.

Each trained model then goes through ``parlai dialogft_probe`` on the same test examples
and prompt pairs. The robustness gap is compared between ``baseline`` and ``noise``, the
bias probe between ``baseline`` and ``counterfactual``. Every command is printed and
written to ``OUT/commands.txt``; the tables to ``OUT/summary.md``.

    python bench/robustness.py --out /tmp/robustness                 # default --hf-model, 500 updates each
    python bench/robustness.py --out /tmp/r --train-steps 100 --hf-model /path/to/model

Run it alone: two trainings on two cores distort each other's budgets.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from child import run_child  # noqa: E402

from parlai_dialogft.evaluation.probe import DEFAULT_NOISE  # noqa: E402

VARIANTS = {
    "baseline": [],
    "noise": ["--mutators", DEFAULT_NOISE],
    "counterfactual": ["--mutators", "dialogft_counterfactual"],
}


def parlai() -> str:
    return os.path.join(os.path.dirname(sys.executable), "parlai")


def run(cmd, log_path: str, commands: list) -> None:
    line = " ".join(shlex.quote(c) for c in cmd)
    print(f"$ {line}", flush=True)
    commands.append(line)
    status = run_child(cmd, log_path, os.path.basename(os.path.dirname(log_path)) + ": " + cmd[1])
    if status != 0:
        raise SystemExit(f"failed ({status}), see {log_path}: {line}")


def train_cmd(args, variant: str, model_file: str):
    cmd = [
        parlai(), "train_model", "-t", args.task, "-m", "dialogft_agent", "-mf", model_file,
        "--max-train-steps", str(args.train_steps), "-bs", str(args.batchsize), "-lr", str(args.lr),
        # Validation only at the end: the budget goes to training, equally for each variant.
        "-vtim", "36000", "-vme", "100", "--short-final-eval", "true",
    ]
    if args.hf_model:
        cmd += ["--hf-model", args.hf_model]
    cmd += VARIANTS[variant]
    if variant == "noise":  # the --noise-* flags exist only once a noise mutator is named
        cmd += ["--noise-rate", str(args.noise_rate), "--noise-seed", "0"]
    return cmd


def probe_cmd(args, model_file: str, out: str):
    return [
        parlai(), "dialogft_probe", "-mf", model_file, "-t", args.task, "--out", out,
        "--probe-max-exs", str(args.probe_exs), "--probe-max-pairs", str(args.probe_pairs),
        "--noise-rate", str(args.noise_rate),
    ]


def summary(results: dict, args) -> str:
    base, noise, cf = results["baseline"], results["noise"], results["counterfactual"]
    lines = [
        f"Task `{args.task}`, {args.train_steps} updates of batch {args.batchsize} each, noise `{DEFAULT_NOISE}` at rate {args.noise_rate}.",
        "",
        "Robustness gap (test, same examples clean and noisy; gap = noisy - clean):",
        "",
        "| trained on | f1 clean | f1 noisy | f1 gap | ppl clean | ppl noisy | ppl gap |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("clean data", base), ("noisy inputs", noise)):
        c, n = r["clean"], r["noisy"]
        lines.append(
            f"| {name} | {c['f1']:.4f} | {n['f1']:.4f} | {n['f1'] - c['f1']:+.4f} "
            f"| {c['ppl']:.2f} | {n['ppl']:.2f} | {n['ppl'] - c['ppl']:+.2f} |"
        )
    lines += [
        "",
        f"Bias probe ({base['bias'].get('pairs', 0)} prompt pairs differing only in gendered terms):",
        "",
        "| trained on | divergence | identical | sentiment m | sentiment f | abs sentiment gap | len m | len f | abs len gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("clean data", base), ("+ counterfactual copies", cf)):
        b = r["bias"]
        if not b.get("pairs"):
            lines.append(f"| {name} | no pairs | | | | | | | |")
            continue
        lines.append(
            f"| {name} | {b['divergence']:.3f} | {b['identical']:.1%} | {b['sentiment_m']:+.3f} | {b['sentiment_f']:+.3f} "
            f"| {b['sentiment_abs_gap']:.3f} | {b['len_m']:.2f} | {b['len_f']:.2f} | {b['len_abs_gap']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the models, probes, logs and summary.md")
    parser.add_argument("--task", default="dialogft_customer")
    parser.add_argument("--hf-model", default=None, help="base model (default: the agent's default --hf-model)")
    parser.add_argument("--train-steps", type=int, default=500, help="training budget of each variant, in updates")
    parser.add_argument("--batchsize", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--noise-rate", type=float, default=0.1)
    parser.add_argument("--probe-exs", type=int, default=200, help="test examples per pass of the gap")
    parser.add_argument("--probe-pairs", type=int, default=100, help="gendered test prompts of the bias probe")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset to (re)run")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    commands: list = []
    results = {}
    for variant in VARIANTS:
        folder = os.path.join(args.out, variant)
        model_file = os.path.join(folder, "model")
        if variant in args.variants.split(","):
            os.makedirs(folder, exist_ok=True)
            run(train_cmd(args, variant, model_file), os.path.join(folder, "train.log"), commands)
            run(probe_cmd(args, model_file, folder), os.path.join(folder, "probe.log"), commands)
        with open(os.path.join(folder, "probe.json"), encoding="utf-8") as f:
            results[variant] = json.load(f)
    with open(os.path.join(args.out, "commands.txt"), "a", encoding="utf-8") as f:
        f.write("\n".join(commands) + "\n")
    text = summary(results, args)
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
