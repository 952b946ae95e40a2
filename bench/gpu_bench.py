"""Training speed on a GPU: ParlAI + dialogft_agent vs the transformers ``Trainer``, tokens/s
and MFU against the device's own peak, measured in the same run.

Two shapes, random init, built here from a config (nothing downloaded): t5-small (6+6
layers, d_model 512; bench/training.py builds it) and Qwen2.5-0.5B (24 layers, hidden 896,
14 query and 2 key/value heads, MLP 4864, vocabulary 151,936, tied embeddings), each with a
BPE tokenizer trained on the examples. Both sides train the same dialogft_customer examples
in the same order, at the same batch size, AdamW at 5e-4, gradient norm clipped at 1.0,
the same truncation (context 256 tokens from the left, reply 64):

* ours: ParlAI's ``batch_act`` on pre-vectorised observations (batchify, move to the
  device, ``train_step``: what ParlAI's TrainLoop runs per batch, without the world);
* theirs: ``Trainer.train`` (``Seq2SeqTrainer`` for T5) on the rows ``bench/training.py``
  encodes.

Per precision: fp32 (t5 only), bf16 autocast (ours ``--hf-bf16``, the Trainer's ``bf16``),
fp16 (Qwen shape only, as T5 overflows in fp16: ParlAI's ``--fp16``, half weights with an
fp32 master copy, vs the Trainer's ``fp16`` autocast with loss scaling), and ours both with
whole batches (the GPU's default) and with ``--hf-length-groups true``.

Timing: the first ``--warmup`` steps are not timed (CUDA kernels, allocator); the clock
runs from a synchronised start to a synchronised end over ``--steps`` steps. Tokens are the
real (non-padding) context and reply tokens of the timed steps, as each side tokenised them.
MFU: the training FLOPs of those tokens (``bench/mfu.py``: 6 x weights each token passes)
per second, over the best ``torch.matmul`` rate of the run's dtype on this device.

    python bench/gpu_bench.py                       # CUDA: both shapes (a few minutes)
    python bench/gpu_bench.py --device cpu --tiny   # the same code on tiny models (checks it)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import training  # noqa: E402  (bench/training.py: data, encoding, token counting)

#: Qwen2.5-0.5B's published config, without its weights.
QWEN_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1_000_000.0,
                rms_norm_eps=1e-6, tie_word_embeddings=True, vocab_size=151936)


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str  # t5 | qwen2
    batch: int
    precisions: tuple


SHAPES = {
    "t5-small": Shape("t5-small", "t5", 16, ("fp32", "bf16")),
    "qwen2.5-0.5b": Shape("qwen2.5-0.5b", "qwen2", 8, ("bf16", "fp16")),
}


@dataclass
class Run:
    shape: str
    precision: str
    side: str  # "Trainer", "ours, whole batches", "ours, length groups"
    steps: int = 0
    seconds: float = 0.0
    ctx_tokens: int = 0
    reply_tokens: int = 0
    peak_mem_gb: float = 0.0
    extra: Dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return (self.ctx_tokens + self.reply_tokens) / self.seconds if self.seconds else 0.0


# --- the device ------------------------------------------------------------------------------


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype_name: str, n: int, repeats: int = 10) -> float:
    """Best FLOP/s of an ``n`` x ``n`` matmul in ``dtype_name`` on ``device`` (2n³ per product)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):  # warm-up: kernel selection, clocks
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def reset_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else training.peak_rss_mb() / 1024


# --- the models --------------------------------------------------------------------------------


def build(shape: Shape, out: str, texts: List[str], tiny: bool) -> str:
    """The shape's model (random init) and a tokenizer trained on ``texts``, saved to ``out``."""
    import torch
    import transformers as tf

    from parlai_dialogft.model.tiny import build_tiny_model, train_tokenizer

    if tiny:
        return build_tiny_model(out, shape.arch, texts, vocab_size=500)
    if shape.arch == "t5":
        return training.build_model("t5", out, texts)
    tokenizer = train_tokenizer(texts, vocab_size=32000, with_pad=False)
    config = tf.Qwen2Config(**QWEN_05B, bos_token_id=3, eos_token_id=1, pad_token_id=None)
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --- the two sides -------------------------------------------------------------------------------

PRECISION_FLAGS = {"fp32": [], "bf16": ["--hf-bf16", "true"], "fp16": ["--fp16", "true"]}


def run_ours(run: Run, model_dir: str, pairs, batch: int, warmup: int, device: str, flags: List[str]) -> Run:
    from parlai.core.agents import create_agent
    from parlai.core.message import Message
    from parlai.core.params import ParlaiParser

    args = ["-m", "dialogft_agent", "--hf-model", model_dir, "-bs", str(batch), "-opt", "adamw",
            "-lr", str(training.LR), "--gradient-clip", str(training.CLIP),
            "--text-truncate", str(training.TEXT_TRUNCATE), "--label-truncate", str(training.LABEL_TRUNCATE),
            *PRECISION_FLAGS[run.precision], *flags]
    if device == "cpu":
        args.append("--no-cuda")
    opt = ParlaiParser(True, True).parse_args(args)
    agent = create_agent(opt, requireModelExists=False)
    # Vectorised once, as ParlAI's worlds do while the previous batch trains.
    observations = [agent.clone().observe(Message({"text": c, "labels": [r], "episode_done": True})) for c, r in pairs]
    batches = [observations[i : i + batch] for i in range(0, len(observations), batch)]
    for step, chunk in enumerate(batches):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        agent.batch_act(chunk)
        if step >= warmup:
            padded = agent.batchify(chunk)  # the tokens this step computed on
            run.ctx_tokens += int(padded.text_vec.ne(agent.NULL_IDX).sum())
            run.reply_tokens += int(padded.label_vec.ne(agent.NULL_IDX).sum())
            run.steps += 1
    sync(device)
    run.seconds = time.perf_counter() - start
    run.peak_mem_gb = peak_memory_gb(device)
    del agent, observations, batches
    return run


def run_trainer(run: Run, model_dir: str, pairs, batch: int, warmup: int, device: str, seq2seq: bool) -> Run:
    import torch
    import transformers as tf

    tokenizer = tf.AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    auto = tf.AutoModelForSeq2SeqLM if seq2seq else tf.AutoModelForCausalLM
    model = auto.from_pretrained(model_dir, dtype=torch.float32)
    rows = training.encode(tokenizer, pairs, seq2seq)
    per_batch: List[dict] = []
    clock: Dict[str, float] = {}

    class Clock(tf.TrainerCallback):
        def on_step_begin(self, _args, state, _control, **_kw):
            if state.global_step == warmup:
                sync(device)
                clock["start"] = time.perf_counter()

        def on_step_end(self, *_args, **_kw):
            sync(device)
            clock["end"] = time.perf_counter()

    cls, args_cls = (tf.Seq2SeqTrainer, tf.Seq2SeqTrainingArguments) if seq2seq else (tf.Trainer, tf.TrainingArguments)
    args = args_cls(
        output_dir=tempfile.mkdtemp(prefix="gpu_bench_trainer_"), per_device_train_batch_size=batch,
        max_steps=len(rows) // batch, learning_rate=training.LR, lr_scheduler_type="constant", weight_decay=0.01,
        max_grad_norm=training.CLIP, logging_steps=10_000, save_strategy="no", report_to=[],
        use_cpu=device == "cpu", dataloader_num_workers=0, train_sampling_strategy="sequential",
        bf16=run.precision == "bf16", fp16=run.precision == "fp16",
    )
    collate = tf.DataCollatorForSeq2Seq(tokenizer, model=model if seq2seq else None)

    def counting(features):
        out = collate(features)
        seen = {"tokens": 0, "padding": 0, "ctx_tokens": 0, "reply_tokens": 0}
        training.count_batch(out, seen, seq2seq)
        per_batch.append(seen)
        return out

    trainer = cls(model=model, args=args, train_dataset=rows, data_collator=counting, processing_class=tokenizer,
                  callbacks=[Clock()])
    trainer.train()
    timed = per_batch[warmup : trainer.state.global_step]
    run.steps = len(timed)
    run.ctx_tokens = sum(b["ctx_tokens"] for b in timed)
    run.reply_tokens = sum(b["reply_tokens"] for b in timed)
    run.seconds = clock["end"] - clock["start"]
    run.peak_mem_gb = peak_memory_gb(device)
    del trainer, model
    return run


# --- the table -----------------------------------------------------------------------------------


def add_mfu(run: Run, split, peaks: Dict[str, float]) -> None:
    """Useful training FLOPs per second over the matmul peak of the run's dtype."""
    flops = split.training_flops(run.ctx_tokens, run.reply_tokens)
    run.extra["tflops"] = flops / run.seconds / 1e12 if run.seconds else 0.0
    run.extra["mfu"] = flops / run.seconds / peaks[run.precision] if run.seconds else 0.0


def print_table(runs: List[Run], peaks: Dict[str, float], device: str, out=sys.stdout) -> None:
    print(f"\ndevice: {device}; matmul peak (measured): "
          + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()), file=out)
    header = (f"| {'shape':<13} | {'precision':<9} | {'side':<22} | {'steps':>5} | {'tokens/s':>10} | "
              f"{'vs Trainer':>10} | {'TFLOP/s':>8} | {'MFU':>6} | {'peak mem GB':>11} |")
    print(header, file=out)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|", file=out)
    for run in runs:
        ref = next((r for r in runs if (r.shape, r.precision, r.side) == (run.shape, run.precision, "Trainer")), None)
        ratio = f"{run.tokens_per_s / ref.tokens_per_s:.2f}x" if ref and ref.tokens_per_s else "-"
        print(f"| {run.shape:<13} | {run.precision:<9} | {run.side:<22} | {run.steps:>5} | "
              f"{run.tokens_per_s:>10,.0f} | {ratio:>10} | {run.extra.get('tflops', 0):>8.2f} | "
              f"{run.extra.get('mfu', 0):>6.1%} | {run.peak_mem_gb:>11.2f} |", file=out)


def main(argv: Optional[List[str]] = None) -> List[Run]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models of the same architectures (checks the script)")
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--save", help="also write the runs and peaks to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    import transformers as tf
    from mfu import param_split

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_bench: no CUDA device (for a check of this script on the CPU: --device cpu --tiny)")
    precisions = sorted({p for name in args.shapes for p in SHAPES[name].precisions})
    if args.device == "cpu":
        precisions = [p for p in precisions if p != "fp16"]  # ParlAI's --fp16 needs CUDA
    n = 8192 if args.device == "cuda" else (256 if args.tiny else 1024)  # a CPU: seconds, not minutes
    peaks = {p: matmul_peak(args.device, p, n) for p in precisions}
    work = tempfile.mkdtemp(prefix="gpu_bench_")
    runs: List[Run] = []
    for name in args.shapes:
        shape = SHAPES[name]
        batch = 4 if args.tiny else shape.batch
        count = batch * (args.warmup + args.steps)
        pool = training.customer_pairs("train", min(count, 2000), seed=0)
        pairs = (pool * (count // len(pool) + 1))[:count]
        model_dir = build(shape, os.path.join(work, name), [t for pair in pool for t in pair] * 3, args.tiny)
        auto = tf.AutoModelForSeq2SeqLM if shape.arch == "t5" else tf.AutoModelForCausalLM
        split = param_split(auto.from_pretrained(model_dir))
        for precision in shape.precisions:
            if precision not in precisions:
                continue
            # Ours at the GPU's default (whole batches) and with length groups.
            sides = [("Trainer", None), ("ours, whole batches", ["--hf-length-groups", "false"]),
                     ("ours, length groups", ["--hf-length-groups", "true"])]
            for side, flags in sides:
                reset_memory(args.device)
                run = Run(name, precision, side)
                if flags is None:
                    run_trainer(run, model_dir, pairs, batch, args.warmup, args.device, shape.arch == "t5")
                else:
                    run_ours(run, model_dir, pairs, batch, args.warmup, args.device, flags)
                add_mfu(run, split, peaks)
                runs.append(run)
                print(f"# {json.dumps(asdict(run))}", flush=True)
    print_table(runs, peaks, torch.cuda.get_device_name() if args.device == "cuda" else "cpu")
    if args.save:
        with open(args.save, "w") as f:
            json.dump({"peaks": peaks, "runs": [asdict(r) for r in runs], "device": args.device, "tiny": args.tiny}, f)
    return runs


if __name__ == "__main__":
    main()
