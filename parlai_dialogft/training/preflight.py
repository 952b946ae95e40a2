"""Checks that run before training starts, so a run fails in its first seconds, not at
its first checkpoint hours later: the model folder, the free disk space, and option
combinations that cannot work. Each failure is a :class:`UserError` naming the flag or
the path to change.
"""

from __future__ import annotations

import os
import shutil

from parlai_dialogft.utils.errors import UserError

#: A checkpoint holds the weights and AdamW's two moment buffers (three copies of the
#: weights); a save writes the new one beside the previous one before replacing it.
CHECKPOINT_COPIES = 3


def check_model_dir(model_file) -> None:
    """The folder of ``-mf`` exists (created if needed) and is writable; ParlAI creates none."""
    if not model_file:
        return
    folder = os.path.dirname(os.path.abspath(model_file))
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = folder
        while not os.path.exists(blocking):
            blocking = os.path.dirname(blocking)
        raise UserError(f"-mf {model_file}: {blocking} is a file, not a folder") from None
    except OSError as exc:
        raise UserError(f"-mf {model_file}: cannot create the folder {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"-mf {model_file}: the folder {folder} is not writable")


def check_model_folders(opt, training: bool) -> None:
    """A folder given where ParlAI wants a checkpoint file: a Hugging Face folder, such as a
    ``zoo:dialogft/...`` entry. It is a model file to chat with or evaluate (the agent reads
    the weights from it), but no checkpoint to resume or to write over."""
    init_model = opt.get("init_model")
    if init_model and os.path.isdir(init_model):
        raise UserError(
            f"--init-model {init_model}: a folder, not a ParlAI checkpoint; to start from the "
            f"model in it, use --hf-model {init_model}"
        )
    model_file = opt.get("model_file")
    if training and model_file and os.path.isdir(model_file):
        raise UserError(
            f"-mf {model_file}: a folder (a zoo model or Hugging Face folder) cannot be trained "
            f"in place; to fine-tune it: --hf-model {model_file} -mf SOMEWHERE/model"
        )


def checkpoint_bytes(model) -> int:
    """Bytes one more checkpoint of ``model`` needs on disk (estimate)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return CHECKPOINT_COPIES * weights


def check_free_space(model_file, needed: int) -> None:
    """Enough free space in the folder of ``-mf`` to write a checkpoint."""
    if not model_file:
        return
    folder = os.path.dirname(os.path.abspath(model_file))
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise UserError(
            f"-mf {model_file}: {folder} has {_size(free)} free, and a checkpoint of this "
            f"model needs about {_size(needed)} (weights and optimizer state); free some "
            "space or point -mf at another disk"
        )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def check_options(opt) -> None:
    """Option combinations the agent cannot honour, caught before any model loads."""
    beam_size = opt.get("beam_size")
    if beam_size is not None and beam_size < 1:
        raise UserError(f"--beam-size {beam_size}: must be 1 or more (1 is greedy decoding)")
    topk = opt.get("topk")
    if opt.get("inference") == "topk" and topk is not None and topk < 1:
        raise UserError(f"--topk {topk}: must be 1 or more")
    topp = opt.get("topp")
    if opt.get("inference") == "nucleus" and topp is not None and not 0 < topp <= 1:
        raise UserError(f"--topp {topp}: must be in (0, 1]")
    freeze = opt.get("hf_freeze") or "none"
    if (opt.get("lora_r") or 0) > 0 and freeze != "none":
        raise UserError(
            f"--lora-r {opt['lora_r']} with --hf-freeze {freeze}: LoRA already keeps every base "
            "weight fixed and trains only its adapters; drop --hf-freeze (or use --lora-target-modules)"
        )
    if (opt.get("lora_r") or 0) < 0:
        raise UserError(f"--lora-r {opt['lora_r']}: must be 0 (off) or a positive rank")
