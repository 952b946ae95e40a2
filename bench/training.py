"""Training speed: ``parlai train_model`` with dialogft_agent vs ``transformers`` ``Trainer`` and TRL.

Rows (``--rows``; by default all that apply): the ``Trainer`` at its defaults (the ratios'
reference), the ``Trainer`` with ``group_by_length=True`` (its own answer to padding), for
decoder-only models TRL's ``SFTTrainer`` padding-free (each batch flattened into one row) and
packed (best-fit-decreasing rows of 320 tokens, which TRL runs padding-free), and ours.

Both train the same random-init model (t5-small or GPT-2-small shaped, built from a config)
on the same examples from dialogft_customer's train split, in the same order (shuffled per
seed: the same batches on both sides), for one epoch at batch 16,
AdamW at a constant 5e-4 with weight decay 0.01 (ParlAI's AdamW cannot be set to 0, so the
Trainer gets torch's default too), gradient norm clipped at 1.0, fp32, the same truncation
(context 256 tokens from the left, reply 64). Each side runs in its own process, one after
the other, so each owns both cores and reports its own peak memory. Then one shared function
computes the validation loss of both trained models on the same validation examples: both
have then read the same examples, so the same tokens.

    python bench/training.py                       # t5-small shape, 480 examples
    python bench/training.py --seeds 3             # 3 data orders per side: mean and spread
    python bench/training.py --arch gpt2 --examples 320
    python bench/training.py --bf16                # adds ours under bf16 autocast
    python bench/training.py --whole-batches       # adds ours computing each batch whole
    python bench/training.py --buckets             # adds ours with ParlAI's length buckets
    python bench/training.py --arch gpt2 --seeds 1 --first-seed 1 --save part2.json   # a table in parts:
    python bench/training.py --table-from part1.json part2.json                      # one table

MFU: model FLOPs per second over the fp32 matmul peak measured in the same run (bench/mfu.py).

Throughput counts non-padding tokens (context + reply) per second of the training loop,
from the first step to the last (model building and data reading excluded on both sides).
Run it alone: two torch processes on two cores distort each other's times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # importable from elsewhere (bench/gpu.sh)

from child import run_child  # noqa: E402

from parlai_dialogft.utils.progress import Progress

TEXT_TRUNCATE, LABEL_TRUNCATE, BATCH, LR, CLIP = 256, 64, 16, 5e-4, 1.0


# --- shared inputs -------------------------------------------------------------------------


def customer_pairs(datatype: str, n: int, seed: int):
    """``n`` (context, reply) pairs of dialogft_customer (English), sampled with ``seed``.

    The context is the whole history joined by newlines, as ParlAI's history writes it.
    """
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_kwargs(task="dialogft_customer", datatype=datatype if datatype != "train" else "train:ordered")
    teacher = create_task_agent_from_taskname(opt)[0]
    pairs, history = [], []
    for _ in range(min(teacher.num_examples(), 20 * n)):
        message = teacher.act()
        reply = (message.get("labels") or message.get("eval_labels"))[0]
        pairs.append(("\n".join(history + [message["text"]]), reply))
        history = [] if message["episode_done"] else history + [message["text"], reply]
    return random.Random(seed).sample(pairs, n)


def build_model(arch: str, out: str, texts) -> str:
    """A t5-small- or GPT-2-small-shaped model, random init, with a 32k BPE tokenizer."""
    import torch
    import transformers as tf

    from parlai_dialogft.model.tiny import train_tokenizer

    tok = train_tokenizer(texts, vocab_size=32000, with_pad=arch == "t5")
    torch.manual_seed(0)
    if arch == "t5":  # t5-small: 6+6 layers, d_model 512, 8 heads, d_ff 2048
        config = tf.T5Config(vocab_size=len(tok), d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6,
                             pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, dropout_rate=0.0)
        model = tf.AutoModelForSeq2SeqLM.from_config(config)
    else:  # GPT-2 small: 12 layers, 768 wide, 12 heads
        config = tf.GPT2Config(vocab_size=len(tok), n_embd=768, n_layer=12, n_head=12, n_positions=512,
                               bos_token_id=3, eos_token_id=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = tf.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def encode(tokenizer, pairs, seq2seq: bool):
    """Token ids exactly as the Trainer side sees them (ParlAI tokenises on its own)."""
    tokenizer.truncation_side = "left"  # keep the newest turns, as ParlAI's history does
    rows = []
    for context, reply in pairs:
        reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"][: LABEL_TRUNCATE - 1]
        reply_ids.append(tokenizer.eos_token_id)
        if seq2seq:
            ctx = tokenizer(context, truncation=True, max_length=TEXT_TRUNCATE)["input_ids"]
            rows.append({"input_ids": ctx, "labels": reply_ids})
        else:
            ctx = tokenizer(context, add_special_tokens=False)["input_ids"][-TEXT_TRUNCATE:]
            rows.append({"input_ids": ctx + reply_ids, "labels": [-100] * len(ctx) + reply_ids})
    return rows


def validation_loss(model, tokenizer, pairs, seq2seq: bool) -> float:
    """Mean cross-entropy per reply token (EOS included): the same function for both sides."""
    import torch

    rows = encode(tokenizer, pairs, seq2seq)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            width = max(len(r["input_ids"]) for r in chunk)
            ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in chunk])
            mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in chunk])
            lwidth = max(len(r["labels"]) for r in chunk)
            labels = torch.tensor([r["labels"] + [-100] * (lwidth - len(r["labels"])) for r in chunk])
            if seq2seq:
                logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
                targets = labels
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
                targets = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum")
            total += loss.item()
            count += int(targets.ne(-100).sum())
    return total / count


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the two sides (each in its own process) -----------------------------------------------


def run_parlai(spec) -> dict:
    """One epoch through ParlAI's TrainLoop; tokens and time counted around each train step."""
    import numpy as np
    import torch
    from parlai.core.params import ParlaiParser
    from parlai.scripts.train_model import TrainLoop, setup_args

    random.seed(spec["seed"]), np.random.seed(spec["seed"]), torch.manual_seed(spec["seed"])
    parser = setup_args(ParlaiParser(True, True))
    opt = parser.parse_args([
        # train:ordered: every example exactly once, as the Trainer's epoch, in the file's
        # order (shuffled per seed); plain "train" draws episodes at random, with repeats.
        "-t", "dialogft_files", "--files-datapath", spec["train_file"], "-dt", "train:ordered", "-m", "dialogft_agent",
        "--hf-model", spec["model_dir"], "-mf", os.path.join(spec["work"], "parlai", "model"),
        "-bs", str(BATCH), "-eps", "1", "-lr", str(LR), "--optimizer", "adamw", "--gradient-clip", str(CLIP),
        "--text-truncate", str(TEXT_TRUNCATE), "--label-truncate", str(LABEL_TRUNCATE),
        "-vtim", "-1", "-veps", "-1", "-vme", str(BATCH), "--skip-generation", "true", "--log-every-n-secs", "60",
        "--datapath", os.path.join(spec["work"], "data"), "--seed", str(spec["seed"]),
    ] + spec["flags"])
    loop = TrainLoop(opt)
    agent = loop.agent
    pad = agent.NULL_IDX
    seen = {"tokens": 0, "padding": 0, "ctx_tokens": 0, "reply_tokens": 0, "steps": 0, "examples": 0,
            "first": None, "last": None, "in_step": 0.0}
    distinct = set()  # (context, reply) tokens without padding: an example read twice counts once
    train_step = agent.train_step

    def counted(batch):
        start = time.perf_counter()
        seen["first"] = seen["first"] or start
        out = train_step(batch)
        seen["in_step"] += time.perf_counter() - start
        for _rows, group in agent._length_groups(batch):  # padding as computed, group by group
            for kind, vec in (("ctx_tokens", group.text_vec), ("reply_tokens", group.label_vec)):
                seen[kind] += int(vec.ne(pad).sum())
                seen["tokens"] += int(vec.ne(pad).sum())
                seen["padding"] += int(vec.eq(pad).sum())
        seen["steps"] += 1
        seen["examples"] += batch.batchsize
        for text, label in zip(batch.text_vec.tolist(), batch.label_vec.tolist()):
            distinct.add((tuple(t for t in text if t != pad), tuple(t for t in label if t != pad)))
        seen["last"] = time.perf_counter()
        return out

    agent.train_step = counted
    loop.train()
    return {
        "tokens": seen["tokens"], "padding": seen["padding"], "steps": seen["steps"], "examples": seen["examples"],
        "ctx_tokens": seen["ctx_tokens"], "reply_tokens": seen["reply_tokens"], "distinct": len(distinct), "seconds": seen["last"] - seen["first"], "in_train_step": seen["in_step"], "peak_mb": peak_rss_mb(),
        "val_loss": validation_loss(agent.model.hf, agent.dict.hf_tokenizer, spec["valid"], spec["seq2seq"]),
    }


#: The peers' configurations (``spec["variant"]``): the Trainer at its defaults, the Trainer's
#: own answer to padding, and for decoder-only models TRL's SFTTrainer without padding.
TRAINER_VARIANTS = ("default", "group_by_length", "sft_padding_free", "sft_packing")


def count_batch(batch, seen: dict, seq2seq: bool) -> None:
    """Adds a collated batch's real tokens (context and reply apart) and padding to ``seen``.

    A padding-free batch (TRL: one flattened row, ``position_ids`` instead of a mask) has no
    padding; in a padded one the attention mask says which tokens are real.
    """
    labels = batch["labels"]
    if "attention_mask" in batch:
        real, slots = int(batch["attention_mask"].sum()), batch["attention_mask"].numel()
    else:
        real = slots = batch["input_ids"].numel()
    reply = int(labels.ne(-100).sum())
    if seq2seq:  # the replies are the decoder's input, padded with -100 to their longest
        seen["ctx_tokens"] += real
        seen["padding"] += slots - real + int(labels.eq(-100).sum())
        real += reply
    else:  # the reply is part of input_ids
        seen["ctx_tokens"] += real - reply
        seen["padding"] += slots - real
    seen["reply_tokens"] += reply
    seen["tokens"] += real


def run_trainer(spec) -> dict:
    """One epoch of ``Trainer`` (``Seq2SeqTrainer`` for seq2seq) or TRL's ``SFTTrainer``.

    ``default`` and ``sft_padding_free`` read the examples in the order given (ParlAI's side
    reads the same order, so the same batches); ``group_by_length`` reorders them with the
    Trainer's ``LengthGroupedSampler`` (random mega-batches of 50 batches, each sorted by
    length), seeded per data order; ``sft_packing`` packs them into rows of
    ``TEXT_TRUNCATE + LABEL_TRUNCATE`` tokens (best-fit decreasing, which TRL then runs
    padding-free), shuffles the rows per seed, and takes as many rows per step as give the
    other sides' number of steps.
    """
    import torch
    import transformers as tf

    variant = spec.get("variant", "default")
    tokenizer = tf.AutoTokenizer.from_pretrained(spec["model_dir"])
    auto = tf.AutoModelForSeq2SeqLM if spec["seq2seq"] else tf.AutoModelForCausalLM
    model = auto.from_pretrained(spec["model_dir"], dtype=torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # the usual recipe for GPT-2
    rows = encode(tokenizer, spec["train"], spec["seq2seq"])
    seen = {"tokens": 0, "padding": 0, "ctx_tokens": 0, "reply_tokens": 0, "examples": 0}
    common = dict(
        output_dir=os.path.join(spec["work"], "trainer"), per_device_train_batch_size=BATCH, num_train_epochs=1,
        learning_rate=LR, lr_scheduler_type="constant", weight_decay=0.01, max_grad_norm=CLIP, seed=spec["seed"],
        logging_steps=10_000, save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if variant == "group_by_length" else "sequential",
    )
    clock = {}

    class Clock(tf.TrainerCallback):
        def on_step_begin(self, *_args, **_kw):
            clock.setdefault("first", time.perf_counter())

        def on_step_end(self, *_args, **_kw):
            clock["last"] = time.perf_counter()

    if variant.startswith("sft_"):
        if spec["seq2seq"]:
            raise ValueError(f"{variant}: TRL's SFTTrainer trains decoder-only models (--arch gpt2)")
        import datasets
        from trl import SFTConfig, SFTTrainer

        packing = variant == "sft_packing"
        args = SFTConfig(
            **{**common, "train_sampling_strategy": "random" if packing else "sequential"},
            # Speed settings a user would pick on this CPU: no recomputation (memory is
            # plenty), fp32 like the other rows (TRL defaults to bf16, which has no matrix
            # units here); rows already truncated as on the other sides.
            gradient_checkpointing=False, bf16=False, padding_free=True, packing=packing,
            max_length=TEXT_TRUNCATE + LABEL_TRUNCATE if packing else None,
        )
        # Pre-tokenised input_ids and labels (-100 on the context): TRL keeps them as they are.
        data = datasets.Dataset.from_list(rows)
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                             callbacks=[Clock()])
        if packing:  # as many packed rows per step as give the other sides' number of steps
            steps = -(-len(rows) // BATCH)
            trainer._train_batch_size = -(-len(trainer.train_dataset) // steps)
    else:
        cls, args_cls = (tf.Seq2SeqTrainer, tf.Seq2SeqTrainingArguments) if spec["seq2seq"] else (tf.Trainer, tf.TrainingArguments)
        collator = tf.DataCollatorForSeq2Seq(tokenizer, model=model if spec["seq2seq"] else None)
        trainer = cls(model=model, args=args_cls(**common), train_dataset=rows, data_collator=collator,
                      processing_class=tokenizer, callbacks=[Clock()])
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        # A packed row holds several examples; its seq_lengths lists them.
        seen["examples"] += sum(len(f["seq_lengths"]) if "seq_lengths" in f else 1 for f in features)
        count_batch(batch, seen, spec["seq2seq"])
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    return {
        "tokens": seen["tokens"], "padding": seen["padding"], "steps": trainer.state.global_step,
        "examples": seen["examples"], "ctx_tokens": seen["ctx_tokens"], "reply_tokens": seen["reply_tokens"],
        "rows_per_step": trainer._train_batch_size,
        "seconds": clock["last"] - clock["first"], "peak_mb": peak_rss_mb(),
        "val_loss": validation_loss(model, tokenizer, spec["valid"], spec["seq2seq"]),
    }


# --- orchestration --------------------------------------------------------------------------


def side(spec_path: str, which: str, desc: str) -> dict:
    """One run in a fresh process (no state shared between runs); its log beside the spec."""
    log_path, out_path = spec_path[:-len(".json")] + ".log", spec_path[:-len(".json")] + ".out"
    with open(out_path, "w") as out:
        status = run_child([sys.executable, __file__, "--worker", which, "--spec", spec_path], log_path, desc, stdout=out)
    if status != 0:
        with open(log_path, encoding="utf-8") as log:
            sys.exit(f"{which} failed:\n{log.read()[-4000:]}")
    with open(out_path) as out:
        return json.loads(out.read().strip().splitlines()[-1])


#: Row keys for --rows: (table name, worker, ParlAI flags, trainer variant).
ROWS = {
    "trainer": ("transformers Trainer", "trainer", [], "default"),
    "group_by_length": ("Trainer, group_by_length=True", "trainer", [], "group_by_length"),
    "sft_padding_free": ("TRL SFTTrainer, padding_free", "trainer", [], "sft_padding_free"),
    "sft_packing": ("TRL SFTTrainer, packing (bfd)", "trainer", [], "sft_packing"),
    "ours": ("ParlAI + dialogft_agent", "parlai", [], None),
    "bf16": ("ParlAI + dialogft_agent, bf16", "parlai", ["--hf-bf16", "true"], None),
    "whole_batches": ("ParlAI + dialogft_agent, whole batches", "parlai", ["--hf-length-groups", "false"], None),
    "buckets": ("ParlAI + dialogft_agent, length buckets", "parlai", ["--dynamic-batching", "batchsort"], None),
}


def build_runs(args) -> list:
    """The rows to run, the Trainer at its defaults first (the ratios' reference)."""
    if args.rows:
        keys = args.rows
    else:
        keys = ["trainer"]
        if not args.no_peers:
            keys.append("group_by_length")
            if args.arch == "gpt2":  # TRL's SFTTrainer trains decoder-only models
                keys += ["sft_padding_free", "sft_packing"]
        keys.append("ours")
        keys += [key for key, on in (("bf16", args.bf16), ("whole_batches", args.whole_batches),
                                     ("buckets", args.buckets)) if on]
    if args.arch == "t5" and any(key.startswith("sft_") for key in keys):
        sys.exit("--rows: TRL's SFTTrainer rows need --arch gpt2 (it trains decoder-only models)")
    return [ROWS[key] for key in keys]


OURS = "ParlAI + dialogft_agent"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["t5", "gpt2"], default="t5")
    parser.add_argument("--examples", type=int, default=480, help="training examples (one epoch)")
    parser.add_argument("--valid", type=int, default=160, help="validation examples")
    parser.add_argument("--bf16", action="store_true", help="also run ours under bf16 autocast")
    parser.add_argument("--seeds", type=int, default=1, help="data orders per side (seeds first..first+N-1)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="first data order (a long table can be measured in parts, see --save/--table-from)")
    parser.add_argument("--no-peers", action="store_true",
                        help="only the Trainer at its defaults and ours (no group_by_length, no TRL rows)")
    parser.add_argument("--whole-batches", action="store_true",
                        help="also run ours with --hf-length-groups false (each batch padded whole)")
    parser.add_argument("--buckets", action="store_true",
                        help="also run ours with --dynamic-batching batchsort (batches of similar length)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS),
                        help="run only these rows (a long table can be measured in parts, see --save)")
    parser.add_argument("--save", help="also write the per-run results (and this run's peak) to this JSON file")
    parser.add_argument("--table-from", nargs="+", metavar="JSON",
                        help="print one table from files written by --save (parts of one measurement)")
    parser.add_argument("--worker", choices=["parlai", "trainer"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker:
        with open(args.spec) as f:
            spec = json.load(f)
        print(json.dumps((run_parlai if args.worker == "parlai" else run_trainer)(spec)))
        return
    if args.table_from:
        print_table(*merge_saved(args.table_from))
        return

    import torch
    from mfu import matmul_peak_flops

    threads = torch.get_num_threads()
    peaks = [matmul_peak_flops()]  # again after the runs: the best of both is the peak
    work = tempfile.mkdtemp(prefix="bench_train_")
    train, valid = customer_pairs("train", args.examples, seed=0), customer_pairs("valid", args.valid, seed=1)
    model_dir = build_model(args.arch, os.path.join(work, "model"), [t for pair in train for t in pair] * 3)
    split = model_split(model_dir, args.arch)
    runs = build_runs(args)
    results = {name: [] for name, *_ in runs}
    progress = Progress(len(runs) * args.seeds, "bench/training.py", unit="run", interval=0)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        # One data order per seed, read by both sides: the same batches, in the same order.
        order = random.Random(seed).sample(train, len(train))
        train_file = os.path.join(work, f"train-seed{seed}.jsonl")
        with open(train_file, "w", encoding="utf-8") as f:
            for context, reply in order:
                f.write(json.dumps({"prompt": context, "completion": reply}, ensure_ascii=False) + "\n")
        for n, (name, which, flags, variant) in enumerate(runs):
            tag = f"{which}{n}-seed{seed}"
            spec = dict(work=os.path.join(work, tag), model_dir=model_dir, train=order, valid=valid,
                        train_file=train_file, seq2seq=args.arch == "t5", flags=flags, seed=seed, variant=variant)
            spec_path = os.path.join(work, f"{tag}.json")
            with open(spec_path, "w") as f:
                json.dump(spec, f)
            results[name].append(side(spec_path, which, f"{name}, seed {seed}"))
            print(f"# {name}, seed {seed}: {json.dumps(results[name][-1])}", flush=True)
            progress.update()
    progress.close()
    peaks.append(matmul_peak_flops())
    measured = dict(arch=args.arch, examples=args.examples, threads=threads, peak_flops=max(peaks),
                    split=split.__dict__, results=results)
    for runs_of_row in results.values():
        for run in runs_of_row:
            run["peak_flops"] = max(peaks)
    if args.save:
        with open(args.save, "w") as f:
            json.dump(measured, f)
    print_table(measured, results)


def model_split(model_dir: str, arch: str):
    """The weights each token kind passes through, for the MFU column (see bench/mfu.py)."""
    import transformers as tf
    from mfu import param_split

    auto = tf.AutoModelForSeq2SeqLM if arch == "t5" else tf.AutoModelForCausalLM
    return param_split(auto.from_pretrained(model_dir))


def merge_saved(paths) -> tuple:
    """One table's inputs from the --save files of its parts (each run keeps its own peak)."""
    parts = []
    for path in paths:
        with open(path) as f:
            parts.append(json.load(f))
    results = {}
    for part in parts:
        for name, runs in part["results"].items():
            results.setdefault(name, []).extend(runs)
    order = [name for name, *_ in ROWS.values()]  # the Trainer at its defaults first: the reference
    results = {name: results[name] for name in sorted(results, key=lambda n: order.index(n) if n in order else len(order))}
    measured = dict(parts[0], results=results, peak_flops=max(p["peak_flops"] for p in parts))
    return measured, results


def mean_sd(values) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.4g} ± {sd:.2g}"


def print_table(measured: dict, results: dict) -> None:
    """One row per trainer: means (± sample sd over seeds); ratios are per seed, then averaged.

    ``ratio``: this row's tokens/s over the first row's; ``ours ÷ row``: ours over this row's.
    MFU: model FLOPs per second (bench/mfu.py) over the fp32 matmul peak measured in the run.
    """
    from mfu import ParamSplit

    split = ParamSplit(**measured["split"])
    names = list(results)
    reference, ours = results[names[0]], results.get(OURS)
    seeds = len(reference)
    print(f"\n{measured['arch']}, {measured['examples']} examples, batch {BATCH}, one epoch, {seeds} data order(s), "
          f"{measured['threads']} torch threads, fp32 matmul peak {measured['peak_flops'] / 1e9:.1f} GFLOP/s\n")
    print("| trainer | tokens/s (non-padding) | padding | MFU | peak RSS MB | val loss | Δ val loss "
          "| examples (distinct) | steps | ratio | ours ÷ row |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        runs = results[name]
        rates = [r["tokens"] / r["seconds"] for r in runs]
        ratios = [rate / (ref["tokens"] / ref["seconds"]) for rate, ref in zip(rates, reference)]
        deltas = [r["val_loss"] - ref["val_loss"] for r, ref in zip(runs, reference)]
        mfu = [split.training_flops(r["ctx_tokens"], r["reply_tokens"]) / r["seconds"] / r["peak_flops"] for r in runs]
        ours_over = "" if ours is None else mean_sd([(o["tokens"] / o["seconds"]) / rate for o, rate in zip(ours, rates)]) + "x"
        padding = sum(r["padding"] for r in runs) / sum(r["padding"] + r["tokens"] for r in runs)
        print(f"| {name} | {mean_sd(rates)} | {padding:.0%} | {mean_sd([100 * m for m in mfu])}% "
              f"| {max(r['peak_mb'] for r in runs):.0f} "
              f"| {mean_sd([r['val_loss'] for r in runs])} | {mean_sd(deltas)} "
              f"| {runs[0]['examples']} ({runs[0].get('distinct', runs[0]['examples'])}) "
              f"| {runs[0]['steps']} | {mean_sd(ratios)}x | {ours_over} |")


if __name__ == "__main__":
    main()
