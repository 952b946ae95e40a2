"""The OpenAI chat-completions wire format, and how its messages become a ParlAI history.

Clients send the whole conversation each time (the API is stateless). A dialogft model was
trained on episodes whose ``text`` is everything the partner said since the model's last turn
(joined by newlines) and whose ``labels`` is the model's turn (see
:func:`parlai_dialogft.data.conversation.to_examples`); :func:`to_prompt` rebuilds exactly that
shape, so the served model sees what it saw in training:

    [system "be nice", user "hi", assistant "hello!", user "a table", user "for two"]
    -> history (("be nice\\nhi", "hello!"),), text "a table\\nfor two"

Decoding is the served model's (its saved opt, or ``--inference``/``--beam-size`` given to
the server) unless the request asks to sample: ``temperature`` > 0 or ``top_p`` (see
:class:`Decoding`). ``n`` asks for several drafts of the reply, each a choice with its
``index``: samples when sampling, else the best distinct hypotheses of a beam search. Drafts
that read the same are dropped, so a reply may have fewer than ``n`` choices. ``seed`` makes
sampling repeatable; ``stop`` and ``max_tokens`` end each draft (see :mod:`.replier`).

Every field of OpenAI's request has a fate here, so nothing a client asks for is silently
dropped (the table: docs/serving.md): honoured (the fields above); accepted only "off"
(:data:`UNSUPPORTED`: a penalty of 0, ``logprobs: false``; any other value is a 400 naming
the field); or accepted and ignored because it cannot change the reply (:data:`IGNORED`:
``user``, ``metadata``, ...). A field OpenAI's request does not have is a 400 too: a typo
(``temprature``) or another server's extension (vLLM's ``top_k``) would otherwise do nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:  # the channel is the HTTP side's; the protocol only carries it
    from parlai_dialogft.serving.streaming import ReplyChannel

#: "developer" is OpenAI's newer name for "system"; both are context the model reads.
Role = Literal["system", "developer", "user", "assistant", "tool"]


class ApiError(Exception):
    """An error answered as OpenAI's ``{"error": {...}}`` body with an HTTP status."""

    def __init__(self, status: int, message: str, code: str, param: Optional[str] = None,
                 type: str = "invalid_request_error", headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.code, self.param, self.type)


def error_body(message: str, code: str, param: Optional[str] = None,
               type: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class TextPart(BaseModel):
    """``content`` may be a list of parts (newer clients); only text parts mean anything here."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str = "{}"  # JSON text, as OpenAI writes it


class ToolCallIn(BaseModel):
    """A call an earlier assistant message made (OpenAI's ``tool_calls`` item)."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, refusal, ... are not ours to judge
    role: Role
    content: Optional[Union[str, List[TextPart]]] = None  # null: an assistant turn that only calls tools
    tool_calls: Optional[List[ToolCallIn]] = None  # assistant: the calls it made (serving/tools.py)
    tool_call_id: Optional[str] = None  # tool: the call it answers

    @model_validator(mode="after")
    def _fits_its_role(self) -> "ChatMessage":
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content is null only in an assistant message with tool_calls")
        return self

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


#: OpenAI's fields this server cannot honour: field -> (the values that ask for nothing, why).
#: Absent or null is always accepted; another value is a 400 naming the field.
UNSUPPORTED: Dict[str, Tuple[Tuple[Any, ...], str]] = {
    "presence_penalty": ((0,), "ParlAI's search has no presence penalty (repeats are blocked by the "
                         "server's --beam-block-ngram instead)"),
    "frequency_penalty": ((0,), "ParlAI's search has no frequency penalty (repeats are blocked by the "
                          "server's --beam-block-ngram instead)"),
    "logprobs": ((False,), "replies carry no token log-probabilities ('logprobs' is null in each choice)"),
    "top_logprobs": ((0,), "replies carry no token log-probabilities"),
    "logit_bias": (({},), "ParlAI's search takes no per-token bias"),
    "functions": (([],), "the deprecated 'functions' is not supported: send 'tools'"),
    "function_call": (("none", "auto"), "the deprecated 'function_call' is not supported: send 'tool_choice'"),
    "modalities": ((["text"],), "replies are text only"),
    "audio": ((), "replies are text only"),
    "reasoning_effort": ((), "the model does no separate reasoning"),
    "verbosity": ((), "reply length is the model's (cap it with max_tokens)"),
    "web_search_options": ((), "the model cannot search the web"),
    "moderation": ((), "this server runs no moderation"),
}

#: OpenAI's fields accepted and ignored: none of them changes what the model replies.
IGNORED = ("user", "metadata", "store", "service_tier", "prediction", "prompt_cache_key",
           "prompt_cache_options", "prompt_cache_retention", "safety_identifier")

#: OpenAI accepts at most four stop strings.
MAX_STOP = 4


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # every OpenAI field is declared: see the module doc
    model: Optional[str] = None  # absent: the served model
    messages: List[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)  # OpenAI's newer name
    # The upper limit is the server's --serve-max-n, checked by the app (a flag, not a constant).
    n: int = Field(default=1, ge=1, description="drafts of the reply, each a choice")
    temperature: Optional[float] = Field(default=None, ge=0, le=2)  # 0: the model's own decoding
    top_p: Optional[float] = Field(default=None, gt=0, le=1)
    # OpenAI's range (int64); honoured when the reply is sampled (see Decoding).
    seed: Optional[int] = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stop: Optional[Union[str, List[str]]] = None
    # Function calling and structured output: checked and read by serving/tools.py.
    tools: Optional[List[Any]] = None
    tool_choice: Optional[Union[str, Dict[str, Any]]] = None
    parallel_tool_calls: Optional[bool] = None  # at most one call per turn is made either way
    response_format: Optional[Dict[str, Any]] = None

    # Accepted only "off" (UNSUPPORTED); typed as OpenAI types them, so a wrong type says so.
    presence_penalty: Optional[float] = Field(default=None, ge=-2, le=2)
    frequency_penalty: Optional[float] = Field(default=None, ge=-2, le=2)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(default=None, ge=0, le=20)
    logit_bias: Optional[Dict[str, float]] = None
    functions: Optional[List[Any]] = None
    function_call: Optional[Union[str, Dict[str, Any]]] = None
    modalities: Optional[List[str]] = None
    audio: Optional[Any] = None
    reasoning_effort: Optional[str] = None
    verbosity: Optional[str] = None
    web_search_options: Optional[Any] = None
    moderation: Optional[Any] = None

    # Accepted and ignored (IGNORED): bookkeeping and caching hints, not the reply.
    user: Optional[Any] = None
    metadata: Optional[Any] = None
    store: Optional[Any] = None
    service_tier: Optional[Any] = None
    prediction: Optional[Any] = None
    prompt_cache_key: Optional[Any] = None
    prompt_cache_options: Optional[Any] = None
    prompt_cache_retention: Optional[Any] = None
    safety_identifier: Optional[Any] = None

    @field_validator(*UNSUPPORTED)
    @classmethod
    def _off_or_refused(cls, value: Any, info: ValidationInfo) -> Any:
        off, why = UNSUPPORTED[info.field_name]
        if value is None or value in off:
            return value
        accepted = " or ".join([json.dumps(ok) for ok in off] + ["null"])  # as the client wrote them: JSON
        raise PydanticCustomError("unsupported", "{value} is not supported: {why} (accepted: {accepted})",
                                  {"value": json.dumps(value), "why": why, "accepted": accepted})

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop: Optional[Union[str, List[str]]]) -> Optional[Union[str, List[str]]]:
        strings = [stop] if isinstance(stop, str) else stop or []
        if len(strings) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings, not {len(strings)}")
        if any(not s for s in strings):
            raise ValueError("a stop string must not be empty")
        return stop

    @field_validator("messages")
    @classmethod
    def _last_is_the_user(cls, messages: List[ChatMessage]) -> List[ChatMessage]:
        if messages[-1].role not in ("user", "tool"):
            raise ValueError(f"the last message must have role 'user' or 'tool' (the model replies to it), "
                             f"not {messages[-1].role!r}")
        if messages[-1].role == "user" and not messages[-1].text.strip():
            raise ValueError("the last user message is empty")
        return messages

    @model_validator(mode="after")
    def _one_length_limit(self) -> "ChatRequest":
        if self.max_tokens and self.max_completion_tokens and self.max_tokens != self.max_completion_tokens:
            raise ValueError("max_tokens and max_completion_tokens disagree; send one")
        return self

    @property
    def reply_limit(self) -> Optional[int]:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stops(self) -> Tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    @property
    def decoding(self) -> "Decoding":
        if self.temperature == 0 or (self.temperature is None and self.top_p is None):
            return Decoding(self.n, seed=self.seed)  # OpenAI's "temperature 0" is deterministic: the model's own
        return Decoding(self.n, sample=True, temperature=self.temperature or 1.0, top_p=self.top_p or 1.0,
                        seed=self.seed)


class FeedbackRequest(BaseModel):
    """Thumbs on a reply, the draft a user chose among a reply's choices, or both.

    ``{"id": ID, "rating": "up"}`` rates draft 0 (the reply a one-choice client shows);
    ``{"id": ID, "choice": 1}`` says draft 1 was the best of them; with both, the thumbs rate
    the chosen draft. Whether ``choice`` is one of the reply's drafts is the log's to say.
    """

    model_config = ConfigDict(extra="forbid")  # a typo ("raiting") should not pass silently
    id: str = Field(min_length=1, max_length=100, description="the chat completion's id")
    rating: Optional[Literal["up", "down"]] = None
    choice: Optional[int] = Field(default=None, ge=0, description="the index of the chosen draft")
    comment: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _says_something(self) -> "FeedbackRequest":
        if self.rating is None and self.choice is None:
            raise ValueError("give 'rating' ('up' or 'down'), 'choice' (a draft's index), or both")
        return self


UNKNOWN_FIELD = "unknown field: this endpoint does not take it (its fields: docs/serving.md)"


def parse(model: type, payload: object):
    """``model.model_validate`` with pydantic's errors as one 400 line naming the field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:3]:
            where = ".".join(str(part) for part in error["loc"]) or "body"
            # pydantic's "Extra inputs are not permitted" does not say what to do about it.
            says = UNKNOWN_FIELD if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{where}: {says}")
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        param = ".".join(str(part) for part in first) or None
        raise ApiError(400, "invalid request: " + "; ".join(problems), "invalid_request", param) from None


# --- messages -> ParlAI history ---------------------------------------------------------------


@dataclass(frozen=True)
class Decoding:
    """How many drafts a request wants, and whether it asked to sample them.

    Not sampling means the served model's deterministic search; prompts with equal
    ``Decoding`` share one generation call (the replier groups a batch by it). ``seed`` fixes
    the random draws of a sampled reply; the replier gives a seeded sampled prompt a
    generation call of its own, so its reply cannot depend on its batch neighbours.
    """

    n: int = 1
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: Optional[int] = None
    constrained: bool = False  # a grammar guides the search: greedy (or sampling), never a beam

    @property
    def model_search(self) -> bool:
        """One draft from the served model's own search (the common case)."""
        return self.n == 1 and not self.sample and not self.constrained


@dataclass(frozen=True)
class Prompt:
    """One conversation as ParlAI sees it: earlier (context, reply) turns, then the context."""

    history: Tuple[Tuple[str, str], ...]
    text: str
    max_tokens: Optional[int] = None
    decoding: Decoding = Decoding()
    stop: Tuple[str, ...] = ()  # each draft ends before the first of these it contains
    # The request's line to the search (text as it is decoded, cancel): not part of the prompt.
    channel: Optional["ReplyChannel"] = field(default=None, compare=False, repr=False)
    adapter: Optional[str] = None  # a --serve-lora model's id (adapters.py); None: the -mf model
    # serving/tools.py: a tools request's round (its tools, tool_choice, response_format), and
    # a plain request's response_format grammar (model/constrained.py).
    tool_round: Optional[Any] = field(default=None, compare=False)
    response_schema: Optional[Dict[str, Any]] = field(default=None, compare=False)


def to_prompt(messages: List[ChatMessage], max_tokens: Optional[int] = None,
              decoding: Decoding = Decoding(), stop: Sequence[str] = (),
              channel: Optional["ReplyChannel"] = None) -> Prompt:
    history: List[Tuple[str, str]] = []
    context: List[str] = []
    partner_spoke = False
    for message in messages:
        if message.role != "assistant":  # system and user: what the model reads
            context.append(message.text)
            partner_spoke = True
        elif not partner_spoke:  # the assistant opens: part of the first context, as in training
            context.append(message.text)
        elif context:
            history.append(("\n".join(context), message.text))
            context = []
        else:  # two assistant turns in a row: one longer reply, as in training
            previous_context, reply = history[-1]
            history[-1] = (previous_context, reply + "\n" + message.text)
    return Prompt(tuple(history), "\n".join(context), max_tokens, decoding, tuple(stop), channel)


def cut_at_stop(text: str, stops: Sequence[str]) -> Optional[str]:
    """``text`` up to the earliest stop string it contains (that string left out, as OpenAI
    does), or None when it contains none."""
    found = [at for at in (text.find(stop) for stop in stops) if at >= 0]
    return text[: min(found)] if found else None


def same_text(text: str) -> str:
    """The key two drafts are compared by: whitespace runs count as one space, ends stripped."""
    return " ".join(text.split())


# --- responses --------------------------------------------------------------------------------


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def completion(cid: str, model: str, drafts: Sequence[Tuple[str, str]], prompt_tokens: int,
               completion_tokens: int, created: Optional[int] = None,
               extras: Sequence[Dict[str, Any]] = (), tool_calls: Sequence[Optional[Any]] = ()) -> dict:
    """``drafts``: (text, finish reason) per choice, best first; ``completion_tokens`` their sum;
    ``extras``: fields of our own per choice (:func:`round_fields`); ``tool_calls``: per
    choice, the :class:`~.tools.ToolCall` it is, or None."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        # "logprobs": null, as OpenAI answers when they were not asked for (they cannot be here).
        "choices": [{"index": index, "message": message(text, tool_calls[index] if index < len(tool_calls) else None),
                     "logprobs": None,
                     "finish_reason": finish, **(extras[index] if index < len(extras) else {})}
                    for index, (text, finish) in enumerate(drafts)],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def message(text: str, call: Optional[Any] = None) -> dict:
    """The assistant's message: its text, or (``call``, a :class:`~.tools.ToolCall`) OpenAI's ``tool_calls``."""
    if call is None:
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": call.id, "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments}}]}


def tool_call_deltas(call: Any, piece_chars: int = 16) -> List[dict]:
    """A streamed tool call, as OpenAI sends one: its id, type and name with empty arguments,
    then the arguments' JSON text in pieces (``tool_calls[0].index`` 0 on each)."""
    deltas = [{"tool_calls": [{"index": 0, "id": call.id, "type": "function",
                               "function": {"name": call.name, "arguments": ""}}]}]
    for at in range(0, len(call.arguments), piece_chars):
        deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": call.arguments[at:at + piece_chars]}}]})
    return deltas


def round_fields(tod_round: Optional[Tuple[str, str]]) -> Dict[str, str]:
    """A task-oriented round's call and the database's answer (``--task-db``) as fields of the
    choice the reply is: ``tod_call``, ``tod_result`` (the agent's own names). OpenAI has no
    such fields; as vLLM adds its own to a choice, clients that know them read them, and
    OpenAI's clients keep them unread (``choice.model_extra`` in its Python client). On the
    last chunk of a streamed choice, the one with its ``finish_reason``."""
    if tod_round is None:
        return {}
    call, result = tod_round
    return {"tod_call": call, "tod_result": result}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chunk(cid: str, model: str, created: int, delta: dict, finish: Optional[str] = None, index: int = 0,
          extra: Optional[Dict[str, Any]] = None) -> dict:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish, **(extra or {})}]}


def pieces(text: str) -> List[str]:
    """A reply cut into stream deltas: words with their leading spaces, CJK per character."""
    return re.findall(r"\s*[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]|\s*[^\s\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]+|\s+$",
                      text)


def models_list(model: str, created: int) -> dict:
    return {"object": "list", "data": [model_card(model, created)]}


def model_card(model: str, created: int) -> dict:
    return {"id": model, "object": "model", "created": created, "owned_by": "dialogft"}
