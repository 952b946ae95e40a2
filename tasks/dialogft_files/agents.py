"""Your own dialogue data: pairs (CSV, TSV, JSONL, JSON/Python list), chat ``messages``,
ParlAI Conversations JSONL or ParlAI text. Formats: :mod:`parlai_dialogft.data.readers.user_files`.

    parlai display_data -t dialogft_files --files-datapath faq.csv
    parlai display_data -t dialogft_files --files-datapath 'chats_{split}.jsonl'
    parlai display_data -t dialogft_files --files-datapath convs.jsonl --files-model-speaker both

``--files-datapath`` takes one path or several separated by commas. ``{split}`` in a path is
replaced by train, valid or test. Without it, ``--files-split none`` (the default, as ParlAI's
jsonfile teacher) gives every datatype the whole file, and ``--files-split hash`` cuts it
80/10/10 by a hash of each conversation's first turn (equal prompts stay together).
"""

from __future__ import annotations

from typing import List

from parlai_dialogft.data import splits
from parlai_dialogft.data.cleaning import CleaningReport, clean_conversations
from parlai_dialogft.data.conversation import Conversation, resolve_speakers
from parlai_dialogft.data.dialog_teacher import ConversationTeacher
from parlai_dialogft.data.readers.user_files import FORMATS, read_user_file
from parlai_dialogft.utils.errors import DataFormatError, UserError


class UserFilesTeacher(ConversationTeacher):
    @classmethod
    def add_teacher_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_files teacher")
        group.add_argument(
            "--files-datapath",
            help="data file(s), comma-separated; {split} becomes train/valid/test",
        )
        group.add_argument(
            "--files-format",
            choices=FORMATS,
            default="auto",
            help="file format; auto goes by the extension (.csv .tsv .jsonl .json .py .txt)",
        )
        group.add_argument(
            "--files-model-speaker",
            default="auto",
            help="the side the model learns: auto (assistant / response; the second speaker "
            "of Conversations), first, second, both, or a speaker id or role",
        )
        group.add_argument(
            "--files-split",
            choices=("none", "hash"),
            default="none",
            help="without {split} in the path: none = the whole file for every datatype, "
            "hash = 80/10/10 by a hash of each conversation's first turn",
        )

    def __init__(self, opt, shared=None):
        if not opt.get("files_datapath"):
            raise UserError("dialogft_files needs --files-datapath PATH (a data file)")
        self.paths = [p.strip() for p in str(opt["files_datapath"]).split(",") if p.strip()]
        self.file_format = opt.get("files_format", "auto")
        self.model_speaker = opt.get("files_model_speaker", "auto")
        self.split_mode = opt.get("files_split", "none")
        super().__init__(opt, shared)

    def model_speakers(self, conversation: Conversation) -> List[str]:
        choice = self.model_speaker
        if choice == "auto":
            choice = conversation.extra.get("model_speaker", "second")
        return resolve_speakers(conversation, choice)

    def load_conversations(self, split: str):
        conversations: List[Conversation] = []
        report = CleaningReport()
        for template in self.paths:
            path = template.replace("{split}", split)
            found = read_user_file(path, self.file_format)
            if "{split}" not in template and self.split_mode == "hash":
                found = splits.assign(found, _prompt_key, _prompt_key)[split]
            part = CleaningReport()
            cleaned = clean_conversations(found, self.cleaning, part)
            if found and not cleaned:  # never lose a whole file without saying so
                raise DataFormatError(
                    path, None, f"no usable conversations after cleaning ({part.summary()})"
                )
            conversations.extend(cleaned)
            report.update(part)
        return conversations, report


def _prompt_key(conversation: Conversation) -> str:
    return " ".join(conversation.turns[0].text.split()).casefold()


class DefaultTeacher(UserFilesTeacher):
    pass
