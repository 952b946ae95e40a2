"""parlai_dialogft: fine-tune HuggingFace language models for dialogue inside ParlAI.

The subpackages follow the pipeline, in the order a conversation travels through it:

* :mod:`.data` – corpora and user files in, cleaned conversations, ParlAI teachers' base.
* :mod:`.model` – the HuggingFace model and tokenizer behind ParlAI's generator contract.
* :mod:`.training` – what ``parlai train_model`` gains: crash-safe saves, resume, pretraining.
* :mod:`.evaluation` – metrics for English and Chinese, reports, robustness and bias probes.
* :mod:`.serving` – chatting with a trained model: the terminal and an OpenAI-style server.
* :mod:`.human_eval` – ACUTE-Eval and live-chat evaluation by people.
* :mod:`.mutators` – ParlAI teacher mutators (noise, counterfactuals, span infilling).
* :mod:`.knowledge` – knowledge stores, retrieval and grounding for teachers and the agent.
* :mod:`.scripts` – the ``parlai dialogft_*`` commands, each a thin layer of flags.
* :mod:`.plugin` – how ParlAI finds all of this and runs it: the import hook, the patches
  ParlAI 1.7.2 needs, one-line errors on the ``parlai`` command line. The top: it imports
  the stages; only entry points (the agent loaded by module path, the torchrun launcher)
  import it back.
* :mod:`.utils` – small utilities every stage may import (errors, progress, JSONL, SQLite
  schema versions). The bottom: it imports no stage.

``agents/``, ``tasks/`` and ``zoo/`` of the repository are installed as
``parlai_dialogft.agents``, ``.tasks`` and ``.zoo``, in ParlAI's own folder shape.

Importing this package is deliberately cheap: it pulls in neither ParlAI, torch nor
transformers. ParlAI finds our agents, teachers and scripts through the import hook in
:mod:`parlai_dialogft.plugin.hook`, which a ``.pth`` file installs at interpreter start.
"""

__version__ = "0.2.0"
