"""ParlAI teacher mutators: input noise (robustness), counterfactual augmentation (bias), span infilling.

:mod:`.noise` registers ``dialogft_typos``, ``dialogft_case_punct``, ``dialogft_width``,
``dialogft_script_variant`` and ``dialogft_fillers``; :mod:`.counterfactual` registers
``dialogft_counterfactual``; :mod:`.denoise` registers ``dialogft_denoise`` (a pretraining
objective). :mod:`.wordlists` reads the word lists in ``lists/`` that they share with the
bias probe; :mod:`.segment` finds Chinese word boundaries (jieba) for the noise and infilling. ParlAI only scans its own ``parlai.mutators`` package, so the import hook
(:mod:`parlai_dialogft.plugin.hook`) imports this one whenever ParlAI sets up its mutator
registry; ``--mutators`` then works with every teacher.
"""

from parlai_dialogft.mutators import counterfactual, denoise, noise  # noqa: F401  (registers)
