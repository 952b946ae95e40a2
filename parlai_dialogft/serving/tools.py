"""OpenAI's function calling and structured output, read into the task format the model knows.

A request that brings ``tools`` (or whose conversation holds ``tool_calls`` and ``tool``
messages) is played in ParlAI's task-oriented format (:mod:`parlai_dialogft.tod.calls`), the
client running the tools, as OpenAI's API does:

    user "a cheap hotel"                -> USER: a cheap hotel
    assistant tool_calls find_hotel     -> APICALL: api_name = find_hotel ; pricerange = cheap
    tool '{"count": 2, "name": "ab"}'   -> APIRESP: count = 2 ; name = ab
    assistant "ab is cheap"             -> SYSTEM: ab is cheap

An assistant turn without a call was written after the empty ``APICALL: `` and ``APIRESP: ``,
as the teacher writes a round without one. A call's arguments are its slots: a value whose
schema is a plain string is written as it is; any other value as compact JSON (``people =
2``, ``tags = ["a","b"]``), and read back the same way (:func:`read_call`).

Checked here, each a 400 naming the field: a tool's ``parameters`` must be a valid JSON Schema
of an object (checked with ``jsonschema``, then compiled by the constraint engine), property
names must fit the format (no `` = ``, ``;`` or newline; not ``api_name``), ``tool_choice``
must name a tool the request has, and a ``tool`` message's ``tool_call_id`` must be the id of
a call an earlier assistant message made.

Grammars (:mod:`parlai_dialogft.model.constrained`): :func:`call_grammar` is the call text of
one of the given tools whose arguments validate (properties in sorted order, as the format
sorts its slots; required ones present; no others);
:func:`~parlai_dialogft.model.constrained.json_schema_grammar` gives ``response_format``'s JSON.
A schema keyword that the call grammar cannot enforce across properties (``oneOf``,
``minProperties``, ``dependentRequired``, ... at the top level of ``parameters``) is a 400
when the call is to be constrained.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from parlai_dialogft.model.constrained import (
    ConstraintEngineMissing,
    Grammar,
    GrammarError,
    json_schema_grammar,
    lark_json,
    lark_literal,
)
from parlai_dialogft.serving.protocol import ApiError
from parlai_dialogft.tod import calls
from parlai_dialogft.tod.functions import Tool, call_text, plain_string, result_text

USER, SYSTEM, SCHEMAS = "USER: ", "SYSTEM: ", "APIS: "
CALL, RESP = calls.CALL, calls.RESP
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: What a function's ``parameters`` may say at its top level when the call is constrained.
TOP_LEVEL = {"type", "properties", "required", "additionalProperties", "description", "title", "$schema", "$defs",
             "definitions", "strict"}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True)
class ToolRound:
    """What a tools request asks of one generation: the tools, the choice, the output format.

    ``choice``: ``"none"``, ``"auto"``, ``"required"`` or a tool's name.
    """

    tools: Dict[str, Tool] = field(default_factory=dict)
    choice: str = "auto"
    reply_grammar: Optional[Grammar] = None  # response_format's, for the reply's text after SYSTEM:
    ends_with_result: bool = False  # the last message is a tool's result: the model replies

    @property
    def calls_first(self) -> bool:
        return bool(self.tools) and self.choice != "none" and not self.ends_with_result

    @property
    def forced(self) -> Tuple[str, ...]:
        """The tools one of which must be called (required: any; named: that one)."""
        if self.choice == "required":
            return tuple(sorted(self.tools))
        return (self.choice,) if self.choice in self.tools else ()


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


# --- checking the request ----------------------------------------------------------------------


def _bad(message: str, param: str) -> ApiError:
    return ApiError(400, f"invalid request: {param}: {message}", "invalid_request", param=param)


def check_schema(schema: Any, param: str) -> None:
    """A 400 naming ``param`` (and the place inside the schema) unless ``schema`` is valid JSON Schema."""
    import jsonschema

    if not isinstance(schema, dict):
        raise _bad("a JSON Schema must be an object", param)
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.path)
        raise _bad(f"not a valid JSON Schema at {where or 'its top level'}: {error.message}",
                   param + (where if where.startswith("[") else where)) from None
    try:
        json_schema_grammar(schema).check()
    except ConstraintEngineMissing:
        pass  # checked by jsonschema alone; a constrained request says what to install (routes/openai_api.py)
    except GrammarError as error:
        raise _bad(f"the schema cannot be used for constrained decoding: {error}", param) from None


def read_tools(raw: Optional[List[Any]]) -> Dict[str, Tool]:
    tools: Dict[str, Tool] = {}
    for i, item in enumerate(raw or []):
        where = f"tools[{i}]"
        if not isinstance(item, dict) or item.get("type") != "function" or not isinstance(item.get("function"), dict):
            raise _bad('each tool is {"type": "function", "function": {"name": ..., "parameters": {...}}}', where)
        function = item["function"]
        name = function.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _bad("a function name is 1 to 64 letters, digits, _ or -", where + ".function.name")
        if name in tools:
            raise _bad(f"two tools are named {name!r}", where + ".function.name")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        param = where + ".function.parameters"
        check_schema(parameters, param)
        if parameters.get("type", "object") != "object":
            raise _bad("a function's parameters are an object schema (type: object)", param + ".type")
        for prop in parameters.get("properties") or {}:
            unfit = any(bad in prop for bad in (" = ", ";", "\n")) or prop != prop.strip() or not prop
            if prop == calls.API_NAME or unfit:
                raise _bad(f"property {prop!r} cannot be a slot of a call (no ' = ', ';', newline, edge "
                           f"spaces, and not {calls.API_NAME!r})", f"{param}.properties.{prop}")
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise _bad("strict is true or false", where + ".function.strict")
        tools[name] = Tool(name, parameters, bool(strict))
    return tools


def read_choice(choice: Any, tools: Dict[str, Tool]) -> str:
    if choice is None:
        return "auto" if tools else "none"
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _bad("one of 'none', 'auto', 'required', or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                       "tool_choice")
        if choice == "required" and not tools:
            raise _bad("'required' needs tools in the request", "tool_choice")
        return choice
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(name, str):
        raise _bad('a named tool is {"type": "function", "function": {"name": ...}}', "tool_choice")
    if name not in tools:
        raise _bad(f"no tool named {name!r} in this request's tools", "tool_choice.function.name")
    return name


def read_response_format(response_format: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The JSON Schema the reply must follow, or None for plain text."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _bad('{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}', "response_format")
        schema = spec.get("schema", {})
        check_schema(schema, "response_format.json_schema.schema")
        return schema
    raise _bad("type is 'text', 'json_object' or 'json_schema'", "response_format.type")


def check_tool_messages(messages: Sequence[Any]) -> bool:
    """A 400 for a tool message answering no earlier call; True when the conversation has tool turns."""
    ids = set()
    has_tools = False
    for i, message in enumerate(messages):
        if message.role == "assistant" and message.tool_calls:
            has_tools = True
            ids.update(call.id for call in message.tool_calls)
        if message.role == "tool":
            has_tools = True
            if message.tool_call_id not in ids:
                raise _bad(f"tool_call_id {message.tool_call_id!r} matches no call an earlier assistant message made",
                           f"messages[{i}].tool_call_id")
    return has_tools


def tool_round(chat) -> Optional[ToolRound]:
    """The request's :class:`ToolRound`, or None for a plain chat (no tools, no tool turns)."""
    tools = read_tools(chat.tools)
    choice = read_choice(chat.tool_choice, tools)
    schema = read_response_format(chat.response_format)
    has_turns = check_tool_messages(chat.messages)
    if not tools and not has_turns:
        return None
    if chat.n > 1:
        raise _bad("one choice per request with tools or tool messages", "n")
    round_ = ToolRound(tools, choice, json_schema_grammar(schema, SYSTEM) if schema is not None else None,
                       ends_with_result=chat.messages[-1].role == "tool")
    for name in round_.forced:
        call_grammar([tools[name]])  # a 400 now, not a failure in the search
    return round_


# --- messages -> the task format ---------------------------------------------------------------


def format_turns(messages: Sequence[Any], tools: Dict[str, Tool]) -> Tuple[Tuple[Tuple[str, str], ...], str]:
    """(history, text): the conversation as (context, model turn) pairs in the task format,
    and the last context (``USER: ...`` or ``APIRESP: ...``) the model answers.

    System messages are not part of the format the models were trained on and are left out.
    """
    turns: List[Tuple[bool, str]] = [(False, SCHEMAS), (True, SCHEMAS)]  # (the model's turn?, text)
    # A tool's result follows its own call: several calls in one message become call, result, call, result.
    results = {m.tool_call_id: m for m in messages if m.role == "tool"}
    placed = set()
    for message in messages:
        if message.role == "user":
            turns.append((False, USER + message.text.strip()))
        elif message.role == "tool":
            if id(message) not in placed:
                turns.append((False, result_text(message.text)))
        elif message.role == "assistant":
            if not turns[-1][0] and turns[-1][1].startswith(USER.strip()) and not message.tool_calls:
                turns += [(True, CALL), (False, RESP)]  # a round without a call
            calls_made = message.tool_calls or ()
            for k, call in enumerate(calls_made):
                if turns[-1][0]:  # a call whose result never came: an empty answer
                    turns.append((False, RESP))
                turns.append((True, call_text(call.function.name, call.function.arguments, tools)))
                result = results.get(call.id)
                if result is not None and k < len(calls_made) - 1:  # the last call's result comes in its place
                    turns.append((False, result_text(result.text)))
                    placed.add(id(result))
            if message.text.strip():
                if turns[-1][0]:
                    turns.append((False, RESP))
                turns.append((True, SYSTEM + message.text.strip()))
    history: List[Tuple[str, str]] = []
    context: List[str] = []
    for mine, text in turns:
        if not mine:
            context.append(text)
        elif context:
            history.append(("\n".join(context), text))
            context = []
        else:
            previous, reply = history[-1]
            history[-1] = (previous, reply + "\n" + text)
    return tuple(history), "\n".join(context)


# --- the model's call -> OpenAI's tool call ------------------------------------------------------


# --- grammars -----------------------------------------------------------------------------------


def _regex_text(text: str) -> str:
    """``text`` as a literal inside a Lark regex (llguidance's, Rust syntax): letters and digits
    as they are, everything else as ``\\x{..}``."""
    return "".join(c if c.isalnum() and c.isascii() or c == "_" else f"\\x{{{ord(c):x}}}" for c in text)


def call_grammar(tools: Sequence[Tool]) -> Grammar:
    """The call text of one of ``tools``, its arguments valid under the tool's schema.

    Slots come in sorted order (``api_name`` among them), required ones always, optional ones
    or not. A value written raw (a plain string, or an enum of strings) ends where `` ; `` and
    the next slot's name begin, and llguidance's lexer ends a lexeme only where it cannot go
    on: a raw value and what follows it are therefore one regex (``value ; next = ``), one per
    slot that may come next, so the separator is never mistaken for more of the value.
    """
    rules = []
    for k, tool in enumerate(tools):
        schema = tool.parameters
        extra = set(schema) - TOP_LEVEL
        if extra:
            raise _bad(f"{sorted(extra)} at the top level of parameters cannot be enforced while the call is "
                       "written; state the constraints on each property", f"tools.{tool.name}.parameters")
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        missing = required - set(properties)
        if missing:
            raise _bad(f"required {sorted(missing)} not among the properties", f"tools.{tool.name}.parameters.required")
        defs = {key: schema[key] for key in ("$defs", "definitions") if key in schema}
        slots = sorted([calls.API_NAME, *properties])
        must = [slot == calls.API_NAME or slot in required for slot in slots]

        def reachable(after: int) -> List[int]:
            """The slots that may come next after slot ``after`` (-1: the first): up to the first required one."""
            out = []
            for j in range(after + 1, len(slots)):
                out.append(j)
                if must[j]:
                    break
            return out

        def ends(after: int) -> bool:
            return not any(must[after + 1:])

        def head(j: int) -> str:
            return f"{slots[j]} = "

        rules.append(f"c{k}: {lark_literal(CALL)} (" + " | ".join(
            f"{lark_literal(head(j))} t{k}_{j}" for j in reachable(-1)) + ")")
        for j, slot in enumerate(slots):
            sub = {} if slot == calls.API_NAME else properties[slot]
            alternatives = []
            if slot == calls.API_NAME or not plain_string(sub):
                if slot == calls.API_NAME:
                    value = lark_literal(tool.name)
                else:
                    value = f"v{k}_{j}"
                    rules.append(f"{value}: {lark_json({**sub, **defs} if defs and isinstance(sub, dict) else sub)}")
                alternatives += [f"{value} {lark_literal(' ; ' + head(n))} t{k}_{n}" for n in reachable(j)]
                alternatives += [value] if ends(j) else []
            else:
                raw = ("(?:" + "|".join(_regex_text(v) for v in sub["enum"]) + ")" if "enum" in sub
                       else "[^ ;\\n](?:[^;\\n]*[^ ;\\n])?")
                alternatives += [f"/{raw}{_regex_text(' ; ' + head(n))}/ t{k}_{n}" for n in reachable(j)]
                alternatives += [f"/{raw}/"] if ends(j) else []
            rules.append(f"t{k}_{j}: " + " | ".join(alternatives))
    return Grammar("start: " + " | ".join(f"c{k}" for k in range(len(tools))) + "\n" + "\n".join(rules) + "\n")

