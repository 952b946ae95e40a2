"""`parlai dialogft_serve` as the official `openai` client sees it.

The specs: the client's calls work unchanged against our server (plain, streamed, `n`,
`models.list()`); `seed` makes a sampled reply repeatable, whatever else is batched with it;
`stop` cuts the reply before the first stop string; a field the server cannot honour is a
400 naming it (the client raises `BadRequestError`), never silence; a full queue answers 429
with `Retry-After`; a client that hangs up while queued is never generated for; and SIGTERM
lets every request in flight finish, logs each of them, and exits 0.

The served model answers each sentence with the next one (conftest's `context_models`), so
its replies depend on what it reads.
"""

from __future__ import annotations

import inspect
import json
import signal
import socket
import sqlite3
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import SimpleNamespace

import openai
import pytest

from parlai_dialogft.serving.options import ServeSettings
from parlai_dialogft.serving.store import ConversationStore
from tests.support.models import TEXTS
from tests.support.processes import parlai_server

HELLO = [{"role": "user", "content": TEXTS[0]}]
#: Contexts the model was not trained on: its next-token distributions are flatter there,
#: so that samples can differ.
UNSEEN = ["a table for two , cheap", "hello hotel seven", "我想 table today", "thanks cheap centre train"]


# --- servers on the context model --------------------------------------------------------------


@contextmanager
def serving(hf_model, root, generate=None, **settings):
    """The app as `parlai dialogft_serve -m dialogft_agent --hf-model FOLDER` builds it, with
    its log; ``generate`` wraps the replier (to slow it down or watch it)."""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe
    from parlai_dialogft.serving.app import create_app
    from parlai_dialogft.serving.replier import Replier
    from parlai_dialogft.serving.server import bound_port, running

    opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", hf_model,
                                                 "--datapath", str(root / "data"), "--label-truncate", "64"])
    settings = ServeSettings(model_name="m", **settings)
    replier = Replier(create_agent(opt), settings.max_batch)
    app = create_app(settings, generate(replier) if generate else replier, ConversationStore(str(root / "log.db")))
    with running(app, shutdown_timeout_s=10) as server:
        url = f"http://127.0.0.1:{bound_port(server)}"
        yield SimpleNamespace(url=url, port=bound_port(server), client=client_of(url))


def client_of(url, **options):
    # No retries: a test sees each answer the server gives (the client retries 429 and 5xx).
    return openai.OpenAI(base_url=url + "/v1", api_key="not-checked-on-loopback", max_retries=0, **options)


@pytest.fixture(scope="module")
def server(context_models, tmp_path_factory):
    # A 0.1 s batching window: requests sent together are generated together.
    with serving(context_models["gpt2"], tmp_path_factory.mktemp("openai"), batch_wait_s=0.1) as s:
        yield s


class Held:
    """The replier with each generation call held ``hold_s`` seconds, and every prompt it was
    asked for recorded: a stand-in for a model slow enough to queue behind."""

    def __init__(self, hold_s):
        self.hold_s, self.seen, self.generating = hold_s, [], threading.Event()

    def __call__(self, replier):
        def generate(prompts):
            self.seen.extend(prompt.text for prompt in prompts)
            self.generating.set()
            time.sleep(self.hold_s)
            return replier(prompts)
        return generate


def queue_depth(url):
    with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
        return json.loads(response.read())["queue_depth"]


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def reply_of(client, messages, **options):
    return client.chat.completions.create(model="m", messages=messages, **options).choices[0].message.content


# --- what the client asks for, it gets ----------------------------------------------------------


def test_a_plain_completion_is_the_model_s_reply_in_openai_s_shape(server):
    completion = server.client.chat.completions.create(model="m", messages=HELLO)
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and choice.message.content == TEXTS[1]  # the next sentence
    assert choice.finish_reason == "stop" and completion.model == "m" and completion.id.startswith("chatcmpl-")
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    # "logprobs": null is in each choice, as OpenAI sends it when they were not asked for
    raw = server.client.chat.completions.with_raw_response.create(model="m", messages=HELLO)
    assert [choice["logprobs"] for choice in raw.http_response.json()["choices"]] == [None]


def test_a_streamed_reply_arrives_in_several_content_chunks(server):
    whole = reply_of(server.client, HELLO)
    arrivals = []
    for chunk in server.client.chat.completions.create(model="m", messages=HELLO, stream=True):
        for choice in chunk.choices:
            if choice.delta.content:
                arrivals.append((time.perf_counter(), choice.delta.content))
    assert len(arrivals) > 1, arrivals
    assert "".join(piece for _, piece in arrivals) == whole
    assert [t for t, _ in arrivals] == sorted(t for t, _ in arrivals)
    # That the chunks leave while the search decodes, not after: test_serving_stream.py.


def test_n_2_gives_two_different_drafts_as_indexed_choices(server):
    completion = server.client.chat.completions.create(model="m", messages=HELLO, n=2)
    assert [choice.index for choice in completion.choices] == [0, 1]
    drafts = [choice.message.content for choice in completion.choices]
    assert drafts[0] == TEXTS[1] and drafts[1] != drafts[0], drafts


def test_the_same_seed_gives_the_same_sampled_reply_and_other_seeds_other_replies(server):
    for text in UNSEEN:
        asked = [{"role": "user", "content": text}]
        first = reply_of(server.client, asked, temperature=1.0, seed=7)
        assert reply_of(server.client, asked, temperature=1.0, seed=7) == first, text
    # the seed decides: over a few contexts and seeds, the samples differ somewhere
    replies = {(text, seed): reply_of(server.client, [{"role": "user", "content": text}], temperature=1.0, seed=seed)
               for text in UNSEEN for seed in (1, 2, 3)}
    assert any(len({replies[text, seed] for seed in (1, 2, 3)}) > 1 for text in UNSEEN), replies


def test_a_seeded_reply_does_not_depend_on_what_it_is_batched_with(server):
    asked = [{"role": "user", "content": UNSEEN[0]}]
    alone = {seed: reply_of(server.client, asked, temperature=1.0, seed=seed) for seed in (11, 12)}
    crowd = [({"role": "user", "content": text}, None) for text in UNSEEN * 2] + [(asked[0], 11), (asked[0], 12)]
    start = threading.Barrier(len(crowd))

    def send(request):
        message, seed = request
        start.wait(timeout=30)  # all in one batching window, seeded and unseeded sampling together
        return reply_of(server.client, [message], temperature=1.0, **({"seed": seed} if seed is not None else {}))

    with ThreadPoolExecutor(len(crowd)) as pool:
        together = list(pool.map(send, crowd, timeout=120))
    assert together[-2:] == [alone[11], alone[12]]


def test_stop_cuts_the_reply_before_the_first_stop_string(server):
    whole = reply_of(server.client, HELLO)  # "I would like to book a table for two at seven ."
    words = whole.split(" ")
    early, late = " " + words[2], " " + words[5]
    completion = server.client.chat.completions.create(model="m", messages=HELLO, stop=[late, early])
    assert completion.choices[0].message.content == whole[: whole.index(early)]
    assert completion.choices[0].finish_reason == "stop"
    assert reply_of(server.client, HELLO, stop=late) == whole[: whole.index(late)]  # a string alone
    assert reply_of(server.client, HELLO, stop="never said") == whole
    # max_tokens comes first: a stop string past it was never generated
    cut = server.client.chat.completions.create(model="m", messages=HELLO, stop=late, max_tokens=1).choices[0]
    assert cut.finish_reason == "length" and late not in cut.message.content


def test_the_models_list_names_the_served_model(server):
    assert [model.id for model in server.client.models.list()] == ["m"]
    assert server.client.models.retrieve("m").id == "m"


# --- what cannot be honoured is a 400 naming the field -------------------------------------------


@pytest.mark.parametrize("options,field", [
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": -1.0}, "frequency_penalty"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"50": 10}}, "logit_bias"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),  # json_object and json_schema: test_serving_tools
    ({"functions": [{"name": "book", "parameters": {}}]}, "functions"),  # the deprecated form of tools
    ({"extra_body": {"top_k": 5}}, "top_k"),  # vLLM's, not OpenAI's: unknown here
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
])
def test_a_field_the_server_cannot_honour_is_a_400_naming_it(server, options, field):
    with pytest.raises(openai.BadRequestError) as refused:
        server.client.chat.completions.create(model="m", messages=HELLO, **options)
    assert refused.value.status_code == 400 and refused.value.param == field
    assert field in refused.value.message, refused.value.message


def test_every_field_the_openai_client_can_send_has_a_fate():
    """Honoured, accepted only "off", or ignored: each declared, none left to chance. A newer
    client with a new field fails here until the field is given one (protocol.py)."""
    from parlai_dialogft.serving.protocol import IGNORED, UNSUPPORTED, ChatRequest

    create = openai.OpenAI(api_key="x").chat.completions.create
    sendable = set(inspect.signature(create).parameters) - {"extra_headers", "extra_query", "extra_body", "timeout"}
    declared = set(ChatRequest.model_fields)
    assert sendable <= declared, sendable - declared
    assert set(UNSUPPORTED) | set(IGNORED) <= declared


def test_fields_that_ask_for_nothing_are_accepted(server):
    plain = reply_of(server.client, HELLO)
    assert reply_of(server.client, [{"role": "developer", "content": "be brief"}, *HELLO]) is not None
    assert reply_of(server.client, HELLO, presence_penalty=0, frequency_penalty=0.0, logprobs=False,
                    response_format={"type": "text"}, user="someone", metadata={"team": "support"},
                    seed=3, store=False) == plain  # a seed on the model's greedy search changes nothing


# --- back-pressure and clients that leave ------------------------------------------------------


def test_a_full_queue_answers_429_with_retry_after(context_models, tmp_path):
    held = Held(hold_s=1.5)
    with serving(context_models["gpt2"], tmp_path, generate=held, max_batch=1, max_queue=1) as s:
        with ThreadPoolExecutor(2) as pool:
            generating = pool.submit(reply_of, s.client, HELLO)
            assert held.generating.wait(30)
            waiting = pool.submit(reply_of, s.client, [{"role": "user", "content": TEXTS[2]}])
            wait_for(lambda: queue_depth(s.url) == 1)
            with pytest.raises(openai.RateLimitError) as refused:
                s.client.chat.completions.create(model="m", messages=HELLO)
            assert refused.value.status_code == 429 and "--serve-max-queue 1" in refused.value.message
            assert int(refused.value.response.headers["Retry-After"]) >= 1
            assert generating.result(60) == TEXTS[1] and waiting.result(60) == TEXTS[3]  # the accepted ones


def test_a_request_whose_client_hangs_up_while_queued_is_never_generated(context_models, tmp_path):
    held = Held(hold_s=1.5)
    with serving(context_models["gpt2"], tmp_path, generate=held, max_batch=1) as s:
        with ThreadPoolExecutor(1) as pool:
            generating = pool.submit(reply_of, s.client, HELLO)
            assert held.generating.wait(30)
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": TEXTS[2]}]}).encode()
            with socket.create_connection(("127.0.0.1", s.port)) as leaving:
                leaving.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                wait_for(lambda: queue_depth(s.url) == 1)
            assert generating.result(60) == TEXTS[1]
        assert reply_of(s.client, [{"role": "user", "content": TEXTS[4]}]) == TEXTS[5]
    assert held.seen == [TEXTS[0], TEXTS[4]]  # the one that left was dropped before generation


# --- SIGTERM --------------------------------------------------------------------------------------


def test_sigterm_lets_requests_in_flight_finish_logs_them_and_exits_0(context_models, tmp_path):
    log_db = tmp_path / "log.db"
    # A 3 s batching window: the requests below are accepted and waiting when SIGTERM comes.
    args = ["dialogft_serve", "-m", "dialogft_agent", "--hf-model", context_models["gpt2"], "--port", "{port}",
            "--serve-model-name", "m", "--serve-log-db", log_db, "--serve-batch-wait-ms", "3000",
            "--label-truncate", "64", "--datapath", tmp_path / "data"]
    asked = [[{"role": "user", "content": text}] for text in dict.fromkeys(TEXTS)]
    with parlai_server(args, "/healthz", timeout=120) as (base, proc):
        client = client_of(base, timeout=60)
        with ThreadPoolExecutor(len(asked)) as pool:
            sent = [pool.submit(client.chat.completions.create, model="m", messages=messages) for messages in asked]
            time.sleep(1.0)  # all connected and queued (loopback), none answered yet
            assert not any(future.done() for future in sent)
            proc.send_signal(signal.SIGTERM)
            completions = [future.result(60) for future in sent]
        assert proc.wait(timeout=60) == 0
    output = proc.stdout.read()
    assert "Application shutdown complete" in output and "Cancel" not in output, output[-3000:]
    texts = list(dict.fromkeys(TEXTS))
    assert [c.choices[0].message.content for c in completions] == texts[1:] + texts[:1]  # each its next sentence
    with sqlite3.connect(log_db) as db:
        logged = dict(db.execute("SELECT id, reply FROM replies").fetchall())
    assert logged == {c.id: c.choices[0].message.content for c in completions}
