"""Task-oriented corpora: user ↔ agent. Every reader names the sides ``user`` and ``agent``.

Splits (``train``/``valid``/``test``), and why:

* SGD: the official train/dev/test folders (dev is ParlAI's ``valid``).
* Taskmaster-4: no official split; 80/10/10 by a hash of ``conversation_id``.
* MultiWOZ 2.1 (ConvLab-2): the official val and test ship, train does not. Test is the
  official test, less the two dialogues whose text is a val dialogue's (``PMUL3596``,
  ``PMUL1978``: they would be test dialogues seen in training). Val is cut by a hash of the
  dialogue id: 10 % valid, the rest train. (Before the official test shipped, a tenth of val
  was test; it has joined train, and train and valid are otherwise as they were.)
* CrossWOZ: official val and test ship, train does not. Test stays test; val is cut 90/10 into
  train/valid by a hash of the dialogue id.

SGD, MultiWOZ and CrossWOZ keep their annotations, raw, for :mod:`parlai_dialogft.tod` to read:
every upstream field of a turn but its text and speaker goes to :attr:`Turn.annotations`, every
field of a dialogue but its id and turns to :attr:`Conversation.annotations`:

* MultiWOZ: turns ``dialog_act``, ``span_info``, ``metadata`` (the belief state, on agent
  turns; ``{}`` on user turns); dialogues ``goal``.
* CrossWOZ: turns ``dialog_act`` and ``user_state`` (user) or ``sys_state`` and
  ``sys_state_init`` (agent); dialogues ``goal``, ``final_goal``, ``task description``,
  ``type``, ``sys-usr``.
* SGD: turns ``frames`` (user: ``actions``, ``slots``, ``state``; agent: ``actions``,
  ``slots`` and, where the agent queried a service, ``service_call`` and
  ``service_results``); dialogues ``services``. The services' schemas: :func:`sgd_schema`.

Taskmaster-4 is text only.

Each reader parses its files once per machine (:func:`~.corpus_files.disk_cached`) and returns
immutable tuples.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Tuple

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


def _rest(record: Mapping[str, Any], *taken: str) -> Dict[str, Any]:
    """The fields of an upstream record that are not ``taken``: its annotations."""
    return {key: value for key, value in record.items() if key not in taken}


SGD_FOLDERS = {"train": "train", "valid": "dev", "test": "test"}


def sgd_schema(split: str) -> Dict[str, Dict[str, Any]]:
    """The schema of the services in SGD's ``split`` (``train``/``valid``/``test``), by name.

    Upstream's ``schema.json`` of that folder as parsed: service name -> ``{"service_name",
    "description", "slots", "intents"}``. The valid and test schemas hold services train has
    never seen. A fresh copy on every call.
    """
    if split not in SGD_FOLDERS:
        raise ValueError(f"SGD has no split {split!r}; it has {', '.join(SGD_FOLDERS)}")
    services = load_json(corpus_dir("sgd") / SGD_FOLDERS[split] / "schema.json.gz")
    return {service["service_name"]: service for service in services}


@disk_cached("sgd")
def read_sgd() -> Split:
    root = corpus_dir("sgd")
    speakers = {"USER": USER, "SYSTEM": AGENT}
    result = {}
    for split, folder in SGD_FOLDERS.items():
        conversations = []
        for path in sorted((root / folder).glob("dialogues_*.json.gz")):
            for dialogue in load_json(path):
                turns = tuple(
                    Turn(speakers[t["speaker"]], t["utterance"], annotations=_rest(t, "speaker", "utterance"))
                    for t in dialogue["turns"]
                )
                # Upstream ids restart in every split ("1_00000" is in all three).
                conversations.append(
                    Conversation(
                        f"{folder}/{dialogue['dialogue_id']}", "sgd", "en", turns, folder,
                        annotations=_rest(dialogue, "dialogue_id", "turns"),
                    )
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
    root = corpus_dir("multiwoz21_convlab2")

    def read(upstream: str):
        return [
            Conversation(
                dialogue_id,
                "multiwoz",
                "en",
                tuple(
                    Turn(AGENT if i % 2 else USER, t["text"], annotations=_rest(t, "text"))
                    for i, t in enumerate(d["log"])
                ),
                upstream,
                annotations=_rest(d, "log"),
            )
            for dialogue_id, d in load_json(root / f"{upstream}.json.zip").items()
        ]

    val = read("val")
    groups = splits.assign(val, lambda c: c.id, content_key)
    groups["train"].extend(groups.pop("test"))  # a tenth of val was test before the official test
    groups["test"] = _unseen(read("test"), val)
    return _frozen(groups)


def _unseen(test: Iterable[Conversation], seen: Iterable[Conversation]):
    """``test`` less the dialogues whose text is one of ``seen``'s (exact copies upstream)."""
    texts = {content_key(c) for c in seen}
    return [c for c in test if content_key(c) not in texts]


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
                tuple(
                    Turn(speakers[m["role"]], m["content"], annotations=_rest(m, "role", "content"))
                    for m in d["messages"]
                ),
                upstream,
                annotations=_rest(d, "messages"),
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
