"""Sharded training (``--hf-fsdp true``): torch FSDP2 over the Hugging Face model's layers.

For a model whose weights, gradients and optimizer state do not fit one device beside each
other. Each rank keeps 1/WORLD_SIZE of every parameter, gradient and optimizer buffer; a layer's
full weights exist only while that layer runs (gathered before, freed after). Run it as any
distributed training (``parlai multiprocessing_train`` or the torchrun launcher), adding
``--hf-fsdp true``::

    torchrun --nproc-per-node 2 -m parlai_dialogft.training.launch train_model \\
        -t dialogft_customer -m dialogft_agent --hf-model Qwen/Qwen2.5-0.5B \\
        -mf /shared/m/model --hf-fsdp true

Why not ParlAI's ``--ddp-backend zero2|zero3``: in ParlAI 1.7.2 they are torch's FSDP1 (not
fairscale, which ParlAI 1.7.2 uses only for ``--checkpoint-activations`` and fused Adam), set
up for ParlAI's own transformer (as read in ``parlai/utils/fsdp.py`` and
``parlai/core/torch_agent.py``; not run here): the wrap policy names ParlAI's layer classes (a Hugging Face
model becomes one unit, gathered whole for every forward), the device is ``--gpu`` (-1 on a
CPU), the optimizer file holds rank 0's shard alone (a resumed run loads it on every rank),
and gradient clipping takes each rank's local norm. The agent refuses them and names this flag.
ParlAI's code wraps the model in DDP only when ``--ddp-backend`` is ``ddp`` and in its FSDP1
only for ``zero2``/``zero3``, so with ``--hf-fsdp`` the agent sets it to ``fsdp``
(:func:`claim_backend`): ParlAI leaves the model alone, and the ``.opt`` file says who sharded.

What this module does, and where ParlAI's own agent code calls it from the agent:

* :func:`shard` — each module named in the model's ``_no_split_modules`` (``T5Block``,
  ``Qwen2DecoderLayer``, ...) becomes one FSDP unit, the rest (embeddings, final norm, head)
  the root unit. Called from ``init_optim``: by then ParlAI has synchronised the ranks' weights
  (its ``sync_parameters`` sums full tensors; on shards it would mix different shards) and
  loaded ``--init-model`` or the model file into the whole model.
* :func:`full_states` — the FULL weights and optimizer state, gathered to rank 0 (every rank
  must call it: each save is a collective), in the layout an unsharded run writes: the model
  file loads without FSDP, and an unsharded run resumes from it, and the other way round.
* :func:`load_optimizer` — such a full optimizer state into the sharded optimizer.
* :func:`for_evaluation` / :func:`for_training` — validation and generation run on whole
  weights, gathered once when a rank starts evaluating: ranks evaluate different examples and
  generate replies of different lengths, so per-layer gathers would not pair up across ranks.
  This needs one evaluation batch on every rank (``-vme`` at least the world size) and room
  for the whole model while evaluating; weights are sharded again at the next training step.

Gradient clipping (``--gradient-clip``, on by default) takes the norm over all shards; with
clipping off, ParlAI's ``gnorm`` metric comes from its own helper, which sees each rank's
shards only: a logged figure, not the training, is then off.

Not on CPU, so untested here: ``--fp16`` (refused with this backend: FSDP2 would take a
``MixedPrecisionPolicy``, not ParlAI's fp16 optimizer wrappers; ``--hf-bf16`` autocast applies),
NCCL, and CPU offload. LoRA with this backend is untested.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch

from parlai_dialogft.utils.errors import UserError

#: The ``--ddp-backend`` value that tells ParlAI's code the agent shards the model itself.
BACKEND = "fsdp"

FLAG = "--hf-fsdp"

#: ParlAI's own sharded backends (torch FSDP1, made for ParlAI's transformer).
PARLAI_SHARDED = ("zero2", "zero3")


def add_args(group) -> None:
    group.add_argument(
        FLAG,
        type="bool",
        default=False,
        help="in distributed training, shard weights, gradients and optimizer state across the "
        "ranks (torch FSDP2, one unit per transformer layer) instead of copying them (DDP); "
        "saves whole weights that load without it",
    )


def claim_backend(opt) -> None:
    """With ``--hf-fsdp``, ``--ddp-backend`` becomes :data:`BACKEND`: ParlAI neither wraps the
    model in DDP nor in its own FSDP1 (it reads that flag to decide)."""
    if opt.get("hf_fsdp"):
        opt["ddp_backend"] = BACKEND


def check_options(opt) -> None:
    """Combinations that cannot work, refused before any weights load."""
    backend = opt.get("ddp_backend")
    if backend in PARLAI_SHARDED:
        raise UserError(
            f"--ddp-backend {backend}: ParlAI's FSDP1 setup for its own transformer (wraps a Hugging "
            f"Face model whole, saves rank 0's optimizer shard only); use {FLAG} true"
        )
    if opt.get("hf_fsdp") and opt.get("fp16"):
        raise UserError(
            f"{FLAG} true with --fp16 true: ParlAI's fp16 optimizer wrappers do not shard; "
            "use --hf-bf16 true (autocast) instead"
        )


def requested(opt) -> bool:
    """``--hf-fsdp true`` in a distributed run (alone, a process has nothing to shard with)."""
    import torch.distributed as dist

    return bool(opt.get("hf_fsdp")) and dist.is_available() and dist.is_initialized()


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def layer_class_names(hf) -> List[str]:
    """The model's own names for the blocks it must not split: its transformer layers."""
    names = getattr(hf, "_no_split_modules", None) or []
    if not names and hasattr(hf, "get_base_model"):  # peft
        names = getattr(hf.get_base_model(), "_no_split_modules", None) or []
    return sorted(names)


def _units(model, names: Iterable[str]) -> List[torch.nn.Module]:
    wanted = set(names)
    return [m for m in model.modules() if type(m).__name__ in wanted]


def shard(model: torch.nn.Module, hf: torch.nn.Module) -> torch.nn.Module:
    """Shard ``model`` (the ParlAI wrapper around ``hf``) across the default process group.

    Every rank must hold the same weights; returns ``model`` itself (FSDP2 shards in place,
    parameters becoming DTensors with the same names).
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    names = layer_class_names(hf)
    units = _units(model, names)
    if not units:
        raise UserError(
            f"{FLAG} true: {type(hf).__name__} names no layers to shard by "
            f"(_no_split_modules: {names or 'none'})"
        )
    device = next(model.parameters()).device
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    total = sum(p.numel() for p in model.parameters())
    kinds = "/".join(sorted({type(u).__name__ for u in units}))  # FSDP2 renames the classes
    for unit in units:
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    # FSDP2 takes the first unit to run forward as its root; evaluation may start with a call
    # outside the root's forward (generation runs the encoder itself), which it then refuses.
    # The root is known now: initialise it as one (idempotent; FSDP2 offers no public call).
    model._get_fsdp_state()._lazy_init()
    from parlai.utils import logging

    held = sum(p.to_local().numel() for p in model.parameters())
    logging.info(
        f"{FLAG}: {len(units)} x {kinds} and the rest sharded "
        f"across {dist.get_world_size()} ranks; rank {dist.get_rank()} holds {held:,d} of {total:,d} parameters"
    )
    return model


def _fsdp_modules(model) -> List[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def for_evaluation(model) -> None:
    """Gather the whole weights on every rank (a collective) until :func:`for_training`.

    Forward passes then run without communication, however many each rank makes.
    """
    if not is_sharded(model) or getattr(model, "_dialogft_gathered", False):
        return
    for unit in _fsdp_modules(model):
        unit.unshard()
        unit.set_reshard_after_forward(False, recurse=False)
    model._dialogft_gathered = True


def for_training(model) -> None:
    """Back to shards (no communication: each rank drops what is not its own)."""
    if not is_sharded(model) or not getattr(model, "_dialogft_gathered", False):
        return
    for unit in _fsdp_modules(model):
        unit.reshard()
        # FSDP2's defaults: layers free their weights after forward, the root keeps its own
        # (backward needs them at once).
        unit.set_reshard_after_forward(unit is not model, recurse=False)
    model._dialogft_gathered = False


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_states(model, optimizer=None) -> Tuple[Dict[str, torch.Tensor], Optional[Dict[str, Any]]]:
    """(model state dict, optimizer state dict), whole, on rank 0; empty dicts on the others.

    Collective: every rank calls it at the same point (ParlAI's ``save_model`` calls ``save``
    on rank 0 and ``save_nonprimary`` on the others). The optimizer's state is keyed as
    ``torch.optim.Optimizer.state_dict`` keys it (parameter indices in the optimizer's
    order), as an unsharded run writes it.
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    for_training(model)  # gathered weights are plain tensors; the state dict API wants shards
    weights = get_model_state_dict(model, options=_options())
    if optimizer is None:
        return weights, None
    by_name = get_optimizer_state_dict(model, optimizer, options=_options())
    return weights, (_by_index(by_name) if by_name else {})


def _by_index(by_name: Dict[str, Any]) -> Dict[str, Any]:
    """The optimizer state keyed by parameter name -> keyed by index, as torch saves it."""
    index: Dict[str, int] = {}
    groups = []
    for group in by_name["param_groups"]:
        ids = []
        for name in group["params"]:
            index.setdefault(name, len(index))
            ids.append(index[name])
        groups.append({**group, "params": ids})
    return {"state": {index[name]: value for name, value in by_name["state"].items()}, "param_groups": groups}


def load_optimizer(model, optimizer, states: Dict[str, Any]) -> None:
    """Load a whole optimizer state (index-keyed, as :func:`full_states` or an unsharded run
    saves it; every rank holds it) into the sharded optimizer."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    saved = [i for group in states["param_groups"] for i in group["params"]]
    if len(saved) != len(order):
        raise ValueError(f"the saved optimizer has {len(saved)} parameters, this model trains {len(order)}")
    name_of = dict(zip(saved, order))
    by_name = {
        "state": {name_of[i]: value for i, value in states["state"].items()},
        "param_groups": [{**g, "params": [name_of[i] for i in g["params"]]} for g in states["param_groups"]],
    }
    set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))
