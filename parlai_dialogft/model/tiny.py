"""Tiny HuggingFace models built locally: a tokenizer trained on text we have, a random-init
model from a config, written as a normal ``save_pretrained`` folder.

Two users: the tests (T5, BART, GPT-2, Llama and Qwen2 shapes, seconds to build) and the
pretraining recipe of ``zoo:dialogft/bilingual_t5``, which starts from one. Nothing is
downloaded, so both work offline.
"""

from __future__ import annotations

import os
from typing import Iterable

PAD, EOS, UNK, BOS = "<pad>", "</s>", "<unk>", "<s>"
ARCHS = ("t5", "bart", "gpt2", "llama", "qwen2")


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1000, with_pad: bool = True):
    """A byte-level BPE tokenizer (exact round trip for English and Chinese alike).

    ids: <pad>=0, </s>=1, <unk>=2, <s>=3. With ``with_pad`` (the seq2seq shape) it also
    ends every encoded text with </s>, as T5's and BART's tokenizers do; without, the pad
    token is unset and nothing is added, as GPT-2 and Llama tokenizers ship.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, UNK, BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if with_pad:
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, 1)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        unk_token=UNK,
        bos_token=BOS,
        pad_token=PAD if with_pad else None,
    )


def tiny_config(arch: str, vocab_size: int, d_model: int = 64, layers: int = 2):
    """A config of ``arch`` sized for CPU tests; ids match :func:`train_tokenizer`."""
    import transformers as tf

    heads = 4
    common = dict(vocab_size=vocab_size, pad_token_id=0, eos_token_id=1, bos_token_id=3)
    if arch == "t5":
        return tf.T5Config(
            d_model=d_model, d_ff=2 * d_model, d_kv=d_model // heads, num_heads=heads,
            num_layers=layers, num_decoder_layers=layers, decoder_start_token_id=0,
            dropout_rate=0.0, **common,
        )
    if arch == "bart":
        # BART starts decoding from </s>, which is also its EOS: the case where ParlAI's
        # START placeholder must differ from the real decoder start.
        return tf.BartConfig(
            d_model=d_model, encoder_layers=layers, decoder_layers=layers,
            encoder_attention_heads=heads, decoder_attention_heads=heads,
            encoder_ffn_dim=2 * d_model, decoder_ffn_dim=2 * d_model,
            max_position_embeddings=512, decoder_start_token_id=1, forced_bos_token_id=None,
            forced_eos_token_id=None, dropout=0.0, attention_dropout=0.0, **common,
        )
    if arch == "gpt2":
        return tf.GPT2Config(
            n_embd=d_model, n_layer=layers, n_head=heads, n_positions=512,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )
    if arch in ("llama", "qwen2"):
        cls = tf.LlamaConfig if arch == "llama" else tf.Qwen2Config
        return cls(
            hidden_size=d_model, intermediate_size=2 * d_model, num_hidden_layers=layers,
            num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=512,
            tie_word_embeddings=False, **common,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; pick one of {', '.join(ARCHS)}")


def build_tiny_model(
    out_dir: str,
    arch: str,
    texts: Iterable[str],
    vocab_size: int = 1000,
    d_model: int = 64,
    layers: int = 2,
    seed: int = 0,
) -> str:
    """Write tokenizer + random-init model of ``arch`` to ``out_dir``; returns ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    seq2seq = arch in ("t5", "bart")
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, with_pad=seq2seq)
    config = tiny_config(arch, len(tokenizer), d_model=d_model, layers=layers)
    torch.manual_seed(seed)
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_config(config)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
