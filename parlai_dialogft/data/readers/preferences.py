"""Preference files in TRL's shapes → :class:`PreferenceRecord`, then cleaned and counted.

One JSON object per line (JSONL), of one of two kinds:

* **paired** (DPO): ``{"prompt": ..., "chosen": ..., "rejected": ...}``
* **unpaired** (KTO): ``{"prompt": ..., "completion": ..., "label": true}``

Each text field is a string (TRL's *standard* format) or a list of ``{"role", "content"}``
messages (its *conversational* format: the prompt's turns, optionally opening with a system
message; a reply is the assistant's messages, usually one). A paired record may leave out
the prompt when ``chosen`` and ``rejected`` are whole conversations (TRL's *implicit
prompt*): the messages they share from the start are the prompt, the rest of each is its
reply. A string prompt is one ``user`` turn.

Malformed input raises :class:`~parlai_dialogft.data.conversation.DataFormatError` naming the
file and line: bad JSON, a missing field, a field of the wrong type, a message without role
or content, paired and unpaired records in one file, an empty file. Empty or identical
replies are not errors: :func:`clean_preferences` drops such records and counts them, as
the other teachers' cleaning counts what it drops.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from parlai_dialogft.data.cleaning import CleaningOptions, CleaningReport, clean_text, clean_turns
from parlai_dialogft.data.conversation import Turn
from parlai_dialogft.data.readers.user_files import file_version, guess_lang
from parlai_dialogft.utils.errors import DataFormatError
from parlai_dialogft.utils.jsonl import read_jsonl

PAIRED, UNPAIRED = "paired", "unpaired"
KINDS = ("auto", PAIRED, UNPAIRED)
# The fields that make a record one kind or the other; both kinds have a "prompt".
KIND_FIELDS = {PAIRED: ("chosen", "rejected"), UNPAIRED: ("completion", "label")}
_ARTICLE = {PAIRED: "a", UNPAIRED: "an"}
USER, ASSISTANT = "user", "assistant"


@dataclass(frozen=True)
class PreferenceRecord:
    """One line of a preference file: a prompt and the judged replies to it."""

    path: str  # the file as given, for messages
    line: int
    kind: str  # PAIRED or UNPAIRED
    prompt: Tuple[Turn, ...]  # one turn per message, speaker = its role
    chosen: str = ""  # paired only
    rejected: str = ""  # paired only
    completion: str = ""  # unpaired only
    desirable: Optional[bool] = None  # unpaired only: the record's "label"
    lang: str = "en"

    @property
    def source(self) -> str:
        return Path(self.path).name

    @property
    def id(self) -> str:
        """``file:line``: unique within a run, and says which line to look at."""
        return f"{self.source}:{self.line}"

    @property
    def replies(self) -> Dict[str, str]:
        """The reply texts of the record's kind, by field name."""
        if self.kind == PAIRED:
            return {"chosen": self.chosen, "rejected": self.rejected}
        return {"completion": self.completion}

    @property
    def prompt_text(self) -> str:
        """The prompt's turns joined by newlines, ParlAI's default delimiter."""
        return "\n".join(turn.text for turn in self.prompt)


# --- reading ------------------------------------------------------------------------------


def read_preference_file(path, kind: str = "auto") -> Tuple[PreferenceRecord, ...]:
    """All records of one file, texts as written; parsed once per process per file version."""
    return _read_cached(*file_version(path), kind)


@functools.lru_cache(maxsize=32)
def _read_cached(path_str: str, _mtime: int, _size: int, kind: str) -> Tuple[PreferenceRecord, ...]:
    if kind not in KINDS:
        raise ValueError(f"--pref-kind: choose one of {', '.join(KINDS)}, not {kind!r}")
    path = Path(path_str)
    # What fixed the kind, for the message when a record disagrees: the flag or a line.
    decided_by = "" if kind == "auto" else f"--pref-kind is {kind}"
    records: List[PreferenceRecord] = []
    for number, record in read_jsonl(path, "a preference file holds one JSON object per line"):
        if not isinstance(record, dict):
            raise DataFormatError(path, number, f"expected a JSON object, found {_type_name(record)}")
        found = kind_of(path, number, record)
        if not decided_by:
            if found is None:
                raise DataFormatError(
                    path, number, "neither a paired record (prompt, chosen, rejected) nor an "
                    f"unpaired one (prompt, completion, label); keys: {sorted(record)}"
                )
            kind, decided_by = found, f"line {number} is {found}"
        elif found is not None and found != kind:
            raise DataFormatError(
                path, number, f"{_ARTICLE[found]} {found} record ({', '.join(KIND_FIELDS[found])}) "
                f"in a file of {kind} ones ({decided_by}); one file holds one kind"
            )
        records.append(_parse(path, number, record, kind))
    return tuple(records)


def kind_of(path: Path, line: int, record: Dict[str, Any]) -> Optional[str]:
    """PAIRED or UNPAIRED by the record's fields; None when it has neither kind's fields."""
    paired = [name for name in KIND_FIELDS[PAIRED] if name in record]
    unpaired = [name for name in KIND_FIELDS[UNPAIRED] if name in record]
    if paired and unpaired:
        raise DataFormatError(
            path, line, f"paired fields ({', '.join(paired)}) and unpaired ones "
            f"({', '.join(unpaired)}) in one record"
        )
    return PAIRED if paired else UNPAIRED if unpaired else None


def _parse(path: Path, line: int, record: Dict[str, Any], kind: str) -> PreferenceRecord:
    for name in KIND_FIELDS[kind]:
        if name not in record:
            raise DataFormatError(path, line, f"missing field {name!r}")
    if kind == UNPAIRED:
        if "prompt" not in record:
            raise DataFormatError(path, line, "missing field 'prompt'")
        label = record["label"]
        if not isinstance(label, bool):
            raise DataFormatError(path, line, f"'label' must be true or false, not {_type_name(label)} {label!r}")
        prompt = _messages(path, line, "prompt", record["prompt"], USER)
        completion = _reply(path, line, "completion", record["completion"])
        return PreferenceRecord(
            str(path), line, kind, prompt, completion=completion, desirable=label,
            lang=_lang(prompt, completion),
        )
    chosen = _messages(path, line, "chosen", record["chosen"], ASSISTANT)
    rejected = _messages(path, line, "rejected", record["rejected"], ASSISTANT)
    if "prompt" in record:
        prompt = _messages(path, line, "prompt", record["prompt"], USER)
    elif isinstance(record["chosen"], list) and isinstance(record["rejected"], list):
        prompt, chosen, rejected = _split_shared_prompt(chosen, rejected)
    else:
        raise DataFormatError(
            path, line, "missing field 'prompt' (only message lists in chosen and rejected "
            "can share an implicit prompt)"
        )
    texts = {name: _reply_text(path, line, name, turns) for name, turns in (("chosen", chosen), ("rejected", rejected))}
    return PreferenceRecord(
        str(path), line, kind, prompt, chosen=texts["chosen"], rejected=texts["rejected"],
        lang=_lang(prompt, *texts.values()),
    )


def _messages(path: Path, line: int, name: str, value: Any, role: str) -> Tuple[Turn, ...]:
    """A field as turns: a string is one turn by ``role``, a message list one turn each."""
    if isinstance(value, str):
        return (Turn(role, value),)
    if not isinstance(value, list):
        raise DataFormatError(
            path, line, f"{name!r} must be a string or a list of {{role, content}} messages, "
            f"not {_type_name(value)}"
        )
    turns = []
    for index, message in enumerate(value, 1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            what = sorted(message) if isinstance(message, dict) else _type_name(message)
            raise DataFormatError(
                path, line, f"{name!r} message {index} needs 'role' and 'content' (found {what})"
            )
        if not isinstance(message["role"], str):
            raise DataFormatError(path, line, f"{name!r} message {index}: 'role' must be a string")
        turns.append(Turn(message["role"], _content(path, line, f"{name!r} message {index}", message["content"])))
    return tuple(turns)


def _content(path: Path, line: int, where: str, content: Any) -> str:
    """A message's content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return "".join(str(p.get("text", "")) for p in content if p.get("type", "text") == "text")
    raise DataFormatError(
        path, line, f"{where}: 'content' must be a string or a list of parts, not {_type_name(content)}"
    )


def _reply(path: Path, line: int, name: str, value: Any) -> str:
    return _reply_text(path, line, name, _messages(path, line, name, value, ASSISTANT))


def _reply_text(path: Path, line: int, name: str, turns: Tuple[Turn, ...]) -> str:
    """A reply is what the assistant says; several messages are one reply, line by line."""
    for index, turn in enumerate(turns, 1):
        if turn.speaker != ASSISTANT:
            raise DataFormatError(
                path, line, f"{name!r} message {index} is by {turn.speaker!r}; a reply holds "
                "the assistant's messages only (the conversation before it is the prompt)"
            )
    return "\n".join(turn.text for turn in turns)


def _split_shared_prompt(
    chosen: Tuple[Turn, ...], rejected: Tuple[Turn, ...]
) -> Tuple[Tuple[Turn, ...], Tuple[Turn, ...], Tuple[Turn, ...]]:
    """TRL's implicit prompt: the messages both conversations open with."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    # Each side keeps at least its last message as the reply; two equal conversations thus
    # become equal replies, which cleaning drops and counts, never a record without replies.
    shared = max(0, min(shared, len(chosen) - 1, len(rejected) - 1))
    return chosen[:shared], chosen[shared:], rejected[shared:]


def _lang(prompt: Tuple[Turn, ...], *replies: str) -> str:
    return guess_lang([turn.text for turn in prompt] + list(replies))


def _type_name(value: Any) -> str:
    """JSON's name for a value's type, as the user wrote it."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# --- cleaning -----------------------------------------------------------------------------


class PreferenceReport(CleaningReport):
    """The cleaning report, plus why whole records were dropped."""

    LABELS = CleaningReport.LABELS[:5] + (
        ("empty_prompt", "records dropped (empty prompt)"),
        ("empty_chosen", "records dropped (empty chosen)"),
        ("empty_rejected", "records dropped (empty rejected)"),
        ("empty_completion", "records dropped (empty completion)"),
        ("long_records", "records dropped (a text over --clean-max-turn-chars)"),
        ("same_replies", "records dropped (chosen equals rejected)"),
        ("duplicate_records", "records dropped (duplicate)"),
    )


def clean_preferences(
    records: Iterable[PreferenceRecord], options: CleaningOptions, report: Counter
) -> List[PreferenceRecord]:
    """Every text cleaned as the dialogue teachers clean a turn; unusable records dropped.

    A record is dropped, with its reason counted, when its prompt or a reply is empty after
    cleaning, when a text is longer than ``options.max_turn_chars`` (a cut prompt would no
    longer be what the replies answer, so the record goes whole), when chosen equals
    rejected (nothing to prefer), and, with ``options.dedup``, when it repeats an earlier one.
    """
    # Prompt turns go through the dialogue teachers' own turn cleaning (empty turns dropped,
    # same-role turns merged), with the length limit applied to the record as a whole here.
    unlimited = dataclasses.replace(options, max_turn_chars=0)
    seen = set()
    kept = []
    for record in records:
        prompt = tuple(clean_turns(record.prompt, unlimited, report))
        replies = {}
        for name, text in record.replies.items():
            replies[name] = clean_text(text, options, report)
            if replies[name] != text:
                report["changed_turns"] += 1
        reason = _drop_reason(prompt, replies, options)
        if reason is None and options.dedup:
            fingerprint = (record.kind, prompt, tuple(replies.values()), record.desirable)
            reason = "duplicate_records" if fingerprint in seen else None
            seen.add(fingerprint)
        if reason is not None:
            report[reason] += 1
            continue
        kept.append(dataclasses.replace(record, prompt=prompt, **replies))
    return kept


def _drop_reason(prompt: Tuple[Turn, ...], replies: Dict[str, str], options: CleaningOptions) -> Optional[str]:
    if not prompt:
        return "empty_prompt"
    for name, text in replies.items():
        if not text:
            return f"empty_{name}"
    limit = options.max_turn_chars
    if limit and any(len(text) > limit for text in [t.text for t in prompt] + list(replies.values())):
        return "long_records"
    if "chosen" in replies and replies["chosen"] == replies["rejected"]:
        return "same_replies"
    return None
