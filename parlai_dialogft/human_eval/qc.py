"""Quality control: who may judge, which answers count, and what gets a worker blocked.

* Onboarding: pairings with a known answer come first; a worker below the pass threshold
  is blocked before seeing any real comparison.
* Attention checks: a real pairing with one side's speaker turned into obvious nonsense,
  mixed into every task at a random position; failing more than allowed blocks the worker.
* Per judgment: a minimum time on the page and a minimum justification length (refused,
  with a message, so the worker can fix it).
* After a task: always choosing the same side is flagged (and blocks, if so configured).
* After a chat: very short or repeated messages are flagged as low effort.

Blocked workers stay in the ``blocklist`` table (admins add and remove entries too) and the
analysis leaves out their judgments (:func:`~.db.pairwise_records`).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from parlai_dialogft.utils.errors import UserError

#: What an attention check's broken speaker says instead of every one of its turns:
#: no reader could prefer it on any ACUTE question.
BROKEN_TURN = "purple purple banana banana window window the the the"


@dataclass(frozen=True)
class QcSettings:
    onboarding_threshold: float = 0.75  # fraction of onboarding answers that must be right
    max_failed_checks: int = 0  # attention checks a worker may fail before being blocked
    min_seconds: float = 5.0  # per judgment, from the page showing it to the answer
    min_justification_chars: int = 10
    uniform_min_judgments: int = 4  # a task this long, all on one side, is suspicious
    block_uniform: bool = False  # uniform answers only flag by default (a real preference can be one-sided)
    min_chat_words: float = 3.0  # mean words per human message below this: low effort
    min_chat_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.onboarding_threshold <= 1.0:
            raise UserError(f"--he-onboarding-threshold {self.onboarding_threshold}: must be between 0 and 1")
        for flag, value in (("--he-max-failed-checks", self.max_failed_checks),
                            ("--he-min-seconds", self.min_seconds),
                            ("--he-min-justification", self.min_justification_chars),
                            ("--he-min-chat-words", self.min_chat_words),
                            ("--he-min-chat-seconds", self.min_chat_seconds)):
            if value < 0:
                raise UserError(f"{flag} {value}: must not be negative")
        if self.uniform_min_judgments < 2:
            raise UserError(f"--he-uniform-min {self.uniform_min_judgments}: must be at least 2")


def attention_check(pairing: Dict[str, Any], rng: random.Random) -> Dict[str, Any]:
    """A copy of ``pairing`` whose one evaluated speaker says only nonsense; the other is the answer."""
    check = copy.deepcopy(pairing)
    check["is_onboarding"] = False
    broken = rng.randrange(2)
    dialogue = dialogue_of(check, broken)
    speaker = check["speakers_to_eval"][broken]
    for turn in dialogue["dialogue"]:
        if turn.get("id") == speaker:
            turn["text"] = BROKEN_TURN
    check["correct_answer"] = check["speakers_to_eval"][1 - broken]
    return check


def dialogue_of(pairing: Dict[str, Any], index: int) -> Dict[str, Any]:
    """The conversation of ``speakers_to_eval[index]``: ParlAI's pairings keep them in the same order."""
    return pairing["dialogue_dicts"][index]


def justification_problem(text: str, settings: QcSettings) -> Optional[str]:
    if len(text.strip()) < settings.min_justification_chars:
        return f"please explain your choice in at least {settings.min_justification_chars} characters"
    return None


def too_fast(seconds: float, settings: QcSettings, what: str = "both conversations") -> Optional[str]:
    """A message when an answer came sooner than anyone could read ``what``."""
    if seconds < settings.min_seconds:
        return f"please read {what} before answering (at least {settings.min_seconds:g} s)"
    return None


def onboarding_passed(correct: Sequence[bool], settings: QcSettings) -> bool:
    return bool(correct) and sum(correct) / len(correct) >= settings.onboarding_threshold


def uniform_side(left_chosen: Sequence[bool], settings: QcSettings) -> Optional[str]:
    """A reason when every answer of a task picked the same side."""
    if len(left_chosen) >= settings.uniform_min_judgments and len(set(left_chosen)) == 1:
        side = "left" if left_chosen[0] else "right"
        return f"chose the {side} side in all {len(left_chosen)} comparisons of a task"
    return None


def low_effort_chat(human_messages: Sequence[str], seconds: float, settings: QcSettings) -> Optional[str]:
    """A reason when a chat's human side is too thin to trust its ratings."""
    if not human_messages:
        return "no messages"
    words = sum(len(m.split()) for m in human_messages) / len(human_messages)
    if words < settings.min_chat_words:
        return f"{words:.1f} words per message on average (under {settings.min_chat_words:g})"
    normalized = {" ".join(m.lower().split()) for m in human_messages}
    if len(human_messages) > 1 and len(normalized) == 1:
        return "the same message every turn"
    if seconds < settings.min_chat_seconds:
        return f"finished in {seconds:.0f} s (under {settings.min_chat_seconds:g})"
    return None


def load_blocklist(path: str) -> List[str]:
    """Worker ids, one a line (``#`` comments and blank lines ignored)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise UserError(f"--he-blocklist {path}: {exc.strerror}") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
