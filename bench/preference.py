"""One round of self-play DPO against the same number of SFT updates, from one SFT model.

The start is ``zoo:dialogft/customer_t5`` (fine-tuned on customer service). Per language of
``dialogft_customer`` and per seed:

1. ``parlai dialogft_self_play`` on the first ``--pairs`` training examples (file order):
   the reference reply chosen, the start model's sampled reply rejected (SPIN); the same on
   the first ``--heldout`` validation examples, for the reward accuracy;
2. **DPO**: ``parlai train_model -t dialogft_preferences --pref-loss dpo`` on those pairs,
   ``--updates`` updates of batch 16 from the start;
3. **SFT**: ``parlai train_model -t dialogft_customer:lang=L``, the same updates, batch and
   learning rate from the same start;
4. each of start, DPO and SFT on the first ``--eval-examples`` test examples (file order,
   beam 4 with trigram blocking, the zoo's decoding): F1, BLEU-4, dist-2, the share of
   generic replies (replies that are one of that model's ten most frequent replies), and
   the reward accuracy on the held-out pairs (the model's log-probability gain over the
   start is larger for the chosen reply than for the rejected one; a tie counts half, so
   the start itself scores 0.5).

Prints the table of docs/preferences.md, mean ± sd over seeds. Run it alone (two cores). A rerun with
the same ``--out`` reuses the pair files and finished models it finds there.

    python bench/preference.py                          # en and zh, 2 seeds
    python bench/preference.py --langs zh --seeds 1 --updates 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from parlai_dialogft.utils.progress import Progress  # noqa: E402

START = "zoo:dialogft/customer_t5"
DECODING = dict(inference="beam", beam_size=4, beam_block_ngram=3)
COLUMNS = ("f1", "bleu-4", "dist-2", "generic", "reward_acc")
GENERIC_TOP = 10


def self_play(lang: str, split: str, n: int, seed: int, out: str) -> str:
    from parlai_dialogft.training.self_play import SelfPlayOptions, run

    if os.path.isfile(out):  # a rerun into the same --out picks up where it stopped
        return out

    summary = run(SelfPlayOptions(model_file=START, task=f"dialogft_customer:lang={lang}", out=out, split=split,
                                  max_exs=n, seed=seed))
    print(f"# self-play {lang} {split} seed {seed}: {summary}", flush=True)
    return out


def train(args, lang: str, seed: int, out: str, preferences: str = "") -> str:
    from parlai.scripts.train_model import TrainModel

    if os.path.isfile(out) and os.path.isfile(out + ".trainstats"):  # finished in an earlier run
        return out
    task = ["-t", "dialogft_preferences", "--pref-datapath", preferences, "--pref-loss", "dpo",
            "--pref-beta", str(args.beta), "--pref-sft-weight", str(args.sft_weight),
            ] if preferences else ["-t", f"dialogft_customer:lang={lang}"]
    TrainModel.main(
        *task, "-m", "dialogft_agent", "--hf-model", START, "-mf", out, "-bs", "16", "-lr", str(args.lr),
        "--max-train-steps", str(args.updates), "--seed", str(seed), "--skip-generation", "true",
        "-vtim", "100000", "-vme", "16", "--save-after-valid", "false", "--datapath", args.datapath,
    )
    return out


def agent_for(model_file: str, task: str, **opts):
    from parlai_dialogft.evaluation.report_eval import load_generator

    return load_generator(model_file, task, 16, datapath=os.environ["BENCH_DATAPATH"], **opts)


def quality(model_file: str, lang: str, n: int) -> dict:
    from parlai_dialogft.evaluation.report_eval import evaluate_split

    agent, opt = agent_for(model_file, f"dialogft_customer:lang={lang}", **DECODING)
    result = evaluate_split(agent, opt, "test", n, f"quality {os.path.basename(os.path.dirname(model_file))}")
    replies = [s.reply for s in result.samples]
    top = {reply for reply, _ in Counter(replies).most_common(GENERIC_TOP)}
    return {"f1": result.metrics["f1"], "bleu-4": result.metrics["bleu-4"], "dist-2": result.metrics["dist-2"],
            "generic": sum(r in top for r in replies) / len(replies)}


def pair_logps(model_file: str, heldout: str) -> list:
    """(chosen, rejected) summed log-probabilities of each held-out pair under a model."""
    import torch
    from parlai.core.message import Message
    from parlai.core.teachers import create_task_agent_from_taskname

    agent, opt = agent_for(model_file, "dialogft_preferences", pref_datapath=heldout,
                           pref_loss="dpo", pref_ref_cache=heldout + ".unused.json")
    teacher_opt = opt.copy()
    teacher_opt["datatype"] = "train:evalmode"
    teacher = create_task_agent_from_taskname(teacher_opt)[0]
    observations = [agent.clone().observe(Message(teacher.act())) for _ in range(teacher.num_examples())]
    agent.model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(observations), 16):
            batch = agent.batchify(observations[start:start + 16])
            (chosen, rejected), _, _, _ = agent._replies_logps(batch, [batch.label_vec, batch.rejected_vec])
            out += list(zip(chosen.tolist(), rejected.tolist()))
    return out


def reward_acc(model: list, start: list) -> float:
    wins = [((mc - sc) > (mr - sr)) + 0.5 * ((mc - sc) == (mr - sr)) for (mc, mr), (sc, sr) in zip(model, start)]
    return sum(wins) / len(wins)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--langs", nargs="+", default=["en", "zh"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=600, help="training examples self-played into pairs")
    parser.add_argument("--heldout", type=int, default=200, help="validation examples self-played into held-out pairs")
    parser.add_argument("--updates", type=int, default=100, help="updates of DPO and of SFT, batch 16")
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate of both (the start's own)")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--sft-weight", type=float, default=0.0, help="DPO's --pref-sft-weight (0: plain DPO)")
    parser.add_argument("--eval-examples", type=int, default=200)
    parser.add_argument("--out", default="", help="folder for pairs, models and results.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.out or tempfile.mkdtemp(prefix="bench_preference_")
    args.datapath = os.environ["BENCH_DATAPATH"] = os.path.join(work, "data")  # the zoo installs itself here
    results = {lang: {"SFT start": [], "+ self-play DPO": [], "+ SFT, same updates": []} for lang in args.langs}
    progress = Progress(len(args.langs) * args.seeds, "bench/preference.py", unit="round", interval=0)
    for lang in args.langs:
        start = quality(START, lang, args.eval_examples)
        for seed in range(args.seeds):
            folder = os.path.join(work, f"{lang}-seed{seed}")
            os.makedirs(folder, exist_ok=True)
            pairs = self_play(lang, "train", args.pairs, seed, os.path.join(folder, "pairs.jsonl"))
            heldout = self_play(lang, "valid", args.heldout, seed, os.path.join(folder, "heldout.jsonl"))
            dpo = train(args, lang, seed, os.path.join(folder, "dpo", "model"), preferences=pairs)
            sft = train(args, lang, seed, os.path.join(folder, "sft", "model"))
            start_logps = pair_logps(START, heldout)
            results[lang]["SFT start"].append({**start, "reward_acc": reward_acc(start_logps, start_logps)})
            for name, model in (("+ self-play DPO", dpo), ("+ SFT, same updates", sft)):
                row = quality(model, lang, args.eval_examples)
                row["reward_acc"] = reward_acc(pair_logps(model, heldout), start_logps)
                results[lang][name].append(row)
                print(f"# {lang} seed {seed} {name}: {json.dumps(row)}", flush=True)
            progress.update()
    progress.close()
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nfrom {START}; {args.updates} updates of batch 16, lr {args.lr}, beta {args.beta}, "
          f"sft weight {args.sft_weight}; pairs from the first "
          f"{args.pairs} training examples; first {args.eval_examples} test examples, beam 4 + trigram blocking; "
          f"reward accuracy on pairs from the first {args.heldout} validation examples; {args.seeds} seeds\n")
    print("| lang | model | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for lang, rows in results.items():
        for name, runs in rows.items():
            cells = []
            for column in COLUMNS:
                values = [r[column] for r in runs]
                spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
                cells.append(f"{statistics.fmean(values):.3f}{spread}")
            print(f"| {lang} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
