"""`parlai dialogft_serve`: a trained model behind an OpenAI-compatible HTTP API.

The specs: OpenAI clients get OpenAI's shapes (also streamed); concurrent requests share
generation calls yet each gets the reply it would get alone; bad requests get a 4xx that
says what to fix; metrics, feedback and the chat page work; shutdown answers in-flight
requests. Every server here is real uvicorn on 127.0.0.1 (a free port), spoken to over HTTP.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parlai_dialogft.serving.batcher import MicroBatcher
from parlai_dialogft.serving.guard import GuardError
from parlai_dialogft.serving.options import ServeSettings
from parlai_dialogft.serving.protocol import ChatMessage, Prompt, pieces, to_prompt
from parlai_dialogft.serving.store import DAY_S, ConversationStore
from tests.support.browser import CHROMIUM
from tests.support.processes import parlai_server
from tests.support.serving import PROMPTS, ask, chat, http, metric, metrics, serving, serving_agent

KEYS = "key-one,key-two"
MAX_BODY = 64 * 1024


# --- fixtures: servers on conftest's served_model_file -----------------------------------------


@pytest.fixture(scope="module")
def server(served_model_file, tmp_path_factory):
    log_db = str(tmp_path_factory.mktemp("log") / "log.db")
    with serving(served_model_file, log_db=log_db, max_body_bytes=MAX_BODY, max_batch=16, batch_wait_s=0.01) as s:
        yield s


@pytest.fixture(scope="module")
def keyed_server(served_model_file):
    from parlai_dialogft.serving.guard import load_api_keys

    with serving(served_model_file, api_keys=load_api_keys(KEYS)) as s:
        yield s


# --- messages become the ParlAI history --------------------------------------------------------


@pytest.mark.parametrize("messages,history,text", [
    ([("user", "hi")], (), "hi"),
    ([("system", "be kind"), ("user", "hi"), ("assistant", "hello!"), ("user", "a table"), ("user", "for two")],
     (("be kind\nhi", "hello!"),), "a table\nfor two"),
    # as in training: an opening assistant turn joins the first context, and two assistant
    # turns in a row are one reply
    ([("assistant", "welcome"), ("user", "hi")], (), "welcome\nhi"),
    ([("user", "hi"), ("assistant", "hello"), ("assistant", "how can I help?"), ("user", "a room")],
     (("hi", "hello\nhow can I help?"),), "a room"),
])
def test_messages_become_the_history_the_model_was_trained_on(messages, history, text):
    prompt = to_prompt([ChatMessage(role=role, content=content) for role, content in messages])
    assert prompt == Prompt(history, text)


@given(st.text(max_size=40))
def test_streamed_pieces_put_together_are_the_reply(text):
    assert "".join(pieces(text)) == text


def test_the_model_reads_the_whole_conversation_in_order(served_model_file):
    from parlai_dialogft.serving.replier import Replier

    replier = Replier(serving_agent(served_model_file), max_batch=1)
    observation = replier._observe(replier._slots[0], Prompt((("be kind\nhi", "hello!"),), "a table"))
    assert observation["full_text"] == "be kind\nhi\nhello!\na table"
    # the next request starts from nothing
    observation = replier._observe(replier._slots[0], Prompt((), "again"))
    assert observation["full_text"] == "again"


# --- the OpenAI API ----------------------------------------------------------------------------


def test_a_chat_completion_has_openai_s_shape(server):
    reply = chat(server.url, [{"role": "user", "content": "hello , how can I help you today ?"}])
    assert reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    assert reply["model"] == "m"
    choice = reply["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] == "stop"
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    status, _, text = http(server.url + "/v1/models")
    assert status == 200 and [m["id"] for m in json.loads(text)["data"]] == ["m"]


def test_max_tokens_cuts_the_reply(server):
    reply = chat(server.url, [{"role": "user", "content": PROMPTS[0]}], max_tokens=2)
    assert reply["usage"]["completion_tokens"] <= 2
    assert reply["choices"][0]["finish_reason"] in {"stop", "length"}


def test_a_streamed_reply_is_openai_chunks_ending_with_done(server):
    messages = [{"role": "user", "content": PROMPTS[1]}]
    whole = chat(server.url, messages)["choices"][0]["message"]["content"]
    status, headers, text = http(server.url + "/v1/chat/completions", "POST",
                                 {"model": "m", "messages": messages, "stream": True,
                                  "stream_options": {"include_usage": True}})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 0
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert streamed == whole


def test_32_concurrent_clients_each_get_the_reply_they_get_alone(server):
    alone = [ask(server.url, text) for text in PROMPTS]
    assert len(set(alone)) >= 8, alone  # different enough that a mix-up would show
    before = metrics(server.url)
    start = threading.Barrier(len(PROMPTS))

    def client(text):
        start.wait(timeout=30)  # all 32 in flight together
        return ask(server.url, text)

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(client, PROMPTS, timeout=120))
    assert together == alone
    after = metrics(server.url)
    # Generation calls (decoding steps of the running batch) and the rows they computed.
    calls = metric(after, "dialogft_batch_size_count") - metric(before, "dialogft_batch_size_count")
    rows = metric(after, "dialogft_batch_size_sum") - metric(before, "dialogft_batch_size_sum")
    assert rows / calls > 2  # requests shared them
    errors = sum(v for (name, _), v in after.items() if name == "dialogft_request_errors_total")
    assert errors == sum(v for (name, _), v in before.items() if name == "dialogft_request_errors_total")


# --- bad requests: a 4xx that says what to fix --------------------------------------------------

CHAT = "/v1/chat/completions"
USER_HI = {"messages": [{"role": "user", "content": "hi"}]}


def _chunked(total):
    piece = b'{"messages": [{"role": "user", "content": "' + b"x" * 8192
    yield piece
    for _ in range(total // 8192):
        yield b"x" * 8192


@pytest.mark.parametrize("which,method,path,body,headers,status,code,says", [
    ("server", "POST", CHAT, b'{"messages": [', {}, 400, "invalid_json", "malformed JSON"),
    ("server", "POST", CHAT, b"", {}, 400, "invalid_json", "empty request body"),
    ("server", "POST", CHAT, ["not", "an", "object"], {}, 400, "invalid_request", "valid dictionary"),
    ("server", "POST", CHAT, {"model": "m"}, {}, 400, "invalid_request", "messages: Field required"),
    ("server", "POST", CHAT, {"messages": []}, {}, 400, "invalid_request", "at least 1 item"),
    ("server", "POST", CHAT, {"messages": [{"role": "function", "content": "x"}]}, {}, 400, "invalid_request",
     "messages.0.role"),
    ("server", "POST", CHAT, {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]},
     {}, 400, "invalid_request", "the last message must have role 'user'"),
    ("server", "POST", CHAT, {"messages": [{"role": "user", "content": "  "}]}, {}, 400, "invalid_request",
     "the last user message is empty"),
    ("server", "POST", CHAT, {**USER_HI, "n": 5}, {}, 400, "invalid_request", "n: 5 drafts"),  # --serve-max-n 4
    ("server", "POST", CHAT, {"messages": [{"role": "user", "content": "x" * MAX_BODY * 4}]}, {}, 413,
     "request_too_large", "--serve-max-body-bytes"),
    ("server", "POST", CHAT, "chunked", {"Content-Type": "application/json"}, 413, "request_too_large",
     "over 65,536 bytes"),
    ("server", "POST", CHAT, {**USER_HI, "model": "gpt-4o"}, {}, 404, "model_not_found", "serves 'm'"),
    ("server", "GET", "/v1/models/gpt-4o", None, {}, 404, "model_not_found", "'gpt-4o' does not exist"),
    ("server", "GET", "/v1/nothing", None, {}, 404, "not_found", "no such endpoint"),
    ("server", "GET", CHAT, None, {}, 405, "method_not_allowed", "GET is not allowed"),
    ("server", "POST", "/v1/feedback", {"id": "chatcmpl-none", "rating": "up"}, {}, 404, "reply_not_found", "no logged reply"),
    ("server", "POST", "/v1/feedback", {"id": "x", "rating": "meh"}, {}, 400, "invalid_request", "rating"),
    ("keyed_server", "POST", CHAT, USER_HI, {}, 401, "missing_api_key", "Authorization: Bearer"),
    ("keyed_server", "POST", CHAT, USER_HI, {"Authorization": "Bearer key-three"}, 401, "invalid_api_key",
     "incorrect API key"),
    ("keyed_server", "GET", "/v1/models", None, {"Authorization": "Basic a2V5LW9uZQ=="}, 401, "missing_api_key", "Bearer"),
    ("keyed_server", "POST", "/v1/feedback", {"id": "x", "rating": "up"}, {"Authorization": "Bearer key-two"}, 404,
     "feedback_disabled", "--serve-log-db"),
])
def test_a_bad_request_gets_a_4xx_saying_what_to_fix(request, which, method, path, body, headers, status, code, says):
    base = request.getfixturevalue(which).url
    if body == "chunked":
        body = _chunked(MAX_BODY * 4)  # past the socket buffers: the server must drain it
    got, _, text = http(base + path, method, body, headers)
    assert got == status, text
    error = json.loads(text)["error"]
    assert error["code"] == code and says in error["message"], error


def test_a_right_key_is_let_in(keyed_server):
    status, _, text = http(keyed_server.url + CHAT, "POST", USER_HI, {"Authorization": "Bearer key-two"})
    assert status == 200, text
    status, _, _ = http(keyed_server.url + "/healthz")
    assert status == 200  # health and metrics stay open for probes and scrapers


def test_binding_beyond_loopback_needs_keys(served_model_file, capsys):
    from parlai_dialogft.scripts.dialogft_serve import DialogftServe

    with pytest.raises(SystemExit) as stop:
        DialogftServe.main(model_file=served_model_file, serve_host="0.0.0.0")
    assert stop.value.code == 2
    assert "dialogft_serve: --host 0.0.0.0 lets other machines connect: give --serve-api-keys" in capsys.readouterr().err
    assert ServeSettings("m", host="0.0.0.0", api_keys=frozenset({"k"})).host == "0.0.0.0"
    assert ServeSettings("m", host="::1").host == "::1"  # loopback: keys optional
    with pytest.raises(GuardError, match="--serve-max-batch 0"):
        ServeSettings("m", max_batch=0)


# --- metrics and online evaluation --------------------------------------------------------------


def test_metrics_count_requests_errors_latency_tokens_batches_and_queue(server):
    # Some replies of the served model are empty; of these four, some are not, so that the
    # tokens counted are this test's own, whichever tests ran before on the server.
    for text in PROMPTS[:4]:
        ask(server.url, text)
    http(server.url + CHAT, "POST", b"{")
    samples = metrics(server.url)
    assert metric(samples, "dialogft_requests_total", route=CHAT, code="200") >= 1
    assert metric(samples, "dialogft_request_errors_total", route=CHAT, code="400") >= 1
    assert metric(samples, "dialogft_request_latency_seconds_count", route=CHAT) >= 2
    assert metric(samples, "dialogft_generated_tokens_total") > 0
    assert metric(samples, "dialogft_prompt_tokens_total") > 0
    assert metric(samples, "dialogft_batch_size_count") >= 1
    assert ("dialogft_queue_depth", ()) in samples
    status, _, text = http(server.url + "/healthz")
    assert status == 200 and json.loads(text)["status"] == "ok"


def test_feedback_is_logged_with_its_conversation_and_counted(server):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": PROMPTS[3]}]
    reply = chat(server.url, messages)
    before = metrics(server.url)
    status, _, text = http(server.url + "/v1/feedback", "POST", {"id": reply["id"], "rating": "down", "comment": "too short"})
    assert status == 200, text
    with sqlite3.connect(server.log_db) as db:
        logged, said = db.execute("SELECT messages, reply FROM replies WHERE id = ?", (reply["id"],)).fetchone()
        rating, comment = db.execute("SELECT rating, comment FROM feedback WHERE reply_id = ?", (reply["id"],)).fetchone()
    assert [m["content"] for m in json.loads(logged)] == ["hi", "hello", PROMPTS[3]]
    assert said == reply["choices"][0]["message"]["content"]
    assert (rating, comment) == ("down", "too short")
    after = metrics(server.url)
    assert metric(after, "dialogft_feedback_total", rating="down") == metric(before, "dialogft_feedback_total", rating="down") + 1
    assert metric(after, "dialogft_logged_feedback", rating="down") >= 1
    assert metric(after, "dialogft_logged_replies") >= 1


def test_retention_deletes_old_conversations_with_their_feedback(tmp_path):
    now = [1_000_000.0]
    store = ConversationStore(str(tmp_path / "log.db"), retention_days=7, clock=lambda: now[0])
    store.log_reply("old", "m", [], "r", "stop", 1, 1, 0.1)
    assert store.add_feedback("old", "up")
    now[0] += 8 * DAY_S
    store.log_reply("new", "m", [], "r", "stop", 1, 1, 0.1)  # a day past retention: purged on write
    assert store.reply("old") is None and store.reply("new") is not None
    assert store.aggregates() == {"replies": 1, "feedback_up": 0, "feedback_down": 0}
    assert not store.add_feedback("old", "up")  # gone: feedback on it is refused


# --- batching and shutdown -------------------------------------------------------------------


def test_the_batcher_groups_waiting_requests_and_isolates_a_failing_one():
    calls = []

    def process(items):
        calls.append(len(items))
        time.sleep(0.05)
        if "bad" in items:
            raise ValueError("bad input")
        return [item.upper() for item in items]

    batcher = MicroBatcher(process, max_batch=8, max_wait_s=0.02).start()
    futures = [batcher.submit(x) for x in ["a", "b", "bad", "c"] + list("defghijk")]
    batcher.close()  # drains: every accepted item is answered
    assert [f.result() for i, f in enumerate(futures) if i != 2] == list("ABCDEFGHIJK")
    with pytest.raises(ValueError, match="bad input"):
        futures[2].result()
    assert max(calls) == 8  # grouped, and then retried one by one after the failure


def test_shutdown_answers_requests_already_in_flight(served_model_file):
    generating = threading.Event()

    def slow(replier):
        def generate(prompts):
            generating.set()
            time.sleep(1.0)
            return replier(prompts)
        return generate

    with serving(served_model_file, generate=slow) as s:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(ask, s.url, PROMPTS[4])
            assert generating.wait(30)
            s.server.should_exit = True  # what SIGTERM does
            assert isinstance(pending.result(timeout=30), str)
    with pytest.raises(OSError):
        urllib.request.urlopen(s.url + "/healthz", timeout=5)


def test_the_parlai_command_serves_and_stops_gracefully_on_sigterm(served_model_file, tmp_path):
    args = ["dialogft_serve", "-mf", served_model_file, "--port", "{port}", "--serve-log-db", tmp_path / "log.db",
            "--datapath", tmp_path]
    with parlai_server(args, "/healthz", timeout=120) as (base, proc):
        assert ask(base, PROMPTS[5]) is not None
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: "ended by SIGTERM", as
        # service managers expect (systemd counts it as a clean stop).
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    output = proc.stdout.read()
    assert f"model 'm' at {base}" in output and "Application shutdown complete" in output


# --- the chat page ------------------------------------------------------------------------------

def _chromium(url, tmp_path, *args):
    profile = tmp_path / f"profile{len(list(tmp_path.iterdir()))}"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--window-size=800,600",
               # virtual time waits for the page's fetches before dumping or capturing
               "--virtual-time-budget=20000", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


@pytest.mark.browser
def test_the_chat_page_shows_a_reply_in_a_headless_browser(server, tmp_path):
    from html.parser import HTMLParser

    expected = ask(server.url, PROMPTS[6])
    url = server.url + "/?q=" + urllib.request.quote(PROMPTS[6])
    dom = _chromium(url, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]

    class Messages(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found, self.current, self.state = [], None, None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "body":
                self.state = attrs.get("data-state")
            if tag == "div" and (attrs.get("class") or "").startswith("msg "):
                self.current = [attrs["class"][4:], attrs.get("data-id"), ""]
                self.found.append(self.current)

        def handle_data(self, data):
            if self.current is not None:
                self.current[2] += data

        def handle_endtag(self, tag):
            if tag == "div":
                self.current = None

    page = Messages()
    page.feed(dom.stdout)
    assert page.state == "replied", dom.stdout[-2000:]
    (user_role, _, user_text), (bot_role, bot_id, bot_text) = [m[:3] for m in page.found]
    assert (user_role, user_text) == ("user", PROMPTS[6])
    assert bot_role == "assistant" and bot_id.startswith("chatcmpl-")
    assert bot_text.startswith(expected or "(empty reply)")  # then the rating buttons' labels

    png = tmp_path / "chat.png"
    shot = _chromium(url, tmp_path, f"--screenshot={png}")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (800, 600)
