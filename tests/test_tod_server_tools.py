"""`--tools tools.json`: the loop runs a company's own functions, over HTTP or in Python, and survives them failing."""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from parlai.core.message import Message

from tests.support.agents import make_agent
from tests.support.tod_agents import script_rounds

DATAPATH = "/tmp/dialogft-test-data"
ORDER_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}


class Systems(BaseHTTPRequestHandler):
    """The company's HTTP endpoints: one answers, one fails, one is too slow."""

    received = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Systems.received.append((self.path, body))
        if self.path == "/broken":
            self.send_response(500)
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(2)
        answer = json.dumps({"order_id": body.get("order_id"), "status": "shipped", "items": ["boot", "laces"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Systems)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def tools_file(tmp_path, endpoint):
    def tool(name, **where):
        return {"type": "function", "function": {"name": name, "parameters": ORDER_SCHEMA}, **where}

    entries = [
        tool("order_status", endpoint=f"{endpoint}/order_status"),
        tool("broken_status", endpoint=f"{endpoint}/broken"),
        tool("slow_status", endpoint=f"{endpoint}/slow"),
        {"type": "function", "function": {"name": "stock", "parameters": {
            "type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}},
         "python": "tests.support.shop_tools:stock"},
        {"type": "function", "function": {"name": "label", "parameters": {
            "type": "object", "properties": {"parcel": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}}},
            "required": ["parcel", "labels"]}}, "python": "tests.support.shop_tools:label"},
    ]
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(entries, indent=1))
    Systems.received.clear()
    return path


def backends(tools_file, task_db=None):
    from parlai_dialogft.tod.database import open_databases
    from parlai_dialogft.tod.server_tools import ToolsAndDatabases, load_tools

    return ToolsAndDatabases(load_tools(str(tools_file)), open_databases(task_db) if task_db else None, timeout=0.5)


def test_an_endpoint_gets_the_arguments_typed_by_its_schema_and_its_answer_is_read(tools_file):
    answer = backends(tools_file).answer({"api_name": "order_status", "order_id": "42"})
    assert Systems.received == [("/order_status", {"order_id": 42})]
    assert answer == {"order_id": "42", "status": "shipped", "items": '["boot", "laces"]'}


def test_a_python_function_is_called_with_the_arguments(tools_file):
    assert backends(tools_file).answer({"api_name": "stock", "sku": "RB-2"}) == {
        "sku": "RB-2", "in_stock": "12", "reference": "RSV4X9K2"}


def test_calls_naming_no_tool_go_to_the_database(tools_file):
    found = backends(tools_file, "multiwoz").answer({"api_name": "find_hotel", "area": "north"})
    assert int(found["count"]) > 0


@pytest.mark.parametrize("call, why", [
    ({"api_name": "order_status", "order_id": "abc; DROP TABLE orders"}, "invalid arguments"),
    ({"api_name": "order_status"}, "invalid arguments: 'order_id' is a required property"),
    ({"api_name": "broken_status", "order_id": "1"}, "HTTP 500 from"),
    ({"api_name": "slow_status", "order_id": "1"}, "no answer from"),
    ({"api_name": "stock", "sku": "XX-9"}, "KeyError"),
])
def test_a_tool_that_cannot_run_answers_an_error_the_model_reads_and_a_log_line(tools_file, call, why, caplog):
    with caplog.at_level(logging.WARNING):
        answer = backends(tools_file).answer(call)
    assert list(answer) == ["error"] and why in answer["error"]
    assert f"tool {call['api_name']}: " in caplog.text
    if why.startswith("invalid"):
        assert Systems.received == []  # arguments that do not validate are never sent


@pytest.mark.parametrize("content, message", [
    ("[{", "line 1: not JSON"),
    ('{"tools": []}', "must be a JSON list"),
    ('[{"type": "function", "function": {"name": "x"}}]', '[0] (x): give one of "endpoint"'),
    ('[{"type": "function", "function": {"name": "x", "parameters": {"type": 7}}, "endpoint": "http://h"}]',
     "[0] (x): parameters is not a valid JSON Schema"),
    ('[{"type": "function", "function": {"name": "x"}, "python": "no_such_module:f"}]', "[0] (x): python 'no_such_module:f' cannot be imported"),
    ('[{"type": "function", "function": {"name": "x"}, "endpoint": "file:///etc/passwd"}]', "endpoint must be an http(s) URL"),
])
def test_a_bad_tools_file_is_one_error_naming_the_file_and_the_entry(tmp_path, content, message):
    from parlai_dialogft.tod.server_tools import ToolsFileError, load_tools

    path = tmp_path / "tools.json"
    path.write_text(content)
    with pytest.raises(ToolsFileError) as err:
        load_tools(str(path))
    assert str(err.value).startswith(f"--tools {path}: ") and message in str(err.value)


def test_in_the_loop_the_reply_is_written_from_the_tools_answer(tools_file, monkeypatch):
    read = script_rounds(monkeypatch, "APICALL: api_name = stock ; sku = TB-1", "3 in stock , held under RSV4X9K2 .")
    agent = make_agent("zoo:dialogft/bilingual_t5", tools=str(tools_file), datatype="valid", datapath=DATAPATH)
    agent.observe(Message({"text": "Is the trail boot in stock ?", "episode_done": False}))
    reply = agent.act()
    assert reply["tod_result"] == "APIRESP: in_stock = 3 ; reference = RSV4X9K2 ; sku = TB-1"
    assert read["context"].endswith(reply["tod_result"])
    assert reply["text"] == "3 in stock , held under RSV4X9K2 ."  # the function's own reference stands


def test_in_the_loop_a_json_value_with_the_separator_inside_reaches_the_tool_whole(tools_file, monkeypatch):
    script_rounds(monkeypatch, 'APICALL: api_name = label ; labels = ["fragile ; heavy", "blue"] ; parcel = P-7', "Done .")
    agent = make_agent("zoo:dialogft/bilingual_t5", tools=str(tools_file), datatype="valid", datapath=DATAPATH)
    agent.observe(Message({"text": "Label parcel P-7 as fragile ; heavy , and blue .", "episode_done": False}))
    reply = agent.act()
    assert reply["tod_result"] == "APIRESP: labels = 2 ; parcel = P-7"
    assert reply["tod_call"] == 'APICALL: api_name = label ; labels = ["fragile ; heavy","blue"] ; parcel = P-7'  # compact JSON
