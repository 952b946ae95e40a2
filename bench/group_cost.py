"""What one more forward+backward pass costs, in tokens: the constant behind --hf-length-groups.

A batch computed as groups of similar length pays less padding but one pass per group.
``parlai_dialogft.model.length_groups.CPU_GROUP_COST`` prices a pass in tokens of work; this
script measures it on this machine: it times a training step (forward, loss, backward) of
the t5-small-shaped model of bench/training.py on batches of growing size, fits
time = fixed + per_token x tokens by least squares, and prints fixed / per_token.

    python bench/group_cost.py               # t5-small shape, fp32, every core
    python bench/group_cost.py --arch gpt2

Run it alone: another process on the cores distorts the times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# (rows, context tokens, reply tokens): from one short row to a full batch of long ones.
SHAPES = [(1, 8, 4), (1, 32, 8), (2, 64, 16), (4, 64, 16), (4, 128, 16), (8, 128, 32), (16, 128, 32), (16, 256, 32)]


def step_seconds(model, rows: int, context: int, reply: int, seq2seq: bool, repeats: int) -> float:
    """Median time of forward + loss + backward on a batch of that shape (random ids, no padding)."""
    import torch

    vocab = model.config.vocab_size
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        ids = torch.randint(5, vocab, (rows, context))
        labels = torch.randint(5, vocab, (rows, reply))
        start = time.perf_counter()
        if seq2seq:
            loss = model(input_ids=ids, labels=labels).loss
        else:
            loss = model(input_ids=torch.cat([ids, labels], 1), labels=torch.cat([ids, labels], 1)).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["t5", "gpt2"], default="t5")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per shape (median)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers as tf

    import training

    work = tempfile.mkdtemp(prefix="bench_group_cost_")
    texts = [context + " " + reply for context, reply in training.customer_pairs("train", 200, seed=0)]
    model_dir = training.build_model(args.arch, os.path.join(work, "model"), texts)
    auto = tf.AutoModelForSeq2SeqLM if args.arch == "t5" else tf.AutoModelForCausalLM
    model = auto.from_pretrained(model_dir)
    model.train()
    points = []
    print("| rows | context | reply | tokens | seconds |\n|---|---|---|---|---|")
    for rows, context, reply in SHAPES:
        seconds = step_seconds(model, rows, context, reply, args.arch == "t5", args.repeats)
        tokens = rows * (context + reply)
        points.append((tokens, seconds))
        print(f"| {rows} | {context} | {reply} | {tokens} | {seconds:.3f} |", flush=True)
    per_token, fixed = statistics.linear_regression([t for t, _ in points], [s for _, s in points])
    print(f"\nfixed cost per pass {fixed * 1000:.0f} ms, per token {per_token * 1000:.2f} ms: "
          f"one pass costs as much as {fixed / per_token:.0f} tokens")


if __name__ == "__main__":
    main()
