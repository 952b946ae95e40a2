"""Preference data for DPO and KTO: TRL's paired and unpaired JSONL files, as ParlAI episodes.
Formats: :mod:`parlai_dialogft.data.readers.preferences`.

    parlai display_data -t dialogft_preferences --pref-datapath prefs.jsonl
    parlai display_data -t dialogft_preferences --pref-datapath 'prefs_{split}.jsonl'
    parlai display_data -t dialogft_preferences --pref-datapath kto.jsonl --pref-split hash

Every record is one episode of one example: ``text`` is the prompt (its turns joined by
newlines), ``labels`` the preferred reply, so a plain ParlAI agent can still train or
evaluate on it; a preference trainer reads ``chosen`` and ``rejected`` (paired) or
``completion`` and ``desirable`` (unpaired). ``--pref-datapath`` and ``--pref-split`` work as
``--files-datapath`` and ``--files-split`` of ``dialogft_files``; the hash split goes by the
prompt, so every judgement of one prompt lands in the same split.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

from parlai.utils import logging

from parlai_dialogft.data import splits
from parlai_dialogft.data.dialog_teacher import ConversationTeacher
from parlai_dialogft.data.readers.preferences import (
    KINDS,
    PAIRED,
    PreferenceRecord,
    PreferenceReport,
    clean_preferences,
    read_preference_file,
)
from parlai_dialogft.utils.errors import DataFormatError, UserError


class PreferenceTeacher(ConversationTeacher):
    """One episode per preference record; the base class gives the cleaning flags and splits."""

    # The pref_* options shape the data too: ParlAI's stream mode caches counts per set.
    DATA_OPTION_PREFIXES = ConversationTeacher.DATA_OPTION_PREFIXES + ("pref_",)

    @classmethod
    def add_teacher_args(cls, parser, partial_opt=None):
        group = parser.add_argument_group("dialogft_preferences teacher")
        group.add_argument(
            "--pref-datapath",
            help="preference JSONL file(s), comma-separated; {split} becomes train/valid/test",
        )
        group.add_argument(
            "--pref-split",
            choices=("none", "hash"),
            default="none",
            help="without {split} in the path: none = the whole file for every datatype, "
            "hash = 80/10/10 by a hash of the prompt (equal prompts stay together)",
        )
        group.add_argument(
            "--pref-kind",
            choices=KINDS,
            default="auto",
            help="paired (prompt, chosen, rejected: DPO) or unpaired (prompt, completion, "
            "label: KTO); auto goes by the first record's fields",
        )

    def __init__(self, opt, shared=None):
        if not opt.get("pref_datapath"):
            raise UserError("dialogft_preferences needs --pref-datapath PATH (a preference JSONL file)")
        self.paths = [p.strip() for p in str(opt["pref_datapath"]).split(",") if p.strip()]
        self.kind = opt.get("pref_kind", "auto")
        self.split_mode = opt.get("pref_split", "none")
        super().__init__(opt, shared)

    def load_records(self, split: str) -> Tuple[List[PreferenceRecord], PreferenceReport]:
        """This split's records from every file, cleaned, and the report of the cleaning."""
        records: List[PreferenceRecord] = []
        report = PreferenceReport()
        first: Optional[PreferenceRecord] = None  # of the first file: it fixes the kind
        for template in self.paths:
            path = template.replace("{split}", split)
            found = read_preference_file(path, self.kind)
            first = first or (found[0] if found else None)
            if found and first is not None and found[0].kind != first.kind:
                raise DataFormatError(
                    path, found[0].line, f"{found[0].kind} records, but {first.path} holds "
                    f"{first.kind} ones; one task serves one kind (use two tasks)"
                )
            if "{split}" not in template and self.split_mode == "hash":
                found = splits.assign(found, prompt_key, prompt_key)[split]
            part = PreferenceReport()
            cleaned = clean_preferences(found, self.cleaning, part)
            if found and not cleaned:  # never lose a whole file without saying so
                raise DataFormatError(path, None, f"no usable records after cleaning ({part.summary()})")
            records.extend(cleaned)
            report.update(part)
        return records, report

    def setup_data(self, datafile: str) -> Iterable[Tuple[dict, bool]]:
        records, report = self.load_records(self.split)
        if not records:
            raise DataFormatError(self.data_label, None, f"no usable records after cleaning ({report.summary()})")
        self.stats = {"records": len(records), "episodes": len(records), "examples": len(records), "report": report}
        logging.info(f"{self.data_label}: {len(records)} {records[0].kind} preference records; {report.summary()}")
        for record in records:
            yield preference_message(record), True


def prompt_key(record: PreferenceRecord) -> str:
    """The hash split's key: the prompt, blind to case and spacing (read before cleaning)."""
    return " ".join(record.prompt_text.split()).casefold()


def preference_message(record: PreferenceRecord) -> dict:
    """The message a preference trainer reads.

    ``labels`` is the chosen reply, or the completion whatever its label: a trainer that
    imitates replies should keep only ``desirable`` ones.
    """
    message = {
        "text": record.prompt_text,
        "lang": record.lang,
        "source": record.source,
        "dialogue_id": record.id,
    }
    if record.kind == PAIRED:
        message.update(labels=[record.chosen], chosen=record.chosen, rejected=record.rejected)
    else:
        message.update(labels=[record.completion], completion=record.completion, desirable=record.desirable)
    return message


class DefaultTeacher(PreferenceTeacher):
    pass
