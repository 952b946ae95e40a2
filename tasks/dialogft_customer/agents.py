"""Customer-service / task-oriented dialogue: the model plays the agent (system) side.

Sources: SGD, Taskmaster-4, MultiWOZ 2.1 (English) and CrossWOZ (Chinese), shipped with the
package. Splits are in :mod:`parlai_dialogft.data.readers.task_oriented` and docs/data.md.

    parlai display_data -t dialogft_customer                  # English (the default)
    parlai display_data -t dialogft_customer:lang=zh          # CrossWOZ
    parlai display_data -t dialogft_customer --customer-lang all --customer-sources sgd,crosswoz
    parlai display_data -t dialogft_customer:crosswoz         # one source: a named teacher
"""

from __future__ import annotations

from parlai_dialogft.data.dialog_teacher import LANGS, CorpusTeacher, opt_value
from parlai_dialogft.data.readers import task_oriented


class CustomerServiceTeacher(CorpusTeacher):
    READERS = task_oriented.READERS
    SOURCE_LANGS = {name: (lang,) for name, lang in task_oriented.LANGUAGES.items()}
    model_speaker = task_oriented.AGENT

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

    def choose_sources(self, opt):
        lang = opt_value(opt, "customer_lang", "lang", "en")
        requested = opt_value(opt, "customer_sources", "sources", "all")
        return lang, self.check_sources(lang, requested, "--customer-lang/--customer-sources")


class _OneSource(CustomerServiceTeacher):
    SOURCE = ""

    def choose_sources(self, opt):
        return "all", [self.SOURCE]


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
