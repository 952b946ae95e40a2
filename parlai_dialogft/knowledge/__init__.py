"""Knowledge for grounded replies: stores, a BM25 retriever, and how knowledge enters the context.

Read first: :mod:`.context` (the one format, used by teachers, the agent and the server),
then :mod:`.stores` (what can be retrieved from: the shipped KdConv triples, CrossWOZ and
MultiWOZ databases, and the user's FAQ, document and triple files; FAQ pairs in any shape the
user-file teacher reads), :mod:`.retriever` (BM25 with a Chinese-aware tokenizer, its index
cached on disk), :mod:`.metrics` (knowledge F1, recall@k, entity existence),
:mod:`.options` (the ``--knowledge-*`` flags, registered once for the agent and the
teachers), :mod:`.agent_mixin` (``--knowledge-retriever`` on ``dialogft_agent``) and
:mod:`.teacher_mixin` (the teachers' ``none``/``gold``/``retrieved`` modes) with
:mod:`.gold` (the gold knowledge of a CrossWOZ turn: the entities its dialogue acts name).

Nothing here imports ParlAI except the two mixins.
"""
