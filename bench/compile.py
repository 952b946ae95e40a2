"""Does ``torch.compile`` pay for training here? Eager vs compiled training steps, same shapes.

Training steps (forward, loss, backward, AdamW) of the t5-small-shaped model of
bench/training.py on six batch shapes of the widths length groups produce, three rounds:
the first round pays for compilation, the last shows the warm speed.

    python bench/compile.py

Run it alone: another process on the cores distorts the times.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SHAPES = [(4, 64, 16), (4, 96, 16), (3, 128, 24), (4, 160, 16), (2, 200, 24), (4, 72, 12)]  # (rows, context, reply)
ROUNDS = 3


def train_steps(model, vocab: int) -> list:
    """Seconds of each step, round after round over SHAPES."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for rows, context, reply in SHAPES * ROUNDS:
        ids, labels = torch.randint(5, vocab, (rows, context)), torch.randint(5, vocab, (rows, reply))
        start = time.perf_counter()
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return times


def main():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers as tf

    import training

    work = tempfile.mkdtemp(prefix="bench_compile_")
    texts = [context + " " + reply for context, reply in training.customer_pairs("train", 200, seed=0)]
    model_dir = training.build_model("t5", os.path.join(work, "model"), texts)
    print("| model | first round s | last round s | warm ratio |\n|---|---|---|---|")
    rows = {}
    for name in ("eager", "torch.compile(dynamic=True)"):
        torch.manual_seed(0)
        model = tf.AutoModelForSeq2SeqLM.from_pretrained(model_dir).train()
        vocab = model.config.vocab_size
        if name != "eager":
            model = torch.compile(model, dynamic=True)
        times = train_steps(model, vocab)
        rows[name] = (sum(times[: len(SHAPES)]), sum(times[-len(SHAPES) :]))
        warm = rows["eager"][1] / rows[name][1]
        print(f"| {name} | {rows[name][0]:.1f} | {rows[name][1]:.2f} | {warm:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
