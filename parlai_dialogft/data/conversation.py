"""The data model every reader produces, and how a conversation becomes a ParlAI episode.

Readers turn upstream corpora and user files into :class:`Conversation` objects (turns with a
speaker each). :func:`to_examples` then picks the speaker the model plays: each of that
speaker's turns becomes a ``labels`` and everything said since its previous turn becomes the
``text``. ParlAI keeps the history across an episode, so the model sees the whole dialogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Sequence, Tuple


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    # Grounding facts the speaker used in this turn, already flattened to text (KdConv).
    knowledge: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    id: str  # unique within its source; the deterministic splits hash it
    source: str  # corpus name, e.g. "sgd", or the user file's name
    lang: str  # "en" or "zh"
    turns: Tuple[Turn, ...]
    # Where it came from, for messages: "<file>, line N" for user data, upstream split else.
    origin: str = ""
    extra: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)

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
