"""The ``zoo:dialogft/...`` models, shipped in the package: nothing is downloaded.

Each entry is both things a ParlAI or Hugging Face user expects of a zoo name:

* a **Hugging Face folder** ``DATAPATH/models/dialogft/NAME/`` (config, tokenizer,
  safetensors weights, model card): ``--hf-model zoo:dialogft/bilingual_t5`` fine-tunes it
  and ``transformers`` loads it directly;
* a **ParlAI model file**: ``NAME.opt`` beside the folder names ``dialogft_agent`` and the
  decoding the model was evaluated with, so ``parlai interactive -mf zoo:dialogft/customer_t5``
  (and ``eval_model``, ``dialogft_serve``) works. The agent takes a folder given as the
  model file for what it is: the weights are the folder's, there is no ParlAI checkpoint.

The copy is made once and versioned with ParlAI's build marker.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional

import parlai.core.build_data as build_data

#: Decoding that reads well for a small model: beam search with trigram blocking.
CHAT_DECODING: Dict[str, Any] = {"inference": "beam", "beam_size": 4, "beam_block_ngram": 3}

#: name -> the options its ParlAI model file carries (besides the agent and the weights).
MODELS: Dict[str, Dict[str, Any]] = {
    "bilingual_t5": dict(CHAT_DECODING),
    "customer_t5": dict(CHAT_DECODING),
}
VERSION = "v4"  # bump when the shipped weights or opt files change
SHIPPED = Path(__file__).resolve().parent
PREFIX = "zoo:dialogft/"


def unknown_name(source: str) -> Optional[str]:
    """The one-line complaint for ``zoo:dialogft/NAME`` when NAME is not in the zoo."""
    if not source.startswith(PREFIX):
        return None
    name = source[len(PREFIX):].split("/")[0]
    if name in MODELS:
        return None
    return f"{source}: no such model; the zoo has {', '.join(PREFIX + n for n in MODELS)}"


def _opt(name: str) -> Dict[str, Any]:
    return {"model": "dialogft_agent", "hf_model": PREFIX + name, **MODELS[name]}


def download(datapath: str) -> None:
    # ParlAI calls this for every zoo:dialogft/... path; installing all (two, ~30 MB) is cheap.
    for name in MODELS:
        out = os.path.join(datapath, "models", "dialogft", name)
        if build_data.built(out, VERSION):
            continue
        source = SHIPPED / name
        if not (source / "model.safetensors").is_file():
            raise FileNotFoundError(f"{source}/model.safetensors is missing; is the package complete?")
        if os.path.isdir(out):
            build_data.remove_dir(out)
        shutil.copytree(source, out)
        with open(out + ".opt", "w", encoding="utf-8") as f:
            json.dump(_opt(name), f, indent=2)
        with open(out + ".dict", "w", encoding="utf-8") as f:  # ParlAI warns when absent
            json.dump({"tokenizer": f"in the folder {name}/ beside this file"}, f)
        build_data.mark_done(out, VERSION)
