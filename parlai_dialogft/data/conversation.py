"""The data model every reader produces, and how a conversation becomes a ParlAI episode.

Readers turn upstream corpora and user files into :class:`Conversation` objects (turns with a
speaker each). :func:`to_examples` then picks the speaker the model plays: each of that
speaker's turns becomes a ``labels`` and everything said since its previous turn becomes the
``text``. ParlAI keeps the history across an episode, so the model sees the whole dialogue.

Task-oriented corpora also keep their upstream annotations (dialogue acts, belief states,
service calls, goals) as :class:`Annotations`, raw, on each turn and on the conversation; the
data layer never interprets them (``parlai_dialogft.tod`` does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple


class Annotations(Mapping[str, Any]):
    """A corpus's own annotations of a turn or a dialogue: a read-only mapping, values raw.

    ``Annotations({"dialog_act": {...}})["dialog_act"]`` is the upstream JSON value as parsed
    (dicts, lists, strings, numbers). It is kept as compact JSON and decoded on first read, so
    a teacher that serves only the text loads and pickles a corpus without building millions
    of small dicts (SGD's annotations alone are 100 MB of JSON). Do not change what a read
    returns: it is decoded once and shared by every later read in the process.
    """

    __slots__ = ("_json", "_decoded")

    def __init__(self, data: Optional[Mapping[str, Any]] = None):
        self._json = json.dumps(dict(data), ensure_ascii=False, separators=(",", ":")) if data else ""
        self._decoded: Optional[Dict[str, Any]] = None

    def _data(self) -> Dict[str, Any]:
        if self._decoded is None:
            self._decoded = json.loads(self._json) if self._json else {}
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __bool__(self) -> bool:
        return bool(self._json)  # without decoding

    def __hash__(self) -> int:
        return hash(frozenset(self))  # by the keys: equal mappings have equal keys

    def __repr__(self) -> str:
        return f"Annotations({', '.join(self) or 'none'})"

    def __getstate__(self) -> Tuple[str]:
        return (self._json,)  # pickled as its JSON, never as the decoded values

    def __setstate__(self, state: Tuple[str]) -> None:
        (self._json,), self._decoded = state, None


NO_ANNOTATIONS = Annotations()


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    # Grounding facts the speaker used in this turn, already flattened to text (KdConv).
    knowledge: Tuple[str, ...] = ()
    # The corpus's annotations of this turn, every upstream field but the text and the speaker
    # (MultiWOZ: dialog_act, span_info, metadata; CrossWOZ: dialog_act, user_state or
    # sys_state and sys_state_init; SGD: frames). A plain dict is accepted and wrapped. The
    # class attribute the default leaves also serves turns pickled before this field existed.
    annotations: Annotations = field(default=NO_ANNOTATIONS, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.annotations, Annotations):
            object.__setattr__(self, "annotations", Annotations(self.annotations))


@dataclass(frozen=True)
class Conversation:
    id: str  # unique within its source; the deterministic splits hash it
    source: str  # corpus name, e.g. "sgd", or the user file's name
    lang: str  # "en" or "zh"
    turns: Tuple[Turn, ...]
    # Where it came from, for messages: "<file>, line N" for user data, upstream split else.
    origin: str = ""
    extra: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # The corpus's annotations of the whole dialogue, every upstream field but its id and its
    # turns (MultiWOZ: goal; CrossWOZ: goal, final_goal, task description, type, sys-usr;
    # SGD: services). A plain dict is accepted and wrapped.
    annotations: Annotations = field(default=NO_ANNOTATIONS, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.annotations, Annotations):
            object.__setattr__(self, "annotations", Annotations(self.annotations))

    def with_turns(self, turns: Sequence[Turn]) -> "Conversation":
        return replace(self, turns=tuple(turns))

    @property
    def speakers(self) -> List[str]:
        """Distinct speakers in order of first appearance."""
        return list(dict.fromkeys(turn.speaker for turn in self.turns))


def resolve_speakers(conversation: Conversation, choice: str) -> List[str]:
    """The speaker(s) the model plays: ``first``, ``second``, ``both`` or a speaker name.

    ``both`` means one episode per speaker, each playing one side of the same conversation.
    """
    speakers = conversation.speakers
    if choice == "first":
        return speakers[:1]
    if choice == "second":
        return speakers[1:2]
    if choice == "both":
        return speakers[:2]
    return [choice] if choice in speakers else []


def to_examples(
    conversation: Conversation, model_speaker: str, knowledge_in_context: bool = False
) -> List[dict]:
    """One episode: a message per turn of ``model_speaker`` that follows someone else's turn.

    Turns the model says before anyone else (an agent's greeting) join the first context, so
    nothing is lost and every example has a non-empty ``text``. Turns after the model's last
    reply have nothing to teach and are left out. ``knowledge`` always carries the grounding
    of the reply; ``knowledge_in_context`` also puts it in front of the ``text``.
    """
    examples: List[dict] = []
    context: List[str] = []
    partner_spoke = False
    for turn in conversation.turns:
        if turn.speaker != model_speaker:
            context.append(turn.text)
            partner_spoke = True
            continue
        if not partner_spoke:
            context.append(turn.text)  # the model opens: fold into the first context
            continue
        if not context:  # the model again, uncleaned input: one longer reply
            examples[-1]["labels"] = [examples[-1]["labels"][0] + "\n" + turn.text]
            continue
        text = "\n".join(context)
        if knowledge_in_context and turn.knowledge:
            text = "\n".join(("knowledge: " + fact) for fact in turn.knowledge) + "\n" + text
        examples.append(
            {
                "text": text,
                "labels": [turn.text],
                "lang": conversation.lang,
                "source": conversation.source,
                "dialogue_id": conversation.id,
                "knowledge": "\n".join(turn.knowledge),
            }
        )
        context = []
    return examples
