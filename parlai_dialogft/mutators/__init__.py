"""ParlAI teacher mutators: input noise (robustness) and counterfactual augmentation (bias).

Importing this package registers ``dialogft_typos``, ``dialogft_case_punct``,
``dialogft_width``, ``dialogft_script_variant``, ``dialogft_fillers`` and
``dialogft_counterfactual`` and ``dialogft_denoise`` (a pretraining objective) with ParlAI. ParlAI only scans its own ``parlai.mutators``
package, so the import hook (:mod:`parlai_dialogft._hook`) imports this one whenever
ParlAI sets up its mutator registry; ``--mutators`` then works with every teacher.
"""

from parlai_dialogft.mutators import counterfactual, denoise, noise  # noqa: F401  (registers)
