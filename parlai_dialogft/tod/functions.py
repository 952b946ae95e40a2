"""OpenAI functions in the task format: a call's JSON arguments as ``APICALL:`` slots and back.

A function call is the format's call turn, its name the ``api_name`` and its arguments the
slots; a function's result is the answer turn:

    find_hotel({"pricerange": "cheap", "stars": 4})  <->  APICALL: api_name = find_hotel ; pricerange = cheap ; stars = 4
    {"count": 2, "name": "ab"}                        ->  APIRESP: count = 2 ; name = ab

A value whose schema is a plain string is written as it is; any other as compact JSON
(``people = 2``, ``tags = ["a","b"]``), and read back the same way (:func:`read_call`).
Shared by the two places functions run: the client's (``tools`` in a ``dialogft_serve``
request, :mod:`parlai_dialogft.serving.tools`) and the server's own (``--tools FILE``,
:mod:`.server_tools`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from parlai_dialogft.tod import calls

CALL = calls.CALL
#: A plain string schema is written raw in a call (no quotes); these keywords keep it plain.
PLAIN_STRING = {"type", "description", "title", "enum", "examples"}


@dataclass(frozen=True)
class Tool:
    name: str
    parameters: Dict[str, Any]
    strict: bool = False



def value_text(schema: Dict[str, Any], value: Any) -> str:
    return str(value) if plain_string(schema) and isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                                                        separators=(",", ":"))


def plain_string(schema: Any) -> bool:
    """A string written raw in a call: ``{"type": "string"}``, or an enum of strings, with no
    other constraint (anything else is written as JSON)."""
    if not isinstance(schema, dict) or not set(schema) <= PLAIN_STRING:
        return False
    enum = schema.get("enum")
    if schema.get("type", "string" if enum else None) != "string":
        return False
    return all(isinstance(v, str) and v.strip() == v and v and not any(c in v for c in ";\n") for v in enum or ())


def call_text(name: str, arguments: str, tools: Dict[str, Tool]) -> str:
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = {}
    properties = (tools[name].parameters.get("properties") or {}) if name in tools else {}
    slots = {calls.API_NAME: name}
    if isinstance(args, dict):
        slots.update({key: value_text(properties.get(key, {}), value) for key, value in args.items()})
    return calls.call_text(slots)


def result_text(content: str) -> str:
    """A tool's answer as ``APIRESP:`` slots: a JSON object's keys, else the text as ``result``."""
    try:
        value = json.loads(content)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return calls.resp_text({k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                for k, v in value.items()})
    return calls.resp_text({"result": " ".join(content.split())})


def read_call(text: str, tools: Dict[str, Tool]) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(tool name, arguments) of a call text naming one of ``tools``, else None.

    A JSON value may itself hold `` ; `` (``tags = ["a ; b"]``), so values are read in order:
    a raw one up to the next `` ; ``, a JSON one as exactly one JSON value. Text that does
    not read so (a model writing freely) is read as the format's plain ``slot = value`` pairs.
    """
    if not text.strip().startswith(CALL.strip()):
        return None
    name = calls.parse_call(text).get(calls.API_NAME, "")
    if name not in tools:
        return None
    properties = tools[name].parameters.get("properties") or {}
    slots = _read_slots(text.strip()[len(CALL.strip()):].strip(), properties)
    if slots is None:  # free text: split at every " ; ", JSON where it parses
        slots = {}
        for key, value in calls.parse_call(text).items():
            try:
                slots[key] = value if plain_string(properties.get(key)) else json.loads(value)
            except ValueError:
                slots[key] = value
    slots.pop(calls.API_NAME, None)
    return name, slots


def _read_slots(rest: str, properties: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    decoder = json.JSONDecoder()
    slots: Dict[str, Any] = {}
    while rest:
        key, sep, after = rest.partition(" = ")
        if not sep:
            return None
        if key == calls.API_NAME or key not in properties or plain_string(properties[key]):
            value, _, rest = after.partition(" ; ")
            slots[key] = value.strip()
            continue
        try:
            slots[key], end = decoder.raw_decode(after)
        except ValueError:
            return None
        rest = after[end:]
        if rest.startswith(" ; "):
            rest = rest[3:]
        elif rest.strip():
            return None
    return slots


def validates(tool: Tool, arguments: Dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError:
        return False
    return True


