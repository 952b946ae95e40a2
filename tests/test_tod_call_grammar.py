"""The call step decoded under a grammar of what the database answers (``--task-call-grammar``).

The specs: the grammar takes every call the annotated dialogues make (it never forbids what the
data says) and refuses what no database answers (an unknown function, a value a closed slot
never has, a slot twice or out of ParlAI's order); in the loop, whatever the model, every call
written under it is one the database answers (and the reply after it is a reply: it starts
``SYSTEM:``), where the same model unconstrained writes
calls that are not (every token of a constrained call is the grammar's; it is complete unless
the length limit cut it); a ``--tools`` function's ``enum`` closes its property; and ``schema``
without llguidance says how to install it.
"""

from __future__ import annotations

import sys

import pytest
from parlai.core.message import Message

from parlai_dialogft.tod import calls
from tests.support.agents import make_agent

pytest.importorskip("llguidance")

TOKENIZER = "zoo/dialogft/customer_t5/tokenizer.json"  # the shipped model's byte-level BPE
TURNS = ["i need a cheap hotel in the north", "with free parking please", "book it for 2 people"]


def acceptor(grammar):
    """text -> whether ``grammar`` takes it whole, tokenized by the shipped model's tokenizer;
    ``whole=False``: whether it takes every token of ``text`` (a call cut short is one)."""
    import llguidance
    import llguidance.hf
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=TOKENIZER)
    engine = llguidance.hf.from_tokenizer(tok, n_vocab=len(tok), eos_token=tok.convert_tokens_to_ids("</s>"))
    compiled = llguidance.LLMatcher.grammar_from_lark(grammar.lark)

    def check(text: str, whole: bool = True) -> bool:
        matcher = llguidance.LLMatcher(engine, compiled, log_level=0)
        return matcher.consume_tokens(tok.encode(text, add_special_tokens=False)) and (matcher.is_accepting() or not whole)

    return check


@pytest.fixture(scope="module")
def accepts():
    """The grammar of the shipped MultiWOZ and CrossWOZ databases, as :func:`acceptor`."""
    from parlai_dialogft.tod.call_grammar import call_grammar
    from parlai_dialogft.tod.database import open_databases

    return acceptor(call_grammar(open_databases("multiwoz,crosswoz").signatures()))


@pytest.mark.parametrize("source, at_least", [("multiwoz", 1.0), ("crosswoz", 0.99)])
def test_the_grammar_takes_the_calls_the_annotated_dialogues_make(accepts, source, at_least):
    from parlai_dialogft.tod import episodes

    texts = [calls.call_text(r.api_call_machine) if r.api_call_machine else calls.CALL.strip()
             for e in episodes.episodes(source, "valid") for r in e.rounds]
    taken = [accepts(t) for t in texts]
    assert sum(taken) / len(taken) >= at_least, [t for t, ok in zip(texts, taken) if not ok][:5]
    assert any(t != calls.CALL.strip() for t in texts) and calls.CALL.strip() in texts  # calls, and rounds without


@pytest.mark.parametrize("text", [
    "APICALL: api_name = find_spaceship ; area = north",  # no such function
    "APICALL: api_name = find_hotel ; area = cambridge",  # a value the area column never has
    "APICALL: api_name = find_train ; day = cambridge",  # ... nor a train's day
    "APICALL: api_name = find_hotel ; area = north ; area = south",  # a slot twice
    "APICALL: api_name = find_hotel ; pricerange = cheap ; area = north",  # out of ParlAI's order
    "APICALL: api_name = find_hotel ; colour = red",  # a slot the hotel table does not have
    "APICALL: api_name = book_attraction ; area = north",  # attractions are not booked
    "APICALL: api_name = find_餐馆 ; 推荐菜 = 评分 = 4.5分以上",  # a second slot passed off as a value
])
def test_the_grammar_refuses_calls_no_database_answers(accepts, text):
    assert not accepts(text)


def test_free_values_keep_their_words_and_closed_slots_take_dontcare(accepts):
    assert accepts("APICALL: api_name = find_restaurant ; area = dontcare ; food = modern european ; pricerange = cheap")
    assert accepts("APICALL: api_name = find_酒店 ; 价格 = 400-500元 ; 酒店类型 = 经济型")
    assert accepts("APICALL:") and accepts("APICALL: ")


LIMIT = 64


def loop_calls(tiny_models, mode: str, replies=None):
    """What the call step wrote in each round of one conversation, a random-init T5 in the loop
    (``replies``: a list the reply step's texts go to, as generated)."""
    from parlai.core.torch_generator_agent import TorchGeneratorAgent

    from parlai_dialogft.tod.agent_mixin import REPLY_STEP

    agent = make_agent(tiny_models["t5"], task_db="multiwoz", task_call_grammar=mode, datatype="valid",
                       inference="beam", beam_size=2, label_truncate=LIMIT)
    written = []
    read_call = agent._read_call
    agent._read_call = lambda text: written.append(text) or read_call(text)  # what the call step wrote, raw
    for turn in TURNS:
        agent.observe(Message({"text": turn, "episode_done": False}))
        acts = None
        if replies is not None:  # the generation itself, before the loop takes "SYSTEM: " off
            generate = TorchGeneratorAgent.batch_act
            steps = []

            def recording(self, observations):
                out = generate(self, observations)
                steps.append((self.round_step, [m.get("text", "") for m in out]))
                return out

            TorchGeneratorAgent.batch_act = recording
            try:
                acts = agent.act()
            finally:
                TorchGeneratorAgent.batch_act = generate
            replies += [text for step, texts in steps if step is REPLY_STEP for text in texts]
        if acts is None:
            agent.act()
    return agent, written


def test_in_the_loop_every_call_is_one_the_database_answers_whatever_the_model(tiny_models, accepts):
    replies = []
    agent, written = loop_calls(tiny_models, "schema", replies)
    # ... and what follows the answer is a reply, never a second call: it starts "SYSTEM:".
    assert len(replies) == len(TURNS) and all(text.startswith("SYSTEM:") for text in replies), replies
    known = {s.api_name for s in agent.task_db.signatures()}
    for text in written:
        # Every token the grammar's; the call is complete unless the length limit came first.
        assert accepts(text, whole=False), text
        # (its text re-encoded can take a few tokens fewer than the search wrote)
        assert accepts(text) or len(agent.dict.txt2vec(text)) >= LIMIT - 8, text
        call = calls.parse_call(text)
        assert calls.API_NAME not in call or call[calls.API_NAME] in known
    assert agent.beam_size == 2 and agent.opt["inference"] == "beam"  # the reply keeps the model's decoding
    # The same random model unconstrained writes calls no database answers: the grammar is what holds.
    _, free = loop_calls(tiny_models, "none")
    assert not all(accepts(text) for text in free), free


def test_a_tools_enum_closes_its_property_and_json_values_follow_their_schema():
    from parlai_dialogft.tod.call_grammar import call_grammar
    from parlai_dialogft.tod.functions import Tool
    from parlai_dialogft.tod.server_tools import ServerTool, ToolsAndDatabases

    labels = {"type": "array", "items": {"type": "string"}, "maxItems": 2}
    tool = Tool("label", {"type": "object", "properties": {
        "parcel": {"type": "string"}, "channel": {"type": "string", "enum": ["web", "phone"]}, "labels": labels}})
    [signature] = ToolsAndDatabases({"label": ServerTool(tool, function=dict)}).signatures()
    assert signature.slots == {"parcel": None, "channel": ("web", "phone"), "labels": labels}
    accepts = acceptor(call_grammar([signature]))
    assert accepts('APICALL: api_name = label ; channel = web ; labels = ["fragile ; heavy","blue"] ; parcel = P-7')
    assert not accepts("APICALL: api_name = label ; channel = fax")
    assert not accepts('APICALL: api_name = label ; labels = ["a","b","c"]')  # maxItems 2


def test_schema_without_llguidance_says_how_to_install_it(tiny_models, monkeypatch):
    from parlai_dialogft.model.constrained import ConstraintEngineMissing

    monkeypatch.setitem(sys.modules, "llguidance", None)
    with pytest.raises(ConstraintEngineMissing, match="pip install"):
        make_agent(tiny_models["t5"], task_db="multiwoz", task_call_grammar="schema")
    # auto: calls decoded as the model writes them
    assert make_agent(tiny_models["t5"], task_db="multiwoz", task_call_grammar="auto").call_grammar is None
