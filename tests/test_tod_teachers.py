"""Our corpora as ParlAI's task-oriented data, and the loop scored as the field scores it.

ParlAI's own ``TodSystemTeacher`` reads our episodes; the end-to-end teacher scores whatever
replies it gets, so the gold replies (``repeat_label``) must score high and the user's own words
(``repeat_query``) low.
"""

import pytest
from parlai.core.message import Message

from parlai_dialogft.tod import calls, episodes
from tests.support.agents import make_agent

DATAPATH = "/tmp/dialogft-test-data"


def evaluate(task, model, **overrides):
    from parlai.scripts.eval_model import EvalModel

    kwargs = dict(task=task, model=model, datatype="test", n_shot=40, episodes_randomization_seed=0, datapath=DATAPATH)
    kwargs.update(overrides)
    return EvalModel.main(**kwargs)


def first_examples(task, count):
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_kwargs(task=task, datatype="test", datapath=DATAPATH)
    teacher = create_task_agent_from_taskname(opt)[0]
    return [teacher.act() for _ in range(count)]


def test_every_multiwoz_turn_is_a_round_and_a_booking_answers_with_the_gold_reference():
    eps = episodes.episodes("multiwoz", "test")
    assert len(eps) == 998
    confirmed = [r for e in eps for r in e.rounds if r.api_resp_machine.get("booking") == "confirmed"]
    assert len(confirmed) > 900
    said = sum(r.api_resp_machine["reference"].lower() in r.sys_utt.lower() for r in confirmed if "reference" in r.api_resp_machine)
    assert said / len(confirmed) > 0.7  # the reply says the reference the answer gives (taxis give a car)
    named = [r for e in eps for r in e.rounds if r.api_resp_machine.get("name") and r.api_resp_machine.get("count") != "0"]
    assert sum(r.api_resp_machine["name"].lower() in r.sys_utt.lower() for r in named) / len(named) > 0.3


def test_sgd_calls_are_the_services_calls_and_crosswoz_calls_its_state():
    sgd = [r for e in episodes.episodes("sgd", "test") for r in e.rounds if r.api_call_machine]
    assert len(sgd) > 1000 and all(r.api_resp_machine.get("count") for r in sgd)
    crosswoz = [r for e in episodes.episodes("crosswoz", "test") for r in e.rounds if r.api_call_machine]
    assert all(calls.action_and_domain(r.api_call_machine)[1] in ("景点", "餐馆", "酒店", "地铁", "出租") for r in crosswoz)
    assert sum(r.api_resp_machine.get("count", "0") != "0" for r in crosswoz) / len(crosswoz) > 0.9


def test_parlais_system_teacher_reads_our_episodes_in_its_format():
    grounding, first_call, first_reply = first_examples("dialogft_customer:system:sources=multiwoz", 3)
    assert grounding["text"] == "APIS: " and grounding["episode_done"] is False
    assert first_call["text"].startswith("USER: ") and first_call["eval_labels"][0].startswith("APICALL: api_name = find_")
    assert first_reply["text"].startswith("APIRESP: count = ") and first_reply["eval_labels"][0].startswith("SYSTEM: ")


def test_the_task_oriented_teachers_name_a_source_without_states():
    with pytest.raises(ValueError, match="taskmaster4 has no calls or belief states"):
        first_examples("dialogft_customer:system:sources=taskmaster4", 1)


def test_gold_replies_inform_and_succeed_and_the_users_own_words_do_not():
    gold = evaluate("dialogft_customer:end_to_end:sources=multiwoz", "repeat_label")
    echo = evaluate("dialogft_customer:end_to_end:sources=multiwoz", "repeat_query")
    assert gold["inform"].value() > 0.8 and gold["success"].value() > 0.6
    assert echo["success"].value() == 0 and echo["inform"].value() < gold["inform"].value() - 0.3
    chinese = evaluate("dialogft_customer:end_to_end:lang=zh", "repeat_label")
    assert chinese["inform"].value() > 0.7


def test_the_end_to_end_teacher_writes_the_standard_format_for_corpus_bleu(tmp_path):
    from parlai_dialogft.evaluation.mwzeval_format import read_predictions

    out = tmp_path / "predictions.json"
    evaluate("dialogft_customer:end_to_end:sources=multiwoz", "repeat_label", n_shot=3, tod_predictions=str(out))
    predictions = read_predictions(out)
    assert len(predictions) == 3
    responses = [turn.response for turns in predictions.values() for turn in turns]
    assert any("[" in r and "]" in r for r in responses)  # delexicalized with the answers' values


# --- the agent's loop ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def looping_agent():
    return make_agent("zoo:dialogft/bilingual_t5", task_db="multiwoz,crosswoz", datatype="valid", datapath=DATAPATH)


def test_a_plain_user_turn_becomes_a_round_in_the_teachers_format(looping_agent):
    agent = looping_agent.clone()
    agent.observe(Message({"text": "I need a cheap hotel in the north", "episode_done": False}))
    reply = agent.act()
    assert {"tod_call", "tod_result"} <= set(reply)
    assert not reply["text"].startswith("SYSTEM:")
    strings = agent.history.history_strings
    assert strings[:3] == ["APIS: ", "APIS: ", "USER: I need a cheap hotel in the north"]
    assert strings[3:] == [reply["tod_call"], reply["tod_result"], "SYSTEM: " + reply["text"]]


def test_the_reply_is_written_after_the_databases_answer(looping_agent):
    agent = looping_agent.clone()
    observation = agent.observe(Message({"text": "I need a cheap hotel in the north with parking", "episode_done": False}))
    call = calls.call_text({"api_name": "find_hotel", "area": "north", "pricerange": "cheap", "parking": "yes"})
    answer = calls.resp_text(agent.task_db.answer(calls.parse_call(call)))
    assert "name = city centre north b and b" in answer  # the real database found it
    step = agent._reply_step(observation, call, answer)
    read = agent.dict.vec2txt(step["text_vec"].tolist())
    assert read.endswith(answer.strip()) and call in read and "USER: I need a cheap hotel" in read


def test_a_chinese_call_goes_to_the_chinese_database(looping_agent):
    answer = looping_agent.task_db.answer({"api_name": "find_餐馆", "推荐菜": "驴打滚", "评分": "4.5分以上"})
    assert int(answer["count"]) > 0 and answer["名称"]


def test_a_call_is_written_without_the_replys_ngram_blocking():
    """`internet = yes ; parking = yes` repeats a trigram by design; blocking would corrupt it."""
    from parlai_dialogft.tod.agent_mixin import CALL_STEP, REPLY_STEP

    agent = make_agent("zoo:dialogft/bilingual_t5", task_db="multiwoz", datatype="valid", datapath=DATAPATH,
                       inference="beam", beam_size=2, beam_block_ngram=3, beam_context_block_ngram=3)
    with agent._generating(CALL_STEP):
        call_search = agent._treesearch_factory("cpu")
    with agent._generating(REPLY_STEP):
        reply_search = agent._treesearch_factory("cpu")
    assert (call_search.block_ngram, call_search.context_block_ngram) == (-1, -1)
    assert (reply_search.block_ngram, reply_search.context_block_ngram) == (3, 3)
    assert agent.beam_block_ngram == 3  # as saved, after the round


def test_an_unknown_database_names_the_flag():
    with pytest.raises(ValueError, match="--task-db spaceship"):
        make_agent("zoo:dialogft/bilingual_t5", task_db="spaceship", datapath=DATAPATH)


def test_sgd_test_dialogues_split_into_seen_and_unseen_services():
    from parlai_dialogft.data.readers import task_oriented

    test = episodes.episodes("sgd", "test")
    seen = [e for e in test if episodes.sgd_seen(e)]
    assert 0 < len(seen) < len(test)
    train_services = set(task_oriented.sgd_schema("train"))
    assert all(set(e.extras["services"]) <= train_services for e in seen)
    assert all(set(e.extras["services"]) - train_services for e in test if e not in seen)


@pytest.mark.parametrize("call", [
    {"api_name": "find_spaceship", "area": "north"},                      # a domain no database has
    {"api_name": "find_hotel", "colour": "blue"},                         # a slot the hotel table lacks
    {"api_name": "find_hotel", "name": "x' OR 1=1 --"},                   # a value that looks like SQL
    {"api_name": "find_hotel", "area": "north", "stars": "5", "pricerange": "cheap"},  # nothing matches
])
def test_a_bad_call_gets_an_answer_the_model_can_read_and_a_log_line(looping_agent, call, caplog):
    agent = looping_agent.clone()
    observation = agent.observe(Message({"text": "I need a hotel", "episode_done": False}))
    before = agent.task_db.databases[0].query("hotel", {})
    with caplog.at_level("WARNING"):
        answer = agent._answer(call)
    assert answer.get("count") == "0" or "colour" not in answer
    if call["api_name"] == "find_spaceship" or "colour" in call:
        assert any(("spaceship" in r.getMessage() or "colour" in r.getMessage()) for r in caplog.records)
    step = agent._reply_step(observation, calls.call_text(call), calls.resp_text(answer))
    assert step["text_vec"] is not None
    assert agent.task_db.databases[0].query("hotel", {}) == before


def test_a_reply_is_scored_on_the_venue_it_names_even_one_the_last_answer_did_not_give():
    from parlai_dialogft.tod import scoring

    answer = {"count": "2", "name": "acorn guest house", "phone": "01223353888"}
    reply = "How about Worth House ? Their number is 01223 316074 , postcode cb41da ."
    text = scoring.delexicalize(reply, "hotel", answer, {"api_name": "find_hotel"})
    assert text == "How about [hotel_name] ? Their number is [hotel_phone] , postcode [hotel_postcode] ."
    assert scoring.delexicalize("May I ask for your name ?", "restaurant", {}, {}) == "May I ask for your name ?"


def test_named_sources_are_used_whatever_the_language_flag_says():
    from parlai_dialogft.tod.teachers import chosen_sources

    assert chosen_sources({"customer_lang": "en", "customer_sources": "crosswoz"}) == ["crosswoz"]
    assert chosen_sources({"customer_lang": "en", "customer_sources": "all"}) == ["sgd", "multiwoz"]
    assert chosen_sources({"customer_lang": "zh", "customer_sources": "all"}) == ["crosswoz"]
