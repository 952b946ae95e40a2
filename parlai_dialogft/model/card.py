"""Model cards as the Hugging Face Hub reads them: a YAML header, then Markdown.

The header carries what the Hub indexes and filters on (licence, languages, pipeline tag,
tags, datasets, base model). ``datasets`` lists Hub ids only; corpora that are not on the
Hub are named in the card's text instead.
"""

from __future__ import annotations

import os
import re
from typing import Iterable, List, Optional

import yaml

#: Hub ids of the shipped corpora that are on the Hub (the others are cited in the text).
HUB_DATASETS = {
    "sgd": "google-research-datasets/schema_guided_dstc8",
    "kdconv": "thu-coai/kd_conv_with_kb",
}


def header(*, license: str, languages: Iterable[str], seq2seq: bool, tags: Iterable[str] = (),
           datasets: Iterable[str] = (), base_model: Optional[str] = None,
           library_name: str = "transformers") -> str:
    """The ``---``-fenced YAML block a model card starts with."""
    meta = {
        "license": license,
        "language": sorted(set(languages)),
        "library_name": library_name,
        "pipeline_tag": "text2text-generation" if seq2seq else "text-generation",
        "tags": ["parlai", "parlai_dialogft", "dialogue", "conversational", *tags],
        "datasets": list(datasets),
        "base_model": base_model,
    }
    meta = {key: value for key, value in meta.items() if value not in (None, [])}
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n\n"


def read_header(path: str) -> dict:
    """The YAML header of a card (``{}`` when the file or the header is missing)."""
    if not os.path.isfile(path):
        return {}
    text = open(path, encoding="utf-8").read()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    return (yaml.safe_load(match.group(1)) or {}) if match else {}


def languages_of(tasks: str) -> List[str]:
    """Languages of a ``-t`` value over the shipped teachers (empty when unknown)."""
    found = set()
    for task in tasks.split(","):
        name, _, args = task.partition(":")
        if name == "dialogft_customer":
            lang = dict(a.split("=", 1) for a in args.split(":") if "=" in a).get("lang", "en")
            found |= {"en", "zh"} if lang == "all" else {lang}
        elif name == "dialogft_qa":
            found.add("zh")
        elif name == "dialogft_chitchat":
            found |= {"en", "zh"}
    return sorted(found)


def export_card(opt, seq2seq: bool, source_card: Optional[str] = None, adapter_use: Optional[str] = None) -> str:
    """README.md of a ``dialogft_export`` folder: what was trained on what, and how to use it.

    ``adapter_use``: the Use section of a PEFT adapter folder (the export writes it), which
    also makes the card a ``peft`` one.
    """
    base = opt.get("hf_model") or ""
    base_meta = read_header(source_card) if source_card else {}
    task = opt.get("task") or ""
    decoding = {k: opt[k] for k in ("inference", "beam_size", "beam_block_ngram", "label_truncate") if k in opt}
    top = header(
        license=base_meta.get("license", "other"),
        languages=languages_of(task) or base_meta.get("language", []),
        seq2seq=seq2seq,
        base_model=base if base and not base.startswith(("zoo:", "/", ".")) else None,
        **(dict(library_name="peft", tags=("peft", "lora")) if adapter_use else {}),
    )
    about = EXPORT_ABOUT.format(base=base or "unknown", task=task or "unknown")
    return top + about + (adapter_use or EXPORT_USE.format(
        decoding=decoding, auto="AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM",
        # A decoder-only model returns the prompt too; the reply is what follows it.
        skip="" if seq2seq else ', inputs["input_ids"].shape[1]:',
    ))


EXPORT_ABOUT = """# A dialogue model fine-tuned with parlai_dialogft

Base model: `{base}`. Fine-tuned with `parlai train_model -m dialogft_agent -t {task}` and
exported with `parlai dialogft_export`. The licence above is the base model's where its
card names one; check the licences of the base model and of the training data.

"""

EXPORT_USE = """## Use

The tokenizer's chat template writes a conversation as the model was trained to read it
(the turns joined by ParlAI's delimiter), so `apply_chat_template`, vLLM and TGI build the
prompt ParlAI built; `generation_config.json` holds the decoding it was evaluated with
({decoding}).

```python
from transformers import {auto}, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("FOLDER")
model = {auto}.from_pretrained("FOLDER")
chat = [{{"role": "user", "content": "Hello, I need a hotel in the north."}}]
inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
output = model.generate(**inputs)[0{skip}]
print(tokenizer.decode(output, skip_special_tokens=True))
```
"""
