"""Writing TRL's preference records, the counterpart of :mod:`.readers.preferences`.

The serving log, crowd judgments and self-play all write the conversational formats that
``-t dialogft_preferences`` reads: ``{"prompt", "chosen", "rejected"}`` (paired) and
``{"prompt", "completion", "label"}`` (unpaired), the prompt a list of chat messages and
each reply one assistant message. They are written with
:func:`parlai_dialogft.utils.jsonl.write_jsonl`, all of a file or nothing.
"""

from __future__ import annotations

from typing import Dict, List

Messages = List[Dict[str, str]]


def assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def paired(prompt: Messages, chosen: str, rejected: str) -> dict:
    return {"prompt": prompt, "chosen": assistant(chosen), "rejected": assistant(rejected)}


def unpaired(prompt: Messages, completion: str, label: bool) -> dict:
    return {"prompt": prompt, "completion": assistant(completion), "label": label}
