"""``--qa-knowledge`` / ``--customer-knowledge none|gold|retrieved`` for the dialogft teachers.

The same examples three ways: no knowledge, the gold knowledge (KdConv's triples, CrossWOZ's
database entries of the entities the agent's dialogue acts name) or the store's BM25 top-k for
the turn (:mod:`.retriever`, the query of :func:`.context.query_of`), written into the text by
:func:`.context.with_knowledge`. Each message keeps its gold in ``knowledge`` either way, and
evaluation records ``knowledge_f1``, ``knowledge_recall@k`` (retrieved) and, where the store
has entity names, ``entity_exists`` (see :mod:`.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

from parlai.core.metrics import AverageMetric

from parlai_dialogft.data.dialog_teacher import ConversationTeacher
from parlai_dialogft.knowledge import context, metrics, stores
from parlai_dialogft.knowledge.options import DEFAULT_TOP_K, add_knowledge_args
from parlai_dialogft.utils.errors import UserError

KNOWLEDGE_MODES = ("none", "gold", "retrieved")
#: Old spellings of ``--qa-knowledge`` (a bool before it had three modes).
_BOOL_MODES = {"true": "gold", "false": "none", "1": "gold", "0": "none", True: "gold", False: "none"}


def knowledge_mode(value, flag: str) -> str:
    mode = _BOOL_MODES.get(value if isinstance(value, bool) else str(value).lower(), value)
    if mode not in KNOWLEDGE_MODES:
        raise UserError(f"{flag} must be one of {', '.join(KNOWLEDGE_MODES)}, not {value!r}")
    return mode


def add_knowledge_arg(group, flag: str, default: str, task: str) -> None:
    group.add_argument(
        flag,
        default=default,
        help="knowledge before each turn's text: none, gold (what the reply uses) or retrieved "
        f"(BM25 top-k from the task's store, --knowledge-top-k); also -t {task}:knowledge=retrieved",
    )


@dataclass(frozen=True)
class Gold:
    facts: Tuple[str, ...] = ()  # entry texts the reply uses, as they would enter the context
    entities: Tuple[str, ...] = ()  # for recall by entity (database records); empty: by fact text
    named: Tuple[str, ...] = ()  # entities the reply names (for entity_exists)


class KnowledgeTeacherMixin:
    """Put before the teacher's class; set ``knowledge_mode`` and ``knowledge_store`` in __init__.

    Subclasses say what the gold of a message is (:meth:`gold_of`).
    """

    #: ``--knowledge-top-k`` changes the retrieved examples: part of the streamed data's key.
    DATA_OPTION_PREFIXES = ConversationTeacher.DATA_OPTION_PREFIXES + ("knowledge_",)
    knowledge_mode: str = "none"
    knowledge_store: Optional[str] = None  # a stores.load_store spec
    knowledge_top_k: int = DEFAULT_TOP_K
    #: Entity names of the store, for ``entity_exists`` (None: the metric is not recorded).
    entity_index: Optional[metrics.EntityIndex] = None
    #: Gold database records are long: at most top-k of them, as many as retrieval gives.
    #: KdConv's gold triples are what the reply says: all of them.
    cap_gold = False

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        parser = super().add_cmdline_args(parser, partial_opt)
        add_knowledge_args(parser, retrieval=False)  # --knowledge-top-k, whichever agent runs
        return parser

    def gold_of(self, message: dict, index: int) -> Gold:
        """The gold of the episode's ``index``-th message; by default its ``knowledge`` triples."""
        return Gold(tuple(" ".join(f.split()) for f in message.get("knowledge", "").split("\n") if f.strip()))

    def setup_data(self, datafile: str) -> Iterable[Tuple[dict, bool]]:
        episodes: List[List[dict]] = []
        for message, new_episode in super().setup_data(datafile):
            if new_episode:
                episodes.append([])
            episodes[-1].append(message)
        self._ground(episodes)
        for episode in episodes:
            for index, message in enumerate(episode):
                yield message, index == 0

    def _ground(self, episodes: List[List[dict]]) -> None:
        queries, flat, golds = [], [], []
        for episode in episodes:
            previous = None
            for index, message in enumerate(episode):
                gold = self.gold_of(message, index)
                message["knowledge"] = "\n".join(gold.facts)
                if gold.named:
                    message["knowledge_entities"] = "\n".join(gold.named)
                queries.append(context.query_of(message["text"], previous))
                flat.append(message)
                golds.append(gold)
                previous = message["labels"][0]
        if self.knowledge_mode == "none":
            return
        hits: List[List[stores.Entry]] = [[] for _ in flat]
        if self.knowledge_mode == "retrieved":
            from parlai_dialogft.knowledge.retriever import retriever_for

            retriever = retriever_for(self.knowledge_store, "the teacher's knowledge store")
            hits = [[entry for entry, _ in found] for found in retriever.search_many(queries, self.knowledge_top_k)]
        for message, gold, found in zip(flat, golds, hits):
            if self.knowledge_mode == "gold":
                facts = list(gold.facts[: self.knowledge_top_k] if self.cap_gold else gold.facts)
            else:
                facts = [entry.text for entry in found]
                recall = metrics.recall_at_k(found, () if gold.entities else gold.facts, gold.entities)
                if recall is not None:
                    message["knowledge_recall"] = recall
            message["text"] = context.with_knowledge(message["text"], facts)
            message["knowledge_given"] = True

    def custom_evaluation(self, teacher_action, labels, model_response) -> None:
        super().custom_evaluation(teacher_action, labels, model_response)
        reply = (model_response or {}).get("text")
        if reply is None or teacher_action is None:
            return
        gold = [f for f in teacher_action.get("knowledge", "").split("\n") if f]
        f1 = metrics.knowledge_f1(reply, gold)
        if f1 is not None:
            self.metrics.add("knowledge_f1", AverageMetric(f1))
        if "knowledge_recall" in teacher_action:
            self.metrics.add(f"knowledge_recall@{self.knowledge_top_k}", AverageMetric(teacher_action["knowledge_recall"]))
        if self.entity_index is not None and teacher_action.get("knowledge_entities"):
            self.metrics.add("entity_exists", AverageMetric(float(self.entity_index.names_one(reply))))
