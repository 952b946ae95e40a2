"""Preference training from one pinned start model: which recipe makes replies better, not just different.

Per language of ``dialogft_customer``:

1. **The start** is ``zoo:dialogft/customer_t5``, pinned by the SHA-256 of its weights
   (:data:`START_SHA256`): work on the zoo's models cannot move this bench's baseline. Another
   start needs ``--start-sha256`` (its hash is then in the results).
2. **Pairs** over the whole training split: ``--pool`` examples evenly spaced over it (not the
   first N in file order, which are a few dialogues of one corpus), each replied to by the start
   with its own decoding (beam 4, trigram blocking), the reply its users see. Its **stock replies** are its ten commonest replies
   there (one fixed list, also the stock-share column's). A pair is (context, the gold reply
   chosen, the start's reply rejected) where the start's reply is stock and the gold is not, and
   the two are not near-duplicates (token F1 below ``--max-f1``: the shared tokens, slots and
   entities, are what F1 counts, and a near-duplicate pair would teach DPO to push them down).
3. **Rows**, each trained from the start for one epoch of the pairs (``--updates`` overrides),
   batch 16, lr ``--lr`` with ``--warmup`` warmup updates, validated every ``--valid-every``
   updates on held-out gold replies (``--heldout`` validation examples, ``-vmt ppl``), and
   ``--pref-keep-start``: ``-mf`` never holds weights whose held-out gold perplexity is worse
   than the start's. :data:`ROWS` says each row's flags; SFT is MLE on the same chosen replies
   (the unlikelihood objective at alpha 0), so that every row shares one selection rule.
4. **Evaluation** on ``--eval-examples`` test examples evenly spaced over the split: greedy for
   every row, also beam 4 with trigram blocking for the start and the default. F1, BLEU-4,
   dist-1, dist-2, mean length (tokens), stock-reply share against the fixed list (the gold
   replies' own share beside it), held-out gold perplexity on the same test examples; mean ± sd
   over ``--seeds`` seeds, and a paired bootstrap 95% interval of the F1 difference to the start
   (per example, the seeds' mean F1 minus the start's; 2,000 resamples of the examples).

Results go to ``OUT/results.json``; the table is built from it (``--write-docs`` puts it in
``docs/preferences.md`` between its markers). A rerun with the same ``--out`` reuses every pair
file, model and evaluation it finds there. Run it alone (two cores).

    python bench/preference.py --out /tmp/pref                         # en and zh, 3 seeds, every row
    python bench/preference.py --out /tmp/pref --table-only --write-docs docs/preferences.md
    python bench/preference.py --out /tmp/pref-smoke --smoke           # a few steps, a few examples
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import sys
import tempfile
from collections import Counter
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from parlai_dialogft.utils.progress import Progress  # noqa: E402

START = "zoo:dialogft/customer_t5"
#: SHA-256 of the start's model.safetensors, as installed into the datapath.
START_SHA256 = "b0debd2cdef052a4297febd451a3ae2f3c8c7b7e04a47e13404fd9e7077db326"
STOCK_TOP = 10
BATCH = 16
# Every search option given, so that the start (the zoo's saved options: beam 4, trigram
# blocking) and the trained models (the training run's) decode alike. BEAM is the zoo's own
# decoding, the replies its users see.
BEAM = dict(inference="beam", beam_size=4, beam_block_ngram=3, beam_context_block_ngram=-1,
            beam_block_full_context=False, beam_min_length=1)
GREEDY = dict(BEAM, inference="greedy", beam_size=1, beam_block_ngram=-1)
DEFAULT_ROW = "DPO+NLL (default)"
#: row -> the flags of its training run (None: the start, not trained).
ROWS: Dict[str, List[str]] = {
    "start": None,
    "SFT, same chosen replies and budget": ["--pref-loss", "unlikelihood", "--pref-ul-alpha", "0"],
    "DPO": ["--pref-loss", "dpo", "--pref-sft-weight", "0"],
    DEFAULT_ROW: ["--pref-loss", "dpo"],
    "IPO": ["--pref-loss", "ipo", "--pref-sft-weight", "0"],
    "unlikelihood": ["--pref-loss", "unlikelihood"],
}
BEAM_ROWS = ("start", DEFAULT_ROW)
FOLDERS = {"SFT, same chosen replies and budget": "sft", "DPO": "dpo", DEFAULT_ROW: "dpo-nll", "IPO": "ipo",
           "unlikelihood": "unlikelihood"}
COLUMNS = ("f1", "bleu-4", "dist-1", "dist-2", "len", "stock", "gold_ppl")
BOOTSTRAP = 2000
DOC_BEGIN = "<!-- bench/preference.py table: begin -->"
DOC_END = "<!-- bench/preference.py table: end -->"


# --- data ------------------------------------------------------------------------------------


def split_examples(lang: str, split: str) -> List[dict]:
    """Every example of a split as (context turns, gold), in file order, with each earlier turn
    of its episode (gold replies in between, as ParlAI's history holds them)."""
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_kwargs(task=f"dialogft_customer:lang={lang}", datapath=os.environ["BENCH_DATAPATH"])
    opt["datatype"] = "train:evalmode" if split == "train" else split
    examples, turns = [], []
    for teacher in create_task_agent_from_taskname(opt):
        for _ in range(teacher.num_examples()):
            act = teacher.act()
            labels = act.get("labels") or act.get("eval_labels")
            if not labels:
                continue
            turns.append(act.get("text", ""))
            examples.append({"context": list(turns), "gold": labels[0]})
            turns.append(labels[0])
            if act.get("episode_done"):
                turns = []
    return examples


def spread(examples: list, k: int) -> list:
    from parlai_dialogft.evaluation.report_eval import spread as spread_samples

    return spread_samples(examples, k)


def pin_start(expected: str) -> str:
    """The start's weights hash, checked against the pin (the zoo installs them on first load)."""
    from parlai_dialogft.evaluation.report_eval import load_generator

    load_generator(START, "dialogft_customer", BATCH, datapath=os.environ["BENCH_DATAPATH"])
    path = os.path.join(os.environ["BENCH_DATAPATH"], "models", "dialogft", "customer_t5", "model.safetensors")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != expected:
        sys.exit(f"bench/preference.py: the start's weights {path} have SHA-256 {digest}, not the pinned {expected}; "
                 "the zoo's model changed. Pass --start-sha256 to measure from it (the results say which start)")
    return digest


# --- replies and scores ------------------------------------------------------------------------


def generate(model_file: str, examples: List[dict], decoding: dict, desc: str) -> dict:
    """The model's replies to ``examples`` and its perplexity of their gold replies."""
    import torch
    from parlai.core.message import Message

    from parlai_dialogft.evaluation.report_eval import load_generator

    agent, _ = load_generator(model_file, "dialogft_customer", BATCH, datapath=os.environ["BENCH_DATAPATH"],
                              **decoding)
    slots = [agent.clone() for _ in range(BATCH)]
    replies, nll, tokens = [], 0.0, 0
    with Progress(len(examples), desc) as progress, torch.no_grad():
        for start in range(0, len(examples), BATCH):
            chunk = examples[start:start + BATCH]
            observations = []
            for slot, ex in zip(slots, chunk):
                slot.reset()  # each example alone, its context flattened as the preference teacher does
                observations.append(slot.observe(Message({"text": "\n".join(ex["context"]),
                                                          "eval_labels": [ex["gold"]], "episode_done": True})))
            for act in agent.batch_act(observations):
                replies.append(act.get("text", ""))
                ppl = act["metrics"]["ppl"]  # the gold reply's summed NLL over its tokens
                nll, tokens = nll + float(ppl._numer), tokens + int(ppl._denom)
            progress.update(len(chunk))
    return {"replies": replies, "gold_ppl": math.exp(nll / tokens) if tokens else float("nan")}


def scores(replies: List[str], golds: List[str], stock: List[str]) -> dict:
    from parlai_dialogft.evaluation.metrics import compute, score_example

    corpus = compute(replies, golds)
    return {"f1": corpus["f1"], "bleu-4": corpus["bleu-4"], "dist-1": corpus["dist-1"], "dist-2": corpus["dist-2"],
            "len": corpus["len"], "stock": sum(r in stock for r in replies) / len(replies),
            "f1_per_example": [score_example(r, g).averaged["f1"] for r, g in zip(replies, golds)]}


def bootstrap_diff(model: List[float], start: List[float], seed: int = 0) -> dict:
    """Paired bootstrap of mean(model - start) over examples: the mean and a 95% interval."""
    diffs = [m - s for m, s in zip(model, start)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP))
    return {"mean": sum(diffs) / n, "ci95": [means[int(0.025 * BOOTSTRAP)], means[int(0.975 * BOOTSTRAP) - 1]]}


def cached(path: str, make):
    """JSON at ``path``, made once: a rerun with the same --out picks up where it stopped."""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    value = make()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)
    os.replace(path + ".tmp", path)
    return value


# --- the steps ---------------------------------------------------------------------------------


def make_pairs(args, lang: str, work: str) -> dict:
    """The start's stock replies and the pair file, from the pool spread over the training split."""
    from parlai_dialogft.data.preference_records import paired
    from parlai_dialogft.model.chat_format import to_messages
    from parlai_dialogft.training.self_play import f1
    from parlai_dialogft.utils.jsonl import write_jsonl

    pool = spread(split_examples(lang, "train"), args.pool)
    start = cached(os.path.join(work, "pool_start_beam.json"),
                   lambda: generate(START, pool, BEAM, f"start replies, {lang} train pool"))
    stock = [reply for reply, _ in Counter(start["replies"]).most_common(STOCK_TOP)]
    kept, skipped = [], Counter()
    for ex, reply in zip(pool, start["replies"]):
        if reply not in stock:
            skipped["start's reply not stock"] += 1
        elif ex["gold"] in stock:
            skipped["gold is stock too"] += 1
        elif f1(reply, ex["gold"]) >= args.max_f1:
            skipped["near-duplicate"] += 1
        else:
            kept.append(paired(to_messages(ex["context"]), ex["gold"], reply))
    path = os.path.join(work, "pairs.jsonl")
    if not os.path.isfile(path):
        write_jsonl(path, kept)
    return {"path": path, "pairs": len(kept), "skipped": dict(skipped), "stock": stock, "pool": len(pool)}


def train(args, lang: str, seed: int, flags: List[str], pairs: dict, out: str) -> str:
    from parlai.scripts.train_model import TrainModel

    if os.path.isfile(out + ".trainstats") and os.path.isfile(out + ".done"):  # finished in an earlier run
        return out
    updates = args.updates or max(1, math.ceil(pairs["pairs"] / BATCH))  # one epoch
    # At most a quarter of the run; none in a run of a few updates (ParlAI's warmup of one or
    # two updates leaves the weights where they were).
    warmup = min(args.warmup, updates // 4)
    TrainModel.main(
        "-t", "dialogft_preferences", "--pref-datapath", pairs["path"], *flags,
        "--evaltask", f"dialogft_customer:lang={lang}", "-m", "dialogft_agent", "--hf-model", START, "-mf", out,
        "-bs", str(BATCH), "-lr", str(args.lr), "--warmup-updates", str(warmup if warmup >= 2 else -1),
        "--pref-beta", str(args.beta), "--max-train-steps", str(updates), "--seed", str(seed),
        "--skip-generation", "true", "-vstep", str(min(args.valid_every, updates)), "-vtim", "-1",
        "-vme", str(args.heldout), "--pref-select-exs", str(args.heldout), "-vmt", "ppl", "-vmm", "min",
        "--save-after-valid", "false", "--datapath", os.environ["BENCH_DATAPATH"],
    )
    open(out + ".done", "w").close()
    return out


def summarise(runs: List[dict], start_f1: List[float]) -> dict:
    out = {"seeds": [{k: v for k, v in r.items() if k not in ("f1_per_example", "replies")} for r in runs]}
    out["mean"] = {c: statistics.fmean(r[c] for r in runs) for c in COLUMNS}
    out["sd"] = {c: statistics.stdev(r[c] for r in runs) if len(runs) > 1 else 0.0 for c in COLUMNS}
    per_example = [statistics.fmean(values) for values in zip(*(r["f1_per_example"] for r in runs))]
    out["f1_diff"] = bootstrap_diff(per_example, start_f1)
    return out


def run_lang(args, lang: str, work: str) -> dict:
    pairs = make_pairs(args, lang, os.path.join(work, lang))
    print(f"# {lang}: {pairs['pairs']} pairs from {pairs['pool']} training examples; skipped {pairs['skipped']}",
          flush=True)
    test = spread(split_examples(lang, "test"), args.eval_examples)
    golds = [ex["gold"] for ex in test]

    def evaluation(model_file: str, decoding: str, folder: str) -> dict:
        def make():
            made = generate(model_file, test, BEAM if decoding == "beam" else GREEDY, f"{folder}: {decoding}")
            return {**scores(made["replies"], golds, pairs["stock"]), "gold_ppl": made["gold_ppl"],
                    "replies": made["replies"]}
        return cached(os.path.join(work, lang, folder, f"eval_{decoding}.json"), make)

    rows = {}
    starts = {d: evaluation(START, d, "start") for d in ("greedy", "beam")}
    for name, flags in ROWS.items():
        if name not in args.rows:
            continue
        decodings = ("greedy", "beam") if name in BEAM_ROWS else ("greedy",)
        runs = {d: [] for d in decodings}
        start_kept = 0
        for seed in range(1 if flags is None else args.seeds):
            if flags is None:
                for d in decodings:
                    runs[d].append(starts[d])
                continue
            folder = os.path.join(f"seed{seed}", FOLDERS[name])
            model = train(args, lang, seed, flags, pairs, os.path.join(work, lang, folder, "model"))
            with open(model + ".pref_start.json", encoding="utf-8") as f:
                # --pref-keep-start's decisions: -mf holds the start unless one save was kept.
                start_kept += not any(d["kept"] for d in json.load(f)["decisions"])
            for d in decodings:
                runs[d].append(evaluation(model, d, folder))
        rows[name] = {d: summarise(runs[d], starts[d]["f1_per_example"]) for d in decodings}
        for d in decodings:
            rows[name][d]["start_kept"] = start_kept if flags is not None else None
        print(f"# {lang} {name}: " + json.dumps({d: rows[name][d]["mean"] for d in decodings}), flush=True)
    return {"pairs": {k: v for k, v in pairs.items() if k != "path"}, "eval_examples": len(test),
            "gold_stock_share": sum(g in pairs["stock"] for g in golds) / len(golds), "rows": rows}


# --- the table ---------------------------------------------------------------------------------


def table(results: dict) -> str:
    s = results["settings"]
    budget = f"{s['updates']} updates" if s["updates"] else "one epoch of the pairs"
    lines = [
        f"From `{START}` (weights SHA-256 `{results['start_sha256'][:12]}…`), per language: pairs from "
        f"{s['pool']} training examples spread over the split, rejected = the start's reply (its own beam 4 "
        "decoding) where it is "
        f"one of its {STOCK_TOP} stock replies and the gold is not, near-duplicates (token F1 ≥ {s['max_f1']}) "
        f"dropped; every row {budget} at batch "
        f"{BATCH}, lr {s['lr']}, warmup {s['warmup']} updates (at most a quarter of the run), beta {s['beta']}, `-mf` never worse than the start on "
        f"held-out gold ppl; {s['eval_examples']} test examples spread over the split; mean ± sd over "
        f"{s['seeds']} seeds; Δf1 is the paired bootstrap 95% interval of the F1 difference to the start. `stock` is "
        "the share of replies in the start's fixed stock list (the gold replies' own share in brackets); "
        "\"start kept\" counts the seeds whose every checked save was worse than the start on held-out gold ppl.",
        "",
        "| lang | model | decoding | f1 | Δf1 (95%) | bleu-4 | dist-1 | dist-2 | len | stock (gold) | gold ppl |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lang, result in results["langs"].items():
        for name, decodings in result["rows"].items():
            for decoding, row in decodings.items():
                def cell(c, digits=3):
                    sd = f" ± {row['sd'][c]:.{digits}f}" if s["seeds"] > 1 and name != "start" else ""
                    return f"{row['mean'][c]:.{digits}f}{sd}"

                lo, hi = row["f1_diff"]["ci95"]
                diff = "—" if name == "start" else f"{row['f1_diff']['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                kept = row.get("start_kept")
                label = f"{name} (start kept: {kept}/{s['seeds']})" if kept else name
                lines.append(f"| {lang} | {label} | {decoding} | {cell('f1')} | {diff} | {cell('bleu-4')} | "
                             f"{cell('dist-1')} | {cell('dist-2')} | {cell('len', 1)} | {cell('stock')} "
                             f"({result['gold_stock_share']:.3f}) | {cell('gold_ppl', 1)} |")
    return "\n".join(lines)


def write_docs(path: str, text: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    if DOC_BEGIN not in doc or DOC_END not in doc:
        sys.exit(f"bench/preference.py: {path} has no {DOC_BEGIN} ... {DOC_END} markers")
    head, rest = doc.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{DOC_BEGIN}\n{text}\n{DOC_END}{tail}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="", help="folder for pairs, models, evaluations and results.json; a rerun "
                        "with the same one resumes (default: a new temporary folder)")
    parser.add_argument("--langs", nargs="+", default=["en", "zh"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="ROW")
    parser.add_argument("--pool", type=int, default=4000, help="training examples, spread over the split, replied to")
    parser.add_argument("--max-f1", type=float, default=0.5, help="pairs at or above this token F1 are near-duplicates")
    parser.add_argument("--updates", type=int, default=0, help="updates per run (default: one epoch of the pairs)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup", type=int, default=20, help="warmup updates (at most a quarter of the run)")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--valid-every", type=int, default=25, help="updates between validations")
    parser.add_argument("--heldout", type=int, default=300, help="validation examples of the held-out gold ppl")
    parser.add_argument("--eval-examples", type=int, default=1000, help="test examples, spread over the split")
    parser.add_argument("--start-sha256", default=START_SHA256, help="accept a start with these weights")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from OUT/results.json")
    parser.add_argument("--write-docs", default="", help="put the table between the markers of this file")
    parser.add_argument("--smoke", action="store_true", help="a check that it runs: 1 seed, tiny sizes")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.pool, args.updates, args.valid_every, args.heldout, args.eval_examples = 1, 48, 2, 2, 8, 8
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.out:
        if args.table_only:
            sys.exit("bench/preference.py: --table-only reads OUT/results.json: give --out")
        args.out = tempfile.mkdtemp(prefix="bench_preference_")
    os.environ["BENCH_DATAPATH"] = os.path.join(os.path.abspath(args.out), "data")  # the zoo installs itself here
    results_path = os.path.join(args.out, "results.json")
    if args.table_only:
        with open(results_path, encoding="utf-8") as f:
            results = json.load(f)
    else:
        results = {"start_sha256": pin_start(args.start_sha256),
                   "settings": {k: getattr(args, k) for k in ("seeds", "pool", "max_f1", "updates", "lr", "warmup",
                                                               "beta", "valid_every", "heldout", "eval_examples")},
                   "langs": {}}
        progress = Progress(len(args.langs), "bench/preference.py", unit="language", interval=0)
        for lang in args.langs:
            results["langs"][lang] = run_lang(args, lang, os.path.abspath(args.out))
            progress.update()
        progress.close()
        with open(results_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1, ensure_ascii=False)
    text = table(results)
    print("\n" + text)
    if args.write_docs:
        write_docs(args.write_docs, text)


if __name__ == "__main__":
    main()
