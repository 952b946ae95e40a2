"""Open-domain corpora: two peers, no fixed roles. Speakers keep their upstream names.

Splits (``train``/``valid``/``test``), and why:

* Topical-Chat: official ``valid_freq`` and ``test_freq`` ship, train does not. test_freq stays
  test; valid_freq is cut 90/10 into train/valid by a hash of the conversation id.
* KdConv: official dev and test ship (film, music, travel), train does not. Test stays test;
  dev is cut 90/10 into train/valid by a hash of ``<domain>/dev/<index>`` (upstream has no id).
  Each turn's knowledge triples become ``Turn.knowledge`` ("entity | attribute | value").
* ChatterBot (English, Chinese): no split; 80/10/10 by a hash of the language and the opening
  utterance, so every answer to the same prompt (the corpus has many) is in one split.
"""

from __future__ import annotations

from typing import Dict, Tuple

import yaml

from parlai_dialogft.data import splits
from parlai_dialogft.data.conversation import Conversation, Turn
from parlai_dialogft.data.readers.corpus_files import corpus_dir, disk_cached, load_json
from parlai_dialogft.data.readers.task_oriented import content_key

Split = Dict[str, Tuple[Conversation, ...]]
SPEAKER_A, SPEAKER_B = "A", "B"
KDCONV_DOMAINS = ("film", "music", "travel")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _frozen(groups) -> Split:
    return {name: tuple(items) for name, items in groups.items()}


@disk_cached("topical_chat")
def read_topical_chat() -> Split:
    root = corpus_dir("topical_chat") / "conversations"

    def read(upstream: str):
        return [
            Conversation(
                conversation_id,
                "topical_chat",
                "en",
                tuple(Turn(t["agent"], t["message"]) for t in c["content"]),
                upstream,
            )
            for conversation_id, c in load_json(root / f"{upstream}.json.gz").items()
        ]

    groups = splits.assign(read("valid_freq"), lambda c: c.id, content_key, splits.TWO_WAY)
    groups["test"] = read("test_freq")
    return _frozen(groups)


def _kdconv_fact(attr: dict) -> str:
    return f"{attr['name']} | {attr['attrname']} | {attr['attrvalue']}"


@disk_cached("kdconv")
def read_kdconv() -> Split:
    root = corpus_dir("kdconv")

    def read(upstream: str):
        conversations = []
        for domain in KDCONV_DOMAINS:
            for index, c in enumerate(load_json(root / domain / f"{upstream}.json.gz")):
                # No speaker field upstream: two workers alternate, A opens.
                turns = tuple(
                    Turn(
                        SPEAKER_B if i % 2 else SPEAKER_A,
                        m["message"],
                        tuple(_kdconv_fact(a) for a in m.get("attrs", ())),
                    )
                    for i, m in enumerate(c["messages"])
                )
                conversations.append(
                    Conversation(f"{domain}/{upstream}/{index}", "kdconv", "zh", turns, upstream)
                )
        return conversations

    groups = splits.assign(read("dev"), lambda c: c.id, content_key, splits.TWO_WAY)
    groups["test"] = read("test")
    return _frozen(groups)


@disk_cached("chatterbot_corpus")
def read_chatterbot() -> Split:
    root = corpus_dir("chatterbot_corpus")
    conversations = []
    for lang, folder in (("en", "english"), ("zh", "chinese")):
        for path in sorted((root / folder).glob("*.yml")):
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
            for index, utterances in enumerate(data.get("conversations") or ()):
                turns = tuple(
                    Turn(SPEAKER_B if i % 2 else SPEAKER_A, str(u))
                    for i, u in enumerate(utterances)
                )
                conversations.append(
                    Conversation(f"{lang}/{path.stem}/{index}", "chatterbot", lang, turns, path.name)
                )

    def prompt_key(c: Conversation) -> str:
        return f"{c.lang}/" + (" ".join(c.turns[0].text.split()).casefold() if c.turns else "")

    return _frozen(splits.assign(conversations, prompt_key, content_key))


READERS = {
    "topical_chat": read_topical_chat,
    "kdconv": read_kdconv,
    "chatterbot": read_chatterbot,
}
