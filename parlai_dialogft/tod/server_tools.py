"""``--tools tools.json``: functions the agent's task loop runs itself, over HTTP or in Python.

A company's own systems as the model's calls. The file is a JSON list of OpenAI tool
definitions, each saying where the function runs:

    [{"type": "function",
      "function": {"name": "order_status", "description": "...",
                   "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}},
                                  "required": ["order_id"]}},
      "endpoint": "http://127.0.0.1:8080/order_status"},
     {"type": "function", "function": {...}, "python": "mycompany.tools:stock"}]

When the model writes ``APICALL: api_name = order_status ; order_id = 42``, the arguments are
read by the function's schema (:func:`.functions.read_call`) and checked with ``jsonschema``;
valid ones are POSTed to the endpoint as a JSON object (a JSON object comes back), or passed
to the Python function as keyword arguments (it returns a dict). The result is the
``APIRESP:`` the model replies from. Nothing fails the conversation: arguments that do not
validate are not sent, and they, a timeout, an HTTP error or an exception are answered
``error = ...`` with a log line. Calls that name no tool of the file go to ``--task-db``'s
databases, when given (:class:`ToolsAndDatabases`).

A request to ``dialogft_serve`` that brings ``tools`` of its own runs them itself (OpenAI's
semantics): the server's tools are for ``interactive``, evaluation and requests without tools.
"""

from __future__ import annotations

import importlib
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from parlai_dialogft.tod import calls
from parlai_dialogft.tod.call_grammar import Signature, Values
from parlai_dialogft.tod.functions import Tool, plain_string, read_call, value_text
from parlai_dialogft.utils.errors import UserError

logger = logging.getLogger(__name__)


class ToolsFileError(UserError):
    """A ``--tools`` file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class ServerTool:
    tool: Tool
    endpoint: Optional[str] = None  # POST the arguments as JSON here
    function: Optional[Callable[..., Any]] = None  # or call this with them


def load_tools(path: str) -> Dict[str, ServerTool]:
    """The tools of a ``--tools`` file by name; a :class:`ToolsFileError` naming what is wrong."""
    import jsonschema

    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except OSError as err:
        raise ToolsFileError(f"--tools {path}: cannot read it ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise ToolsFileError(f"--tools {path}: line {err.lineno}: not JSON ({err.msg})") from None
    if not isinstance(entries, list):
        raise ToolsFileError(f"--tools {path}: must be a JSON list of tool definitions")
    tools: Dict[str, ServerTool] = {}
    for i, entry in enumerate(entries):
        where = f"--tools {path}: [{i}]"
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise ToolsFileError(f"{where}: expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}, ...}}")
        name, parameters = function["name"], function.get("parameters", {"type": "object", "properties": {}})
        try:
            jsonschema.validators.validator_for(parameters, default=jsonschema.Draft202012Validator).check_schema(parameters)
        except jsonschema.SchemaError as err:
            raise ToolsFileError(f"{where} ({name}): parameters is not a valid JSON Schema: {err.message}") from None
        if ("endpoint" in entry) == ("python" in entry):
            raise ToolsFileError(f"{where} ({name}): give one of \"endpoint\" (an http(s) URL) or \"python\" (module:function)")
        tool = Tool(name, parameters)
        if "endpoint" in entry:
            if not str(entry["endpoint"]).startswith(("http://", "https://")):
                raise ToolsFileError(f"{where} ({name}): endpoint must be an http(s) URL, not {entry['endpoint']!r}")
            tools[name] = ServerTool(tool, endpoint=entry["endpoint"])
        else:
            tools[name] = ServerTool(tool, function=_import(entry["python"], f"{where} ({name})"))
    return tools


def _import(spec: str, where: str) -> Callable[..., Any]:
    module, _, attribute = str(spec).partition(":")
    try:
        function = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ToolsFileError(f"{where}: python {spec!r} cannot be imported ({err})") from None
    if not callable(function):
        raise ToolsFileError(f"{where}: python {spec!r} is not callable")
    return function


def run(server_tool: ServerTool, arguments: Dict[str, Any], timeout: float) -> Dict[str, str]:
    """The tool's result as answer slots, or ``error = ...`` (logged) when it could not run."""
    import jsonschema

    name = server_tool.tool.name
    try:
        jsonschema.validate(arguments, server_tool.tool.parameters)
    except jsonschema.ValidationError as err:
        return _error(name, f"invalid arguments: {err.message}")
    try:
        if server_tool.endpoint:
            result = _post(server_tool.endpoint, arguments, timeout)
        else:
            result = server_tool.function(**arguments)
    except urllib.error.HTTPError as err:
        return _error(name, f"HTTP {err.code} from {server_tool.endpoint}")
    except (urllib.error.URLError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        return _error(name, f"no answer from {server_tool.endpoint} ({reason})")
    except Exception as err:  # a user's function: whatever it raises, the conversation goes on
        return _error(name, f"{type(err).__name__}: {err}")
    return _slots(result)


def _post(url: str, arguments: Dict[str, Any], timeout: float) -> Any:
    body = json.dumps(arguments, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return {"result": text}


def _slots(result: Any) -> Dict[str, str]:
    """A result as the answer's slots: an object's keys (non-text values as JSON), else ``result``."""
    if not isinstance(result, Mapping):
        result = {"result": result}
    return {str(k): " ".join((v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)).split())
            for k, v in result.items()}


def _error(name: str, why: str) -> Dict[str, str]:
    logger.warning("tool %s: %s; the model reads error = ...", name, why)
    return {"error": why}


def _values(spec: Any) -> Values:
    """A property's values in the call grammar: a plain string's enum, else JSON under its schema."""
    if not isinstance(spec, dict):
        return None
    if not plain_string(spec):
        return spec  # written as JSON (functions.value_text)
    return tuple(spec["enum"]) if spec.get("enum") else None


class ToolsAndDatabases:
    """What the task loop calls (``answer``, ``bookings``): the file's tools by name, the rest to the databases."""

    def __init__(self, tools: Dict[str, ServerTool], databases=None, timeout: float = 10.0):
        self.tools, self.databases, self.timeout = tools, databases, timeout

    @property
    def domains(self) -> Tuple[str, ...]:
        return tuple(self.tools) + (self.databases.domains if self.databases is not None else ())

    def parse_call(self, text: str) -> calls.Call:
        """A call text as the loop reads it; a tool's JSON values whole, even with `` ; `` inside
        (``labels = ["fragile ; heavy"]``), where the plain format splits at every `` ; ``."""
        read = read_call(text, {name: t.tool for name, t in self.tools.items()})
        if read is None:
            return calls.parse_call(text)
        name, arguments = read
        properties = self.tools[name].tool.parameters.get("properties") or {}
        return {calls.API_NAME: name, **{k: value_text(properties.get(k, {}), v) for k, v in arguments.items()}}

    def answer(self, call: Mapping[str, str], prefer: Optional[str] = None) -> Dict[str, str]:
        name = call.get(calls.API_NAME, "")
        if name in self.tools:
            _, arguments = read_call(calls.call_text(call), {name: self.tools[name].tool})
            return run(self.tools[name], arguments, self.timeout)
        if self.databases is not None:
            return self.databases.answer(call, prefer=prefer)
        logger.warning("no tool %r (known: %s); answering count = 0", name, ", ".join(self.tools))
        return {"count": "0"}

    def bookings(self, reference: Optional[str] = None) -> List[Dict[str, str]]:
        return self.databases.bookings(reference) if self.databases is not None else []

    def signatures(self) -> List[Signature]:
        """The tools' calls (a property's ``enum`` closes it), then the databases'."""
        own = [Signature(name, {key: _values(spec) for key, spec in (t.tool.parameters.get("properties") or {}).items()})
               for name, t in self.tools.items()]
        return own + (self.databases.signatures() if self.databases is not None else [])
