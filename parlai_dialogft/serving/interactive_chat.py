"""What ``parlai interactive -mf MODEL`` needs from our agent when a person is typing.

ParlAI's ``interactive`` script hard-codes its ``LocalHumanAgent``, so the person's side
cannot be swapped; the model's side can. :class:`InteractiveChatMixin`, first among the
agent's bases, acts only on messages from that human agent (id ``localHuman``), so
training, evaluation and ``self_chat`` (also ``--interactive-mode``) are untouched:

* an empty line is not a turn: ParlAI would add it to the history, and as the first
  message of a chat it crashes TorchAgent (``KeyError: 'text'`` in ``self_observe``);
* ``[RESET]`` clears the model's memory of the chat (ParlAI's own ``[DONE]`` also works;
  it ends the episode for the whole world);
* a context cut to ``--text-truncate`` tokens, and an empty reply, are told in one line,
  so the user knows why the model lost the thread or said nothing;
* with ``--task-db``, the call the model wrote and the database's answer are shown before
  the reply, so the user sees what the reply was written from.

Notices are printed, not sent as the model's reply: they never enter a history or a log.
"""

from __future__ import annotations

from parlai.core.message import Message

from parlai_dialogft.tod import calls
from parlai_dialogft.tod.agent_mixin import without_prefix

HUMAN_ID = "localHuman"  # parlai.agents.local_human.LocalHumanAgent's id
RESET_COMMANDS = frozenset({"[RESET]"})
PREFIX = "[dialogft]"


def notify(text: str) -> None:
    print(f"{PREFIX} {text}", flush=True)


class InteractiveChatMixin:
    """Mix in before ``TorchGeneratorAgent``; see the module docstring."""

    _instead_of_reply = False  # this turn was a command or an empty line
    _told_commands = False

    def observe(self, observation):
        if observation.get("id") != HUMAN_ID:
            return super().observe(observation)
        if not self._told_commands:
            self._told_commands = True
            notify(f"{sorted(RESET_COMMANDS)[0]} starts a new conversation; the model reads "
                   f"the last {self.text_truncate} tokens of it.")
        text = (observation.get("text") or "").strip()
        if text.upper() in RESET_COMMANDS:
            self.reset()
            return self._skip_turn(observation, "new conversation: the earlier turns are forgotten.")
        if not text and not observation.get("episode_done"):
            return self._skip_turn(observation, "empty message ignored: type some text, [EXIT] to quit.")
        observation = super().observe(observation)
        if observation.get("context_truncate_rate"):
            self._tell_truncation(text, observation.get("context_truncated_length", 0))
        return observation

    def act(self):
        if self._instead_of_reply:
            self._instead_of_reply = False
            # Not super().act(): nothing was observed, so nothing may enter the history.
            return Message({"id": self.getID(), "text": "", "episode_done": False})
        reply = super().act()
        if self.observation is not None and self.observation.get("id") == HUMAN_ID:
            if "tod_call" in reply:
                call = without_prefix(reply["tod_call"], calls.CALL)
                notify(f"call: {call or '(none: the model wrote no call)'}")
                notify(f"result: {without_prefix(reply['tod_result'], calls.RESP) or '(none)'}")
            if not (reply.get("text") or "").strip():
                notify("the model's reply is blank (no visible text); briefly trained models "
                       "often are.")
        return reply

    def _skip_turn(self, observation, why: str):
        notify(why)
        self._instead_of_reply = True
        return observation

    def _tell_truncation(self, text: str, dropped) -> None:
        dropped = int(dropped)
        keep = self.text_truncate
        own_length = len(self.dict.txt2vec(text))
        if own_length > keep:
            notify(f"your message is {own_length:,} tokens; the model reads only its last {keep:,} "
                   f"({dropped:,} earlier tokens dropped).")
        else:
            notify(f"the conversation is longer than the model reads: it sees the last {keep:,} "
                   f"tokens ({dropped:,} earlier dropped). [RESET] starts over.")
