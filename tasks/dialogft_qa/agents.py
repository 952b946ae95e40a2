"""Knowledge-grounded dialogue / QA: KdConv (zh), whose turns carry knowledge triples.

Every message has a ``knowledge`` field: the facts (``entity | attribute | value``) the reply
uses, empty where it uses none. ``--qa-knowledge`` (on by default) also puts them in front of
the ``text`` as ``knowledge: ...`` lines, so a plain generator can learn to ground on them.

Topical-Chat is not here: its knowledge (the "reading sets") must be rebuilt upstream with a
Reddit API key and does not ship; its turns only name the fact ids (``FS3``). Its dialogue is
in dialogft_chitchat.

    parlai display_data -t dialogft_qa
    parlai display_data -t dialogft_qa:knowledge=false:speaker=second
"""

from __future__ import annotations

from parlai_dialogft.data.dialog_teacher import CorpusTeacher, opt_value
from parlai_dialogft.data.readers import chitchat
from parlai_dialogft.tasks.dialogft_chitchat.agents import SPEAKER_CHOICES, check_speaker


class KnowledgeGroundedTeacher(CorpusTeacher):
    READERS = {"kdconv": chitchat.read_kdconv}
    SOURCE_LANGS = {"kdconv": ("zh",)}

    @classmethod
    def add_teacher_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_qa teacher")
        group.add_argument(
            "--qa-knowledge",
            type="bool",
            default=True,
            help="put the reply's knowledge triples in front of the text; "
            "also -t dialogft_qa:knowledge=false",
        )
        group.add_argument(
            "--qa-speaker",
            choices=SPEAKER_CHOICES,
            default="both",
            help="the side the model plays: first (opens), second (answers) or both; "
            "also -t dialogft_qa:speaker=second",
        )

    def __init__(self, opt, shared=None):
        self.knowledge_in_context = bool(opt_value(opt, "qa_knowledge", "knowledge", True))
        self.model_speaker = check_speaker(
            opt_value(opt, "qa_speaker", "speaker", "both"), "--qa-speaker"
        )
        super().__init__(opt, shared)

    def choose_sources(self, opt):
        return "zh", ["kdconv"]


class DefaultTeacher(KnowledgeGroundedTeacher):
    pass
