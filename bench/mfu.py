"""Model FLOPs utilisation: useful training FLOPs per second over the CPU's measured peak.

The numerator counts the work any implementation must do on the real (non-padding)
tokens, the same for every trainer in a table, so padding, recomputation and projections
of positions that need no logits count as lost time, not as work:

    training FLOPs = 6 · (N_enc · T_ctx + N_dec · T_reply + N_head · T_reply)    seq2seq
    training FLOPs = 6 · (N_blocks · (T_ctx + T_reply) + N_head · T_reply)         decoder-only

N_enc, N_dec, N_blocks: the weights of the encoder, decoder or transformer blocks, without the
token and position embeddings (a lookup, not a matmul); N_head = d_model · vocabulary, the
output projection, which only the reply tokens need (their logits feed the loss). 6 = 2
(multiply-add) for the forward pass plus 4 for the backward (gradients of inputs and of
weights). Attention's own matmuls (QKᵀ and AV: 12 · layers · d_model · T per token for a
context of T) are left out, as in the usual 6·N·T count; at this bench's lengths
(about 100 tokens a row) they add a few per cent.

The denominator is measured, not taken from a data sheet: the best of several fp32
``torch.matmul`` runs of two square matrices at the thread count of the run.

    python bench/mfu.py                 # the peak at torch's default threads
"""

from __future__ import annotations

import time
from dataclasses import dataclass


def matmul_peak_flops(n: int = 2048, repeats: int = 5, threads: int | None = None) -> float:
    """Best fp32 FLOP/s of an ``n`` x ``n`` by ``n`` x ``n`` ``torch.matmul`` (2·n³ FLOPs each)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


@dataclass(frozen=True)
class ParamSplit:
    """Weights that each token kind passes through (see the module docstring)."""

    seq2seq: bool
    body_ctx: int  # N_enc (seq2seq) or N_blocks (decoder-only): weights every context token passes
    body_reply: int  # N_dec (seq2seq) or N_blocks (decoder-only): weights every reply token passes
    head: int  # d_model · vocabulary: the output projection, reply tokens only

    def training_flops(self, ctx_tokens: int, reply_tokens: int) -> float:
        return 6.0 * (self.body_ctx * ctx_tokens + (self.body_reply + self.head) * reply_tokens)


def param_split(model) -> ParamSplit:
    """The split for a transformers model (T5/BART-like seq2seq or a decoder-only LM)."""
    embeddings = {id(p) for m in model.modules() if m.__class__.__name__ == "Embedding" for p in m.parameters()}

    def weights(module) -> int:
        return sum(p.numel() for p in module.parameters() if id(p) not in embeddings)

    head = model.get_output_embeddings().weight.numel()
    if model.config.is_encoder_decoder:
        return ParamSplit(True, weights(model.get_encoder()), weights(model.get_decoder()), head)
    blocks = weights(model.get_decoder() if hasattr(model, "get_decoder") else model.base_model)
    return ParamSplit(False, blocks, blocks, head)


if __name__ == "__main__":
    import torch

    print(f"fp32 matmul peak, {torch.get_num_threads()} threads: {matmul_peak_flops() / 1e9:.1f} GFLOP/s")
