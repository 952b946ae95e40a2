"""Where a model comes from, and loading it with clear errors.

``--hf-model`` takes a hub id (``t5-small``, ``Qwen/Qwen2.5-0.5B-Instruct``), a local
``save_pretrained`` folder, or a ParlAI zoo path (``zoo:dialogft/...``). Once a ParlAI model
file exists, its own ``MODEL.hf/`` folder (config + tokenizer, written by the agent's
``save``) wins, so a saved model reloads without the original source and without fetching
pretrained weights that the checkpoint overwrites anyway.
"""

from __future__ import annotations

import os
from typing import Any

from parlai_dialogft.utils.errors import UserError


class HFLoadError(UserError):
    """A model, tokenizer or option the agent cannot use; the message says what to change."""


SEQ2SEQ = "seq2seq"
CAUSAL = "causal"


def hf_dir_for(model_file: str) -> str:
    return model_file + ".hf"


def resolve_source(opt) -> str:
    model_file = opt.get("model_file")
    if model_file and os.path.isdir(hf_dir_for(model_file)):
        return hf_dir_for(model_file)
    if model_file and os.path.isdir(model_file):  # -mf zoo:dialogft/NAME: the folder is the model
        return model_file
    source = opt.get("hf_model")
    if not source:
        raise HFLoadError("no model given: set --hf-model to a hub id or a local folder")
    if source.startswith("zoo:"):
        return _zoo_folder(opt["datapath"], source)
    return source


def _zoo_folder(datapath: str, source: str) -> str:
    from parlai.core.build_data import modelzoo_path

    from parlai_dialogft.zoo.dialogft import build as zoo

    problem = zoo.unknown_name(source)
    if problem:
        raise HFLoadError(f"--hf-model {problem}")
    return modelzoo_path(datapath, source)


def _explain(source: str, what: str, exc: Exception) -> HFLoadError:
    # Hub ids look like "org/name"; a path is absolute, relative-dotted or exists.
    if source.startswith((os.path.sep, ".", "~")) or os.path.exists(source):
        if not os.path.exists(source):
            return HFLoadError(f"--hf-model {source!r}: no such folder")
        return HFLoadError(f"--hf-model {source!r}: cannot load the {what} from it ({exc})")
    return HFLoadError(
        f"--hf-model {source!r}: cannot load the {what}: not a local folder, and the hub "
        f"did not provide it ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    )


def load_config(source: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except Exception as exc:  # transformers raises OSError, ValueError, HF hub errors
        raise _explain(source, "config", exc) from exc


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except Exception as exc:
        raise _explain(source, "tokenizer", exc) from exc


def is_seq2seq(config) -> bool:
    return model_kind(config) == SEQ2SEQ


def model_kind(config) -> str:
    """seq2seq or causal, from the config alone (no weights loaded)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if type(config) in AutoModelForSeq2SeqLM._model_mapping:
        return SEQ2SEQ
    if type(config) in AutoModelForCausalLM._model_mapping:
        return CAUSAL
    raise HFLoadError(
        f"model type {config.model_type!r} is neither a seq2seq nor a causal language "
        "model in transformers, so it cannot generate replies; dialogft_agent supports "
        "AutoModelForSeq2SeqLM (T5, BART, mT5, ...) and AutoModelForCausalLM (GPT-2, "
        "Llama, Qwen2, ...) models"
    )


def load_model(source: str, config, pretrained: bool, **kwargs: Any):
    """The transformers model: pretrained weights, or random init when a ParlAI checkpoint
    will provide them."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto = AutoModelForSeq2SeqLM if is_seq2seq(config) else AutoModelForCausalLM
    if not pretrained:
        return auto.from_config(config, **kwargs)
    try:
        return auto.from_pretrained(source, config=config, **kwargs)
    except Exception as exc:
        raise _explain(source, "model weights", exc) from exc
