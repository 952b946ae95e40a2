"""What a generation call gives back per request: its drafts (:class:`Draft`) in a :class:`Reply`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple


@dataclass(frozen=True)
class Draft:
    text: str
    finish_reason: str  # "stop" (also when cut at a stop string), or "length" when cut to max_tokens
    completion_tokens: int  # tokens the model generated, its closing EOS not counted
    tod_round: Optional[Tuple[str, str]] = None  # --task-db: the call the reply was written after, and its answer
    tool_call: Optional[Any] = None  # a tools request's call (serving/tools.py ToolCall): the draft is that call


@dataclass(frozen=True)
class Reply:
    drafts: Tuple[Draft, ...]  # best first; at least one, at most the request's n, all different
    prompt_tokens: int  # what the model read, after --text-truncate

    # Draft 0 is the reply: what a one-choice client (and the log's `replies.reply`) sees.
    @property
    def text(self) -> str:
        return self.drafts[0].text

    @property
    def finish_reason(self) -> str:
        return self.drafts[0].finish_reason

    @property
    def completion_tokens(self) -> int:
        """All drafts' tokens, as OpenAI's ``usage`` counts them for n > 1."""
        return sum(draft.completion_tokens for draft in self.drafts)
