"""The ``dialogft_serve`` flags, and :class:`ServeSettings`, their checked form.

Everything is checked before the model loads, so a bad flag costs a second, not a minute.
Decoding flags are ParlAI's own (``--inference``, ``--beam-size``, ``--beam-min-length``):
given on the command line they override the model's saved opt, as in ``parlai interactive``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import FrozenSet, Optional, Tuple

from parlai_dialogft.serving import guard
from parlai_dialogft.serving.adapters import parse_serve_lora

#: --serve-batching choices (serving/continuous.py, serving/batcher.py).
BATCHING = ("continuous", "micro")


def add_serve_args(parser) -> None:
    group = parser.add_argument_group("dialogft_serve: HTTP server")
    group.add_argument("--host", "--serve-host", dest="serve_host", type=str, default="127.0.0.1",
                       help="address to bind; anything but loopback requires --serve-api-keys")
    group.add_argument("--port", "--serve-port", dest="serve_port", type=int, default=8080,
                       help="TCP port (0: any free port, printed at start)")
    group.add_argument("--serve-model-name", type=str, default=None,
                       help="the model id clients send in 'model' (default: the -mf folder's name, or --hf-model's)")
    group.add_argument("--serve-max-batch", type=int, default=16,
                       help="most requests generated together in one call")
    group.add_argument("--serve-batching", type=str, default="continuous", choices=BATCHING,
                       help="continuous: requests join the running greedy search between its steps (others, "
                       "and searches that are not plain greedy, are micro-batched); micro: each batch of "
                       "requests is one generation call, run to its end")
    group.add_argument("--serve-batch-wait-ms", type=float, default=10.0,
                       help="how long the server waits for one more request to batch with those it has (a burst "
                       "keeps the window open, up to 4 times this)")
    group.add_argument("--serve-max-n", type=int, default=4,
                       help="most drafts one request may ask for ('n'); each draft widens the search, "
                       "so a larger n costs every request batched with it")
    group.add_argument("--serve-max-queue", type=int, default=1024,
                       help="with this many requests waiting for a batch, the next gets 429 with a "
                       "Retry-After header (back-pressure, not a growing backlog)")
    group.add_argument("--serve-max-body-bytes", type=int, default=1_000_000,
                       help="larger request bodies get 413")
    group.add_argument("--serve-api-keys", type=str, default=None,
                       help="comma-separated keys, or a file with one per line; clients send "
                       "'Authorization: Bearer KEY'")
    group.add_argument("--serve-log-db", type=str, default=None,
                       help="SQLite file logging every request and reply, for feedback and online "
                       "evaluation (off by default: conversations are user data)")
    group.add_argument("--serve-log-retention-days", type=float, default=30.0,
                       help="delete logged conversations older than this (0: keep all)")
    group.add_argument("--serve-shutdown-timeout", type=float, default=30.0,
                       help="on SIGTERM/Ctrl-C, seconds to let in-flight requests finish (a SIGTERM "
                       "that drained them all ends the process with status 0)")
    group.add_argument("--serve-lora", type=str, action="append", default=None, metavar="NAME=MODEL_FILE",
                       help="also serve this LoRA-trained model (same --hf-model as -mf) as the id NAME, on "
                       "the one base model in memory; repeat for more (adapters.py)")
    # A server is not a training run: no optimizer, generation always on (as `interactive`).
    parser.set_defaults(interactive_mode=True, datatype="valid")


@dataclass(frozen=True)
class ServeSettings:
    model_name: str
    host: str = "127.0.0.1"
    port: int = 8080
    max_batch: int = 16
    batching: str = "continuous"
    batch_wait_s: float = 0.01
    max_queue: int = 1024
    max_n: int = 4
    max_body_bytes: int = 1_000_000
    api_keys: FrozenSet[str] = frozenset()
    log_db: Optional[str] = None
    log_retention_days: float = 30.0
    shutdown_timeout_s: float = 30.0
    lora: Tuple[Tuple[str, str], ...] = ()  # (id, MODEL_FILE) of each --serve-lora

    @property
    def served_models(self) -> Tuple[str, ...]:
        """Every id a request may name: the -mf model's, then each --serve-lora's."""
        return (self.model_name, *(name for name, _ in self.lora))

    def __post_init__(self) -> None:
        for flag, value, least in (("--serve-max-batch", self.max_batch, 1),
                                   ("--serve-max-queue", self.max_queue, 1),
                                   ("--serve-max-n", self.max_n, 1),
                                   ("--serve-max-body-bytes", self.max_body_bytes, 1024)):
            if value < least:
                raise guard.GuardError(f"{flag} {value}: must be at least {least}")
        if self.batch_wait_s < 0:
            raise guard.GuardError("--serve-batch-wait-ms must not be negative")
        if self.log_retention_days < 0:
            raise guard.GuardError("--serve-log-retention-days must not be negative (0 keeps all)")
        if not 0 <= self.port < 65536:
            raise guard.GuardError(f"--port {self.port}: not a TCP port")
        guard.check_binding(self.host, self.api_keys)


def default_model_name(opt) -> str:
    """``/runs/support_bot/model`` -> ``support_bot``: the folder names a run, ``model`` does not.

    Without -mf (an untuned ``--hf-model``), the HF model's name: ``Qwen/Qwen2.5-0.5B`` -> ``Qwen2.5-0.5B``.
    """
    if opt.get("model_file"):
        path = os.path.abspath(opt["model_file"])
        return os.path.basename(os.path.dirname(path)) or os.path.basename(path)
    return os.path.basename(str(opt.get("hf_model") or "dialogft").rstrip("/")) or "dialogft"


def check_task_db(spec: Optional[str]) -> None:
    """A ``--task-db`` that names no shipped database fails here, before the model loads, with
    the error the agent would raise after loading it."""
    if not spec or spec == "none":
        return
    from parlai_dialogft.tod.database import DATASETS, open_databases

    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names or any(name not in DATASETS for name in names):
        open_databases(spec)  # raises UnknownDatabaseError, naming the flag


def settings_from_opt(opt) -> ServeSettings:
    if not opt.get("model_file") and not opt.get("model"):
        raise guard.GuardError("give -mf MODEL (a trained model file), or -m dialogft_agent --hf-model NAME")
    check_task_db(opt.get("task_db"))
    model_name = opt.get("serve_model_name") or default_model_name(opt)
    return ServeSettings(
        model_name=model_name,
        host=opt["serve_host"],
        port=opt["serve_port"],
        max_batch=opt["serve_max_batch"],
        batching=opt.get("serve_batching") or "continuous",
        batch_wait_s=opt["serve_batch_wait_ms"] / 1000.0,
        max_queue=opt["serve_max_queue"],
        max_n=opt["serve_max_n"],
        max_body_bytes=opt["serve_max_body_bytes"],
        api_keys=guard.load_api_keys(opt.get("serve_api_keys")),
        log_db=opt.get("serve_log_db"),
        log_retention_days=opt["serve_log_retention_days"],
        shutdown_timeout_s=opt["serve_shutdown_timeout"],
        lora=parse_serve_lora(opt.get("serve_lora"), model_name),
    )
