"""A ParlAI ``-mf`` model of dialogft_agent as a plain ``save_pretrained`` folder.

The folder holds the model (LoRA adapters merged), its tokenizer (with the pad token the
agent may have added, and a chat template that writes the context as the agent does), a
generation config with the agent's pad/EOS/decoder-start ids and decoding settings
(:func:`decoding` says which carry over) and a model card with the Hub's YAML header, so
``transformers`` alone loads it and ``model.generate`` replies as the agent does.

With ``--export-adapter true`` a model trained with ``--lora-r`` > 0 is written as a PEFT
adapter folder instead (``adapter_config.json`` and ``adapter_model.safetensors``, what
``PeftModel.save_pretrained`` writes), beside the same tokenizer, generation config and card:

    parlai dialogft_export -mf /tmp/m/model --out /tmp/m/adapter --export-adapter true

Its ``base_model_name_or_path`` is the ``--hf-model`` it was trained from: a hub id as is, a
local folder as an absolute path, and a ``zoo:dialogft/NAME`` as that name, which means the
same on every machine (a resolved path would not) but which only parlai_dialogft resolves:
the card loads that base from the folder shipped in the package and passes it to
``PeftModel.from_pretrained`` explicitly. When the agent added a pad token and so grew the
embeddings, the base as published no longer fits the adapter: the adapter then holds both
embedding matrices (peft's ``save_embedding_layers``) and the card resizes the base to
their row count before loading it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

from parlai.utils import logging

from parlai_dialogft.utils.errors import UserError

AGENT_NAMES = ("dialogft_agent",)


class ExportError(UserError):
    """What stops an export; the message names the file or flag."""


def _check_model_file(model_file: str) -> Dict[str, Any]:
    """The model's options, once it is a dialogft_agent model."""
    if not model_file:
        raise ExportError("-mf/--model-file is required: the model to export")
    if not os.path.isfile(model_file):
        raise ExportError(f"-mf {model_file}: no such model file")
    opt_file = model_file + ".opt"
    if not os.path.isfile(opt_file):
        raise ExportError(f"-mf {model_file}: {opt_file} is missing, so this is not a ParlAI model")
    with open(opt_file, encoding="utf-8") as f:
        opt = json.load(f)
    trained_with = opt.get("model")
    if trained_with not in AGENT_NAMES:
        raise ExportError(
            f"-mf {model_file} was trained with -m {trained_with}, not dialogft_agent; only "
            "dialogft_agent models hold a HuggingFace model to export"
        )
    return opt


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


def adapter_base(hf_model: str) -> str:
    """``base_model_name_or_path`` of an adapter trained from ``--hf-model hf_model``."""
    if not hf_model.startswith("zoo:") and os.path.isdir(hf_model):
        return os.path.abspath(hf_model)
    return hf_model


def _embeddings_grew(agent, hf) -> bool:
    """Whether the agent resized the embeddings of its ``--hf-model`` (an added pad)."""
    from parlai_dialogft.model import hf_loading
    from parlai_dialogft.model.hf_dict import ADDED_PAD_TOKEN

    rows = hf.get_input_embeddings().num_embeddings
    try:
        base = hf_loading.load_config(hf_loading.resolve_source(
            {"hf_model": agent.opt.get("hf_model"), "datapath": agent.opt.get("datapath")}))
        return rows != base.get_text_config().vocab_size
    except hf_loading.HFLoadError as exc:  # the base is out of reach (offline): assume the worst
        grew = agent.dict.hf_tokenizer.pad_token == ADDED_PAD_TOKEN
        logging.warning(f"cannot compare with the base's vocabulary ({exc}); embeddings saved: {grew}")
        return grew


ADAPTER_USE = """## Use

This folder is a LoRA adapter for `peft`, not a full model: load the base model, then the
adapter on it. {base_note}The tokenizer's chat template writes a conversation as the model
was trained to read it, and `generation_config.json` holds the decoding it was evaluated
with; `generate` follows it when given it, as below.

```python
from peft import PeftModel
from transformers import {auto}, AutoTokenizer, GenerationConfig
{imports}
tokenizer = AutoTokenizer.from_pretrained("FOLDER")
base = {auto}.from_pretrained({base_folder})
{resize}model = PeftModel.from_pretrained(base, "FOLDER").eval()
chat = [{{"role": "user", "content": "Hello, I need a hotel in the north."}}]
inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
output = model.generate(**inputs, generation_config=GenerationConfig.from_pretrained("FOLDER"))[0{skip}]
print(tokenizer.decode(output, skip_special_tokens=True))
```
"""


def adapter_use(base: str, seq2seq: bool, resized_to: int = 0) -> str:
    """The Use section of an adapter folder's card: load the base, then the adapter on it."""
    from parlai_dialogft.zoo.dialogft.build import PREFIX

    base_note, imports, base_folder = "", "", json.dumps(base)
    if base.startswith(PREFIX):
        base_note = (f"`adapter_config.json` names the base `{base}`, which only parlai_dialogft "
                     "resolves: its folder ships with the package, so pass it to `PeftModel` yourself. ")
        imports = "from parlai_dialogft.zoo.dialogft.build import SHIPPED\n"
        base_folder = f"SHIPPED / {json.dumps(base[len(PREFIX):])}"
    resize = ""
    if resized_to:
        base_note += (f"Training added a pad token, so the base's embeddings grow to {resized_to} "
                      "rows first; the adapter holds the whole embedding matrices, new rows included. ")
        resize = f"base.resize_token_embeddings({resized_to}, mean_resizing=False)  # rows the adapter holds\n"
    return ADAPTER_USE.format(
        base_note=base_note, imports=imports, base_folder=base_folder, resize=resize,
        auto="AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM",
        skip="" if seq2seq else ', inputs["input_ids"].shape[1]:',
    )


def export(model_file: str, out_dir: str, overwrite: bool = False, adapter: bool = False) -> str:
    """Write ``out_dir`` (a PEFT adapter folder when ``adapter``); returns it."""
    opt = _check_model_file(model_file)
    if adapter and (opt.get("lora_r") or 0) <= 0:
        raise ExportError(
            f"--export-adapter true: -mf {model_file} was trained without LoRA adapters "
            "(--lora-r 0); export it without --export-adapter"
        )
    _check_out_dir(out_dir, overwrite)
    from parlai.core.agents import create_agent_from_model_file

    from parlai_dialogft.model import card, chat_format, lora

    agent = create_agent_from_model_file(model_file)
    hf = agent.model.hf
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
    source_card = os.path.join(agent.dict.source, "README.md")
    os.makedirs(out_dir, exist_ok=True)
    if adapter:
        base = adapter_base(agent.opt["hf_model"])
        grew = _embeddings_grew(agent, hf)
        lora.save_adapter(hf, out_dir, base, agent.dict.is_seq2seq, with_embeddings=grew)
        generation.save_pretrained(out_dir)
        rows = hf.get_input_embeddings().num_embeddings if grew else 0
        use = adapter_use(base, agent.dict.is_seq2seq, resized_to=rows)
        text = card.export_card(agent.opt, agent.dict.is_seq2seq, source_card, adapter_use=use)
    else:
        text = card.export_card(agent.opt, agent.dict.is_seq2seq, source_card)
        if lora.has_adapters(hf):
            lora.merge(hf)
        hf.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return out_dir
