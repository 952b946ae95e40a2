"""A tools request's round: the model writes a call for the client to run, or its reply.

The prompt is the conversation in the task format (:func:`.tools.format_turns`). Two steps, the
second only when the first gives no call, both through the replier's slots
and search (``replier``: a :class:`~.replier.Replier`), so streaming, ``max_tokens``, cancel and
constraints work as for any reply:

1. **the call** (the last message is the user's and ``tool_choice`` is not ``none``): the model
   writes after ``USER: ...``. With ``tool_choice`` ``required`` or a named function, decoding
   is constrained to a call of one of those tools whose arguments validate
   (:func:`.tools.call_grammar`). With ``auto`` the model decides: a call that names one of the
   request's tools becomes the draft's tool call; if its arguments do not validate, the call
   is written again, constrained to that tool, so every call returned validates (without
   llguidance installed, such a call counts as none). Anything else
   (the empty ``APICALL: `` of a round without a call, or text) means no call.
2. **the reply**: after the empty ``APICALL: ``/``APIRESP: `` (no call), or after the tool's
   ``APIRESP: ...`` (the last message is a tool's result), the model writes ``SYSTEM: ...``;
   the client gets the text after ``SYSTEM: `` (streamed as it is decoded), under
   ``response_format``'s grammar if the request has one.

A call cut by ``max_tokens`` ends with ``finish_reason: "length"``; its arguments are what was
written before the cut (they need not validate). Server databases (``--task-db``) are not
called for these requests: the client runs its tools.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

from parlai_dialogft.model.constrained import engine_available
from parlai_dialogft.serving.protocol import Decoding, Prompt
from parlai_dialogft.serving.replies import Draft, Reply
from parlai_dialogft.serving.streaming import LENGTH, RowState
from parlai_dialogft.serving.tools import (
    CALL,
    RESP,
    SYSTEM,
    ToolCall,
    ToolRound,
    call_grammar,
    new_call_id,
)
from parlai_dialogft.tod.functions import read_call, validates


def _groups(prompts: Sequence[Prompt], decodings: Sequence[Decoding]) -> List[Tuple[Decoding, List[int]]]:
    """Rows that may share one generation call: equal decoding; a seeded sample alone."""
    groups: Dict[Hashable, Tuple[Decoding, List[int]]] = {}
    for i, decoding in enumerate(decodings):
        key = (i, decoding) if decoding.seed is not None and decoding.sample else decoding
        groups.setdefault(key, (decoding, []))[1].append(i)
    return list(groups.values())


def _tokens(act, text: str, state: RowState, replier) -> int:
    """The tokens the client receives: the search's count less START, END and a hidden ``SYSTEM:``."""
    steps = (act.get("metrics") or {}).get("gen_n_toks")
    if steps is None or (state.hidden_prefix and (state.text is None or state.text.hidden is None)):
        return len(replier.agent.dict.txt2vec(text))
    return max(int(steps.value()) - 2 - (state.text.hidden if state.hidden_prefix else 0), 0)


def _length(observation) -> int:
    vec = observation.get("text_vec")
    return 0 if vec is None else len(vec)


def _run(replier, prompts: Sequence[Prompt], decodings: Sequence[Decoding],
         states: Sequence[RowState]) -> Tuple[list, list]:
    observations: list = [None] * len(prompts)
    acts: list = [None] * len(prompts)
    for decoding, rows in _groups(prompts, decodings):
        obs, out = replier.generate(decoding, [prompts[i] for i in rows], [states[i] for i in rows])
        for k, i in enumerate(rows):
            observations[i], acts[i] = obs[k], out[k]
    return observations, acts


def _call_draft(text: str, round_: ToolRound, finish: str, tokens: int) -> Optional[Draft]:
    found = read_call(text, round_.tools)
    if found is None:
        return None
    name, arguments = found
    call = ToolCall(new_call_id(), name, json.dumps(arguments, ensure_ascii=False))
    return Draft("", finish, tokens, tool_call=call)


def _without_call(prompt: Prompt) -> Prompt:
    """``prompt`` (ending with ``USER: ...``) after the empty call and answer of a round without a call."""
    return replace(prompt, history=prompt.history + ((prompt.text, CALL),), text=RESP)


def play_tool_rounds(replier, prompts: Sequence[Prompt]) -> List[Reply]:
    rounds: List[ToolRound] = [prompt.tool_round for prompt in prompts]
    drafts: List[Optional[Draft]] = [None] * len(prompts)
    prompt_tokens = [0] * len(prompts)
    reply_prompts: Dict[int, Prompt] = {}

    # 1. The call.
    callers = [i for i, round_ in enumerate(rounds) if round_.calls_first]
    for i, round_ in enumerate(rounds):
        if round_.calls_first:
            continue
        if round_.ends_with_result:  # the reply follows the tool's APIRESP:
            reply_prompts[i] = prompts[i]
        else:  # tool_choice none: a round without a call, as the teacher writes one
            reply_prompts[i] = _without_call(prompts[i])
    if callers:
        grammars = [call_grammar([rounds[i].tools[name] for name in rounds[i].forced]) if rounds[i].forced else None
                    for i in callers]
        states = [RowState(prompts[i].channel, prompts[i].max_tokens, stream=False, constraint=replier.constraint(g))
                  for i, g in zip(callers, grammars)]
        decodings = [replace(prompts[i].decoding, constrained=g is not None) for i, g in zip(callers, grammars)]
        observations, acts = _run(replier, [prompts[i] for i in callers], decodings, states)
        retry: List[Tuple[int, str]] = []
        for k, i in enumerate(callers):
            text = acts[k].get("text") or ""
            prompt_tokens[i] = _length(observations[k])
            finish = "length" if states[k].ended_by == LENGTH else "tool_calls"
            draft = _call_draft(text, rounds[i], finish, _tokens(acts[k], text, states[k], replier))
            if draft is not None and finish == "tool_calls":
                tool = rounds[i].tools[draft.tool_call.name]
                if not validates(tool, json.loads(draft.tool_call.arguments)):
                    if engine_available():
                        retry.append((i, tool.name))  # auto: the model's own call did not validate
                        continue
                    draft = None  # without the engine, a call that does not validate is no call
            if draft is None and finish == "length" and rounds[i].forced:
                draft = Draft("", "length", _tokens(acts[k], text, states[k], replier))
            if draft is not None:
                drafts[i] = draft
                continue
            reply_prompts[i] = _without_call(prompts[i])  # no call: the round goes on as the teacher's do
        if retry:
            states = [RowState(prompts[i].channel, prompts[i].max_tokens, stream=False,
                               constraint=replier.constraint(call_grammar([rounds[i].tools[name]])))
                      for i, name in retry]
            decodings = [replace(prompts[i].decoding, constrained=True) for i, _ in retry]
            _, acts = _run(replier, [prompts[i] for i, _ in retry], decodings, states)
            for (i, _), act, state in zip(retry, acts, states):
                text = act.get("text") or ""
                finish = "length" if state.ended_by == LENGTH else "tool_calls"
                drafts[i] = _call_draft(text, rounds[i], finish, _tokens(act, text, state, replier)) or Draft(
                    "", "length", _tokens(act, text, state, replier))

    # 2. The reply.
    if reply_prompts:
        rows = sorted(reply_prompts)
        states = []
        for i in rows:
            state = RowState(prompts[i].channel, prompts[i].max_tokens, prompts[i].stop, stream=True,
                             constraint=replier.constraint(rounds[i].reply_grammar))
            state.hidden_prefix = SYSTEM.strip()
            states.append(state)
        decodings = [replace(prompts[i].decoding, constrained=rounds[i].reply_grammar is not None) for i in rows]
        observations, acts = _run(replier, [reply_prompts[i] for i in rows], decodings, states)
        for k, i in enumerate(rows):
            raw = (acts[k].get("text") or "").strip()
            text = raw[len(SYSTEM.strip()):].strip() if raw.startswith(SYSTEM.strip()) else raw
            if not prompt_tokens[i]:
                prompt_tokens[i] = _length(observations[k])
            drafts[i] = replier.draft(text, _tokens(acts[k], text, states[k], replier), prompts[i],
                                      ended_at_length=states[k].ended_by == LENGTH)
    return [Reply((draft,), tokens) for draft, tokens in zip(drafts, prompt_tokens)]
