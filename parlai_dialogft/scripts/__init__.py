"""``parlai dialogft_*`` scripts. ParlAI's script registry learns them through the hook."""

import importlib
import pkgutil
import warnings


def register_all() -> None:
    """Import every script module, so each ``@register_script`` runs.

    Every ``parlai`` command runs this: a script whose optional dependency is missing must
    cost that script only, never the whole command, so it is skipped with a warning.
    """
    for module in pkgutil.iter_modules(__path__, __name__ + "."):
        try:
            importlib.import_module(module.name)
        except ImportError as exc:
            warnings.warn(f"parlai {module.name.rsplit('.', 1)[-1]} is unavailable: {exc}")
