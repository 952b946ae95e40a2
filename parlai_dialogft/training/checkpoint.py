"""Crash-safe model files: each one is written whole or not at all.

A ``kill -9`` (or a power cut) can land anywhere in a save. ParlAI 1.7.2 writes the
weights through a temporary file but without ``fsync``, and writes ``MODEL.opt``,
``MODEL.dict`` and ``MODEL.trainstats`` in place, so a kill at the wrong moment leaves a
truncated JSON file that the next ``train_model`` cannot read. Here every file goes to
``NAME.dialogft-tmp`` first, is flushed to disk, then renamed over ``NAME`` (a rename is
atomic on POSIX file systems), so ``NAME`` is always the previous complete version or the
new complete one.

A save writes, in this order: ``MODEL.dict``, ``MODEL.opt``, ``MODEL.hf/`` (config and
tokenizer), then the weights bundle ``MODEL`` last. The first three hold the same content
at every save of a run, so the bundle is the commit point: it carries the weights,
optimizer, LR scheduler, and (while ``train_model`` runs) the training loop's state, which
:mod:`parlai_dialogft.training.resume` reads back after a crash.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Callable, Dict, Optional

#: Suffix of every temporary file or folder a save writes; a leftover is a killed save.
TMP_SUFFIX = ".dialogft-tmp"

#: Key of the training loop's state inside the weights bundle.
RESUME_KEY = "dialogft_resume"

#: Attribute of the agent that the training loop sets right before a save.
AGENT_RESUME_ATTR = "_dialogft_resume_state"

#: Test hook: ``N:FLAG`` makes the N-th write of a ``*.checkpoint`` bundle in this process
#: stop halfway (temporary file written, not yet renamed), create FLAG, and wait to be
#: killed. It lets a test kill ``train_model`` inside a checkpoint write, deterministically.
PAUSE_ENV = "DIALOGFT_TEST_PAUSE_IN_SAVE"

_checkpoint_writes = 0


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def replace_atomically(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` writes the new content to a temporary path; it then replaces ``path``."""
    tmp = path + TMP_SUFFIX
    write(tmp)
    _fsync_file(tmp)
    _maybe_pause(path)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_json_atomically(path: str, obj: Any) -> None:
    import json

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=4)
            f.write("\n")

    replace_atomically(path, write)


def _maybe_pause(path: str) -> None:
    global _checkpoint_writes
    spec = os.environ.get(PAUSE_ENV)
    if not spec or not path.endswith(".checkpoint"):
        return
    _checkpoint_writes += 1
    nth, flag = spec.split(":", 1)
    if _checkpoint_writes == int(nth):
        with open(flag, "w") as f:
            f.write(str(os.getpid()))
        while True:  # until the test kills this process
            time.sleep(1)


def replace_folder_atomically(folder: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` fills a temporary folder; its files then replace those of ``folder``.

    A first save renames the whole folder into place. Later saves replace file by file:
    each rename is atomic, and the folder holds a complete set before and after each one
    (a save rewrites the same config and tokenizer files).
    """
    tmp = folder + TMP_SUFFIX
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write(tmp)
    for name in sorted(os.listdir(tmp)):
        if os.path.isfile(os.path.join(tmp, name)):
            _fsync_file(os.path.join(tmp, name))
    _fsync_dir(tmp)
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(folder):
        os.replace(tmp, folder)
        _fsync_dir(parent)
        return
    for name in sorted(os.listdir(tmp)):
        os.replace(os.path.join(tmp, name), os.path.join(folder, name))
    _fsync_dir(folder)
    shutil.rmtree(tmp, ignore_errors=True)


def save_agent(agent, path: str, write_extra_folder: Optional[Callable[[str], None]] = None,
               extra_folder: Optional[str] = None) -> None:
    """What ``TorchAgent.save`` writes, each file atomically, the weights bundle last.

    ``write_extra_folder(tmp)`` writes the agent's own folder (``MODEL.hf/``) before the
    bundle is committed.
    """
    states: Dict[str, Any] = agent.state_dict()
    if not states:
        return
    resume = getattr(agent, AGENT_RESUME_ATTR, None)
    if resume is not None:
        states[RESUME_KEY] = resume
    if hasattr(agent, "dict") and not os.path.exists(path + ".dict"):
        replace_atomically(path + ".dict", lambda tmp: agent.dict.save(tmp, sort=False))
    replace_atomically(path + ".opt", agent.opt.save)
    if write_extra_folder is not None and extra_folder is not None:
        replace_folder_atomically(extra_folder, write_extra_folder)

    import torch

    replace_atomically(path, lambda tmp: torch.save(states, tmp))


def read_resume_state(model_path: str) -> Optional[Dict[str, Any]]:
    """The training loop's state saved in a bundle, or None (not ours, or saved by eval)."""
    import torch

    if not os.path.isfile(model_path):
        return None
    try:
        # mmap: the weights stay on disk; only the small resume entry is materialised.
        states = torch.load(model_path, map_location="cpu", mmap=True, weights_only=False)
    except RuntimeError:
        # Not a zip-format torch file (an old ParlAI model): ParlAI's own resume applies.
        return None
    return states.get(RESUME_KEY) if isinstance(states, dict) else None


def remove_leftovers(model_file: str) -> list:
    """Delete the temporary files and folders of saves that were killed; returns their paths.

    Only names this module writes (``MODEL*`` + :data:`TMP_SUFFIX`), and ParlAI's own
    ``MODEL*.tmp`` from its atomic save.
    """
    folder = os.path.dirname(os.path.abspath(model_file)) or "."
    base = os.path.basename(model_file)
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        if name.startswith(base + ".") and (name.endswith(TMP_SUFFIX) or name.endswith(".tmp")):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
            removed.append(path)
    return removed
