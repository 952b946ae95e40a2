"""parlai_dialogft: fine-tune HuggingFace language models for dialogue inside ParlAI.

The subpackages follow the pipeline, in the order a conversation travels through it:

* :mod:`.data` – corpora and user files in, cleaned conversations, ParlAI teachers' base.
* :mod:`.model` – the HuggingFace model and tokenizer behind ParlAI's generator contract.
* :mod:`.training` – what ``parlai train_model`` gains: crash-safe saves, resume, pretraining.
* :mod:`.evaluation` – metrics for English and Chinese, reports, robustness and bias probes.
* :mod:`.serving` – chatting with a trained model: the terminal and an OpenAI-style server.
* :mod:`.human_eval` – ACUTE-Eval and live-chat evaluation by people.
* :mod:`.mutators` – ParlAI teacher mutators (noise, counterfactuals, span infilling).
* :mod:`.scripts` – the ``parlai dialogft_*`` commands, each a thin layer of flags.
* :mod:`.plugin` – how ParlAI finds all of this, and the patches ParlAI 1.7.2 needs.

``agents/``, ``tasks/`` and ``zoo/`` of the repository are installed as
``parlai_dialogft.agents``, ``.tasks`` and ``.zoo``, in ParlAI's own folder shape.

Importing this package is deliberately cheap: it pulls in neither ParlAI, torch nor
transformers. ParlAI finds our agents, teachers and scripts through the import hook in
:mod:`parlai_dialogft.plugin.hook`, which a ``.pth`` file installs at interpreter start.
"""

from parlai_dialogft.plugin import moved as _moved

__version__ = "0.1.0"

_moved.install()
