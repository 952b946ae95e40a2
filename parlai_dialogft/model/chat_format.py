"""``--hf-chat-template``: ParlAI's dialogue history rendered with the model's chat template.

Instruct models (Qwen2.5-Instruct, Llama-3-Instruct, ...) were tuned on conversations in
their own markup. ParlAI keeps the history as plain turns, the newest being the user's and
every other one the model's own, so the roles follow from the position; the template then
writes the markup and the cue for the assistant to answer.
"""

from __future__ import annotations

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
