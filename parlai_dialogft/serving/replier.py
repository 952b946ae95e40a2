"""The ParlAI side of serving: a batch of prompts in, one ``batch_act`` call, replies out.

ParlAI batches the way its worlds do: one clone of the agent per batch slot holds that
slot's history, and the original agent runs ``batch_act`` on the slots' observations (one
padded generation call for all of them). Each request carries its whole conversation, so a
slot's history is rebuilt from scratch every time: nothing leaks between requests.

Only the batcher's worker thread may call a :class:`Replier` (it owns the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

from parlai.core.message import Message

from parlai_dialogft.serving.protocol import Prompt


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str  # "stop", or "length" when cut to the request's max_tokens
    prompt_tokens: int  # what the model read, after --text-truncate
    completion_tokens: int  # tokens the model generated, its closing EOS not counted


class Replier:
    """Callable ``(prompts) -> replies`` around a ParlAI generator agent."""

    def __init__(self, agent, max_batch: int):
        self.agent = agent
        # Clones share the model and dictionary; each owns a history (one per batch slot).
        self._slots = [agent.clone() for _ in range(max_batch)]

    @property
    def max_batch(self) -> int:
        return len(self._slots)

    def __call__(self, prompts: Sequence[Prompt]) -> List[Reply]:
        if len(prompts) > len(self._slots):
            raise ValueError(f"{len(prompts)} prompts for {len(self._slots)} batch slots")
        observations = [self._observe(slot, prompt) for slot, prompt in zip(self._slots, prompts)]
        acts = self.agent.batch_act(observations)
        return [self._reply(obs, act, prompt) for obs, act, prompt in zip(observations, acts, prompts)]

    def _observe(self, slot, prompt: Prompt) -> Message:
        slot.reset()
        # Earlier turns go straight into the history, as a ParlAI world would have left it
        # (partner text, then the model's reply); only the last context is vectorised.
        for context, reply in prompt.history:
            slot.history.update_history(Message({"text": context, "episode_done": False}))
            slot.history.add_reply(reply)
        return slot.observe(Message({"text": prompt.text, "episode_done": True}))

    def _reply(self, observation: Message, act: Message, prompt: Prompt) -> Reply:
        text = act.get("text") or ""
        prompt_tokens = 0 if observation.get("text_vec") is None else len(observation["text_vec"])
        if prompt.max_tokens is not None:
            tokens = self.agent.dict.txt2vec(text)
            if len(tokens) > prompt.max_tokens:
                # Search length is one setting for the whole batch; a request's own limit cuts after.
                text = self.agent.dict.vec2txt(tokens[: prompt.max_tokens])
                return Reply(text, "length", prompt_tokens, prompt.max_tokens)
        return Reply(text, "stop", prompt_tokens, self._generated_tokens(act, text))

    def _generated_tokens(self, act: Message, text: str) -> int:
        # ParlAI's own count of the reply's tokens: START + content + END (search forces an
        # END at the length limit too). Re-tokenising the text would not give it back
        # (tokens the model chose may merge differently, specials vanish from the text).
        steps = (act.get("metrics") or {}).get("gen_n_toks")
        if steps is None:
            return len(self.agent.dict.txt2vec(text))
        return max(int(steps.value()) - 2, 0)
