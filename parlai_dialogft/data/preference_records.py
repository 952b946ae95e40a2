"""Writing TRL's preference records, the counterpart of :mod:`.readers.preferences`.

The serving log, crowd judgments and self-play all write the conversational formats that
``-t dialogft_preferences`` reads: ``{"prompt", "chosen", "rejected"}`` (paired) and
``{"prompt", "completion", "label"}`` (unpaired), the prompt a list of chat messages and
each reply one assistant message.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterable, List

Messages = List[Dict[str, str]]


def assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def paired(prompt: Messages, chosen: str, rejected: str) -> dict:
    return {"prompt": prompt, "chosen": assistant(chosen), "rejected": assistant(rejected)}


def unpaired(prompt: Messages, completion: str, label: bool) -> dict:
    return {"prompt": prompt, "completion": assistant(completion), "label": label}


def write_jsonl(path: str, records: Iterable[dict]) -> None:
    """All of it or nothing: a reader never sees half a file (written aside, then renamed)."""
    partial = str(path) + ".partial"
    with open(partial, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(partial, path)
