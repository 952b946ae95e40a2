"""ParlAI training under ``torchrun``: one process per device, on one machine or many.

On each of two machines (one process each; ``NODE_RANK`` 0 on the machine at ``HOST``)::

    torchrun --nnodes 2 --nproc-per-node 1 --node-rank NODE_RANK \\
        --master-addr HOST --master-port 29500 \\
        -m parlai_dialogft.training.launch train_model \\
        -t dialogft_customer -m dialogft_agent -mf /shared/m/model -bs 8

``torchrun`` starts this module as ``__main__`` in every process and describes the job in
the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). The rest is ParlAI's: the per-rank function of ``parlai
multiprocessing_train`` (``multiprocessing_eval`` for ``eval_model``) joins the process
group through ``distributed_context`` and runs the ``TrainLoop``, so DDP, metric syncing,
checkpoints (written by rank 0 alone) and resuming are those of ParlAI's own distributed
training, with the plugin's CPU patches (:mod:`parlai_dialogft.plugin.compat`: gloo without
CUDA, NCCL with it, ``LOCAL_RANK`` picking the GPU). Each rank batches ``-bs`` examples: the
global batch is ``WORLD_SIZE * bs``.

A killed job resumes when the same commands run again on every node: each rank reloads
``MODEL.checkpoint``, so ``-mf`` must name a folder that every node sees (a shared file
system). As in ``multiprocessing_train``, the weights, optimizer and counters resume, the
data order does not (:mod:`.resume` replays it for one process only).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from parlai_dialogft.utils.errors import UserError, one_line_errors

PROG = "parlai_dialogft.training.launch"

#: What torchrun sets in each process it starts.
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

#: Command -> the ParlAI module whose ``setup_args`` and per-rank function run it. Both are
#: ParlAI's single-host multi-process launchers; only the process group's address differs.
SCRIPTS = {
    "train_model": ("parlai.scripts.multiprocessing_train", "multiprocess_train"),
    "eval_model": ("parlai.scripts.multiprocessing_eval", "multiprocess_eval"),
}

USAGE = (
    f"torchrun --nnodes N --nproc-per-node P --node-rank R --master-addr HOST --master-port PORT "
    f"-m {PROG} {{{'|'.join(SCRIPTS)}}} [ParlAI flags]"
)


@dataclass(frozen=True)
class TorchrunEnv:
    """This process's place in the job, as torchrun describes it."""

    rank: int  # 0 .. world_size-1 over all nodes; rank 0 writes the model files
    world_size: int  # processes in the job: nnodes * nproc-per-node
    local_rank: int  # index on this node: the GPU this process uses
    master_addr: str  # host of the rendezvous (node rank 0)
    master_port: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "TorchrunEnv":
        missing = [name for name in TORCHRUN_VARS if not environ.get(name)]
        if missing:
            raise UserError(f"run me under torchrun ({', '.join(missing)} not set): {USAGE}")
        try:
            env = cls(
                rank=int(environ["RANK"]), world_size=int(environ["WORLD_SIZE"]),
                local_rank=int(environ["LOCAL_RANK"]), master_addr=environ["MASTER_ADDR"],
                master_port=int(environ["MASTER_PORT"]),
            )
        except ValueError as exc:
            raise UserError(f"torchrun's environment is not numeric where it should be: {exc}") from None
        if not 0 <= env.rank < env.world_size:
            raise UserError(f"RANK={env.rank} is outside WORLD_SIZE={env.world_size}")
        return env


def split_command(argv: Sequence[str]) -> Tuple[str, List[str]]:
    """``["train_model", *flags]`` -> ``("train_model", flags)``; a UserError for anything else."""
    if not argv or argv[0].startswith("-"):
        raise UserError(f"which command? {USAGE}")
    command, flags = argv[0], list(argv[1:])
    if command not in SCRIPTS:
        from parlai_dialogft.plugin.cli_errors import did_you_mean

        raise UserError(
            f"{command}: not a command this launcher runs{did_you_mean(command, SCRIPTS)}; "
            f"it runs {', '.join(SCRIPTS)}"
        )
    return command, flags


def parse_opt(setup_args: Callable[[], Any], flags: List[str], env: TorchrunEnv):
    """ParlAI's options for the command, with the world size torchrun decided."""
    opt = setup_args().parse_args(flags)
    given = opt.get("override", {}).get("distributed_world_size")
    if given is not None and given != env.world_size:
        raise UserError(
            f"--distributed-world-size {given}: torchrun started {env.world_size} processes "
            "(drop the flag: the launcher sets it)"
        )
    opt["distributed_world_size"] = env.world_size
    return opt


def run(command: str, flags: List[str], env: TorchrunEnv) -> Any:
    """Join the job and run ParlAI's per-rank function: ``train_model``'s returns (valid, test) reports."""
    from parlai_dialogft.plugin import compat

    compat.require_parlai()
    module_name, function = SCRIPTS[command]
    module = importlib.import_module(module_name)  # the plugin's hook patches it for CPU
    opt = parse_opt(module.setup_args, flags, env)
    # ParlAI's rank function joins tcp://MASTER_ADDR:MASTER_PORT, and torch's tcp:// rendezvous
    # shares env://'s store logic: under torchrun's static rendezvous every rank is a client of
    # the store torchrun's node-0 agent serves there (TORCHELASTIC_USE_AGENT_STORE); otherwise
    # rank 0 serves it. gpu: LOCAL_RANK picks the device with CUDA, and is ignored on CPU.
    return getattr(module, function)(
        env.rank, opt, port=env.master_port, rank_offset=0, gpu=env.local_rank, hostname=env.master_addr
    )


@one_line_errors(PROG)
def main(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command, flags = split_command(argv)
    env = TorchrunEnv.from_environ(os.environ if environ is None else environ)
    try:
        run(command, flags, env)
    except Exception as exc:
        # A mistyped task or agent: the one line `parlai` prints, from every rank that hit it.
        from parlai_dialogft.plugin.cli_errors import user_message

        message = user_message(exc)
        if message is None:
            raise
        raise UserError(f"{command}: {message}") from None


if __name__ == "__main__":
    main()
