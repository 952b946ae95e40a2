"""``--knowledge-retriever bm25 --knowledge-file STORE`` on ``dialogft_agent``: ground every turn.

The agent retrieves in :meth:`KnowledgeAgentMixin.observe`, so every script that feeds it
turns does the same thing: ``train_model`` and ``eval_model`` (on a teacher without knowledge
of its own), ``interactive`` and ``dialogft_serve`` (which calls ``observe`` on the newest
message of each request, with no serving code of its own). Each turn's text gets the top
``--knowledge-top-k`` entries of the store for that turn and the model's reply before it,
as :mod:`parlai_dialogft.knowledge.context` writes them; earlier turns lose theirs.

A message that already carries knowledge (a teacher's ``--qa-knowledge``/``--customer-knowledge``
gold or retrieved) is left as it is.
"""

from __future__ import annotations

from typing import List, Optional

from parlai.core.message import Message

from parlai_dialogft.knowledge import context
from parlai_dialogft.knowledge.options import add_knowledge_args
from parlai_dialogft.utils.errors import UserError


class KnowledgeAgentMixin:
    """Mix in before ``TorchGeneratorAgent`` (after ``InteractiveChatMixin``, so that commands
    and empty lines are handled before any retrieval)."""

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        parser = super().add_cmdline_args(parser, partial_opt=partial_opt)
        add_knowledge_args(parser, retrieval=True)
        return parser

    def __init__(self, opt, shared=None):
        super().__init__(opt, shared)
        self.knowledge_retriever = None
        if opt.get("knowledge_retriever", "none") == "none":
            return
        top_k = int(opt.get("knowledge_top_k") or 0)
        if top_k < 1:
            raise UserError(f"--knowledge-top-k must be at least 1, not {top_k}")
        if not opt.get("knowledge_file"):
            raise UserError("--knowledge-retriever bm25 needs --knowledge-file (a store name or a .jsonl/.csv file)")
        if shared and shared.get("knowledge_retriever") is not None:
            self.knowledge_retriever = shared["knowledge_retriever"]
        else:
            from parlai_dialogft.knowledge.retriever import retriever_for

            self.knowledge_retriever = retriever_for(opt["knowledge_file"])
        self.knowledge_top_k = top_k

    def share(self):
        shared = super().share()
        shared["knowledge_retriever"] = self.knowledge_retriever
        return shared

    def observe(self, observation):
        text = observation.get("text")
        carries = bool(observation.get("knowledge_given")) or (isinstance(text, str) and context.has_knowledge(text))
        if (self.knowledge_retriever is not None or carries) and text:
            self._forget_earlier_knowledge()
        if self.knowledge_retriever is not None and text and not carries:
            facts = self.knowledge_for(text, self._last_reply())
            observation = Message(observation)
            observation.force_set("text", context.with_knowledge(text, facts))
        return super().observe(observation)

    def knowledge_for(self, text: str, previous: Optional[str] = None) -> List[str]:
        """The entries put before ``text``: the store's best for it and the reply before it."""
        query = context.query_of(text, previous)
        return [entry.text for entry in self.knowledge_retriever.search(query, self.knowledge_top_k)]

    def _last_reply(self) -> Optional[str]:
        strings = self.history.history_strings
        return strings[-1] if strings else None

    def _forget_earlier_knowledge(self) -> None:
        """Earlier turns keep their text, not their knowledge (as a rebuilt serving history)."""
        history = self.history
        for i, turn in enumerate(history.history_strings):
            if not context.has_knowledge(turn):
                continue
            plain = context.strip_knowledge(turn)
            history.history_strings[i] = plain
            if i < len(history.history_raw_strings):
                history.history_raw_strings[i] = context.strip_knowledge(history.history_raw_strings[i])
            if i < len(history.history_vecs) and len(history.history_vecs) == len(history.history_strings):
                history.history_vecs[i] = history.parse(plain)
