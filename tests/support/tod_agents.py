"""Scripted agents for ParlAI's ``TodWorld``: a user who says its goal, and two systems.

In the world only the user is grounded with the goal (``GOAL: api_name = find_hotel ; area =
north | ...``); the system sees the schemas. So the user here says each goal call of its
grounding turn as its utterance, one a turn, then ``[DONE]``; :class:`OracleSystem` calls
exactly what the user said (an honest oracle: it knows only the dialogue) and
:class:`MuteSystem` never calls. Between them, the goal metrics must go from all hit to none.

:func:`script_rounds` scripts the model inside ``dialogft_agent``'s own loop (``--task-db``,
``--tools``): what it calls and what it replies, so a test controls both and reads what the
database or tool answered.
"""

from __future__ import annotations

from typing import List

from parlai.core.agents import Agent
from parlai.core.tod import tod_core

from parlai_dialogft.tod import calls

GOAL, USER, SYSTEM, SCHEMAS = (tod_core.STANDARD_GOAL, tod_core.STANDARD_USER_UTTERANCE,
                               tod_core.STANDARD_SYSTEM_UTTERANCE, tod_core.STANDARD_API_SCHEMAS)


def _said(message, prefix: str) -> str:
    """The message's text without ``prefix``; ``None`` when it does not start with it."""
    text = ((message or {}).get("text") or "").strip()
    return text[len(prefix.strip()):].strip() if text.startswith(prefix.strip()) else None


class GoalSayingUser(Agent):
    """Reads its goal calls from the grounding turn and says one a turn, as ``USER: api_name = ...``."""

    def __init__(self, opt, shared=None):
        super().__init__(opt, shared)
        self.id = "GoalSayingUser"
        self.goals: List[str] = []

    def observe(self, observation):
        goal = _said(observation, GOAL)
        if goal is not None:
            self.goals = [piece for piece in goal.split(" | ") if calls.parse_api_text(piece)]
        return super().observe(observation)

    def act(self):
        text = self.goals.pop(0) if self.goals else tod_core.STANDARD_DONE
        return {"id": self.id, "text": USER + text, "episode_done": False}

    def reset(self):
        super().reset()
        self.goals = []


class OracleSystem(Agent):
    """Calls what the user asked for, word for word, and reads the database's answer back."""

    def __init__(self, opt, shared=None):
        super().__init__(opt, shared)
        self.id = "OracleSystem"

    def call(self, user_turn: str) -> str:
        return calls.call_text(calls.parse_api_text(user_turn))

    def act(self):
        user_turn, answer = _said(self.observation, USER), _said(self.observation, calls.RESP)
        if user_turn is not None:
            text = self.call(user_turn)
        elif answer is not None:
            text = SYSTEM + (answer or "how can I help ?")
        else:  # the schema grounding turn: ParlAI's convention
            text = SCHEMAS
        return {"id": self.id, "text": text, "episode_done": False}


class MuteSystem(OracleSystem):
    """Hears the same turns and never calls."""

    def call(self, user_turn: str) -> str:
        return calls.CALL


def script_rounds(monkeypatch, call: str, reply: str) -> dict:
    """Make every ``dialogft_agent`` play a scripted model in the task loop: its call step
    writes ``call``, its reply step ``reply`` (with ``SYSTEM: ``). Returns a dict whose
    ``"context"`` is the text the reply step read, once a round has run."""
    import parlai.core.torch_generator_agent as tga
    from parlai.core.message import Message

    from parlai_dialogft.tod.agent_mixin import CALL_STEP

    read = {}

    def generate(self, observations):
        if self.round_step is CALL_STEP:
            return [Message({"text": call, "episode_done": False}) for _ in observations]
        read["context"] = self.dict.vec2txt(observations[0]["text_vec"].tolist())
        return [Message({"text": SYSTEM + reply, "episode_done": False}) for _ in observations]

    monkeypatch.setattr(tga.TorchGeneratorAgent, "batch_act", generate)
    return read
