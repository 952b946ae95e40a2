"""Generation speed: ParlAI search through dialogft_agent vs ``model.generate``.

Same model (random init from a t5-small- or GPT-2-small-shaped config), same contexts from
dialogft_customer's test split, same batch, beam size and length. Every reply is forced to
exactly ``--new-tokens`` tokens (min = max length on both sides), so tokens/s compare equal
work. Prints one table row per setting and the ratio ours / HF measured in this run.
For greedy search it also times ``TorchGeneratorAgent._generate`` on the same agent: ParlAI's
search as the agent ran it before parlai_dialogft/model/fast_search.py (one search object
advanced per example and step; the contexts encoded as one padded batch).

    python bench/generation.py                      # t5-small shape, batch 1, 16 and 64, greedy and beam 5
    python bench/generation.py --arch gpt2 --batch 16 --beam 5

Run it alone: two torch processes on two cores distort each other's timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch


def build_model(arch: str, out: str) -> str:
    import transformers as tf

    from parlai_dialogft.model.tiny import train_tokenizer

    texts = [f"hello {i} how can I help you with booking {i % 7}" for i in range(2000)]
    tok = train_tokenizer(texts, vocab_size=8000, with_pad=arch == "t5")
    if arch == "t5":  # t5-small shape (60M parameters with a 32k vocabulary; 8k here)
        config = tf.T5Config(vocab_size=len(tok), d_model=512, d_ff=2048, d_kv=64, num_heads=8,
                             num_layers=6, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
        model = tf.AutoModelForSeq2SeqLM.from_config(config)
    else:  # GPT-2 small shape
        config = tf.GPT2Config(vocab_size=len(tok), n_embd=768, n_layer=12, n_head=12,
                               bos_token_id=3, eos_token_id=1)
        model = tf.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def contexts(n: int):
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_kwargs(task="dialogft_customer", datatype="test")
    teacher = create_task_agent_from_taskname(opt)[0]
    out = []
    while len(out) < n:
        out.append(teacher.act()["text"])
    return out


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=["t5", "gpt2"], default="t5")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--beam", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from tests.support.agents import make_agent
    from parlai.core.message import Message
    from parlai.core.torch_generator_agent import TorchGeneratorAgent

    folder = build_model(args.arch, tempfile.mkdtemp(prefix="bench_gen_"))
    texts = contexts(max(args.batch))
    print(f"{args.arch}, {args.new_tokens} new tokens per reply, {args.threads} torch threads, "
          f"median of {args.repeats} after a warm-up", flush=True)
    print("| model | batch | beam | ParlAI+dialogft tok/s | model.generate tok/s | ratio | ParlAI's _generate tok/s |")
    print("|---|---|---|---|---|---|---|")
    for beam in args.beam:
        agent = make_agent(folder, inference="beam" if beam > 1 else "greedy", beam_size=beam,
                           beam_min_length=args.new_tokens, label_truncate=args.new_tokens,
                           beam_length_penalty=0.0)
        agent.model.eval()
        for bsz in args.batch:
            obs = [agent.clone().observe(Message({"text": t, "episode_done": True})) for t in texts[:bsz]]
            batch = agent.batchify(obs)
            mask = batch.text_vec.ne(agent.NULL_IDX)

            def ours():
                with torch.no_grad():
                    preds, _ = agent._generate(batch, beam, args.new_tokens)
                return preds

            # Beam settings as ParlAI's (the agent's beam parity tests use the same): no length
            # penalty, and the search ends once its best hypothesis has ended.
            beam_kwargs = dict(length_penalty=0.0, early_stopping="never") if beam > 1 else {}

            def theirs():
                with torch.no_grad():
                    return agent.model.hf.generate(
                        input_ids=batch.text_vec, attention_mask=mask, num_beams=beam,
                        do_sample=False, max_new_tokens=args.new_tokens,
                        min_new_tokens=args.new_tokens, eos_token_id=agent.END_IDX, pad_token_id=agent.NULL_IDX,
                        **beam_kwargs)

            def parlai_loop():
                with torch.no_grad():
                    return TorchGeneratorAgent._generate(agent, batch, beam, args.new_tokens)

            tokens = bsz * args.new_tokens
            ours_s, theirs_s = timed(ours, args.repeats), timed(theirs, args.repeats)
            loop = f"{tokens / timed(parlai_loop, args.repeats):.0f}" if beam == 1 else "not timed"
            print(f"| {args.arch} | {bsz} | {beam} | {tokens / ours_s:.0f} | {tokens / theirs_s:.0f} "
                  f"| {theirs_s / ours_s:.2f}x | {loop} |", flush=True)


if __name__ == "__main__":
    main()
