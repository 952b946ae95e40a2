"""parlai_dialogft: fine-tune HuggingFace language models for dialogue inside ParlAI.

Importing this package is deliberately cheap: it pulls in neither ParlAI, torch nor
transformers. ParlAI finds our agents, teachers and scripts through the import hook in
:mod:`parlai_dialogft._hook`, which a ``.pth`` file installs at interpreter start.
"""

__version__ = "0.1.0"
