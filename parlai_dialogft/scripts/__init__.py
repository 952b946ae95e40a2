"""``parlai dialogft_*`` scripts. ParlAI's script registry learns them through the hook."""

import importlib
import pkgutil


def register_all() -> None:
    """Import every script module, so each ``@register_script`` runs."""
    for module in pkgutil.iter_modules(__path__, __name__ + "."):
        importlib.import_module(module.name)
