"""Readers: upstream corpora and user files in, :class:`~parlai_dialogft.data.conversation.Conversation` out.

* :mod:`.corpus_files` finds and opens the corpora shipped in ``parlai_dialogft/data/corpora``.
* :mod:`.task_oriented` reads SGD, Taskmaster-4, MultiWOZ 2.1 and CrossWOZ.
* :mod:`.chitchat` reads Topical-Chat, KdConv and the ChatterBot corpus.
* :mod:`.user_files` reads a user's CSV/TSV/JSONL/JSON/ParlAI files.
"""
