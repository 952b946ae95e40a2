"""Every patch that ParlAI 1.7.2 needs on Python 3.11 / torch 2.x / numpy 2, in one place.

Each patch is a function of the module it fixes, listed in :data:`PATCHES` under that
module's name. The import hook (:mod:`parlai_dialogft.plugin.hook`) runs it right after ParlAI
executes the module, so a patch is applied exactly once and only when the module is used;
its :func:`~parlai_dialogft.plugin.hook.apply_all` also patches modules that were imported
before the hook was installed.
Each patch has a test in ``tests/test_compat.py`` that fails without it.

What is *not* patched, because a dependency pin fixes it: ``parlai.core.opt`` imports
``pkg_resources``, which setuptools 81 removed (setup.py asks for ``setuptools<81``).
"""

from __future__ import annotations

import re
import types
from typing import Callable, Dict

from parlai_dialogft.utils.errors import ParlAIMissing

PATCHED_ATTR = "_dialogft_patched"

INSTALL_HINT = (
    "install it with: pip install --no-deps parlai==1.7.2 'setuptools<81' "
    "(or run `make install` in a parlai_dialogft checkout)"
)


def require_parlai() -> None:
    """Import ParlAI's core, turning any failure into one line that says how to install it."""
    try:
        import parlai.core.params  # noqa: F401  (pulls opt, loader, pkg_resources)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        if missing == "parlai" or missing.startswith("parlai."):
            raise ParlAIMissing(f"parlai_dialogft needs ParlAI 1.7.2, which is not installed; {INSTALL_HINT}") from None
        raise ParlAIMissing(
            f"ParlAI is installed but does not import (missing module {missing!r}); {INSTALL_HINT}"
        ) from None


def summary(patch: Callable) -> str:
    """A patch's first docstring sentence, on one line (``python -m parlai_dialogft`` lists them)."""
    doc = " ".join((patch.__doc__ or patch.__name__).split())
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc).replace("``", "")
    return doc.split(". ")[0].rstrip(".")


def _mark(module, name: str) -> bool:
    """Record that ``name`` was applied to ``module``; False when it already was."""
    done = module.__dict__.setdefault(PATCHED_ATTR, set())
    if name in done:
        return False
    done.add(name)
    return True


def reduce_on_plateau_without_verbose(lr_scheduler) -> None:
    """torch 2.7 removed ``ReduceLROnPlateau(verbose=...)``, ParlAI's default scheduler.

    Without it every ``parlai train_model`` dies building the scheduler with
    ``TypeError: ... unexpected keyword argument 'verbose'``.
    """
    if not _mark(lr_scheduler, "reduce_on_plateau"):
        return
    from torch import optim

    cls = lr_scheduler.ReduceOnPlateauLRScheduler

    def __init__(self, optimizer, patience, decay, warmup_updates, warmup_rate):
        lr_scheduler.ParlAILRScheduler.__init__(self, warmup_updates, warmup_rate)
        self.scheduler = optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, "min", factor=decay, patience=patience
        )

    cls.__init__ = __init__


class _NumpyWithAliases(types.ModuleType):
    """numpy as ParlAI's modules expect it: with the aliases numpy 1.24 removed."""

    int = int
    float = float
    bool = bool

    def __getattr__(self, name):
        import numpy

        return getattr(numpy, name)


def numpy_removed_aliases(module) -> None:
    """numpy 1.24 removed ``np.int``; ``DictionaryAgent.txt2vec(..., np.ndarray)`` uses it.

    The alias is given to ParlAI's module only (its global ``np``), not to numpy itself.
    """
    if not _mark(module, "numpy_aliases"):
        return
    module.np = _NumpyWithAliases("numpy")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def distributed_on_cpu(distributed) -> None:
    """ParlAI's distributed training assumes CUDA and NCCL; on CPU it must use gloo.

    Unpatched, ``distributed_context`` divides by the GPU count (0), hard-codes the nccl
    backend and calls ``torch.cuda.init()``; ``all_gather_list`` (behind ``sync_object``)
    allocates its buffers with ``.cuda()``. With CUDA present both stay as ParlAI wrote them.
    """
    if not _mark(distributed, "distributed_on_cpu"):
        return
    import contextlib
    import copy
    import pickle

    import torch
    import torch.distributed as dist

    original_context = distributed.distributed_context
    original_gather = distributed.all_gather_list

    @contextlib.contextmanager
    def distributed_context(rank, opt, rank_offset=0, gpu=None, init_method="tcp://localhost:61337"):
        if _cuda():
            with original_context(rank, opt, rank_offset, gpu, init_method) as ctx_opt:
                yield ctx_opt
            return
        opt = copy.deepcopy(opt)
        rank = rank + rank_offset
        opt["rank"] = rank
        opt["gpu"] = -1
        opt.setdefault("override", {})["gpu"] = -1
        suppress = not opt.get("verbose") and rank != 0
        prefix = None if not suppress and rank == 0 else "rank:{:3d} |".format(rank)
        with distributed.override_print(suppress, prefix):
            dist.init_process_group(
                backend="gloo", init_method=init_method,
                world_size=opt["distributed_world_size"], rank=rank,
            )
            torch.manual_seed(42)  # as ParlAI: all ranks start from the same weights
            distributed.sync_object(None)
            try:
                yield opt
            finally:
                dist.destroy_process_group()

    def all_gather_list(data):
        if not distributed.is_distributed() or dist.get_backend() == "nccl":
            return original_gather(data)  # ParlAI's: [data] alone, or CUDA buffers for nccl
        # The same protocol as ParlAI's (sizes, then one summed byte buffer), on CPU tensors.
        rank, world_size = dist.get_rank(), dist.get_world_size()
        encoded = pickle.dumps(data)
        sizes = torch.zeros(world_size, dtype=torch.long)
        sizes[rank] = len(encoded)
        dist.all_reduce(sizes)
        positions = sizes.cumsum(dim=0)
        buffer = torch.zeros(int(positions[-1]), dtype=torch.uint8)
        buffer[positions[rank] - len(encoded) : positions[rank]] = torch.frombuffer(bytearray(encoded), dtype=torch.uint8)
        dist.all_reduce(buffer)
        return [
            pickle.loads(buffer[positions[i] - sizes[i] : positions[i]].numpy().tobytes())
            for i in range(world_size)
        ]

    distributed.distributed_context = distributed_context
    distributed.all_gather_list = all_gather_list


_ORIGINAL_MULTIPROCESS_TRAIN = None


def multiprocess_train(rank, opt, port=61337, rank_offset=0, gpu=None, hostname="localhost"):
    """ParlAI's per-rank training function, freeing DDP before its process group goes.

    ParlAI's version keeps the train loop (and so DDP's reducer) alive until after
    ``destroy_process_group``; the reducer's last reference then drops in the spawned rank
    and gloo's destructor joins threads of a group already torn down: the rank never exits
    (py-spy: ``~ProcessGroupGloo`` < ``~Reducer`` < ``_wrap``), intermittently. At module
    level so that ``torch.multiprocessing.spawn`` can pickle it by name.
    """
    import gc

    import parlai.utils.distributed as distributed_utils
    import parlai.utils.fsdp as fsdp_utils

    if _cuda():
        return _ORIGINAL_MULTIPROCESS_TRAIN(rank, opt, port, rank_offset, gpu, hostname)
    init_method = f"tcp://{hostname}:{port}"
    with distributed_utils.distributed_context(rank, opt, rank_offset, gpu, init_method=init_method) as opt:
        opt["multiprocessing"] = True
        loop = fsdp_utils.JoinableTrainLoop(opt)
        try:
            with fsdp_utils.fsdp_join(loop):
                return loop.train()
        finally:
            del loop
            gc.collect()  # the reducer goes now, while its process group still exists


def multiprocessing_train_on_cpu(mp_train) -> None:
    """ParlAI's rank function keeps DDP alive past its process group, and a rank can hang at
    exit. :func:`multiprocess_train` frees it first."""
    global _ORIGINAL_MULTIPROCESS_TRAIN
    if not _mark(mp_train, "multiprocess_train"):
        return
    _ORIGINAL_MULTIPROCESS_TRAIN = mp_train.multiprocess_train
    mp_train.multiprocess_train = multiprocess_train


def fsdp_join_device_on_cpu(fsdp) -> None:
    """torch's ``Join`` needs a device, and ParlAI's joinable train loop and evaluator give it
    ``opt['gpu']``, -1 on CPU. They give the CPU instead."""
    if not _mark(fsdp, "join_device_on_cpu"):
        return
    import torch

    for cls in (fsdp.JoinableTrainLoop, fsdp.JoinableEvaluator):
        attribute = f"_{cls.__name__}__device"

        def join_device(self, attribute=attribute):
            device = getattr(self, attribute)
            return torch.device("cpu") if device in (-1, None) else device

        cls.join_device = property(join_device)


def resumable_training(train_model) -> None:
    """A resumed run continues the same run: ParlAI's TrainLoop resumes weights and counters
    but not the data order, writes ``.trainstats`` in place (a kill leaves it truncated) and
    restarts its validation counters. :mod:`parlai_dialogft.training.resume` does the rest."""
    if not _mark(train_model, "resumable_training"):
        return
    from parlai_dialogft.training import resume

    resume.install(train_model)


def one_line_cli_errors(script) -> None:
    """Unknown task or agent names, a missing ``-mf`` and the plugin's user errors are one line
    and exit status 2, not a ParlAI traceback. See :mod:`parlai_dialogft.plugin.cli_errors`."""
    if not _mark(script, "one_line_cli_errors"):
        return
    from parlai_dialogft.plugin import cli_errors

    cli_errors.install(script)


def one_line_parse_errors(params) -> None:
    """A mistyped flag prints ParlAI's whole ``--help`` before the error; one line instead,
    with the closest flag."""
    if not _mark(params, "one_line_parse_errors"):
        return
    from parlai_dialogft.plugin import cli_errors

    cli_errors.install_parse_errors(params)


def bounded_dynamic_batches(worlds) -> None:
    """ParlAI's dynamic batching buffers 1021 episodes: on a smaller task it holds copies of
    one example side by side, and a batch is made of copies; :mod:`parlai_dialogft.data.batching`
    bounds the buffer by the task's size."""
    if not _mark(worlds, "bounded_dynamic_batches"):
        return
    from parlai_dialogft.data import batching

    batching.install(worlds)


def named_multitask_reports(worlds) -> None:
    """ParlAI keys a mixture's report by teacher id, so two tasks of one teacher with other
    options (``dialogft_customer:lang=en,dialogft_customer:lang=zh``) share a key and the
    last one's metrics replace the other's; tasks that share an id are reported under their
    task strings instead."""
    if not _mark(worlds, "named_multitask_reports"):
        return
    from parlai.core.metrics import aggregate_named_reports

    def report(self):
        ids = [w.getID() for w in self.worlds]
        # One world per task string, in order; the subworlds' own opt has lost the flags.
        tasks = [t.strip() for t in str(self.opt.get("task", "")).split(",") if t.strip()]
        if len(tasks) != len(ids):
            tasks = ids
        names = {}
        for i, (world, task_id) in enumerate(zip(self.worlds, ids)):
            name = task_id if ids.count(task_id) == 1 else tasks[i]
            names[name if name not in names else f"{name}#{i}"] = world.report()
        metrics = aggregate_named_reports(names, micro_average=self.opt.get("aggregate_micro", False))
        if "exs" in metrics:
            self.total_exs += metrics["exs"].value()  # as ParlAI's own report does
        return metrics

    worlds.MultiWorld.report = report


def worlds_fixes(worlds) -> None:
    """Dynamic batches of a small task are not copies of one example, and a mixture reports
    each task under its own name. (Both fixes of ``parlai.core.worlds``: PATCHES holds one
    function per module.)"""
    bounded_dynamic_batches(worlds)
    named_multitask_reports(worlds)


def quiet_known_warnings() -> None:
    """ParlAI imports ``pkg_resources`` on every command; setuptools warns each time."""
    import warnings

    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


PATCHES: Dict[str, Callable] = {
    "parlai.nn.lr_scheduler": reduce_on_plateau_without_verbose,
    "parlai.core.dict": numpy_removed_aliases,
    "parlai.utils.distributed": distributed_on_cpu,
    "parlai.utils.fsdp": fsdp_join_device_on_cpu,
    "parlai.scripts.multiprocessing_train": multiprocessing_train_on_cpu,
    "parlai.scripts.train_model": resumable_training,
    "parlai.core.script": one_line_cli_errors,
    "parlai.core.params": one_line_parse_errors,
    "parlai.core.worlds": worlds_fixes,
}

