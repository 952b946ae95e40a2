"""Every patch that ParlAI 1.7.2 needs on Python 3.11 / torch 2.x / numpy 2, in one place.

Each patch is a function of the module it fixes, listed in :data:`PATCHES` under that
module's name. The import hook (:mod:`parlai_dialogft._hook`) runs it right after ParlAI
executes the module, so a patch is applied exactly once and only when the module is used;
:func:`apply_all` also patches modules that were imported before the hook was installed.
Each patch has a test in ``tests/test_compat.py`` that fails without it.

What is *not* patched, because a dependency pin fixes it: ``parlai.core.opt`` imports
``pkg_resources``, which setuptools 81 removed (setup.py asks for ``setuptools<81``).
"""

from __future__ import annotations

import sys
import types
from typing import Callable, Dict

PATCHED_ATTR = "_dialogft_patched"

INSTALL_HINT = (
    "install it with: pip install --no-deps parlai==1.7.2 'setuptools<81' "
    "(or run `make install` in a parlai_dialogft checkout)"
)


class ParlAIMissing(ImportError):
    """ParlAI is absent or does not import; the message is one line saying how to fix it."""


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


def quiet_known_warnings() -> None:
    """ParlAI imports ``pkg_resources`` on every command; setuptools warns each time."""
    import warnings

    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


PATCHES: Dict[str, Callable] = {
    "parlai.nn.lr_scheduler": reduce_on_plateau_without_verbose,
    "parlai.core.dict": numpy_removed_aliases,
}


def apply_all() -> None:
    """Install the import hook and patch ParlAI modules that are already imported."""
    from parlai_dialogft import _hook

    _hook.install()
    for name, patch in PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
