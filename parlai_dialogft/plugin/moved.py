"""Module paths of 0.1.0, before the package was grouped by pipeline stage, keep importing.

Users wrote ``from parlai_dialogft.metrics import compute``, and every saved model's
``.opt`` names its dictionary as ``parlai_dialogft.hf_dict:HFDictionaryAgent``. A finder
installed by the package's ``__init__`` resolves each old name to the module's object under
its new name (one module, one class identity), with a ``DeprecationWarning`` naming it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

PACKAGE = "parlai_dialogft"

# Old module under parlai_dialogft -> its module now (submodules of a package follow it).
MOVED = {
    "_hook": "plugin.hook",
    "compat": "plugin.compat",
    "cli_errors": "plugin.cli_errors",
    "errors": "plugin.errors",
    "hf_model": "model.hf_model",
    "hf_dict": "model.hf_dict",
    "hf_loading": "model.hf_loading",
    "lora": "model.lora",
    "chat_format": "model.chat_format",
    "length_groups": "model.length_groups",
    "export": "model.export",
    "tiny": "model.tiny",
    "conversation": "data.conversation",
    "dialog_teacher": "data.dialog_teacher",
    "cleaning": "data.cleaning",
    "splits": "data.splits",
    "batching": "data.batching",
    "data_report": "data.data_report",
    "readers": "data.readers",
    "checkpoint": "training.checkpoint",
    "resume": "training.resume",
    "preflight": "training.preflight",
    "pretrain": "training.pretrain",
    "metrics": "evaluation.metrics",
    "teacher_metrics": "evaluation.teacher_metrics",
    "text": "evaluation.text",
    "report": "evaluation.report",
    "report_eval": "evaluation.report_eval",
    "report_plots": "evaluation.report_plots",
    "probe": "evaluation.probe",
    "interactive_chat": "serving.interactive_chat",
}


def new_name(fullname: str) -> str | None:
    """``parlai_dialogft.readers.chitchat`` -> ``parlai_dialogft.data.readers.chitchat``; None if not moved."""
    prefix = PACKAGE + "."
    if not fullname.startswith(prefix):
        return None
    head, dot, rest = fullname[len(prefix):].partition(".")
    if head not in MOVED:
        return None
    return prefix + MOVED[head] + dot + rest


class AliasLoader(importlib.abc.Loader):
    """Imports a module under a second name: the real module object, not a copy, so a class
    has one identity and registers once. ``deprecated``: warn that the name is old."""

    def __init__(self, real_name: str, deprecated: bool = False):
        self.real_name = real_name
        self.deprecated = deprecated

    def create_module(self, spec):
        return None  # a throwaway module; exec_module swaps in the real one

    def exec_module(self, module) -> None:
        if self.deprecated:
            warnings.warn(
                f"{module.__name__} moved to {self.real_name}; the old path will be removed",
                DeprecationWarning, stacklevel=2,
            )
        # The import system re-reads sys.modules after exec_module, so the second name ends
        # up bound to the real module object.
        sys.modules[module.__name__] = importlib.import_module(self.real_name)


def alias_spec(fullname: str, real_name: str, deprecated: bool = False):
    """A spec that imports ``real_name`` when ``fullname`` is imported; None when ``real_name``
    does not exist (the import then fails as usual)."""
    try:
        real_spec = importlib.util.find_spec(real_name)
    except ModuleNotFoundError:
        return None
    if real_spec is None:
        return None
    return importlib.machinery.ModuleSpec(
        fullname, AliasLoader(real_name, deprecated), is_package=real_spec.submodule_search_locations is not None
    )


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        real_name = new_name(fullname)
        return None if real_name is None else alias_spec(fullname, real_name, deprecated=True)


def install() -> None:
    # In front: a submodule of a moved package (``parlai_dialogft.readers.chitchat``) would
    # otherwise be found by the path finder in the package's new folder and run twice.
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
