"""The ParlAI side of serving: a batch of prompts in, one ``batch_act`` call, replies out.

ParlAI batches the way its worlds do: one clone of the agent per batch slot holds that
slot's history, and the original agent runs ``batch_act`` on the slots' observations (one
padded generation call for all of them). Each request carries its whole conversation, so a
slot's history is rebuilt from scratch every time: nothing leaks between requests.

Several drafts (``n`` > 1) come from ParlAI's own tree search, which keeps every finished
hypothesis (the act's ``beam_texts``, best first):

* sampling asked for (:class:`~.protocol.Decoding` ``sample``): nucleus sampling with the
  request's ``top_p`` and ``temperature``, the prompt on n rows, one independent sample each
  (ParlAI's sampled beams of one prompt start from one hypothesis and mostly agree);
* otherwise the model's deterministic decoding: a beam search of width max(n, the model's
  ``--beam-size``) (greedy has no second hypothesis), whose n best distinct hypotheses are
  the drafts. With n = 1 nothing changes: the model's own search, as before.

Drafts that read the same (whitespace aside) are dropped, so a reply may have fewer than n.
The search settings are one per generation call, so a batch runs one call per distinct
:class:`~.protocol.Decoding`; one-draft requests without sampling, the common case, share one.

A ``seed`` on a reply that is sampled (the request's sampling, or a sampling ``--inference``
of the server's) seeds torch's RNG for that request's call alone, then puts the RNG back.
ParlAI draws every row's next token with one ``torch.multinomial`` over the whole batch, so
a row's draws depend on the rows beside it: a seeded sampled prompt therefore gets a
generation call of its own, never shared (its batch neighbours wait for it). A seed on a
deterministic search changes nothing, and such prompts batch as usual.

``stop`` and ``max_tokens`` end a row's search as soon as its reply reaches them, when the row
keeps one hypothesis (greedy or sampling: :mod:`.streaming`), so they save work. A beam's
best hypothesis is known only at the end: its drafts are cut after the search. The same
hook streams a one-draft reply's text to its request's channel as it is decoded, and ends
the rows of a request whose client has gone.

A model served with ``--task-db`` plays a task-oriented round per request
(:mod:`parlai_dialogft.tod.agent_mixin`): the request's earlier turns are rebuilt in the
format it was trained on (the ``APIS: `` grounding, then ``USER: ...``/``SYSTEM: ...`` per
turn; their calls are not in the request and are not made again), the model writes the call,
the database answers, the model writes the reply. A draft is that reply without
``SYSTEM: ``; its ``completion_tokens`` are the reply's tokens the user receives (not the
call's, nor the prefix's), and it carries the round's call and answer (``tod_round``, each
choice's ``tod_call`` and ``tod_result`` in the response). Rounds and turns that already speak
the format (teacher forcing) never share a generation call: the search's watcher treats every
row of a round's call as unseen.

A request with ``tools`` (or tool turns) is a round of its own, played by
:mod:`.tool_replier` with this replier's slots and search; a request with a
``response_format`` schema is decoded under its grammar (:mod:`parlai_dialogft.model.constrained`),
greedily or by sampling: a constrained request is never a beam search.

Only the batcher's worker thread may call a :class:`Replier` (it owns the model).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple

import torch
from parlai.core.message import Message

from parlai_dialogft.serving.protocol import Decoding, Prompt, cut_at_stop, same_text
from parlai_dialogft.serving.replies import Draft, Reply
from parlai_dialogft.serving.streaming import LENGTH, RowState, SearchHook

#: ParlAI's ``--inference`` choices that draw at random (delayedbeam samples its first tokens).
SAMPLING_INFERENCE = frozenset({"topk", "nucleus", "delayedbeam", "delayednucleus"})


class Replier:
    """Callable ``(prompts) -> replies`` around a ParlAI generator agent."""

    def __init__(self, agent, max_batch: int):
        self.agent = agent
        # Clones share the model and dictionary; each owns a history (one per batch slot).
        self._slots = [agent.clone() for _ in range(max_batch)]
        self._extra_slots: list = []
        self._hook = SearchHook.on(agent)

    @property
    def max_batch(self) -> int:
        return len(self._slots)

    def __call__(self, prompts: Sequence[Prompt]) -> List[Reply]:
        if len(prompts) > len(self._slots):
            raise ValueError(f"{len(prompts)} prompts for {len(self._slots)} batch slots")
        tool_rows = [i for i, prompt in enumerate(prompts) if prompt.tool_round is not None]
        if tool_rows:
            from parlai_dialogft.serving.tool_replier import play_tool_rounds

            others = [i for i in range(len(prompts)) if i not in tool_rows]
            replies: List[Reply] = [None] * len(prompts)  # type: ignore[list-item]
            for i, reply in zip(tool_rows, play_tool_rounds(self, [prompts[i] for i in tool_rows])):
                replies[i] = reply
            for i, reply in zip(others, self([prompts[i] for i in others]) if others else ()):
                replies[i] = reply
            return replies
        groups: Dict[Hashable, Tuple[Decoding, List[int]]] = {}
        for i, prompt in enumerate(prompts):
            decoding = prompt.decoding
            if decoding.seed is not None and not self._samples(decoding):
                decoding = replace(decoding, seed=None)  # a deterministic search: the seed changes nothing
            key = (i, decoding) if decoding.seed is not None else decoding  # seeded sampling: alone
            key = (key, self._plays_round(prompt))  # a round's batch_act holds rounds only
            groups.setdefault(key, (decoding, []))[1].append(i)
        replies: List[Reply] = [None] * len(prompts)  # type: ignore[list-item]
        for decoding, rows in groups.values():
            # Sampled drafts are n rows of one sample each: ParlAI's sampled "beams" of one
            # prompt start from a single hypothesis and mostly come out the same.
            copies = decoding.n if decoding.sample else 1
            slots = self._slots_for(len(rows) * copies)
            observations = [self._observe(slot, prompts[i])
                            for slot, i in zip(slots, (i for i in rows for _ in range(copies)))]
            states = [RowState(prompts[i].channel, prompts[i].max_tokens, prompts[i].stop, stream=decoding.n == 1,
                               constraint=self.response_constraint(prompts[i]))
                      for i in rows for _ in range(copies)]
            with self._search(decoding), self._seeded(decoding.seed), self._hook.watching(states):
                acts = self.agent.batch_act(observations)
            for k, i in enumerate(rows):
                replies[i] = self._reply(observations[k * copies], acts[k * copies:(k + 1) * copies], prompts[i],
                                         states[k * copies:(k + 1) * copies])
        return replies

    def generate(self, decoding: Decoding, prompts: Sequence[Prompt],
                 states: Sequence[RowState]) -> Tuple[List[Message], List[Message]]:
        """One ``batch_act`` over ``prompts`` (one row each) with ``decoding``: (observations, acts)."""
        observations = [self._observe(slot, prompt) for slot, prompt in zip(self._slots_for(len(prompts)), prompts)]
        with self._search(decoding), self._seeded(decoding.seed), self._hook.watching(states):
            acts = self.agent.batch_act(observations)
        return observations, acts

    def constraint(self, grammar) -> Any:
        """A row's :class:`~parlai_dialogft.model.constrained.RowConstraint` for ``grammar`` (None: none)."""
        if grammar is None:
            return None
        from parlai_dialogft.model.constrained import RowConstraint

        return RowConstraint(grammar, self.agent.dict.hf_tokenizer, self.agent.END_IDX)

    def response_constraint(self, prompt: Prompt) -> Any:
        """``response_format``'s grammar; a task round's reply starts with ``SYSTEM: ``."""
        if prompt.response_schema is None:
            return None
        from parlai_dialogft.model.constrained import json_schema_grammar

        prefix = "SYSTEM: " if self._plays_round(prompt) else ""
        return self.constraint(json_schema_grammar(prompt.response_schema, prefix))

    def observe(self, prompts: Sequence[Prompt]) -> List[Message]:
        """Each prompt's observation, vectorised by the agent (a slot each, free again after)."""
        return [self._observe(slot, prompt) for slot, prompt in zip(self._slots_for(len(prompts)), prompts)]

    def _slots_for(self, count: int) -> list:
        """``count`` slots: the batch's own, plus clones kept for sampled drafts beyond them."""
        while len(self._slots) + len(self._extra_slots) < count:
            self._extra_slots.append(self.agent.clone())
        return (self._slots + self._extra_slots)[:count]

    def _samples(self, decoding: Decoding) -> bool:
        return decoding.sample or self.agent.opt.get("inference") in SAMPLING_INFERENCE

    @contextmanager
    def _seeded(self, seed: Optional[int]) -> Iterator[None]:
        """torch's RNG seeded for one call, then restored: unseeded requests stay random."""
        if seed is None:
            yield
            return
        device = next(self.agent.model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    def _plays_round(self, prompt: Prompt) -> bool:
        plays_round = getattr(self.agent, "plays_round", None)  # --task-db (tod/agent_mixin.py)
        return plays_round is not None and plays_round(prompt.text)

    def _observe(self, slot, prompt: Prompt) -> Message:
        slot.reset()
        if self._plays_round(prompt):
            # In the task-oriented format; earlier turns' calls are not in the request and
            # are not made again: the model reads the state from what was said.
            slot.restore_rounds(prompt.history)
        else:
            # Earlier turns go straight into the history, as a ParlAI world would have left it
            # (partner text, then the model's reply); only the last context is vectorised.
            for context, reply in prompt.history:
                slot.history.update_history(Message({"text": context, "episode_done": False}))
                slot.history.add_reply(reply)
        return slot.observe(Message({"text": prompt.text, "episode_done": True}))

    @contextmanager
    def _search(self, decoding: Decoding) -> Iterator[None]:
        """The agent set up for ``decoding`` for one call, then put back as it was.

        ParlAI reads the search from three places: ``opt['inference']`` and ``opt['beam_size']``
        (its tree-search factory), ``beam_size`` (the tensors' width) and ``temperature``.
        """
        agent = self.agent
        if decoding.model_search:
            yield  # the model's own decoding, untouched
            return
        saved_opt = {key: agent.opt.get(key) for key in ("inference", "beam_size", "topp")}
        saved = (agent.beam_size, agent.temperature)
        # A grammar's text repeats by design (" = ", " ; ", JSON's punctuation): n-gram blocking
        # could leave a constrained row no token at all, so constrained rows are not blocked.
        blocking = (agent.beam_block_ngram, agent.beam_context_block_ngram)
        model_beam = max(int(saved_opt["beam_size"] or 1), 1)
        if decoding.sample:  # one sample per row (the n drafts are n rows, see __call__)
            settings = {"inference": "nucleus", "beam_size": 1, "topp": decoding.top_p}
            temperature = decoding.temperature
        elif decoding.constrained:  # a grammar follows one hypothesis per row: greedy
            settings = {"inference": "greedy", "beam_size": 1}
            temperature = agent.temperature
        else:
            inference = saved_opt["inference"] or "greedy"
            # Greedy keeps one hypothesis; the n best need a beam. Sampling methods given to
            # the server sample n beams, each a draft.
            settings = {"inference": "beam" if inference == "greedy" else inference,
                        "beam_size": max(decoding.n, model_beam)}
            temperature = agent.temperature
        try:
            for key, value in settings.items():
                agent.opt[key] = value
            agent.beam_size, agent.temperature = settings["beam_size"], temperature
            if decoding.constrained:
                agent.beam_block_ngram = agent.beam_context_block_ngram = -1
            yield
        finally:
            for key, value in saved_opt.items():
                agent.opt[key] = value
            agent.beam_size, agent.temperature = saved
            agent.beam_block_ngram, agent.beam_context_block_ngram = blocking

    def _reply(self, observation: Message, acts: Sequence[Message], prompt: Prompt,
               states: Sequence[RowState]) -> Reply:
        """One reply from its prompt's acts: one act (its beams the drafts), or one per sample."""
        prompt_tokens = 0 if observation.get("text_vec") is None else len(observation["text_vec"])
        drafts = [self.draft(act.get("text") or "", self._generated_tokens(act, act.get("text") or "", state), prompt,
                              ended_at_length=state.ended_by == LENGTH, tod_round=self._round(act))
                  for act, state in zip(acts, states)]
        act = acts[0]
        if prompt.decoding.n > 1 and len(acts) == 1:
            # beam_texts[0] is `best`; a later hypothesis' tokens are counted from its text.
            for text, _score in (act.get("beam_texts") or [])[1:]:
                drafts.append(self.draft(text, len(self.agent.dict.txt2vec(text)), prompt, tod_round=self._round(act)))
        distinct: Dict[str, Draft] = {}
        for draft in drafts:  # cut first: two drafts may differ only past max_tokens
            distinct.setdefault(same_text(draft.text), draft)
        return Reply(tuple(distinct.values())[: prompt.decoding.n], prompt_tokens)

    def draft(self, text: str, generated: int, prompt: Prompt, ended_at_length: bool = False,
              tod_round: Optional[Tuple[str, str]] = None) -> Draft:
        if ended_at_length:  # the search ended this row at max_tokens: its text is those tokens
            draft = Draft(text, "length", generated, tod_round)
        else:
            draft = Draft(text, "stop", generated, tod_round)
        if prompt.max_tokens is not None and not ended_at_length and generated > prompt.max_tokens:
            # A beam hypothesis (its search ran on): cut to max_tokens after the search.
            tokens = self.agent.dict.txt2vec(text)
            if len(tokens) > prompt.max_tokens:
                draft = replace(draft, text=self.agent.dict.vec2txt(tokens[: prompt.max_tokens]),
                                finish_reason="length", completion_tokens=prompt.max_tokens)
        # After the length cut: a stop string past max_tokens would never have been generated.
        cut = cut_at_stop(draft.text, prompt.stop)
        if cut is not None:  # tokens counted from the text kept
            draft = replace(draft, text=cut, finish_reason="stop",
                            completion_tokens=len(self.agent.dict.txt2vec(cut)) if cut else 0)
        return draft

    @staticmethod
    def _round(act: Message) -> Optional[Tuple[str, str]]:
        return (act["tod_call"], act["tod_result"]) if "tod_call" in act else None

    def _generated_tokens(self, act: Message, text: str, state: Optional[RowState] = None) -> int:
        # ParlAI's own count of the reply's tokens: START + content + END (search forces an
        # END at the length limit too). Re-tokenising the text would not give it back
        # (tokens the model chose may merge differently, specials vanish from the text).
        steps = (act.get("metrics") or {}).get("gen_n_toks")
        if "tod_call" in act:
            # A round: the reply's tokens after its SYSTEM: (the call's were another generation,
            # whose count is not in this act). Only a one-hypothesis search knows where the
            # prefix ended (the watcher's text); a beam's reply is counted from its text.
            if steps is None or state is None or state.text is None or state.text.hidden is None:
                return len(self.agent.dict.txt2vec(text))
            return max(int(steps.value()) - 2 - state.text.hidden, 0)
        if steps is None:
            return len(self.agent.dict.txt2vec(text))
        return max(int(steps.value()) - 2, 0)
