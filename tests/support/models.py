"""The tiny models the tests run on: the sentences their tokenizers learn (``TEXTS``), and
models trained to answer each sentence with the next one (``train_next_sentence``).

A random-init tiny model (tied embeddings, near-uniform logits) answers every context with
the same few tokens, so "batched equals alone" or "ours equals ``model.generate``" could hold
while decoding mixes up rows or positions. The context models are trained with plain
transformers, not with the agent under test, on the distinct sentences of ``TEXTS`` in
order: sentence i is the context, sentence i + 1 the reply (EOS included), so that different
contexts get different replies. conftest's ``tiny_models`` and ``context_models`` fixtures
build both once per session.
"""

from __future__ import annotations

from typing import List, Tuple

TEXTS = [
    "hello , how can I help you today ?",
    "I would like to book a table for two at seven .",
    "sure , which restaurant would you like ?",
    "can you find me a cheap hotel in the centre ?",
    "thanks , that is all I need .",
    "你好，请问有什么可以帮您？",
    "我想订一张明天去北京的火车票。",
    "好的，请问您几点出发？",
] * 20
STEPS = 200


def train_next_sentence(folder: str, out: str, sentences: List[str], steps: int = STEPS, seed: int = 0) -> str:
    """Train the model in ``folder`` to reply to ``sentences[i]`` with ``sentences[i + 1]``; save to ``out``."""
    return train_pairs(folder, out, list(zip(sentences, sentences[1:] + sentences[:1])), steps, seed)


def train_pairs(folder: str, out: str, pairs: List[Tuple[str, str]], steps: int = STEPS, seed: int = 0) -> str:
    """Train the model in ``folder`` to write each pair's second text after its first, EOS
    included (every pair in one batch, AdamW at 3e-3); save to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    seq2seq = AutoConfig.from_pretrained(folder).is_encoder_decoder
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(folder)
    eos = tok.eos_token_id
    contexts = [tok(context)["input_ids"] for context, _ in pairs]
    replies = [tok(reply, add_special_tokens=False)["input_ids"] + [eos] for _, reply in pairs]

    def padded(rows, value):
        width = max(map(len, rows))
        return torch.tensor([row + [value] * (width - len(row)) for row in rows])

    if seq2seq:
        inputs = dict(input_ids=padded(contexts, tok.pad_token_id),
                      attention_mask=padded([[1] * len(c) for c in contexts], 0),
                      labels=padded(replies, -100))
    else:  # the reply continues the context; padding on the right, out of the loss
        rows = [c + r for c, r in zip(contexts, replies)]
        inputs = dict(input_ids=padded(rows, eos), attention_mask=padded([[1] * len(r) for r in rows], 0),
                      labels=padded([[-100] * len(c) + r for c, r in zip(contexts, replies)], -100))

    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
