"""Knowledge stores, BM25 retrieval, its cache, the context format, the metrics and the teachers' modes."""

from __future__ import annotations

import json
import random

import pytest
from tests.support.agents import make_agent

from parlai_dialogft.knowledge import context, metrics, stores
from parlai_dialogft.knowledge.retriever import BM25Retriever, retrieval_tokens
from parlai_dialogft.utils.errors import DataFormatError, UserError

# --- the context format -------------------------------------------------------------------------


def test_knowledge_lines_go_before_the_text_and_come_off_again():
    text = "故宫的门票多少钱？\n还有呢"
    grounded = context.with_knowledge(text, ["故宫 | 门票 | 60", "故宫 |  电话\n| 010"])
    assert grounded.split("\n")[:2] == ["knowledge: 故宫 | 门票 | 60", "knowledge: 故宫 | 电话 | 010"]
    assert context.has_knowledge(grounded) and not context.has_knowledge(text)
    assert context.strip_knowledge(grounded) == text
    assert context.with_knowledge(text, []) == text
    assert context.query_of(grounded, "knowledge: x\n上一句") == "上一句\n" + text


# --- stores ---------------------------------------------------------------------------------------


def test_user_files_become_entries(tmp_path):
    faq = tmp_path / "faq.jsonl"
    faq.write_text(json.dumps({"question": "营业时间？", "answer": "早上 九点\n开门"}, ensure_ascii=False) + "\n\n"
                   + json.dumps({"title": "Returns", "text": "Keep the receipt. " * 30}) + "\n", encoding="utf-8")
    triples = tmp_path / "kb.csv"
    triples.write_text('subject,relation,object\nshop,opens,"9:00, Monday to Friday"\n', encoding="utf-8")
    store = stores.load_store(f"{faq},{triples}")
    texts = [e.text for e in store.entries]
    assert texts[0] == "营业时间？ | 早上 九点 开门"
    passages = [t for t in texts if t.startswith("Returns | ")]
    assert len(passages) > 1 and all(len(t) <= len("Returns | ") + stores.PASSAGE_CHARS for t in passages)
    assert "".join(t[len("Returns | "):].replace(" ", "") for t in passages) == ("Keep the receipt." * 30).replace(" ", "")
    assert texts[-1] == "shop | opens | 9:00, Monday to Friday" and store.entries[-1].entity == "shop"


@pytest.mark.parametrize("name,content,line,problem", [
    ("faq.jsonl", '{"question": "q", "answer": "a"}\n{"question": "q2"}\n', 2, '"answer" must be a non-empty string'),
    ("faq.jsonl", '{"question": "q", "answer": "a"}\n\n{"question": "q", \n', 3, "not valid JSON"),
    ("docs.jsonl", '{"body": "x"}\n', 1, 'expected {"question"'),
    ("docs.jsonl", '{"body": "x"}\n', 1, "a response field: response, completion, output, answer"),
    ("pairs.jsonl", '{"prompt": "p", "response": "r"}\n{"prompt": "p2"}\n', 2, '"response" must be a non-empty string'),
    ("pairs.jsonl", '{"input": "", "output": "o"}\n', 1, '"input" must be a non-empty string'),
    ("faq.jsonl", '{"question": "q", "text": "t"}\n', 1, '"answer" must be a non-empty string'),  # not a document
    ("chat.jsonl", '{"messages": [{"role": "user", "content": "hi"}]}\n', 1, "no reply to a prompt"),
    ("docs.jsonl", '["a list"]\n', 1, "each line must be a JSON object"),
    ("kb.csv", "subject,relation,object\na,b,c\na,b\n", 3, "expected 3 non-empty fields"),
    ("kb.csv", "a,b,c\na,,c\n", 2, "expected 3 non-empty fields"),
])
def test_a_bad_row_names_its_file_and_line(tmp_path, name, content, line, problem):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError) as err:
        stores.load_store(str(path))
    assert err.value.path == str(path) and err.value.line == line and problem in err.value.problem
    assert str(err.value).startswith(f"{path}, line {line}: ")


@pytest.mark.parametrize("name", ["faq.jsonl", "kb.csv"])
def test_a_store_that_is_not_utf8_names_its_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b'subject,relation,object\n' if name.endswith(".csv") else b'{"question": "q", "answer": "a"}\n')
    with open(path, "ab") as f:
        f.write(b"caf\xe9,is,open\n")  # Latin-1, not UTF-8
    with pytest.raises(DataFormatError) as err:
        stores.load_store(str(path))
    assert str(err.value).startswith(f"{path}, line 2: not valid UTF-8")


def test_an_unknown_store_names_the_flag(tmp_path):
    with pytest.raises(UserError, match="--knowledge-file notes.txt: not a shipped store"):
        stores.load_store("notes.txt")
    with pytest.raises(UserError, match="--knowledge-file .*missing.jsonl: no such file"):
        stores.load_store(str(tmp_path / "missing.jsonl"))


def test_the_shipped_stores_load():
    crosswoz = stores.load_store("crosswoz")
    records = stores.crosswoz_records()
    assert len(crosswoz) == len(records) and len(stores.entity_names(crosswoz.entries)) == len(records)
    assert {r["领域"] for r in records} == {"景点", "餐馆", "酒店"}
    multiwoz = stores.load_store("multiwoz")
    assert {e.text.split(" | ")[1] for e in multiwoz.entries} == set(stores.MULTIWOZ_DOMAINS)
    assert len(stores.load_store("kdconv")) > 1000


# --- retrieval ---------------------------------------------------------------------------------------


def test_tokens_are_the_metrics_plus_chinese_pairs():
    from parlai_dialogft.evaluation.text import cjk_aware_tokenize

    text = "北京贵都大酒店的Wi-Fi"
    tokens = retrieval_tokens(text)
    unigrams = cjk_aware_tokenize(text)
    assert tokens[: len(unigrams)] == unigrams
    assert "酒店" in tokens and "贵都" in tokens and "wi" in tokens


def test_a_database_entity_asked_by_name_comes_first():
    retriever = BM25Retriever(stores.load_store("crosswoz"))
    names = random.Random(0).sample(stores.entity_names(retriever.store.entries), 40)
    hits = retriever.search_many([f"请问{name}的电话是多少？" for name in names], 1)
    found = sum(found[0][0].entity == name for name, found in zip(names, hits) if found)
    assert found >= 38, found  # a few names are part of longer names (X and X(分店))


def test_a_query_sharing_no_token_retrieves_nothing(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("shop,opens,nine\n", encoding="utf-8")
    retriever = BM25Retriever(stores.load_store(str(path)), tmp_path / "cache")
    assert retriever.search("zebra", 3) == [] and retriever.search("", 3) == []
    assert [e.text for e in retriever.search("when does the shop open", 3)] == ["shop | opens | nine"]


def test_the_index_is_built_once_and_rebuilt_when_the_file_changes(tmp_path):
    path = tmp_path / "faq.jsonl"
    path.write_text("".join(json.dumps({"question": f"question {i}", "answer": f"answer {i}"}) + "\n" for i in range(50)))
    cache = tmp_path / "cache"
    first = BM25Retriever(stores.load_store(str(path)), cache)
    assert not first.loaded_from_cache and first.folder.is_dir()
    again = BM25Retriever(stores.load_store(str(path)), cache)
    assert again.loaded_from_cache and again.folder == first.folder
    assert again.search("question 7", 2) == first.search("question 7", 2)

    # The same number of entries, one of them changed: only the content tells.
    path.write_text(path.read_text().replace('"question 7"', '"where is the zebra"').replace('"answer 7"', '"in the zoo"'))
    changed = BM25Retriever(stores.load_store(str(path)), cache)
    assert not changed.loaded_from_cache and changed.folder != first.folder
    assert not first.folder.exists()  # the stale index is gone
    assert changed.search("zebra", 1)[0].text == "where is the zebra | in the zoo"


# --- metrics ---------------------------------------------------------------------------------------


def test_knowledge_f1_is_parlais_f1_against_the_best_fact():
    from parlai.core.metrics import F1Metric

    reply = "The museum opens at nine on Mondays"
    facts = ["museum | opens | nine", "museum | phone | 01223"]
    assert metrics.knowledge_f1(reply, facts) == pytest.approx(F1Metric.compute(reply, facts).value())
    assert metrics.knowledge_f1(reply, []) is None
    assert metrics.knowledge_f1("故宫门票60元", ["故宫 | 门票 | 60"]) == pytest.approx(2 * 5 / 6 * 1 / (5 / 6 + 1))


def test_recall_counts_gold_facts_or_entities_among_the_retrieved():
    hits = [stores.Entry("a | b | c", "a"), stores.Entry("d | e | f", "d")]
    assert metrics.recall_at_k(hits, ["a | b | c", "x | y | z"]) == 0.5
    assert metrics.recall_at_k(hits, (), ["d"]) == 1.0
    assert metrics.recall_at_k(hits) is None


def test_entity_mentions_are_found_longest_first():
    index = metrics.EntityIndex(["故宫", "故宫博物院", "北京饭店", "京"])
    assert index.mentions("去故宫博物院，再回北京饭店") == ["故宫博物院", "北京饭店"]
    assert not index.names_one("一家不存在的大酒店")


# --- teachers -------------------------------------------------------------------------------------


def served(task, datatype="valid", **overrides):
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    opt = ParlaiParser(True, False).parse_kwargs(task=task, datatype=datatype, **overrides)
    teacher = create_task_agent_from_taskname(opt)[0]
    return [teacher.act() for _ in range(teacher.num_examples())]


def label(message) -> str:
    return (message.get("labels") or message["eval_labels"])[0]


def test_qa_modes_serve_the_same_examples_with_different_knowledge():
    by_mode = {mode: served(f"dialogft_qa:speaker=second:knowledge={mode}") for mode in ("none", "gold", "retrieved")}
    labels = [label(m) for m in by_mode["none"]]
    assert all([label(m) for m in messages] == labels for messages in by_mode.values())
    assert not any(context.has_knowledge(m["text"]) for m in by_mode["none"])
    for plain, gold, retrieved in zip(*by_mode.values()):
        facts = [f for f in plain["knowledge"].split("\n") if f]
        assert gold["text"] == context.with_knowledge(plain["text"], facts)
        assert context.strip_knowledge(retrieved["text"]) == plain["text"]
        assert len(retrieved["text"].split("\n")) - len(plain["text"].split("\n")) <= 3
    recall = [m["knowledge_recall"] for m in by_mode["retrieved"] if "knowledge_recall" in m]
    assert len(recall) == sum(bool(m["knowledge"]) for m in by_mode["none"]) > 100
    # Far above chance (3 of the store's thousands of triples), below all: which attribute of
    # the entity the answer uses is often not in the question.
    assert 0.1 < sum(recall) / len(recall) < 1


def test_the_old_true_false_spellings_still_work():
    assert [m["text"] for m in served("dialogft_qa:knowledge=true")] == [m["text"] for m in served("dialogft_qa:knowledge=gold")]
    with pytest.raises(UserError, match="--qa-knowledge must be one of none, gold, retrieved"):
        served("dialogft_qa:knowledge=maybe")


def test_crosswoz_gold_is_the_entities_the_reply_names():
    messages = served("dialogft_customer:lang=zh:knowledge=gold")
    named = [m for m in messages if m.get("knowledge_entities")]
    assert len(named) > 100
    # The acts annotate the reply: the names they give are in the reply's text (turns aligned).
    said = sum(all(name in label(m) for name in m["knowledge_entities"].split("\n")) for m in named)
    assert said / len(named) > 0.9, said / len(named)
    crosswoz = {e.entity: e.text for e in stores.load_store("crosswoz").entries}
    for m in named:
        first = m["knowledge_entities"].split("\n")[0]
        assert m["text"].split("\n")[0] == context.PREFIX + crosswoz[first]


def test_every_crosswoz_mode_is_scored_against_the_same_gold():
    by_mode = {mode: served(f"dialogft_customer:lang=zh:knowledge={mode}") for mode in ("none", "gold", "retrieved")}
    gold = [(m["knowledge"], m.get("knowledge_entities")) for m in by_mode["gold"]]
    assert any(k for k, _ in gold)
    assert all([(m["knowledge"], m.get("knowledge_entities")) for m in by_mode[mode]] == gold for mode in by_mode)


def test_gold_knowledge_is_refused_where_there_is_none():
    with pytest.raises(UserError, match="--customer-knowledge gold: only CrossWOZ"):
        served("dialogft_customer:lang=en:knowledge=gold")


def test_a_teacher_takes_knowledge_top_k_whatever_the_agent():
    """The teachers read --knowledge-top-k, so they register it: not only dialogft_agent."""
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser
    from parlai.core.worlds import create_task

    args = ["-t", "dialogft_qa:knowledge=retrieved", "-dt", "valid", "--knowledge-top-k", "2"]
    opt = ParlaiParser(True, True).parse_args([*args, "-m", "repeat_label"])
    world = create_task(opt, create_agent(opt))
    counts = []
    for _ in range(8):
        world.parley()
        counts.append(sum(line.startswith(context.PREFIX) for line in world.get_acts()[0]["text"].split("\n")))
    assert counts == [2] * 8

    # With dialogft_agent as well: the agent's own knowledge flags join the teacher's.
    opt = ParlaiParser(True, True).parse_args([*args, "-m", "dialogft_agent", "--knowledge-retriever", "bm25"])
    assert (opt["knowledge_top_k"], opt["knowledge_retriever"]) == (2, "bm25")


def test_the_knowledge_flags_are_added_once_whoever_asks_first():
    import argparse

    from parlai_dialogft.knowledge.options import add_knowledge_args

    parser = argparse.ArgumentParser()  # refuses a flag added twice, unlike ParlAI's parser
    add_knowledge_args(parser, retrieval=False)  # a teacher's
    add_knowledge_args(parser, retrieval=True)  # the agent's
    add_knowledge_args(parser, retrieval=False)  # another teacher's, in a multitask run
    opt = vars(parser.parse_args(["--knowledge-top-k", "2", "--knowledge-file", "faq.jsonl"]))
    assert opt == {"knowledge_top_k": 2, "knowledge_retriever": "none", "knowledge_file": "faq.jsonl"}


# --- the agent ----------------------------------------------------------------------------------------


def test_the_agent_retrieves_for_each_turn_and_keeps_only_the_newest_knowledge(tiny_models, tmp_path):
    from parlai.core.message import Message

    faq = tmp_path / "faq.jsonl"
    faq.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in
                           [("where is the hotel", "in the centre"), ("when is breakfast", "at seven")]))
    agent = make_agent(tiny_models["t5"], knowledge_retriever="bm25", knowledge_file=str(faq), knowledge_top_k=1)
    observed = agent.observe(Message({"text": "where is your hotel ?", "episode_done": False}))
    assert observed["text"] == context.with_knowledge("where is your hotel ?", ["where is the hotel | in the centre"])
    agent.act()
    agent.observe(Message({"text": "and breakfast ?", "episode_done": False}))
    strings = agent.history.history_strings
    assert strings[0] == "where is your hotel ?"  # the first turn lost its knowledge
    assert strings[-1] == context.with_knowledge("and breakfast ?", ["when is breakfast | at seven"])
    assert agent.history.history_vecs[0] == agent.history.parse("where is your hotel ?")

    # A teacher's own knowledge is left alone.
    agent.reset()
    given = context.with_knowledge("where is your hotel ?", ["gold fact"])
    assert agent.observe(Message({"text": given, "episode_done": True}))["text"] == given


def test_a_pairs_file_in_the_user_file_teacher_s_shapes_is_a_faq_store(tiny_models, tmp_path):
    """The pairs file a model was trained on (prompt/response, input/output, chat messages)."""
    from parlai.core.message import Message

    qa = [("where is the hotel", "in the centre"), ("when is breakfast", "at seven")]
    faq = tmp_path / "faq.jsonl"
    faq.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in qa))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": qa[0][0], "response": qa[0][1]}) + "\n"
                     + json.dumps({"messages": [{"role": "user", "content": qa[1][0]},
                                                {"role": "assistant", "content": qa[1][1]}]}) + "\n")
    in_out = tmp_path / "io.jsonl"
    in_out.write_text("".join(json.dumps({"input": q, "output": a}) + "\n" for q, a in qa))
    expected = stores.load_store(str(faq)).entries
    assert expected == (stores.Entry("where is the hotel | in the centre", "where is the hotel"),
                        stores.Entry("when is breakfast | at seven", "when is breakfast"))
    assert stores.load_store(str(pairs)).entries == stores.load_store(str(in_out)).entries == expected

    agent = make_agent(tiny_models["t5"], knowledge_retriever="bm25", knowledge_file=str(pairs), knowledge_top_k=1)
    observed = agent.observe(Message({"text": "and breakfast ?", "episode_done": False}))
    assert observed["text"] == context.with_knowledge("and breakfast ?", ["when is breakfast | at seven"])


def test_the_agent_needs_a_store_for_its_retriever(tiny_models):
    with pytest.raises(UserError, match="--knowledge-retriever bm25 needs --knowledge-file"):
        make_agent(tiny_models["t5"], knowledge_retriever="bm25")


@pytest.mark.parametrize("mode", ["none", "retrieved"])
def test_eval_model_reports_the_knowledge_metrics(tiny_models, tmp_path, mode):
    from parlai.scripts.eval_model import EvalModel

    report = EvalModel.main(task=f"dialogft_customer:lang=zh:knowledge={mode}", model="dialogft_agent",
                            hf_model=tiny_models["t5"], datatype="test", num_examples=24, batchsize=8,
                            skip_generation=False, datapath=str(tmp_path), label_truncate=8)
    for name in ("knowledge_f1", "entity_exists", "f1"):
        assert name in report, sorted(report)
    if mode == "retrieved":
        assert 0 < float(report["knowledge_recall@3"]) <= 1
    else:
        assert "knowledge_recall@3" not in report
