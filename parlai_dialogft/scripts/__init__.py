"""The ``parlai dialogft_*`` commands; ParlAI's script registry learns them through the hook.

Each module only reads flags and calls the stage that does the work: :mod:`.dialogft_export`
(:mod:`parlai_dialogft.model.export`), :mod:`.dialogft_pretrain`
(:mod:`parlai_dialogft.training.pretrain`), :mod:`.dialogft_report` and :mod:`.dialogft_probe`
(:mod:`parlai_dialogft.evaluation`), :mod:`.dialogft_serve` (:mod:`parlai_dialogft.serving`),
:mod:`.dialogft_human_eval`, :mod:`.dialogft_fast_acute` and
:mod:`.dialogft_human_eval_analysis` (:mod:`parlai_dialogft.human_eval`).
"""

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
