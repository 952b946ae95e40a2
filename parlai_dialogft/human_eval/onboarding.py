"""Onboarding comparisons with known answers, in ACUTE pairings shape.

Each pair shows one attentive, coherent speaker and one that ignores its partner, repeats
itself or contradicts itself, so the answer is the same for every ACUTE question
(engagingness, interestingness, humanness, knowledgeability). The correct side alternates
between the first and second conversation, and the web app shuffles left and right, so
a worker cannot pass by always picking one side. Replace them with your own through a
pairings file whose lines have ``"is_onboarding": true`` and a ``correct_answer``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

PARTNER = "human_evaluator"

# (good speaker's conversation, poor speaker's conversation); each is (partner, speaker) turns.
_CASES: Sequence[Tuple[Sequence[Tuple[str, str]], Sequence[Tuple[str, str]]]] = (
    (
        [("Hi! How was your weekend?", "Lovely, thanks. I went hiking by the lake. Did you do anything fun?"),
         ("I baked bread for the first time.", "Nice! How did it turn out? My first loaf was as flat as a pancake."),
         ("A bit dense, but tasty.", "Dense but tasty is a win. Did you use a recipe with a long rise?")],
        [("Hi! How was your weekend?", "I don't know."),
         ("I baked bread for the first time.", "I don't know."),
         ("A bit dense, but tasty.", "I don't know.")],
    ),
    (
        [("Do you like music?", "I do, mostly jazz. Lately I've been listening to a lot of Ella Fitzgerald."),
         ("I play the piano a little.", "That's great. Do you play jazz standards or more classical pieces?"),
         ("Mostly classical, some Chopin.", "Chopin is beautiful. The nocturnes are some of my favourite pieces.")],
        [("Do you like music?", "I like cars. Cars are fast."),
         ("I play the piano a little.", "My favourite colour is the number seven."),
         ("Mostly classical, some Chopin.", "I have never heard music. I love music every day.")],
    ),
    (
        [("What do you do for work?", "I'm a nurse at a children's hospital. It's tiring but rewarding."),
         ("That sounds hard.", "Some days are. The kids make it worth it, they are so brave."),
         ("Do you work nights?", "This month, yes. I sleep during the day with very good curtains.")],
        [("What do you do for work?", "work work work work work work"),
         ("That sounds hard.", "hard hard hard hard"),
         ("Do you work nights?", "nights nights nights nights nights")],
    ),
    (
        [("Where are you from?", "I grew up in Lisbon, near the river. Have you ever been to Portugal?"),
         ("No, but I'd like to go.", "You should! Spring is the best time, before the summer crowds."),
         ("What should I eat there?", "Pasteis de nata, grilled sardines, and bacalhau, the salt cod.")],
        [("Where are you from?", "I am from Lisbon. I have never been to Portugal."),
         ("No, but I'd like to go.", "I am a fish. Do you like fish?"),
         ("What should I eat there?", "I don't eat. I eat every day.")],
    ),
)


def _dialogue(speaker: str, turns: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    dialogue = []
    for partner_text, speaker_text in turns:
        dialogue.append({"id": PARTNER, "text": partner_text})
        dialogue.append({"id": speaker, "text": speaker_text})
    return {"speakers": [PARTNER, speaker], "dialogue": dialogue}


def onboarding_pairings() -> List[Dict[str, Any]]:
    """The built-in onboarding pairings (speakers ``onboarding_a`` / ``onboarding_b``)."""
    pairings = []
    for number, (good, poor) in enumerate(_CASES):
        first, second = "onboarding_a", "onboarding_b"
        good_first = number % 2 == 0
        dialogues = [_dialogue(first, good if good_first else poor), _dialogue(second, poor if good_first else good)]
        pairings.append({
            "is_onboarding": True,
            "speakers_to_eval": [first, second],
            "correct_answer": first if good_first else second,
            "tags": [f"onboarding{number}"],
            "dialogue_dicts": dialogues,
        })
    return pairings
