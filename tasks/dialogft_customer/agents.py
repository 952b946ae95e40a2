"""Customer-service / task-oriented dialogue: the model plays the agent (system) side.

Sources: SGD, Taskmaster-4, MultiWOZ 2.1 (English) and CrossWOZ (Chinese), shipped with the
package. Splits are in :mod:`parlai_dialogft.data.readers.task_oriented` and docs/data.md.

``--customer-knowledge`` puts ``knowledge: ...`` lines in front of each turn
(:mod:`parlai_dialogft.knowledge.context`): ``retrieved`` is BM25's top ``--knowledge-top-k``
records of the task's database (``crosswoz`` in Chinese, ``multiwoz`` in English); ``gold``
(CrossWOZ only) is the database records of the entities the agent's dialogue acts name or
talk about (:mod:`parlai_dialogft.knowledge.gold`); ``none`` is the default.

    parlai display_data -t dialogft_customer                  # English (the default)
    parlai display_data -t dialogft_customer:lang=zh          # CrossWOZ
    parlai display_data -t dialogft_customer:lang=zh:knowledge=gold
    parlai display_data -t dialogft_customer --customer-lang all --customer-sources sgd,crosswoz
    parlai display_data -t dialogft_customer:crosswoz         # one source: a named teacher

Task-oriented teachers (SGD, MultiWOZ, CrossWOZ: the corpora with calls or belief states), in
ParlAI's ``parlai.core.tod`` format (:mod:`parlai_dialogft.tod`):

    parlai display_data -t dialogft_customer:system           # USER: ... -> APICALL: ...; APIRESP: ... -> SYSTEM: ...
    parlai display_data -t dialogft_customer:system:lang=zh
    parlai eval_model -t dialogft_customer:end_to_end:sources=multiwoz -mf MODEL --task-db multiwoz
"""

from __future__ import annotations

from parlai.core.tod import tod_agents

from parlai_dialogft.data.dialog_teacher import LANGS, CorpusTeacher, opt_value
from parlai_dialogft.data.readers import task_oriented
from parlai_dialogft.knowledge import metrics, stores
from parlai_dialogft.knowledge.teacher_mixin import (
    DEFAULT_TOP_K,
    Gold,
    KnowledgeTeacherMixin,
    add_knowledge_arg,
    knowledge_mode,
)
from parlai_dialogft.tod.teachers import CustomerTodParser, EndToEndTeacherBase
from parlai_dialogft.utils.errors import UserError

#: The knowledge store of each language's databases.
STORES = {"zh": "crosswoz", "en": "multiwoz"}


class CustomerServiceTeacher(KnowledgeTeacherMixin, CorpusTeacher):
    READERS = task_oriented.READERS
    SOURCE_LANGS = {name: (lang,) for name, lang in task_oriented.LANGUAGES.items()}
    model_speaker = task_oriented.AGENT
    cap_gold = True

    @classmethod
    def add_teacher_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_customer teacher")
        group.add_argument(
            "--customer-lang",
            choices=LANGS,
            default="en",
            help="language of the dialogues: en, zh (CrossWOZ) or all; "
            "also settable as -t dialogft_customer:lang=zh",
        )
        group.add_argument(
            "--customer-sources",
            default="all",
            help="comma-separated sources among " + ", ".join(task_oriented.READERS)
            + ", or all; also -t dialogft_customer:sources=sgd",
        )
        add_knowledge_arg(group, "--customer-knowledge", "none", "dialogft_customer:lang=zh")

    def __init__(self, opt, shared=None):
        self.knowledge_mode = knowledge_mode(
            opt_value(opt, "customer_knowledge", "knowledge", "none"), "--customer-knowledge"
        )
        self.knowledge_top_k = int(opt.get("knowledge_top_k") or DEFAULT_TOP_K)
        super().__init__(opt, shared)

    def choose_sources(self, opt):
        lang = opt_value(opt, "customer_lang", "lang", "en")
        requested = opt_value(opt, "customer_sources", "sources", "all")
        return lang, self._with_knowledge(lang, self.check_sources(lang, requested, "--customer-lang/--customer-sources"))

    def _with_knowledge(self, lang: str, sources):
        """Pick the store for the sources' language; gold exists for CrossWOZ alone.

        CrossWOZ's gold and entity names are read in every mode: ``none`` is scored against
        the same gold as ``retrieved`` and ``gold``.
        """
        if "crosswoz" in sources:
            self._crosswoz = {e.entity: e for e in stores.load_store("crosswoz").entries}
            self.entity_index = metrics.EntityIndex(self._crosswoz)
        if self.knowledge_mode == "none":
            return sources
        langs = {task_oriented.LANGUAGES[s] for s in sources}
        if len(langs) != 1:
            raise UserError(
                f"--customer-knowledge {self.knowledge_mode}: one language at a time "
                f"(--customer-lang {lang} mixes {', '.join(sorted(langs))})"
            )
        if self.knowledge_mode == "gold" and sources != ["crosswoz"]:
            raise UserError(
                "--customer-knowledge gold: only CrossWOZ has gold knowledge (dialogue acts naming database "
                "entities); use -t dialogft_customer:lang=zh, or --customer-knowledge retrieved"
            )
        self.knowledge_store = STORES[langs.pop()]
        return sources

    def gold_of(self, message, index):
        if message.get("source") != "crosswoz":
            return Gold()
        from parlai_dialogft.knowledge.gold import crosswoz_turn_gold

        turns = crosswoz_turn_gold().get(message["dialogue_id"], ())
        if index >= len(turns):
            return Gold()
        gold = turns[index]
        return Gold(tuple(self._crosswoz[name].text for name in gold.entities), gold.entities, gold.named)


class _OneSource(CustomerServiceTeacher):
    SOURCE = ""

    def choose_sources(self, opt):
        return "all", self._with_knowledge("all", [self.SOURCE])


class SgdTeacher(_OneSource):
    SOURCE = "sgd"


class Taskmaster4Teacher(_OneSource):
    SOURCE = "taskmaster4"


class MultiwozTeacher(_OneSource):
    SOURCE = "multiwoz"


class CrosswozTeacher(_OneSource):
    SOURCE = "crosswoz"


class DefaultTeacher(CustomerServiceTeacher):
    pass


# --- task-oriented: call the database, then reply (parlai_dialogft.tod) -------------------------
# ParlAI's own TOD teachers and agents over our corpora: -t dialogft_customer:system trains the
# call-and-reply model; ParlAI's tod_world_script takes the agents below by their full path.


class SystemTeacher(CustomerTodParser, tod_agents.TodSystemTeacher):
    pass


class UserSimulatorTeacher(CustomerTodParser, tod_agents.TodUserSimulatorTeacher):
    pass


class StandaloneApiTeacher(CustomerTodParser, tod_agents.TodStandaloneApiTeacher):
    pass


class EndToEndTeacher(EndToEndTeacherBase):
    pass


class GoalAgent(CustomerTodParser, tod_agents.TodGoalAgent):
    pass


class SingleGoalAgent(CustomerTodParser, tod_agents.TodSingleGoalAgent):
    pass


class ApiSchemaAgent(CustomerTodParser, tod_agents.TodApiSchemaAgent):
    pass


class SingleApiSchemaAgent(CustomerTodParser, tod_agents.TodSingleApiSchemaAgent):
    pass


class UserUttAgent(CustomerTodParser, tod_agents.TodUserUttAgent):
    pass


class ApiCallAndSysUttAgent(CustomerTodParser, tod_agents.TodApiCallAndSysUttAgent):
    pass
