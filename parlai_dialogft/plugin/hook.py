"""Teach ParlAI's loader our names without ParlAI knowing about plugins.

ParlAI resolves ``-m dialogft_agent`` to the module ``parlai.agents.dialogft_agent...`` and
``-t dialogft_customer`` to ``parlai.tasks.dialogft_customer.agents``; it has no plugin
discovery. A ``.pth`` file runs :func:`install` at interpreter start, which appends one
meta-path finder that

* aliases ``parlai.{agents,tasks,zoo}.dialogft*`` to ``parlai_dialogft.{agents,tasks,zoo}...``
  (the same module object, so classes are not loaded twice), and
* runs a callback right after selected ParlAI modules execute: the compat patches in
  :mod:`parlai_dialogft.plugin.compat`, the registration of our ``parlai`` scripts and of our
  teacher mutators (:mod:`parlai_dialogft.mutators`).

Nothing here imports ParlAI, torch or transformers: every interpreter pays only for a
string comparison per import.

``PARLAI_DIALOGFT_DISABLE=1`` in the environment switches all of this off: the hook is not
installed at interpreter start, so ParlAI is stock and does not know our names. Loading
our agent by its module path (``-m parlai_dialogft.agents.dialogft_agent.dialogft_agent:DialogftAgent``)
still works, and applies the patches the agent needs in that process only.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from typing import Callable, Dict, List

DISABLE_ENV = "PARLAI_DIALOGFT_DISABLE"

# ParlAI namespace prefix -> our package that provides it.
_ALIASES = (
    ("parlai.agents.dialogft", "parlai_dialogft.agents.dialogft"),
    ("parlai.tasks.dialogft", "parlai_dialogft.tasks.dialogft"),
    ("parlai.zoo.dialogft", "parlai_dialogft.zoo.dialogft"),
)


def _post_import_callbacks() -> Dict[str, List[Callable]]:
    """Built at the first ``parlai.*`` import, before ParlAI's own code runs."""
    from parlai_dialogft.plugin import compat

    compat.quiet_known_warnings()

    callbacks: Dict[str, List[Callable]] = {
        name: [patch] for name, patch in compat.PATCHES.items()
    }
    callbacks.setdefault("parlai.core.script", []).append(_extend_script_registry)
    callbacks.setdefault("parlai.core.mutators", []).append(_extend_mutator_registry)
    return callbacks


def _extend_script_registry(script_module) -> None:
    """Make ``setup_script_registry`` also register ``parlai_dialogft.scripts.*``."""
    original = script_module.setup_script_registry
    if getattr(original, "_dialogft", False):
        return

    def setup_script_registry():
        original()
        from parlai_dialogft.scripts import register_all

        register_all()

    setup_script_registry._dialogft = True  # type: ignore[attr-defined]
    script_module.setup_script_registry = setup_script_registry


def _extend_mutator_registry(mutators_module) -> None:
    """Make ``setup_mutator_registry`` also import ``parlai_dialogft.mutators`` (``--mutators dialogft_*``).

    ``Mutator.load_mutator_types`` looks the function up in the module at each call, so
    replacing the module attribute is enough.
    """
    original = mutators_module.setup_mutator_registry
    if getattr(original, "_dialogft", False):
        return

    def setup_mutator_registry():
        registry = original()
        import parlai_dialogft.mutators  # noqa: F401  (registers on import)

        return registry if registry is not None else mutators_module.MUTATOR_REGISTRY

    setup_mutator_registry._dialogft = True  # type: ignore[attr-defined]
    mutators_module.setup_mutator_registry = setup_mutator_registry


class AliasLoader(importlib.abc.Loader):
    """Imports a module under a second name: the real module object, not a copy, so a class
    has one identity and registers once."""

    def __init__(self, real_name: str):
        self.real_name = real_name

    def create_module(self, spec):
        return None  # a throwaway module; exec_module swaps in the real one

    def exec_module(self, module) -> None:
        # The import system re-reads sys.modules after exec_module, so the second name ends
        # up bound to the real module object.
        sys.modules[module.__name__] = importlib.import_module(self.real_name)


def alias_spec(fullname: str, real_name: str):
    """A spec that imports ``real_name`` when ``fullname`` is imported; None when ``real_name``
    does not exist (the import then fails as usual)."""
    try:
        real_spec = importlib.util.find_spec(real_name)
    except ModuleNotFoundError:
        return None
    if real_spec is None:
        return None
    return importlib.machinery.ModuleSpec(
        fullname, AliasLoader(real_name), is_package=real_spec.submodule_search_locations is not None
    )


class _PostImportLoader(importlib.abc.Loader):
    """Wraps a ParlAI module's own loader and runs callbacks once it has executed."""

    def __init__(self, wrapped, callbacks: List[Callable]):
        self.wrapped = wrapped
        self.callbacks = callbacks

    def create_module(self, spec):
        return self.wrapped.create_module(spec)

    def exec_module(self, module) -> None:
        self.wrapped.exec_module(module)
        for callback in self.callbacks:
            callback(module)


class DialogftFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self._callbacks: Dict[str, List[Callable]] | None = None

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("parlai."):
            return None
        for parlai_prefix, our_prefix in _ALIASES:
            if fullname.startswith(parlai_prefix):
                return alias_spec(fullname, our_prefix + fullname[len(parlai_prefix):])
        if self._callbacks is None:
            self._callbacks = _post_import_callbacks()
        callbacks = self._callbacks.get(fullname)
        if not callbacks:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PostImportLoader(spec.loader, callbacks)
        return spec


def install() -> None:
    """Put the finder in front of the import system, once (``.pth`` files may run twice)."""
    if any(isinstance(f, DialogftFinder) for f in sys.meta_path):
        return
    # In front: post-import callbacks must see ParlAI's modules before the path finder does.
    # Names outside ``parlai.*`` return at the first comparison.
    sys.meta_path.insert(0, DialogftFinder())


def apply_all() -> None:
    """Install the hook and patch the ParlAI modules that were imported before it was there."""
    from parlai_dialogft.plugin import compat

    install()
    for name, patch in compat.PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)


def disabled() -> bool:
    """True when ``PARLAI_DIALOGFT_DISABLE`` is set to anything but empty, 0, false or no."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


# The .pth line imports this module at interpreter start.
if not disabled():
    install()
