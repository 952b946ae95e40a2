"""Transfer: fine-tuning ``zoo:dialogft/bilingual_t5`` vs the same model trained from scratch.

Same architecture, tokenizer, task, training budget and decoding; the only difference is
the starting weights (the zoo's pretrained ones, or a random init of its config). Each run
is ``parlai train_model`` on ``dialogft_customer:lang=L``, then ``parlai eval_model`` on
the first ``--eval-examples`` of its test split (in file order, the same examples for every
run), with the decoding of ``make demo``
(beam 4, trigram blocking). Prints the table of docs/zoo.md.

    python bench/transfer.py                        # en and zh, 4 minutes of training each
    python bench/transfer.py --minutes 10 --eval-examples 1000
    python bench/transfer.py --langs zh --steps 300      # a budget in updates

Run it alone: a budget in minutes buys less training on a busy machine (--steps does not).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from parlai_dialogft.utils.progress import Progress

ZOO = "zoo:dialogft/bilingual_t5"
METRICS = ("ppl", "bleu-4", "rouge-L", "f1")
DECODING = ["--inference", "beam", "--beam-size", "4", "--beam-block-ngram", "3", "--beam-min-length", "2"]


def scratch_copy(zoo_dir: str, out: str) -> str:
    """The zoo model's config and tokenizer with freshly initialised weights."""
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(zoo_dir))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(zoo_dir).save_pretrained(out)
    return out


def finetune(task: str, hf_model: str, model_file: str, budget: list, datapath: str, lr: float) -> None:
    from parlai.scripts.train_model import TrainModel

    TrainModel.main(
        "-t", task, "-m", "dialogft_agent", "--hf-model", hf_model, "-mf", model_file,
        "-bs", "16", *budget, "--seed", "0", "-lr", str(lr),
        # Keep the best perplexity on a validation sample every minute; no generation there.
        "-vtim", "60", "-vme", "300", "--skip-generation", "true", "--datapath", datapath,
    )


def evaluate(task: str, model_file: str, examples: int, datapath: str) -> dict:
    from parlai.scripts.eval_model import EvalModel

    report = EvalModel.main(
        "-mf", model_file, "-t", task, "-dt", "test", "-ne", str(examples), "-bs", "16",
        # In file order: dynamic batching (the model's training setting) would pick which
        # examples make the first N by length, a different and shorter-biased set each run.
        "--dynamic-batching", "none",
        "--skip-generation", "false", *DECODING, "--datapath", datapath,
    )
    return {key: float(report[key]) for key in METRICS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--langs", nargs="+", default=["en", "zh"])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per run")
    parser.add_argument("--steps", type=int, default=0,
                        help="a budget in updates instead of minutes (equal work on a busy machine)")
    parser.add_argument("--starts", nargs="+", default=["scratch", "zoo"], choices=["scratch", "zoo"])
    parser.add_argument("--eval-examples", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-4,
                        help="learning rate of every run (5e-4: docs/zoo.md's table; the scratch start needs a high one)")
    parser.add_argument("--out", default="", help="folder for models and results.json")
    parser.add_argument("--zoo-dir", default="",
                        help="a pretrained folder in place of the zoo's (a new recipe, before it is released)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from parlai.core.build_data import modelzoo_path
    from parlai.core.params import ParlaiParser

    datapath = ParlaiParser(True, False).parse_kwargs()["datapath"]
    work = args.out or tempfile.mkdtemp(prefix="bench_transfer_")
    zoo_dir = args.zoo_dir or modelzoo_path(datapath, ZOO)
    starts = {}
    if "scratch" in args.starts:
        starts["from scratch"] = scratch_copy(zoo_dir, os.path.join(work, "scratch"))
    if "zoo" in args.starts:
        starts["from zoo"] = args.zoo_dir or ZOO
    budget = ["--max-train-steps", str(args.steps)] if args.steps else ["--max-train-time", str(60 * args.minutes)]
    results = {}
    progress = Progress(len(args.langs) * len(starts), "bench/transfer.py", unit="run", interval=0)
    for lang in args.langs:
        task = f"dialogft_customer:lang={lang}"
        for name, hf_model in starts.items():
            model_file = os.path.join(work, f"{lang}-{name.split()[-1]}", "model")
            finetune(task, hf_model, model_file, budget, datapath, args.lr)
            results[f"{lang} {name}"] = evaluate(task, model_file, args.eval_examples, datapath)
            print(f"# {lang} {name}: {json.dumps(results[f'{lang} {name}'])}", flush=True)
            progress.update()
    progress.close()
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)

    spent = f"{args.steps} updates" if args.steps else f"{args.minutes:g} min"
    print(f"\n{spent} of training per run (batch 16), first {args.eval_examples} test examples\n")
    print("| lang | start | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for key, values in results.items():
        lang, start = key.split(" ", 1)
        print(f"| {lang} | {start} | " + " | ".join(f"{values[m]:.4g}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
