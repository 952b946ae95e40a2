"""Function calling and structured output in `dialogft_serve`, through the official `openai` client.

The specs: a request with ``tools`` and a forced ``tool_choice`` (``required`` or a named
function) gets ``tool_calls`` whose JSON arguments validate against the tool's schema, with
``finish_reason: "tool_calls"``, streamed as OpenAI's tool-call deltas; the client runs the tool
and sends its result as a ``tool`` message, and the model replies in text; ``tool_choice:
"none"`` never calls; ``response_format`` with a JSON Schema gives content that parses and
validates; a call cut by ``max_tokens`` ends with ``"length"``; a bad schema, a tool choice
naming no tool and a ``tool_call_id`` that answers no call are 400s naming the field.

The served model is a random-init tiny GPT-2: what it would choose freely means nothing, so
every assertion on content is about what constrained decoding forces.
"""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace

import jsonschema
import openai
import pytest

from tests.support.serving import running_app

BOOK = {"type": "object", "additionalProperties": False, "required": ["restaurant", "people"],
        "properties": {"restaurant": {"type": "string", "enum": ["curry garden", "pizza hut"]},
                       "people": {"type": "integer", "minimum": 1, "maximum": 8},
                       "day": {"type": "string", "enum": ["monday", "friday"]}}}
WEATHER = {"type": "object", "required": ["city"], "properties": {"city": {"enum": ["北京", "london"]}}}
TOOLS = [{"type": "function", "function": {"name": "book_table", "parameters": BOOK, "strict": True}},
         {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
ANSWER = {"type": "object", "additionalProperties": False, "required": ["answer", "stars"],
          "properties": {"answer": {"enum": ["yes", "no"]}, "stars": {"type": "integer", "minimum": 0, "maximum": 5}}}
ASK = [{"role": "user", "content": "a table for two at curry garden please"}]
SCHEMAS = {"book_table": BOOK, "get_weather": WEATHER}


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe

    root = tmp_path_factory.mktemp("tools")
    opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", tiny_models["gpt2"],
                                                 "--datapath", str(root / "data"), "--label-truncate", "120"])
    agent = create_agent(opt)
    with running_app(agent) as app:
        yield SimpleNamespace(client=openai.OpenAI(base_url=app.url + "/v1", api_key="x", max_retries=0),
                              reads=reads(agent))


def reads(agent):
    """Every context the served model reads from now on (each row of each generation), decoded back."""
    contexts = []
    batchify = agent.batchify

    def recording(*args, **kwargs):
        batch = batchify(*args, **kwargs)
        if batch.text_vec is not None:
            contexts.extend(agent.dict.vec2txt(row.tolist()) for row in batch.text_vec)
        return batch

    agent.batchify = recording  # the instance's: ParlAI's batch_act calls it once per generation
    return contexts


def create(server, messages=ASK, **options):
    return server.client.chat.completions.create(model="m", messages=messages, **options)


def valid_call(call):
    assert call.type == "function" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    return call


# --- function calling ---------------------------------------------------------------------------


def test_the_round_trip_a_forced_call_then_the_tool_result_then_a_reply(server):
    first = create(server, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "book_table"}})
    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert valid_call(call).function.name == "book_table"
    assert first.usage.completion_tokens > 0
    # The client runs the tool and sends its result back with the call's id.
    messages = ASK + [choice.message.model_dump(exclude_none=True),
                      {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"reference": "AB12"})}]
    final = create(server, messages, tools=TOOLS, max_tokens=6)
    (answer,) = final.choices
    assert answer.message.tool_calls is None and isinstance(answer.message.content, str)
    assert answer.finish_reason in ("stop", "length")


def test_required_calls_one_of_the_tools_and_every_call_validates(server):
    for _ in range(3):
        (call,) = create(server, tools=TOOLS, tool_choice="required", temperature=1.0).choices[0].message.tool_calls
        assert valid_call(call).function.name in SCHEMAS


def test_none_never_calls_the_model_writes_its_reply_after_an_empty_call(server):
    before = len(server.reads)
    reply = create(server, tools=TOOLS, tool_choice="none", max_tokens=6).choices[0]
    assert reply.message.tool_calls is None and reply.finish_reason in ("stop", "length")
    # One generation, the reply's: the model never got the turn where it would write a call.
    (context,) = server.reads[before:]
    assert context.endswith("USER: a table for two at curry garden please\nAPICALL: \nAPIRESP:"), context


def test_the_conversation_reaches_the_model_in_the_task_format(server):
    """A call is its APICALL: turn (arguments as slots), a tool's result its APIRESP:, a reply SYSTEM:."""
    call = {"id": "call_9", "type": "function",
            "function": {"name": "book_table", "arguments": json.dumps({"people": 2, "restaurant": "pizza hut"})}}
    messages = ASK + [{"role": "assistant", "content": None, "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "call_9", "content": json.dumps({"reference": "AB12"})},
                      {"role": "assistant", "content": "booked , reference AB12 ."},
                      {"role": "user", "content": "thanks"}]
    before = len(server.reads)
    create(server, messages, tools=TOOLS, tool_choice="none", max_tokens=2)
    assert server.reads[before:] == ["\n".join([
        "APIS: ", "APIS: ", "USER: a table for two at curry garden please",
        "APICALL: api_name = book_table ; people = 2 ; restaurant = pizza hut", "APIRESP: reference = AB12",
        "SYSTEM: booked , reference AB12 .", "USER: thanks", "APICALL: ", "APIRESP:"])]


def test_a_streamed_call_arrives_as_tool_call_deltas_that_join_to_the_same_call(server):
    forced = {"type": "function", "function": {"name": "book_table"}}
    plain = create(server, tools=TOOLS, tool_choice=forced).choices[0].message.tool_calls[0]
    ids, names, arguments, finish = set(), [], "", None
    for chunk in create(server, tools=TOOLS, tool_choice=forced, stream=True):
        for choice in chunk.choices:
            assert not choice.delta.content
            for delta in choice.delta.tool_calls or ():
                assert delta.index == 0
                ids.add(delta.id) if delta.id else None
                names += [delta.function.name] if delta.function.name else []
                arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert len(ids) == 1 and names == ["book_table"] and finish == "tool_calls"
    assert json.loads(arguments) == json.loads(plain.function.arguments)  # greedy: the same call


def test_the_reply_after_a_tool_result_streams_as_it_is_decoded_the_same_as_unstreamed(server):
    call = {"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "london"}'}}
    messages = ASK + [{"role": "assistant", "content": None, "tool_calls": [call]},
                      {"role": "tool", "tool_call_id": "call_7", "content": "rain"}]
    plain = create(server, messages, tools=TOOLS, max_tokens=12).choices[0]
    chunks = [chunk for chunk in create(server, messages, tools=TOOLS, max_tokens=12, stream=True) if chunk.choices]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == plain.message.content and "SYSTEM" not in text
    assert chunks[-1].choices[0].finish_reason == plain.finish_reason
    assert not any(chunk.choices[0].delta.tool_calls for chunk in chunks)


def test_a_call_cut_by_max_tokens_ends_with_length(server):
    before = len(server.reads)
    choice = create(server, tools=TOOLS, tool_choice="required", max_tokens=3).choices[0]
    assert choice.finish_reason == "length" and not choice.message.content
    assert len(server.reads) == before + 1  # the call's generation only: no reply is written after a cut call


# --- structured output -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_response_format_json_schema_gives_json_that_validates(server, stream):
    response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}}
    if stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in
                       create(server, response_format=response_format, stream=True) if chunk.choices)
    else:
        text = create(server, response_format=response_format).choices[0].message.content
    jsonschema.validate(json.loads(text), ANSWER)


def test_json_object_gives_an_object(server):
    text = create(server, response_format={"type": "json_object"}, max_tokens=100).choices[0]
    if text.finish_reason == "stop":
        assert isinstance(json.loads(text.message.content), dict)


# --- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("options, param", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "integr"}}}}}]}, "tools[0].function.parameters"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": 5}}}},
     "response_format.json_schema.schema"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "fly"}}}, "tool_choice.function.name"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_bad_schemas_and_choices_are_400s_naming_the_field(server, options, param):
    with pytest.raises(openai.BadRequestError) as error:
        create(server, **options)
    assert error.value.body["param"].startswith(param), error.value.body
    assert param.split(".")[0].split("[")[0] in error.value.body["message"]


def test_a_tool_message_answering_no_call_is_a_400(server):
    messages = ASK + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "book_table", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "ok"}]
    with pytest.raises(openai.BadRequestError) as error:
        create(server, messages, tools=TOOLS)
    assert error.value.body["param"] == "messages[2].tool_call_id"
    assert "call_2" in error.value.body["message"]


# --- the call grammar on its own: random scores, every call parses and validates ------------------


ANY_ARGS = {"type": "object", "additionalProperties": False, "required": ["name", "people"],
            "properties": {"address": {"type": "string"},  # sorts before api_name, optional
                           "name": {"type": "string"},  # plain: written raw
                           "people": {"type": "integer", "minimum": 1, "maximum": 8},
                           "when": {"type": "object", "required": ["day"], "additionalProperties": False,
                                    "properties": {"day": {"enum": ["mon", "fri"]}, "late": {"type": "boolean"}}},
                           "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 4}}}}


def test_100_calls_drawn_at_random_under_the_call_grammar_all_parse_and_validate(tiny_models):
    """Scores drawn at random (seeded) walk into every corner a trained model avoids: raw
    strings, JSON values, optional slots before and after ``api_name``, byte-level pieces."""
    import torch
    from transformers import AutoTokenizer

    from parlai_dialogft.model.constrained import RowConstraint
    from parlai_dialogft.serving.tools import call_grammar
    from parlai_dialogft.tod.functions import Tool, read_call

    tok = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    tools = {"book": Tool("book", ANY_ARGS), "get_weather": Tool("get_weather", WEATHER)}
    grammar = call_grammar(list(tools.values()))
    generator = torch.Generator().manual_seed(0)
    # Ends are favoured (END, and pieces with ";" that end a raw string), so values stay short.
    ends = torch.tensor([i for i in range(len(tok)) if ";" in tok.decode([i]) or tok.decode([i]) == " "]
                        + [tok.eos_token_id])
    names, lengths = set(), []
    for _ in range(100):
        constraint, ids = RowConstraint(grammar, tok, tok.eos_token_id), []
        for _step in range(1500):
            scores = torch.randn(len(tok), generator=generator)
            scores[ends] += 6
            constraint.mask(scores)
            token = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=generator))
            if token == tok.eos_token_id:
                break
            constraint.advance(token)
            ids.append(token)
        else:
            pytest.fail("no end within 1500 tokens: " + tok.decode(ids))
        assert not constraint.error
        text = tok.decode(ids)
        name, arguments = read_call(text, tools)
        jsonschema.validate(arguments, tools[name].parameters)
        names.add(name)
        lengths.append(len(arguments))
    assert names == set(tools) and len(set(lengths)) > 2  # both tools, optional slots present and absent


# --- who runs a tool ------------------------------------------------------------------------------


def test_with_tools_in_the_request_the_servers_database_is_not_called(tiny_models, tmp_path):
    """``--task-db``: a plain request plays the server's round (the choice carries ``tod_call``);
    a request with tools leaves calls to the client (no round, no ``tod_call``)."""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe

    opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", tiny_models["gpt2"],
                                                 "--datapath", str(tmp_path / "data"), "--label-truncate", "120",
                                                 "--task-db", "multiwoz"])
    log_db = str(tmp_path / "log.sqlite")
    with running_app(create_agent(opt), log_db=log_db) as app:
        client = SimpleNamespace(client=openai.OpenAI(base_url=app.url + "/v1", api_key="x", max_retries=0))
        plain = create(client, max_tokens=4).choices[0]
        assert "tod_call" in plain.model_extra
        forced = create(client, tools=TOOLS, tool_choice="required").choices[0]
        assert "tod_call" not in forced.model_extra and valid_call(forced.message.tool_calls[0])
        # --serve-log-db keeps each draft's call: the round's and its answer, or the tool call it is.
        with sqlite3.connect(log_db) as db:
            logged = db.execute("SELECT content, call, call_result FROM drafts ORDER BY rowid").fetchall()
        assert logged[0] == (plain.message.content, plain.model_extra["tod_call"], plain.model_extra["tod_result"])
        call = forced.message.tool_calls[0]
        assert json.loads(logged[1][1]) == {"id": call.id, "type": "function",
                                            "function": {"name": call.function.name, "arguments": call.function.arguments}}
        reply = create(client, tools=TOOLS, tool_choice="none", max_tokens=4).choices[0]
        assert "tod_call" not in reply.model_extra and reply.message.tool_calls is None
        # response_format on a plain request: the database round runs, its reply is constrained.
        structured = create(client, response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "schema": ANSWER}}).choices[0]
        assert "tod_call" in structured.model_extra
        jsonschema.validate(json.loads(structured.message.content), ANSWER)


def test_without_the_engine_a_constrained_request_is_a_400_saying_what_to_install(server, monkeypatch):
    from parlai_dialogft.model import constrained

    def missing():
        raise constrained.ConstraintEngineMissing(f"constrained decoding needs llguidance: {constrained.INSTALL}")

    monkeypatch.setattr(constrained, "require_engine", missing)
    with pytest.raises(openai.BadRequestError) as error:
        create(server, response_format={"type": "json_object"})
    assert error.value.code == "constrained_decoding_unavailable"
    assert "parlai_dialogft[structured]" in error.value.message
    with pytest.raises(openai.BadRequestError) as error:
        create(server, tools=TOOLS, tool_choice="required")
    assert error.value.param == "tool_choice"


def test_a_beam_search_server_with_ngram_blocking_decodes_constrained_requests_greedily(tiny_models, tmp_path):
    """``--inference beam`` and ``--beam-block-ngram``: a grammar follows one hypothesis, and a
    call repeats `` = `` and `` ; `` by design, so constrained rows are decoded greedily without blocking."""
    from parlai.core.agents import create_agent

    from parlai_dialogft.scripts.dialogft_serve import DialogftServe

    opt = DialogftServe.setup_args().parse_args(["-m", "dialogft_agent", "--hf-model", tiny_models["gpt2"],
                                                 "--datapath", str(tmp_path / "data"), "--label-truncate", "120",
                                                 "--inference", "beam", "--beam-size", "3", "--beam-block-ngram", "2"])
    with running_app(create_agent(opt)) as app:
        client = SimpleNamespace(client=openai.OpenAI(base_url=app.url + "/v1", api_key="x", max_retries=0))
        for _ in range(2):
            choice = create(client, tools=TOOLS, tool_choice="required").choices[0]
            assert choice.finish_reason == "tool_calls" and valid_call(choice.message.tool_calls[0])
        text = create(client, response_format={"type": "json_schema", "json_schema": {
            "name": "answer", "schema": ANSWER}}).choices[0].message.content
        jsonschema.validate(json.loads(text), ANSWER)
        with pytest.raises(openai.BadRequestError) as error:
            create(client, response_format={"type": "json_object"}, n=2)
        assert error.value.param == "n" and "beam" in error.value.message


def test_several_calls_in_one_message_are_read_each_with_its_own_result():
    from parlai_dialogft.serving.protocol import ChatMessage
    from parlai_dialogft.serving.tools import Tool, format_turns

    def call(i, city):
        arguments = json.dumps({"city": city})
        return {"id": f"c{i}", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}

    messages = [ChatMessage.model_validate(m) for m in ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call(1, "london"), call(2, "北京")]},
        {"role": "tool", "tool_call_id": "c2", "content": "sun"},  # answered out of order
        {"role": "tool", "tool_call_id": "c1", "content": "rain"}]]
    history, text = format_turns(messages, {"get_weather": Tool("get_weather", WEATHER)})
    assert history[-2:] == (("USER: " + ASK[0]["content"], "APICALL: api_name = get_weather ; city = london"),
                            ("APIRESP: result = rain", "APICALL: api_name = get_weather ; city = 北京"))
    assert text == "APIRESP: result = sun"


class ScriptedReplier:
    """Stands in for the Replier in a tool round: writes ``free`` unconstrained and ``forced``
    under a grammar, and records each generation (constrained?, its grammars, its contexts)."""

    def __init__(self, free, forced):
        self.free, self.forced, self.generations = free, forced, []
        self.agent = SimpleNamespace(dict=SimpleNamespace(txt2vec=str.split))

    def constraint(self, grammar):
        return grammar

    def generate(self, decoding, prompts, states):
        self.generations.append((decoding.constrained, [s.constraint for s in states], [p.text for p in prompts]))
        text = self.forced if decoding.constrained else self.free
        return [{"text_vec": [0]} for _ in prompts], [{"text": text} for _ in prompts]

    def draft(self, text, generated, prompt, ended_at_length=False):
        from parlai_dialogft.serving.replies import Draft

        return Draft(text, "stop", generated)


def auto_round(replier):
    from parlai_dialogft.serving.protocol import Prompt
    from parlai_dialogft.serving.tool_replier import play_tool_rounds
    from parlai_dialogft.serving.tools import Tool, ToolRound

    round_ = ToolRound({"book_table": Tool("book_table", BOOK)}, "auto")
    (reply,) = play_tool_rounds(replier, [Prompt((), "USER: a table", tool_round=round_)])
    return reply.drafts[0]


def test_auto_a_call_that_does_not_validate_is_written_again_under_its_tools_grammar():
    from parlai_dialogft.model.constrained import Grammar

    replier = ScriptedReplier("APICALL: api_name = book_table ; people = 99 ; restaurant = curry garden",
                              "APICALL: api_name = book_table ; people = 2 ; restaurant = pizza hut")
    draft = auto_round(replier)
    assert json.loads(draft.tool_call.arguments) == {"people": 2, "restaurant": "pizza hut"}
    assert draft.finish_reason == "tool_calls"
    (free, _, _), (constrained, (grammar,), _) = replier.generations
    assert not free and constrained and isinstance(grammar, Grammar) and "book_table" in grammar.lark


def test_auto_a_call_to_no_tool_of_the_request_is_no_call_and_the_model_replies():
    replier = ScriptedReplier("APICALL: api_name = find_hotel ; area = north", "unused")
    draft = auto_round(replier)
    assert draft.tool_call is None and draft.text == "APICALL: api_name = find_hotel ; area = north"
    (_, _, first), (_, _, second) = replier.generations
    assert first == ["USER: a table"] and second == ["APIRESP: "]  # after the empty call of a round without one
