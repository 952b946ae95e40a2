"""Task-oriented corpora: user ↔ agent. Every reader names the sides ``user`` and ``agent``.

Splits (``train``/``valid``/``test``), and why:

* SGD: the official train/dev/test folders (dev is ParlAI's ``valid``).
* Taskmaster-4: no official split; 80/10/10 by a hash of ``conversation_id``.
* MultiWOZ 2.1 (ConvLab-2): only the official val split ships; 80/10/10 by a hash of its id.
* CrossWOZ: official val and test ship, train does not. Test stays test; val is cut 90/10 into
  train/valid by a hash of the dialogue id.

Each reader parses its files once per machine (:func:`~.corpus_files.disk_cached`) and returns
immutable tuples.
"""

from __future__ import annotations

from typing import Dict, Tuple

from parlai_dialogft.data import splits
from parlai_dialogft.data.conversation import Conversation, Turn
from parlai_dialogft.data.readers.corpus_files import corpus_dir, disk_cached, load_json

Split = Dict[str, Tuple[Conversation, ...]]
USER, AGENT = "user", "agent"


def content_key(conversation: Conversation):
    """What makes two dialogues "the same" for splitting: text, up to case and spacing."""
    return tuple(" ".join(turn.text.split()).casefold() for turn in conversation.turns)


def _frozen(groups) -> Split:
    return {name: tuple(items) for name, items in groups.items()}


@disk_cached("sgd")
def read_sgd() -> Split:
    root = corpus_dir("sgd")
    speakers = {"USER": USER, "SYSTEM": AGENT}
    result = {}
    for split, folder in (("train", "train"), ("valid", "dev"), ("test", "test")):
        conversations = []
        for path in sorted((root / folder).glob("dialogues_*.json.gz")):
            for dialogue in load_json(path):
                turns = tuple(Turn(speakers[t["speaker"]], t["utterance"]) for t in dialogue["turns"])
                # Upstream ids restart in every split ("1_00000" is in all three).
                conversations.append(
                    Conversation(f"{folder}/{dialogue['dialogue_id']}", "sgd", "en", turns, folder)
                )
        result[split] = tuple(conversations)
    return result


@disk_cached("taskmaster4")
def read_taskmaster4() -> Split:
    speakers = {"user": USER, "assistant": AGENT}
    conversations = []
    for path in sorted((corpus_dir("taskmaster4") / "data").glob("data_*.json.gz")):
        for dialogue in load_json(path):
            turns = tuple(Turn(speakers[u["speaker"]], u["text"]) for u in dialogue["utterances"])
            conversations.append(
                Conversation(dialogue["conversation_id"], "taskmaster4", "en", turns, path.name)
            )
    return _frozen(splits.assign(conversations, lambda c: c.id, content_key))


@disk_cached("multiwoz21_convlab2")
def read_multiwoz() -> Split:
    dialogues = load_json(corpus_dir("multiwoz21_convlab2") / "val.json.zip")
    conversations = [
        Conversation(
            dialogue_id,
            "multiwoz",
            "en",
            tuple(Turn(AGENT if i % 2 else USER, t["text"]) for i, t in enumerate(d["log"])),
            "val",
        )
        for dialogue_id, d in dialogues.items()
    ]
    return _frozen(splits.assign(conversations, lambda c: c.id, content_key))


@disk_cached("crosswoz")
def read_crosswoz() -> Split:
    root = corpus_dir("crosswoz")
    speakers = {"usr": USER, "sys": AGENT}

    def read(upstream: str):
        return [
            Conversation(
                dialogue_id,
                "crosswoz",
                "zh",
                tuple(Turn(speakers[m["role"]], m["content"]) for m in d["messages"]),
                upstream,
            )
            for dialogue_id, d in load_json(root / f"{upstream}.json.zip").items()
        ]

    groups = splits.assign(read("val"), lambda c: c.id, content_key, splits.TWO_WAY)
    groups["test"] = read("test")
    return _frozen(groups)


READERS = {
    "sgd": read_sgd,
    "taskmaster4": read_taskmaster4,
    "multiwoz": read_multiwoz,
    "crosswoz": read_crosswoz,
}
LANGUAGES = {"sgd": "en", "taskmaster4": "en", "multiwoz": "en", "crosswoz": "zh"}
