"""Chat templates both ways: ParlAI's history in a model's template, and a template for ours.

``--hf-chat-template``: instruct models (Qwen2.5-Instruct, Llama-3-Instruct, ...) were tuned on conversations in
their own markup. ParlAI keeps the history as plain turns, the newest being the user's and
every other one the model's own, so the roles follow from the position; the template then
writes the markup and the cue for the assistant to answer.

:func:`training_template`: the other way round, for models trained on ParlAI's plain
history. An export carries it, so ``apply_chat_template`` (and vLLM, TGI, ``transformers
serve``, which all call it) rebuilds the context the model was trained on.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Sequence

from parlai_dialogft.model.hf_loading import HFLoadError


def check(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise HFLoadError(
            "--hf-chat-template true needs a tokenizer with a chat template, and this one has "
            "none; use an instruct model or leave --hf-chat-template false"
        )


def to_messages(turns: Sequence[str]) -> List[Dict[str, str]]:
    """[u1, a1, u2] -> user/assistant/user: counted back from the newest (the user's)."""
    count = len(turns)
    return [
        {"role": "user" if (count - i) % 2 == 1 else "assistant", "content": turn}
        for i, turn in enumerate(turns)
    ]


def encode(tokenizer, turns: Sequence[str], budget: Optional[int]) -> List[int]:
    """Token ids of the rendered conversation, within ``budget`` tokens.

    Whole turns are dropped from the oldest end first (so the markup stays well-formed);
    only a last user turn longer than the budget alone is cut, keeping its end.
    """
    turns = list(turns)
    while True:
        text = tokenizer.apply_chat_template(
            to_messages(turns), add_generation_prompt=True, tokenize=False
        )
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if budget is None or len(ids) <= budget:
            return ids
        if len(turns) == 1:
            return ids[-budget:]
        # Drop the oldest exchange (or a leading assistant turn): the user still speaks first.
        turns = turns[2:] if len(turns) % 2 == 1 else turns[1:]


def training_template(delimiter: str, ends_with_eos: bool) -> str:
    """A Jinja chat template writing what the agent feeds the model for a conversation.

    The agent joins the turns, whoever spoke them (a system prompt is one more turn), with
    ``--delimiter``; seq2seq encoders also read a final EOS (T5, BART). Decoder-only models
    continue the last turn directly, so there is no generation cue to add. Unlike the
    agent, the template does not cut long conversations to ``--text-truncate`` tokens.
    The text is the agent's; so are the ids with a newline delimiter (the default). The
    agent tokenizes turn by turn, so a delimiter ending in a space tokenizes differently
    in one string (byte-level BPE attaches the space to the next word).
    """
    # json.dumps writes a string literal Jinja reads back exactly (quotes, backslashes, \n).
    join = "{% if not loop.first %}{{ " + json.dumps(delimiter) + " }}{% endif %}"
    template = "{% for message in messages %}" + join + "{{ message['content'] }}{% endfor %}"
    return template + ("{{ eos_token }}" if ends_with_eos else "")
