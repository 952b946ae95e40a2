"""LoRA adapters (via ``peft``) on the HuggingFace model inside the agent.

Adapters are injected in place (``peft.inject_adapter_in_model``): the model keeps its class
and its ``forward`` signature, so :mod:`parlai_dialogft.model.hf_model` drives it unchanged, and
ParlAI's ``-mf`` checkpoints simply hold the extra ``lora_*`` tensors. Only adapters train.
:func:`merge` folds them into the base weights, for export as a plain model;
:func:`save_adapter` writes them as the folder ``PeftModel.save_pretrained`` would.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

import torch

from parlai_dialogft.model.hf_loading import HFLoadError


def add_lora_args(group) -> None:
    group.add_argument(
        "--lora-r", type=int, default=0,
        help="rank of LoRA adapters; 0 fine-tunes every weight instead",
    )
    group.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA scaling numerator")
    group.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the LoRA input")
    group.add_argument(
        "--lora-target-modules", type=str, default="all-linear",
        help="comma-separated module names to adapt (e.g. q,v or q_proj,v_proj), or "
        "all-linear: every linear layer but the output head",
    )


def target_modules(value: str) -> "str | List[str]":
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError("--lora-target-modules is empty; name modules or use all-linear")
    return "all-linear" if names == ["all-linear"] else names


def apply(hf: torch.nn.Module, opt) -> torch.nn.Module:
    """Inject adapters when ``--lora-r`` > 0 and freeze everything else; returns ``hf``."""
    rank = opt.get("lora_r") or 0
    if rank <= 0:
        return hf
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=rank,
        lora_alpha=opt.get("lora_alpha", 16.0),
        lora_dropout=opt.get("lora_dropout", 0.05),
        target_modules=target_modules(opt.get("lora_target_modules", "all-linear")),
    )
    try:
        inject_adapter_in_model(config, hf)
    except ValueError as exc:  # peft: "Target modules ... not found in the base model"
        raise ValueError(f"--lora-target-modules: {exc}") from None
    for name, param in hf.named_parameters():
        param.requires_grad = "lora_" in name
    return hf


def fit_state_dict(model: torch.nn.Module, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``state_dict`` keyed for ``model`` when only one of them has adapters.

    A plain checkpoint (``--init-model`` from a full fine-tune) into a LoRA model: peft moved
    each adapted layer's weights under ``base_layer``, so they are renamed, and the adapters
    keep their fresh init (B = 0: the model starts exactly as the checkpoint). The other way
    round would need a merge the user should ask for, so it is refused with what to do.
    """
    own = model.state_dict()
    model_adapted = any("lora_" in key for key in own)
    checkpoint_adapted = any("lora_" in key for key in state_dict)
    if checkpoint_adapted and not model_adapted:
        raise HFLoadError(
            "the checkpoint holds LoRA adapters but --lora-r is 0: load it with the --lora-r "
            "it was trained with, or export it (adapters merged) with parlai dialogft_export "
            "and start from that folder with --hf-model"
        )
    if checkpoint_adapted or not model_adapted:
        return state_dict
    fitted = {key: value for key, value in own.items() if "lora_" in key}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        based = f"{prefix}.base_layer.{leaf}"
        fitted[based if based in own else key] = value
    return fitted


def _lora_layers(hf: torch.nn.Module):
    from peft.tuners.lora import LoraLayer

    return [(name, module) for name, module in hf.named_modules() if isinstance(module, LoraLayer)]


def has_adapters(hf: torch.nn.Module) -> bool:
    return bool(_lora_layers(hf))


def merge(hf: torch.nn.Module) -> torch.nn.Module:
    """Fold every adapter into its base layer and put the plain layer back; returns ``hf``."""
    for name, module in _lora_layers(hf):
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent: Optional[torch.nn.Module] = hf.get_submodule(parent_name) if parent_name else hf
        setattr(parent, child, module.get_base_layer())
    for param in hf.parameters():
        param.requires_grad = True
    return hf


def save_adapter(hf: torch.nn.Module, out_dir: str, base_model: str, seq2seq: bool,
                 with_embeddings: bool = False) -> None:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` as ``PeftModel.save_pretrained``
    does, so ``PeftModel.from_pretrained(base, out_dir)`` loads them. ``with_embeddings`` also
    stores the input and output embedding matrices (peft's ``save_embedding_layers``): needed
    when the tokenizer grew, as the base's rows no longer match the adapter's."""
    import copy

    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    config = copy.deepcopy(hf.peft_config["default"])
    config.base_model_name_or_path = base_model
    config.task_type = "SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM"
    config.inference_mode = True
    config.save_pretrained(out_dir)
    state = get_peft_model_state_dict(hf, save_embedding_layers=with_embeddings)
    # A PeftModel's keys start with base_model.model.; clones: tied embeddings share storage,
    # which safetensors refuses.
    tensors = {f"base_model.model.{key}": value.detach().clone().contiguous() for key, value in state.items()}
    save_file(tensors, os.path.join(out_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
