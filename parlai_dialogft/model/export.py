"""A ParlAI ``-mf`` model of dialogft_agent as a plain ``save_pretrained`` folder.

The folder holds the model (LoRA adapters merged), its tokenizer (with the pad token the
agent may have added, and a chat template that writes the context as the agent does), a
generation config with the agent's pad/EOS/decoder-start ids and decoding settings
(:func:`decoding` says which carry over) and a model card with the Hub's YAML header, so
``transformers`` alone loads it and ``model.generate`` replies as the agent does.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

from parlai.utils import logging

AGENT_NAMES = ("dialogft_agent",)


class ExportError(ValueError):
    """What stops an export; the message names the file or flag."""


def _check_model_file(model_file: str) -> None:
    if not model_file:
        raise ExportError("-mf/--model-file is required: the model to export")
    if not os.path.isfile(model_file):
        raise ExportError(f"-mf {model_file}: no such model file")
    opt_file = model_file + ".opt"
    if not os.path.isfile(opt_file):
        raise ExportError(f"-mf {model_file}: {opt_file} is missing, so this is not a ParlAI model")
    with open(opt_file, encoding="utf-8") as f:
        trained_with = json.load(f).get("model")
    if trained_with not in AGENT_NAMES:
        raise ExportError(
            f"-mf {model_file} was trained with -m {trained_with}, not dialogft_agent; only "
            "dialogft_agent models hold a HuggingFace model to export"
        )


def _check_out_dir(out_dir: str, overwrite: bool) -> None:
    if not out_dir:
        raise ExportError("--out is required: the folder to write")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ExportError(f"--out {out_dir} exists and is not empty; pass --overwrite true to replace it")


def decoding(opt, seq2seq: bool = True) -> Dict[str, Any]:
    """The agent's decoding flags as ``GenerationConfig`` fields, replacing whatever the base
    model shipped (e.g. 4 beams), so plain ``generate`` searches the way the agent does.

    What carries over exactly (tests/test_export.py checks greedy and beam replies):

    * ``--inference greedy`` and ``beam`` with ``--beam-size``: ParlAI ends a beam search
      once its best hypothesis has ended, which is ``early_stopping="never"``;
    * ``--beam-min-length`` as ``min_new_tokens`` (ParlAI's greedy search ignores it);
    * ``--beam-block-ngram`` as ``no_repeat_ngram_size`` for seq2seq models, and
      ``--beam-context-block-ngram`` as ``encoder_no_repeat_ngram_size``;
    * ``--label-truncate`` as ``max_new_tokens``.

    What does not: ``--beam-length-penalty`` keeps its exponent, but ParlAI divides a
    hypothesis' score by ((1 + length) / 6) ** penalty and transformers by
    length ** penalty, so with a penalty other than 0 beams can rank differently. For
    decoder-only models ``no_repeat_ngram_size`` also counts the prompt's n-grams (ParlAI's
    block looks at the reply only), and context blocking has no equivalent. Sampling
    follows the same temperature, top-k and top-p with other random draws. When a reply
    reaches the length limit, ParlAI ends it with EOS; ``generate`` just stops.
    """
    inference = opt.get("inference", "greedy")
    # Sampling knobs at transformers' neutral values unless the agent samples (a base
    # model's temperature=0.7 beside do_sample=False fails transformers' validation).
    fields: Dict[str, Any] = dict(
        num_beams=1, do_sample=False, temperature=1.0, top_k=50, top_p=1.0,
        max_new_tokens=opt.get("label_truncate") or 256,
    )
    if inference == "beam":
        fields.update(
            num_beams=opt.get("beam_size", 1), early_stopping="never",
            min_new_tokens=opt.get("beam_min_length", 1) or 0,
            length_penalty=opt.get("beam_length_penalty", 0.65),
        )
    elif inference == "topk":
        fields.update(do_sample=True, temperature=opt.get("temperature", 1.0), top_k=opt.get("topk", 10))
    elif inference == "nucleus":
        fields.update(do_sample=True, temperature=opt.get("temperature", 1.0), top_k=0, top_p=opt.get("topp", 0.9))
    elif inference != "greedy":
        logging.warning(f"--inference {inference} has no transformers equivalent: the export decodes greedily")
    block = opt.get("beam_block_ngram", -1) or -1
    if block > 0:
        fields["no_repeat_ngram_size"] = block
    context_block = opt.get("beam_context_block_ngram", -1) or -1
    if context_block > 0:
        if seq2seq:
            fields["encoder_no_repeat_ngram_size"] = context_block
        else:
            logging.warning("--beam-context-block-ngram has no transformers equivalent for decoder-only models")
    return fields


def export(model_file: str, out_dir: str, overwrite: bool = False) -> str:
    """Write ``out_dir``; returns it."""
    _check_model_file(model_file)
    _check_out_dir(out_dir, overwrite)
    from parlai.core.agents import create_agent_from_model_file

    from parlai_dialogft.model import card, chat_format, lora

    agent = create_agent_from_model_file(model_file)
    hf = agent.model.hf
    if lora.has_adapters(hf):
        lora.merge(hf)
    generation = hf.generation_config
    generation.pad_token_id = agent.NULL_IDX
    generation.eos_token_id = agent.END_IDX
    if agent.dict.is_seq2seq:
        generation.decoder_start_token_id = agent.dict.decoder_start_id
    # The agent never forces a first token; a base model's (BART: BOS) would change replies.
    generation.forced_bos_token_id = None
    generation.update(**decoding(agent.opt, agent.dict.is_seq2seq))
    tokenizer = agent.dict.hf_tokenizer
    if not agent.opt.get("hf_chat_template"):  # trained in the model's own template: keep it
        tokenizer.chat_template = chat_format.training_template(
            agent.opt.get("delimiter", "\n"), ends_with_eos=bool(agent.dict.text_suffix)
        )
    os.makedirs(out_dir, exist_ok=True)
    hf.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(card.export_card(agent.opt, agent.dict.is_seq2seq, os.path.join(agent.dict.source, "README.md")))
    return out_dir
