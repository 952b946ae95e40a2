"""Knowledge-grounded dialogue / QA: KdConv (zh), whose turns carry knowledge triples.

Every message has a ``knowledge`` field: the facts (``entity | attribute | value``) the reply
uses, empty where it uses none. ``--qa-knowledge`` decides what goes in front of the ``text``
as ``knowledge: ...`` lines (:mod:`parlai_dialogft.knowledge.context`): ``gold`` (the default:
those facts), ``retrieved`` (BM25's top ``--knowledge-top-k`` triples of the ``kdconv`` store
for the turn and the reply before it) or ``none``. ``true``/``false`` still mean gold/none.

Topical-Chat is not here: its knowledge (the "reading sets") must be rebuilt upstream with a
Reddit API key and does not ship; its turns only name the fact ids (``FS3``). Its dialogue is
in dialogft_chitchat.

    parlai display_data -t dialogft_qa
    parlai display_data -t dialogft_qa:knowledge=retrieved:speaker=second
    parlai display_data -t dialogft_qa:knowledge=none
"""

from __future__ import annotations

from parlai_dialogft.data.dialog_teacher import CorpusTeacher, opt_value
from parlai_dialogft.data.readers import chitchat
from parlai_dialogft.knowledge.teacher_mixin import (
    DEFAULT_TOP_K,
    KnowledgeTeacherMixin,
    add_knowledge_arg,
    knowledge_mode,
)
from parlai_dialogft.tasks.dialogft_chitchat.agents import SPEAKER_CHOICES, check_speaker


class KnowledgeGroundedTeacher(KnowledgeTeacherMixin, CorpusTeacher):
    READERS = {"kdconv": chitchat.read_kdconv}
    SOURCE_LANGS = {"kdconv": ("zh",)}
    knowledge_store = "kdconv"

    @classmethod
    def add_teacher_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_qa teacher")
        add_knowledge_arg(group, "--qa-knowledge", "gold", "dialogft_qa")
        group.add_argument(
            "--qa-speaker",
            choices=SPEAKER_CHOICES,
            default="both",
            help="the side the model plays: first (opens), second (answers) or both; "
            "also -t dialogft_qa:speaker=second",
        )

    def __init__(self, opt, shared=None):
        self.knowledge_mode = knowledge_mode(opt_value(opt, "qa_knowledge", "knowledge", "gold"), "--qa-knowledge")
        self.knowledge_top_k = int(opt.get("knowledge_top_k") or DEFAULT_TOP_K)
        self.model_speaker = check_speaker(
            opt_value(opt, "qa_speaker", "speaker", "both"), "--qa-speaker"
        )
        super().__init__(opt, shared)

    def choose_sources(self, opt):
        return "zh", ["kdconv"]


class DefaultTeacher(KnowledgeGroundedTeacher):
    pass
