"""The base of every dialogft teacher: conversations in, cleaned ParlAI episodes out.

A teacher only says where its conversations come from (:meth:`load_conversations`, or
:meth:`CorpusTeacher.sources` for the shipped corpora) and which speaker the model plays.
This class owns the rest, once: the ``--clean-*`` flags, the cleaning step and its log line,
the turn-to-episode conversion, and the refusal to train on nothing.
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import inspect
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from parlai.core.teachers import DialogTeacher
from parlai.utils import logging
from parlai.utils.data import DatatypeHelper

from parlai_dialogft.data.cleaning import CleaningOptions, CleaningReport, clean_conversations
from parlai_dialogft.data.conversation import Conversation, resolve_speakers, to_examples
from parlai_dialogft.evaluation.teacher_metrics import DialogueMetricsMixin
from parlai_dialogft.utils.errors import DataFormatError, UserError

Reader = Callable[[], Dict[str, Sequence[Conversation]]]
LANGS = ("en", "zh", "all")


@functools.lru_cache(maxsize=None)
def data_version(teacher_file: str = "") -> str:
    """A short hash of what the examples are made from: every file under ``parlai_dialogft/data``
    (the corpora, their readers, the cleaning) and the teacher's own module, by size and time."""
    here = Path(__file__).resolve().parent
    files = sorted(p for p in here.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if teacher_file and os.path.isfile(teacher_file):
        files.append(Path(teacher_file))
    digest = hashlib.sha1()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:10]


def opt_value(opt, name: str, alias: Optional[str] = None, default=None):
    """``opt[alias]`` when a task string set it (``-t task:lang=zh``), else ``opt[name]``.

    Flags are prefixed (``--customer-lang`` → ``customer_lang``) so teachers in one multitask
    run never share a dest; the short alias is what ParlAI copies from ``task:key=value``.
    """
    if alias is not None and alias in opt:
        return opt[alias]
    return opt.get(name, default)


def add_cleaning_args(parser) -> None:
    defaults = CleaningOptions()
    group = parser.add_argument_group("dialogft data cleaning (all dialogft teachers)")
    group.add_argument(
        "--clean-normalize",
        choices=("nfkc", "nfc", "none"),
        default=defaults.normalize,
        help="Unicode normalisation of every turn; nfkc folds full-width letters, digits and other "
        "compatibility forms, and keeps full-width punctuation in Chinese, Japanese and Korean text",
    )
    group.add_argument(
        "--clean-max-turn-chars",
        type=int,
        default=defaults.max_turn_chars,
        help="cut a conversation before a turn longer than this (0: no limit)",
    )
    group.add_argument(
        "--clean-mask-pii",
        type="bool",
        default=defaults.mask_pii,
        help="replace e-mail addresses and phone numbers by <email> and <phone>",
    )
    group.add_argument(
        "--clean-dedup",
        type="bool",
        default=defaults.dedup,
        help="drop exact duplicate conversations within a split",
    )


def cleaning_options(opt) -> CleaningOptions:
    defaults = CleaningOptions()
    return CleaningOptions(
        normalize=opt.get("clean_normalize", defaults.normalize),
        max_turn_chars=int(opt.get("clean_max_turn_chars", defaults.max_turn_chars)),
        mask_pii=bool(opt.get("clean_mask_pii", defaults.mask_pii)),
        dedup=bool(opt.get("clean_dedup", defaults.dedup)),
    )


# The language-aware metrics go in front of DialogTeacher here, and only here: every
# dialogft teacher inherits from this class, so every one scores Chinese correctly.
class ConversationTeacher(DialogueMetricsMixin, DialogTeacher):
    """Turns :class:`Conversation` objects into episodes whose labels are the model's turns."""

    #: ``first``, ``second``, ``both`` or a speaker name; subclasses set it from their flags.
    model_speaker = "second"
    knowledge_in_context = False

    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        super().add_cmdline_args(parser, partial_opt)
        cls.add_teacher_args(parser, partial_opt)
        # Shared by all our teachers: in a multitask run the second copy is refused.
        try:
            add_cleaning_args(parser)
        except argparse.ArgumentError:
            pass
        return parser

    @classmethod
    def add_teacher_args(cls, parser, partial_opt=None) -> None:
        """A subclass's own flags, in its own argument group."""

    def __init__(self, opt, shared=None):
        self.split = DatatypeHelper.fold(opt["datatype"])
        self.cleaning = cleaning_options(opt)
        opt = copy.deepcopy(opt)
        self.data_label = f"{self.task_label(opt)} {self.split}"  # for messages and logs
        opt["datafile"] = self.datafile_for(opt, self.split)
        super().__init__(opt, shared)

    #: Option prefixes that change which examples a teacher yields.
    DATA_OPTION_PREFIXES = ("customer_", "chitchat_", "qa_", "files_", "clean_")

    @classmethod
    def datafile_for(cls, opt, split: str) -> str:
        """DialogTeacher's ``datafile``: a label in messages, and where ParlAI's streaming
        mode caches ``DATAFILE.lengths``. So it lives under ``--datapath`` (not the working
        directory), and names a hash of the options that shape the data (a cached count
        for other options would be wrong)."""
        shaping = sorted(
            (key, str(value)) for key, value in opt.items()
            if key.startswith(cls.DATA_OPTION_PREFIXES) or key in ("task", "lang", "sources", "speaker", "knowledge")
        )
        # And the data itself: a count cached before the corpora, their readers or the
        # teacher changed (an upgrade that moves dialogues between splits) is wrong too.
        shaping.append(("data", data_version(inspect.getsourcefile(cls) or "")))
        digest = hashlib.sha1(repr(shaping).encode("utf-8")).hexdigest()[:10]
        folder = os.path.join(opt.get("datapath") or ".", "dialogft", "streams")
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"{cls.task_label(opt)} {split} {digest}".replace(os.sep, "_"))

    @classmethod
    def task_label(cls, opt) -> str:
        return opt.get("task") or cls.__name__

    def load_conversations(self, split: str) -> Tuple[Sequence[Conversation], CleaningReport]:
        """This split's conversations, cleaned, and the report of the cleaning."""
        raise NotImplementedError

    def model_speakers(self, conversation: Conversation) -> List[str]:
        return resolve_speakers(conversation, self.model_speaker)

    def setup_data(self, datafile: str) -> Iterable[Tuple[dict, bool]]:
        conversations, report = self.load_conversations(self.split)
        report = CleaningReport(report)
        episodes = examples = 0
        built = []
        for conversation in conversations:
            found = False
            for speaker in self.model_speakers(conversation):
                episode = to_examples(conversation, speaker, self.knowledge_in_context)
                if episode:
                    found = True
                    built.append(episode)
                    examples += len(episode)
            if not found:
                report["no_reply"] += 1
        episodes = len(built)
        if not built:
            raise DataFormatError(
                self.data_label, None, f"no usable conversations after cleaning ({report.summary()})"
            )
        self.stats = {
            "dialogues": len(conversations),
            "episodes": episodes,
            "examples": examples,
            "report": report,
        }
        logging.info(
            f"{self.data_label}: {len(conversations)} dialogues, {episodes} episodes, "
            f"{examples} examples; {report.summary()}"
        )
        for episode in built:
            for index, message in enumerate(episode):
                yield message, index == 0


@functools.lru_cache(maxsize=64)
def clean_corpus(
    reader: Reader, split: str, lang: str, options: CleaningOptions
) -> Tuple[Tuple[Conversation, ...], CleaningReport]:
    """A corpus split in one language, cleaned; cached so teachers share the work."""
    raw = [c for c in reader().get(split, ()) if lang in ("all", c.lang)]
    report = CleaningReport()
    return tuple(clean_conversations(raw, options, report)), report


class CorpusTeacher(ConversationTeacher):
    """A teacher over shipped corpora; subclasses list readers by name in :attr:`READERS`."""

    READERS: Dict[str, Reader] = {}
    #: Languages each source has; a source is used when it has the requested language.
    SOURCE_LANGS: Dict[str, Tuple[str, ...]] = {}

    def __init__(self, opt, shared=None):
        self.lang, self.sources = self.choose_sources(opt)
        super().__init__(opt, shared)

    def choose_sources(self, opt) -> Tuple[str, List[str]]:
        """(language, source names) from the flags; subclasses read their own flags."""
        return "all", list(self.READERS)

    @classmethod
    def check_sources(cls, lang: str, requested: str, flags: str) -> List[str]:
        """Validate ``--*-lang`` and ``--*-sources`` together; fail naming the flags."""
        if lang not in LANGS:
            raise UserError(f"{flags}: language must be one of {', '.join(LANGS)}, not {lang!r}")
        names = list(cls.READERS) if requested in ("", "all") else requested.split(",")
        unknown = [n for n in names if n not in cls.READERS]
        if unknown:
            raise UserError(
                f"{flags}: unknown source(s) {', '.join(unknown)}; "
                f"choose from {', '.join(cls.READERS)}"
            )
        chosen = [n for n in names if lang == "all" or lang in cls.SOURCE_LANGS[n]]
        if not chosen:
            raise UserError(f"{flags}: no source among {', '.join(names)} has language {lang}")
        return chosen

    def load_conversations(self, split: str):
        conversations: List[Conversation] = []
        report = CleaningReport()
        for name in self.sources:
            cleaned, part = clean_corpus(self.READERS[name], split, self.lang, self.cleaning)
            conversations.extend(cleaned)
            report.update(part)
        return conversations, report
