"""`parlai dialogft_serve --task-db multiwoz`: a task-oriented round per request, through the official `openai` client.

The specs: a request's earlier turns reach the model in the format it was trained on (the
``APIS: `` grounding, then ``USER: ...`` and ``SYSTEM: ...`` per turn), read back from what the
agent vectorised; the model's call is answered by the real MultiWOZ database and the reply is
written after both; the client gets the reply alone, streamed or not, never the call nor the
``SYSTEM: `` it starts with, and both ways give the same text under greedy decoding; each
choice carries the round's call and answer in fields of our own (``tod_call``, ``tod_result``);
``completion_tokens``, ``max_tokens`` and ``stop`` are the reply's, not the call's; and a
``--task-db`` naming no database stops the server before the model loads, in one line.

The served model is a tiny GPT-2 taught the rounds below (:func:`train_rounds`): given the
contexts the server builds, it writes a real call, then a reply that names what the database
found, so the tests see what a trained model would send through each step.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from types import SimpleNamespace

import openai
import pytest

from parlai_dialogft.tod import calls
from tests.support.models import train_pairs
from tests.support.processes import BIN, fresh_shell
from tests.support.tod_agents import script_rounds

SCHEMAS, USER, SYSTEM = "APIS: ", "USER: ", "SYSTEM: "
FIRST, SECOND = "i need a cheap hotel in the north", "actually , the east please"
CALLS = ({"api_name": "find_hotel", "area": "north", "pricerange": "cheap"},
         {"api_name": "find_hotel", "area": "east", "pricerange": "cheap"})
STEPS = 300


def reply_to(answer: dict) -> str:
    """What the model is taught to say after ``answer``: it names what the database found."""
    return f"{answer['name']} is a cheap {answer['type']} in the {answer['area']} . shall i book it ?"


def the_rounds():
    """Two rounds of one conversation, with the database's real answers: (call, result, reply) each."""
    from parlai_dialogft.tod.database import open_databases

    database = open_databases("multiwoz")
    rounds = []
    for call in CALLS:
        answer = database.answer(call)
        assert int(answer["count"]) > 0, answer
        rounds.append((calls.call_text(call), calls.resp_text(answer), reply_to(answer)))
    return rounds


def taught(rounds):
    """(context, what the model writes) for each step of both rounds, the contexts as the
    server builds them: the first request's, then the second's, whose earlier turn is its words."""
    (call_1, result_1, reply_1), (call_2, result_2, reply_2) = rounds
    first = "\n".join([SCHEMAS, SCHEMAS, USER + FIRST])
    second = "\n".join([SCHEMAS, SCHEMAS, USER + FIRST, SYSTEM + reply_1, USER + SECOND])
    return [(first, call_1), ("\n".join([first, call_1, result_1]), SYSTEM + reply_1),
            (second, call_2), ("\n".join([second, call_2, result_2]), SYSTEM + reply_2)]


def train_rounds(out: str, pairs) -> str:
    """A tiny GPT-2 (its tokenizer learnt on the rounds' text) trained to write each pair's
    second text after its first, EOS included; saved to ``out``."""
    from parlai_dialogft.model.tiny import build_tiny_model

    build_tiny_model(out, "gpt2", [text for pair in pairs for text in pair] * 20, vocab_size=600)
    return train_pairs(out, out, pairs, steps=STEPS)


class Reads:
    """Every context the served model reads (each row of each batch it generates for), decoded back."""

    def __init__(self, agent):
        self.contexts = []
        batchify = agent.batchify

        def recording(*args, **kwargs):
            batch = batchify(*args, **kwargs)
            if batch.text_vec is not None:
                self.contexts.extend(agent.dict.vec2txt(row.tolist()) for row in batch.text_vec)
            return batch

        agent.batchify = recording  # the instance's: ParlAI's batch_act calls it once per generation


@contextmanager
def serving(hf_model, root, *args, **settings):
    """`parlai dialogft_serve -m dialogft_agent --hf-model FOLDER --task-db multiwoz ARGS` in a thread."""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe
    from parlai_dialogft.serving.app import create_app
    from parlai_dialogft.serving.options import ServeSettings
    from parlai_dialogft.serving.replier import Replier
    from parlai_dialogft.serving.server import bound_port, running

    opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", hf_model, "--task-db", "multiwoz",
                                                 "--datapath", str(root / "data"), "--label-truncate", "96", *args])
    agent = create_agent(opt)
    reads = Reads(agent)
    settings = ServeSettings(model_name="m", **settings)  # continuous batching asked for, as by default
    app = create_app(settings, Replier(agent, settings.max_batch))
    with running(app, shutdown_timeout_s=10) as server:
        url = f"http://127.0.0.1:{bound_port(server)}"
        yield SimpleNamespace(client=openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0), reads=reads,
                              tok=agent.dict.hf_tokenizer)


@pytest.fixture(scope="module")
def rounds():
    return the_rounds()


@pytest.fixture(scope="module")
def trained(rounds, tmp_path_factory):
    return train_rounds(str(tmp_path_factory.mktemp("tod_model") / "gpt2"), taught(rounds))


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    with serving(trained, tmp_path_factory.mktemp("tod_serve")) as s:
        yield s


def conversation(rounds, turns):
    """The request's messages after ``turns`` earlier rounds: the user's words and the replies the client got."""
    messages = []
    for (_call, _result, reply), user in zip(rounds[:turns], (FIRST, SECOND)):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return messages + [{"role": "user", "content": (FIRST, SECOND)[turns]}]


def create(server, rounds, turns, **options):
    return server.client.chat.completions.create(model="m", messages=conversation(rounds, turns), **options)


def streamed(server, rounds, turns, **options):
    """(content deltas, the chunk that finished choice 0, usage) of a streamed request."""
    deltas, last, usage = [], None, None
    for chunk in server.client.chat.completions.create(model="m", messages=conversation(rounds, turns), stream=True,
                                                       stream_options={"include_usage": True}, **options):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            if choice.finish_reason is not None:
                last = choice
    return deltas, last, usage


def reply_tokens(server, reply):
    """The reply's tokens as the model writes them after ``SYSTEM:`` (its text was taught tokenized so)."""
    return server.tok(SYSTEM + reply)["input_ids"][len(server.tok(SYSTEM.strip())["input_ids"]):]


# --- the round, and what the client gets of it --------------------------------------------------------


def test_the_model_calls_the_database_and_the_client_gets_the_reply_with_the_round_beside_it(server, rounds):
    call, result, reply = rounds[0]
    completion = create(server, rounds, 0)
    (choice,) = completion.choices
    assert choice.message.content == reply  # without "SYSTEM: "
    assert choice.finish_reason == "stop"
    # The call the model wrote, and the real database's answer to it (its name is in the reply).
    assert choice.model_extra == {"tod_call": call, "tod_result": result}
    assert "count = 2" in result and "city centre north b and b" in reply
    # What the user receives: the reply's tokens, not the call's nor "SYSTEM:"'s.
    assert completion.usage.completion_tokens == len(reply_tokens(server, reply))
    # n = 2: the drafts are a beam's replies after one call; each choice carries that round.
    beams = create(server, rounds, 0, n=2)
    assert beams.choices[0].message.content == reply
    assert all(choice.model_extra == {"tod_call": call, "tod_result": result} for choice in beams.choices)


def test_earlier_turns_reach_the_model_in_the_format_it_was_trained_on(server, rounds):
    (_call_1, _result_1, reply_1), (call_2, result_2, reply_2) = rounds
    before = len(server.reads.contexts)
    choice = create(server, rounds, 1).choices[0]
    history = "\n".join([SCHEMAS, SCHEMAS, USER + FIRST, SYSTEM + reply_1, USER + SECOND])
    # The call is written after the conversation, the reply after the call and the answer.
    # The earlier turn's call is not in the request, and is not made again: its words are the history.
    assert server.reads.contexts[before:] == [history, "\n".join([history, call_2, result_2])]
    assert choice.message.content == reply_2 and choice.model_extra == {"tod_call": call_2, "tod_result": result_2}


@pytest.mark.parametrize("turns", [0, 1])
def test_a_streamed_round_sends_the_reply_alone_the_same_as_unstreamed(server, rounds, turns):
    call, result, reply = rounds[turns]
    plain = create(server, rounds, turns)
    deltas, last, usage = streamed(server, rounds, turns)
    assert "".join(deltas) == plain.choices[0].message.content == reply
    assert not any(marker in delta for delta in deltas for marker in ("APICALL", "APIRESP", "SYSTEM", "APIS"))
    assert last.finish_reason == "stop" and last.model_extra == {"tod_call": call, "tod_result": result}
    assert usage.completion_tokens == plain.usage.completion_tokens == len(reply_tokens(server, reply))


@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_and_stop_end_the_reply_not_the_call(server, rounds, stream):
    call, result, reply = rounds[0]
    first_three = server.tok.decode(reply_tokens(server, reply)[:3]).strip()
    for options, text, finish, tokens in (
            ({"max_tokens": 3}, first_three, "length", 3),
            # "north" is in the call (area = north) and in the reply: only the reply is cut.
            ({"stop": ["north"]}, reply[: reply.index("north")], "stop", None)):
        if stream:
            deltas, last, usage = streamed(server, rounds, 0, **options)
            got, got_finish, extra = "".join(deltas), last.finish_reason, last.model_extra
        else:
            completion = create(server, rounds, 0, **options)
            (choice,), usage = completion.choices, completion.usage
            got, got_finish, extra = choice.message.content, choice.finish_reason, choice.model_extra
        assert (got, got_finish) == (text, finish), options
        assert extra == {"tod_call": call, "tod_result": result}, options  # the call was written whole
        if tokens is not None:
            assert usage.completion_tokens == tokens


def test_tools_on_the_server_run_for_a_request_that_brings_none(trained, tmp_path, monkeypatch):
    """``--tools`` on the server: the model's call goes to the company's function, the reply follows its answer."""
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {"name": "stock", "parameters": {
        "type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}},
        "python": "tests.support.shop_tools:stock"}]))
    script_rounds(monkeypatch, "APICALL: api_name = stock ; sku = TB-1", "3 in stock , held under RSV4X9K2 .")
    with serving(trained, tmp_path, "--tools", str(tools)) as served:
        choice = served.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Is the trail boot in stock ?"}]).choices[0]
    assert choice.message.content == "3 in stock , held under RSV4X9K2 ."
    assert choice.model_extra == {"tod_call": "APICALL: api_name = stock ; sku = TB-1",
                                  "tod_result": "APIRESP: in_stock = 3 ; reference = RSV4X9K2 ; sku = TB-1"}


# --- startup -------------------------------------------------------------------------------------------


def test_a_task_db_that_names_no_database_stops_the_server_before_the_model_loads(trained, tmp_path):
    done = fresh_shell([str(BIN / "python"), "-m", "parlai", "dialogft_serve", "-m", "dialogft_agent",
                        "--hf-model", trained, "--task-db", "multiwoz,spaceship", "--port", "0"],
                       cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("dialogft_serve: --task-db multiwoz,spaceship: no such database 'spaceship'")
    assert "Total parameters" not in done.stdout + done.stderr  # ParlAI says so once it has built the model
