"""Open-domain chit-chat: Topical-Chat (en), ChatterBot (en, zh) and KdConv (zh).

Neither side is a "system", so ``--chitchat-speaker`` says which side the model learns:
``first`` (who opens), ``second`` (who answers) or ``both`` (the default: one episode per side,
so every turn after the first is a target once). Splits: docs/data.md.

    parlai display_data -t dialogft_chitchat
    parlai display_data -t dialogft_chitchat:lang=zh:speaker=second
    parlai display_data -t dialogft_chitchat:topical_chat
"""

from __future__ import annotations

from parlai_dialogft.data.dialog_teacher import LANGS, CorpusTeacher, opt_value
from parlai_dialogft.data.readers import chitchat
from parlai_dialogft.utils.errors import UserError

SPEAKER_CHOICES = ("first", "second", "both")


class ChitChatTeacher(CorpusTeacher):
    READERS = chitchat.READERS
    SOURCE_LANGS = {"topical_chat": ("en",), "chatterbot": ("en", "zh"), "kdconv": ("zh",)}

    @classmethod
    def add_teacher_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_chitchat teacher")
        group.add_argument(
            "--chitchat-lang",
            choices=LANGS,
            default="all",
            help="en, zh or all; also -t dialogft_chitchat:lang=zh",
        )
        group.add_argument(
            "--chitchat-sources",
            default="all",
            help="comma-separated sources among " + ", ".join(chitchat.READERS)
            + ", or all; also -t dialogft_chitchat:sources=kdconv",
        )
        group.add_argument(
            "--chitchat-speaker",
            choices=SPEAKER_CHOICES,
            default="both",
            help="the side the model plays: first (opens), second (answers) or both; "
            "also -t dialogft_chitchat:speaker=second",
        )

    def __init__(self, opt, shared=None):
        self.model_speaker = check_speaker(
            opt_value(opt, "chitchat_speaker", "speaker", "both"), "--chitchat-speaker"
        )
        super().__init__(opt, shared)

    def choose_sources(self, opt):
        lang = opt_value(opt, "chitchat_lang", "lang", "all")
        requested = opt_value(opt, "chitchat_sources", "sources", "all")
        return lang, self.check_sources(lang, requested, "--chitchat-lang/--chitchat-sources")


def check_speaker(value: str, flag: str) -> str:
    if value not in SPEAKER_CHOICES:
        raise UserError(f"{flag}: choose one of {', '.join(SPEAKER_CHOICES)}, not {value!r}")
    return value


class _OneSource(ChitChatTeacher):
    SOURCE = ""

    def choose_sources(self, opt):
        return opt_value(opt, "chitchat_lang", "lang", "all"), [self.SOURCE]


class TopicalChatTeacher(_OneSource):
    SOURCE = "topical_chat"


class ChatterbotTeacher(_OneSource):
    SOURCE = "chatterbot"


class KdconvTeacher(_OneSource):
    SOURCE = "kdconv"


class DefaultTeacher(ChitChatTeacher):
    pass
