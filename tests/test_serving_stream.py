"""Token streaming and early ends of `parlai dialogft_serve`'s search, through the official `openai` client.

The specs: a streamed reply's chunks leave while the search decodes it (their arrival times
spread over the decoding, more than one before the last); the streamed text is the plain
reply, byte for byte, for English and Chinese and for a seeded sample; a client that hangs up
ends its search at the next step, streamed or not; ``stop`` and ``max_tokens`` end a greedy or
sampled search where they are reached; and the deltas of :class:`TextStream`, joined, are what
the dictionary decodes from the same tokens, whatever bytes the tokens split.

Decoding is slowed to a known pace (``STEP_S`` per search step, a sleep around the model's
decoder) so that "while it is decoded" can be told apart from "after" on a loaded machine.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import SimpleNamespace

import openai
import pytest

from parlai_dialogft.serving.options import ServeSettings
from parlai_dialogft.serving.protocol import cut_at_stop
from parlai_dialogft.serving.streaming import TextStream
from tests.support.models import TEXTS

#: Seconds each search step takes (the decoder call is slowed to it).
STEP_S = 0.03
#: Sentences of TEXTS, each answered by the next by the context model.
SENTENCES = list(dict.fromkeys(TEXTS))
UNSEEN = ["a table for two , cheap", "我想 table today", "thanks cheap centre train"]


@contextmanager
def serving(hf_model, root, *flags, step_s=STEP_S, **settings):
    """`parlai dialogft_serve -m dialogft_agent --hf-model FOLDER FLAGS` in a thread, each
    search step taking at least ``step_s``."""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe
    from parlai_dialogft.serving.app import create_app
    from parlai_dialogft.serving.replier import Replier
    from parlai_dialogft.serving.server import bound_port, running

    opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", hf_model,
                                                 "--datapath", str(root / "data"), "--label-truncate", "64",
                                                 *flags])
    agent = create_agent(opt)
    decoder = agent.model.decoder

    def slow_decoder(*args, **kwargs):
        time.sleep(step_s)
        return decoder(*args, **kwargs)

    agent.model.decoder = slow_decoder  # the instance's, called once per step by ParlAI's search
    settings = ServeSettings(model_name="m", **settings)
    app = create_app(settings, Replier(agent, settings.max_batch))
    with running(app, shutdown_timeout_s=10) as server:
        url = f"http://127.0.0.1:{bound_port(server)}"
        yield SimpleNamespace(url=url, client=openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0))


@pytest.fixture(scope="module")
def server(context_models, tmp_path_factory):
    # A 0.2 s batching window: requests sent together are generated together.
    with serving(context_models["gpt2"], tmp_path_factory.mktemp("stream"), batch_wait_s=0.2) as s:
        yield s


@pytest.fixture(scope="module")
def long_server(context_models, tmp_path_factory):
    """Every reply is 60 tokens (END is blocked before): a long search to leave in the middle of."""
    with serving(context_models["gpt2"], tmp_path_factory.mktemp("long"), "--inference", "beam", "--beam-size", "1",
                 "--beam-min-length", "60", "--label-truncate", "61", batch_wait_s=0.2) as s:
        yield s


def metric(url, name):
    """The sum of a series' samples in /metrics (all label values)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines
               if line.startswith(name) and (line[len(name)] in " {"))


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def plain(client, messages, **options):
    return client.chat.completions.create(model="m", messages=messages, **options).choices[0]


def streamed(client, messages, **options):
    """(text, finish reason, [(arrival time, piece)]) of a streamed completion; times from the request."""
    start = time.perf_counter()
    pieces, finish = [], None
    for chunk in client.chat.completions.create(model="m", messages=messages, stream=True, **options):
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append((time.perf_counter() - start, choice.delta.content))
            finish = choice.finish_reason or finish
    return "".join(piece for _, piece in pieces), finish, pieces


# --- the deltas are the reply -------------------------------------------------------------------


def text_of(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=True)


def streamed_text(tokenizer, ids, stops=()):
    """What the server sends for ``ids``: the deltas while decoding, then the final text's rest."""
    stream = TextStream(lambda prefix: text_of(tokenizer, prefix), stops)
    deltas = "".join(stream.push(token) for token in ids)
    final = text_of(tokenizer, ids).strip()
    final = cut_at_stop(final, stops) if cut_at_stop(final, stops) is not None else final
    assert final.startswith(deltas), (deltas, final)
    return deltas, final


def test_text_stream_deltas_are_the_decoded_reply_whatever_bytes_tokens_split(tiny_models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])  # byte-level BPE: CJK split over tokens
    chinese = tokenizer("我想订一张明天去北京的火车票。", add_special_tokens=False)["input_ids"]
    split = [tokenizer.convert_ids_to_tokens(i) for i in chinese]
    assert any(tokenizer.convert_tokens_to_string([piece]) == "\ufffd" for piece in split), split  # partial bytes
    deltas, final = streamed_text(tokenizer, chinese)
    assert deltas == final == "我想订一张明天去北京的火车票。"
    english = tokenizer(" hello , how can I help you today ?  ", add_special_tokens=False)["input_ids"]
    deltas, final = streamed_text(tokenizer, english)
    assert final == "hello , how can I help you today ?" and deltas == final  # stripped, as vec2txt does
    # Random token sequences: invalid byte runs, spaces anywhere; the deltas are never taken back.
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(4, len(tokenizer)) for _ in range(rng.randrange(1, 30))]
        streamed_text(tokenizer, ids)


def test_text_stream_holds_back_what_may_start_a_stop_string_and_ends_at_one(tiny_models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    ids = tokenizer("I would like to book a table", add_special_tokens=False)["input_ids"]
    stream = TextStream(lambda prefix: text_of(tokenizer, prefix), [" a tab", "xyz"])
    sent = ""
    for token in ids:
        sent += stream.push(token)
        assert " a t" not in sent  # " a", " a t" could start " a tab": held back until they cannot
        if stream.stopped:
            break
    assert stream.stopped and sent == "I would like to book"
    deltas, final = streamed_text(tokenizer, ids, [" a tab"])
    assert deltas == final == "I would like to book"


# --- the official client: chunks arrive while the search decodes --------------------------------


def test_content_chunks_arrive_while_the_reply_is_decoded(server):
    text, finish, pieces = streamed(server.client, [{"role": "user", "content": SENTENCES[0]}])
    assert text == SENTENCES[1] and finish == "stop"
    times = [t for t, _ in pieces]
    assert len(pieces) > 3, pieces
    # The search runs STEP_S per token: the pieces leave as they are decoded, spread over its
    # time, not in one burst at the end (the first well before the last).
    assert times[-1] - times[0] > 0.5 * times[-1] and times[-1] - times[0] > 3 * STEP_S, pieces
    before_last = [t for t in times if t < times[-1] - 2 * STEP_S]
    assert len(before_last) > 1, pieces
    assert metric(server.url, "dialogft_time_to_first_token_seconds_count") >= 1


@pytest.mark.parametrize("sentence", [0, 5, 6])  # English; Chinese split over byte tokens
def test_the_streamed_text_is_the_plain_reply(server, sentence):
    messages = [{"role": "user", "content": SENTENCES[sentence]}]
    whole = plain(server.client, messages)
    assert whole.message.content == SENTENCES[(sentence + 1) % len(SENTENCES)]  # the model reads its context
    text, finish, pieces = streamed(server.client, messages)
    assert (text, finish) == (whole.message.content, whole.finish_reason)
    assert len(pieces) > 1


def test_each_row_of_a_batch_streams_its_own_reply_to_its_own_client(server):
    asked = [[{"role": "user", "content": sentence}] for sentence in SENTENCES[:4] + SENTENCES[5:7]]
    alone = [plain(server.client, messages).message.content for messages in asked]
    calls, rows = metric(server.url, "dialogft_batch_size_count"), metric(server.url, "dialogft_batch_size_sum")
    start = threading.Barrier(len(asked))

    def send(messages):
        start.wait(timeout=30)  # in one batching window: one generation call for all
        return streamed(server.client, messages)

    with ThreadPoolExecutor(len(asked)) as pool:
        together = list(pool.map(send, asked, timeout=120))
    calls = metric(server.url, "dialogft_batch_size_count") - calls  # generation calls (decoding steps)
    assert (metric(server.url, "dialogft_batch_size_sum") - rows) / calls > 1  # rows shared them
    assert [text for text, _, _ in together] == alone
    assert all(len(pieces) > 1 for _, _, pieces in together)


def test_a_seeded_sample_streams_the_text_it_gives_plain(server):
    replies = set()
    for text in UNSEEN:
        for seed in (1, 2):
            messages = [{"role": "user", "content": text}]
            whole = plain(server.client, messages, temperature=1.0, seed=seed).message.content
            assert streamed(server.client, messages, temperature=1.0, seed=seed)[0] == whole, (text, seed)
            replies.add(whole)
    assert len(replies) > 2, replies  # samples that differ: the comparison could fail


def test_stop_and_max_tokens_stream_what_they_give_plain(server):
    messages = [{"role": "user", "content": SENTENCES[0]}]
    whole = SENTENCES[1]  # "I would like to book a table for two at seven ."
    for options in ({"stop": " a table"}, {"stop": [" two", " like"]}, {"max_tokens": 3},
                    {"max_tokens": 4, "stop": "book"}):
        expected = plain(server.client, messages, **options)
        assert streamed(server.client, messages, **options)[:2] == (expected.message.content,
                                                                    expected.finish_reason), options
        assert len(expected.message.content) < len(whole)
    assert plain(server.client, messages, stop=" a table").message.content == "I would like to book"


def test_stop_and_max_tokens_end_the_search_where_they_are_reached(server):
    messages = [{"role": "user", "content": SENTENCES[0]}]
    steps = "dialogft_search_steps_total"

    def steps_of(**options):
        before = metric(server.url, steps)
        completion = plain(server.client, messages, **options)
        return metric(server.url, steps) - before, completion

    full, _ = steps_of()
    cut, completion = steps_of(max_tokens=2)
    assert completion.finish_reason == "length" and cut == 3  # two tokens, then END on the next step
    early, completion = steps_of(stop=" like")
    assert completion.message.content == "I would" and early < full - 3, (early, full)
    assert metric(server.url, 'dialogft_stopped_early_total{reason="length"}') >= 1
    assert metric(server.url, 'dialogft_stopped_early_total{reason="stop"}') >= 1


# --- clients that leave mid-search ------------------------------------------------------------------


def test_a_streamed_request_whose_client_leaves_ends_its_search(long_server):
    url, steps, left = long_server.url, "dialogft_search_steps_total", 'dialogft_stopped_early_total{reason="disconnect"}'
    before, gone = metric(url, steps), metric(url, left)
    stream = long_server.client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}],
                                                        stream=True)
    received = 0
    for chunk in stream:
        received += sum(1 for choice in chunk.choices if choice.delta.content)
        if received == 2:
            break
    stream.close()  # the client hangs up after two content chunks
    wait_for(lambda: metric(url, left) == gone + 1)
    run = metric(url, steps) - before
    assert 2 <= run < 30, run  # of the 60 steps the reply would have taken
    # The server goes on serving: a whole reply is 60 steps.
    before = metric(url, steps)
    assert plain(long_server.client, [{"role": "user", "content": "hello"}]).finish_reason == "stop"
    assert metric(url, steps) - before == 61


def test_a_client_that_leaves_ends_only_its_own_row(long_server):
    url, left = long_server.url, 'dialogft_stopped_early_total{reason="disconnect"}'
    messages = [{"role": "user", "content": "hello"}]
    whole = plain(long_server.client, messages).message.content
    gone, start = metric(url, left), threading.Barrier(2)

    def leaving():
        start.wait(timeout=30)
        with long_server.client.chat.completions.create(model="m", messages=messages, stream=True) as stream:
            for chunk in stream:
                if any(choice.delta.content for choice in chunk.choices):
                    return  # closes the stream after the first content chunk

    def staying():
        start.wait(timeout=30)
        return streamed(long_server.client, messages)

    with ThreadPoolExecutor(2) as pool:
        left_early, stayed = pool.submit(leaving), pool.submit(staying)
        left_early.result(120)
        text, finish, _ = stayed.result(120)
    assert metric(url, left) == gone + 1
    assert (text, finish) == (whole, "stop")  # its batch neighbour's forced END did not touch it


def test_a_plain_request_whose_client_leaves_mid_search_ends_it(long_server):
    url, steps, left = long_server.url, "dialogft_search_steps_total", 'dialogft_stopped_early_total{reason="disconnect"}'
    before, gone = metric(url, steps), metric(url, left)
    impatient = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=20 * STEP_S)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
    wait_for(lambda: metric(url, left) == gone + 1)
    assert metric(url, steps) - before < 45


# --- clients coming back one after the other still share a batch --------------------------------


def test_the_batching_window_stays_open_while_requests_keep_coming_up_to_a_cap():
    from parlai_dialogft.serving.batcher import BURST_WAITS, MicroBatcher

    batches = []

    def process(items):
        batches.append(list(items))
        return items

    wait = 0.2
    batcher = MicroBatcher(process, max_batch=64, max_wait_s=wait).start()
    try:
        # Six requests 0.08 s apart: 0.4 s from first to last, each within `wait` of the one before.
        futures = []
        for i in range(6):
            futures.append(batcher.submit(i))
            time.sleep(0.4 * wait)
        assert [f.result(10) for f in futures] == list(range(6))
        assert batches == [list(range(6))]  # one batch: a window counted from the first would have split it
        # A steady stream does not hold the first request for ever: cut at BURST_WAITS windows.
        batches.clear()
        futures = []
        for i in range(int(3 * BURST_WAITS * wait / (0.4 * wait))):
            futures.append(batcher.submit(i))
            time.sleep(0.4 * wait)
        for f in futures:
            f.result(10)
        assert len(batches) >= 2 and len(batches[0]) <= BURST_WAITS / 0.4 + 2, [len(b) for b in batches]
    finally:
        batcher.close()


@pytest.fixture(scope="module")
def micro_server(context_models, tmp_path_factory):
    with serving(context_models["gpt2"], tmp_path_factory.mktemp("micro"), batch_wait_s=0.2, batching="micro") as s:
        yield s


@pytest.mark.parametrize("batching, loop", [("micro", "greedy_generate"), ("continuous", "step")])
def test_streamed_greedy_replies_step_every_row_at_once(server, micro_server, batching, loop, monkeypatch):
    """Greedy search steps every row of the batch at once while it streams and ends rows early
    (micro-batches: model/fast_search.py; continuous batching: model/continuous.py): no
    per-row ``advance`` of ParlAI's loop runs."""
    from parlai.core.torch_generator_agent import TreeSearch

    from parlai_dialogft.model import continuous, fast_search

    owner = fast_search if batching == "micro" else continuous.ContinuousGreedy
    batch_wide, advanced = [], []
    run, advance = getattr(owner, loop), TreeSearch.advance
    monkeypatch.setattr(owner, loop, lambda *a, **k: batch_wide.append(1) or run(*a, **k))
    monkeypatch.setattr(TreeSearch, "advance", lambda self, *a: advanced.append(1) or advance(self, *a))
    client = (micro_server if batching == "micro" else server).client
    messages = [{"role": "user", "content": SENTENCES[0]}]
    text, finish, pieces = streamed(client, messages)
    assert text == SENTENCES[1] and len(pieces) > 1
    assert streamed(client, messages, max_tokens=2)[1] == "length"
    assert streamed(client, messages, stop=" like")[0] == "I would"
    assert batch_wide and not advanced, (len(batch_wide), len(advanced))
    if batching == "micro":
        assert len(batch_wide) == 3  # one search per request


# --- continuous batching: requests join a running search ----------------------------------------


@pytest.mark.parametrize("batching", ["continuous", "micro"])
def test_a_request_joins_the_search_that_is_running(server, micro_server, batching):
    """Continuous batching: a request sent while another's search runs starts decoding at the
    next step, not when that search ends (micro-batching makes it wait: the contrast shows the
    test can fail). Both get the reply each gets alone."""
    target = server if batching == "continuous" else micro_server
    first, second = [[{"role": "user", "content": SENTENCES[i]}] for i in (1, 5)]
    alone = [plain(target.client, messages).message.content for messages in (first, second)]
    streaming = metric(target.url, "dialogft_time_to_first_token_seconds_count")
    results = {}

    def first_request():
        results["first"] = streamed(target.client, first)[0]
        results["first_end"] = time.perf_counter()

    thread = threading.Thread(target=first_request)
    thread.start()
    # The second leaves once the first has streamed a token: its search is running.
    wait_for(lambda: metric(target.url, "dialogft_time_to_first_token_seconds_count") > streaming)
    sent = time.perf_counter()
    text, _, pieces = streamed(target.client, second)
    thread.join(60)
    assert [results["first"], text] == alone
    first_piece = sent + pieces[0][0]
    assert (first_piece < results["first_end"]) == (batching == "continuous"), (
        first_piece - sent, results["first_end"] - sent)


def test_requests_the_running_batch_cannot_take_run_between_its_steps(server):
    """An ``n=2`` request (a beam search) sent while greedy replies stream is answered as a
    micro-batch between two steps; the running rows pause and go on with their own replies."""
    greedy = [[{"role": "user", "content": SENTENCES[i]}] for i in (0, 5)]
    drafts = [{"role": "user", "content": SENTENCES[2]}]
    alone = [plain(server.client, messages).message.content for messages in greedy]
    two = server.client.chat.completions.create(model="m", messages=drafts, n=2)
    streaming = metric(server.url, "dialogft_time_to_first_token_seconds_count")

    def stream_and_end(messages):
        return streamed(server.client, messages)[0], time.perf_counter()

    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(stream_and_end, messages) for messages in greedy]
        wait_for(lambda: metric(server.url, "dialogft_time_to_first_token_seconds_count") > streaming)
        sent = time.perf_counter()
        during = server.client.chat.completions.create(model="m", messages=drafts, n=2)
        results = [future.result(60) for future in running]
    assert [text for text, _ in results] == alone
    assert sent < max(end for _, end in results)  # sent while the batch ran
    assert [c.message.content for c in during.choices] == [c.message.content for c in two.choices]
    assert len(during.choices) == 2
