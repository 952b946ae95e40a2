"""Feedback from deployment becomes preference data.

The specs: a client asks `dialogft_serve` for several drafts (`n`) and gets distinct
choices, each with its index (the best beam hypotheses, or samples when it asks to sample);
it names the draft it chose in `POST /v1/feedback`; the log keeps every draft; and
`parlai dialogft_log_preferences` writes TRL's conversational preference files from it:
the chosen draft against each other one (`paired.jsonl`, DPO), thumbs as labelled
completions (`unpaired.jsonl`, KTO). A log from before drafts (schema version 1) migrates
and keeps its rows. Mistakes get a 400 naming the field.

The served model answers each sentence with the next one (conftest's `context_models`),
so its hypotheses depend on what it reads.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request

import pytest

from parlai_dialogft.serving.preferences import EQUAL_DRAFTS, LATER_CHOICE, LATER_RATING, ONE_DRAFT, export_preferences
from parlai_dialogft.serving.store import SCHEMA_VERSION, ConversationStore, NoSuchDraft
from tests.support.agents import make_agent
from tests.support.files import read_jsonl
from tests.support.models import TEXTS
from tests.support.schemas import SERVING_LOG_V1_SCHEMA
from tests.support.serving import chat, contents, feedback, log_preferences, serving_hf_model

SYSTEM = {"role": "system", "content": "you work at a restaurant"}
HELLO = [SYSTEM, {"role": "user", "content": TEXTS[0]}]


# --- a server on the context model, spoken to over HTTP ----------------------------------------


@pytest.fixture(scope="module")
def server(context_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("preferences")
    with serving_hf_model(context_models["gpt2"], str(root / "log.db"), str(root / "data")) as s:
        yield s


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# --- several drafts in one request ---------------------------------------------------------------


def test_n_drafts_are_the_best_distinct_hypotheses_of_a_beam_search(server, context_models):
    one = chat(server.url, HELLO)
    two = chat(server.url, HELLO, n=2)
    assert [c["index"] for c in two["choices"]] == [0, 1]
    assert len(set(contents(two))) == 2, contents(two)
    # what ParlAI's own beam search of width 2 finds, best first
    agent = make_agent(context_models["gpt2"], inference="beam", beam_size=2, label_truncate=24,
                       interactive_mode=True, datatype="valid")
    act = agent.batch_act([agent.clone().observe({"text": "\n".join(m["content"] for m in HELLO),
                                                  "episode_done": True})])[0]
    assert contents(two) == [text for text, _score in act["beam_texts"][:2]]
    # one draft is the model's own (greedy) decoding, as before
    assert contents(one) == [chat(server.url, HELLO, temperature=0)["choices"][0]["message"]["content"]]


def test_sampled_drafts_differ_and_come_back_as_indexed_choices(server):
    reply = chat(server.url, HELLO, n=4, temperature=2.0)
    drafts = contents(reply)
    assert [c["index"] for c in reply["choices"]] == list(range(len(drafts)))
    assert 2 <= len(drafts) <= 4 and len(set(drafts)) == len(drafts), drafts  # samples, never duplicates
    # temperature asks to sample: one draft at a time, the replies differ too
    alone = {contents(chat(server.url, HELLO, temperature=2.0))[0] for _ in range(6)}
    assert len(alone) >= 2, alone


def test_drafts_that_read_the_same_come_back_once(server):
    # top_p this small keeps only the likeliest token: four samples, one text
    reply = chat(server.url, HELLO, n=4, top_p=0.01)
    assert len(contents(reply)) == 1 and reply["choices"][0]["index"] == 0, contents(reply)


def test_streamed_drafts_are_each_choice_s_chunks(server):
    whole = contents(chat(server.url, HELLO, n=2))
    status, text = post(server.url + "/v1/chat/completions", {"model": "m", "messages": HELLO, "n": 2, "stream": True})
    assert status == 200, text
    events = [line[len("data: "):] for line in text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    streamed = {}
    for event in map(json.loads, events[:-1]):
        (choice,) = event["choices"]
        streamed[choice["index"]] = streamed.get(choice["index"], "") + choice["delta"].get("content", "")
    assert [streamed[i] for i in sorted(streamed)] == whole


# --- from a choice and thumbs to preference files --------------------------------------------------


def test_a_chosen_draft_and_thumbs_become_trl_preference_records(server, tmp_path):
    two = chat(server.url, HELLO, n=2)
    assert feedback(server.url, id=two["id"], choice=1)["choice"] == 1
    liked = chat(server.url, [{"role": "developer", "content": "be brief"}, {"role": "user", "content": TEXTS[2]}])
    feedback(server.url, id=liked["id"], rating="up")
    disliked = chat(server.url, [{"role": "user", "content": TEXTS[3]}], n=2)
    feedback(server.url, id=disliked["id"], rating="down", choice=1)  # thumbs on draft 1, chosen

    with sqlite3.connect(server.log_db) as db:
        logged = db.execute("SELECT choice_index, content FROM drafts WHERE reply_id = ? ORDER BY choice_index",
                            (two["id"],)).fetchall()
    assert logged == list(enumerate(contents(two)))  # every draft, in the response's order

    status, output = log_preferences(server.log_db, str(tmp_path))
    assert status == 0, output
    paired = [r for r in read_jsonl(tmp_path / "paired.jsonl") if r["prompt"] == HELLO]
    assert paired[-1] == {"prompt": HELLO,
                          "chosen": [{"role": "assistant", "content": contents(two)[1]}],
                          "rejected": [{"role": "assistant", "content": contents(two)[0]}]}
    unpaired = read_jsonl(tmp_path / "unpaired.jsonl")
    assert {"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": TEXTS[2]}],
            "completion": [{"role": "assistant", "content": contents(liked)[0]}], "label": True} in unpaired
    assert {"prompt": [{"role": "user", "content": TEXTS[3]}],
            "completion": [{"role": "assistant", "content": contents(disliked)[1]}], "label": False} in unpaired
    assert "paired.jsonl: " in output and "unpaired.jsonl: " in output and "(1 up, 1 down)" in output


def test_the_export_skips_equal_pairs_and_replaced_feedback_and_says_so(tmp_path, capsys):
    from parlai_dialogft.scripts.dialogft_log_preferences import DialogftLogPreferences

    log = str(tmp_path / "log.db")
    store = ConversationStore(log, retention_days=0)
    ask = [{"role": "user", "content": "a table for two"}]
    store.log_reply("a", "m", ask, "at seven?", "stop", 5, 9, 0.1,
                    [("at seven?", "stop", 3), ("at  seven? ", "stop", 3), ("which day?", "stop", 3)])
    store.log_reply("b", "m", ask, "ok", "stop", 5, 1, 0.1)
    assert store.add_feedback("a", None, choice=2) and store.add_feedback("a", None, choice=0)  # the latter counts
    assert store.add_feedback("b", None, choice=0)  # one draft: nothing passed over
    assert store.add_feedback("b", "up") and store.add_feedback("b", "down")  # the latter counts
    store.close()

    summary = DialogftLogPreferences.main(serve_log=log, out_dir=str(tmp_path / "out"))
    paired = read_jsonl(tmp_path / "out" / "paired.jsonl")
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in paired] == [("at seven?", "which day?")]
    assert [(r["completion"][0]["content"], r["label"]) for r in read_jsonl(tmp_path / "out" / "unpaired.jsonl")] \
        == [("ok", False)]
    assert dict(summary.skipped) == {EQUAL_DRAFTS: 1, LATER_CHOICE: 1, ONE_DRAFT: 1, LATER_RATING: 1}
    printed = capsys.readouterr().out
    assert "paired.jsonl: 1 records" in printed and f"skipped: 1 {EQUAL_DRAFTS}" in printed


def test_a_missing_log_is_one_line_naming_the_flag(tmp_path, capsys):
    from parlai_dialogft.scripts.dialogft_log_preferences import DialogftLogPreferences

    with pytest.raises(SystemExit) as stop:
        DialogftLogPreferences.main(serve_log=str(tmp_path / "nope.db"), out_dir=str(tmp_path / "out"))
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == f"dialogft_log_preferences: --serve-log {tmp_path / 'nope.db'}: no such file"


# --- a log from before drafts --------------------------------------------------------------------


def test_a_version_1_log_migrates_keeps_its_rows_and_exports_its_thumbs(tmp_path):
    path = str(tmp_path / "v1.db")
    messages = json.dumps([{"role": "user", "content": "hi"}])
    with sqlite3.connect(path) as db:
        db.executescript(SERVING_LOG_V1_SCHEMA)
        db.execute("INSERT INTO replies VALUES ('r1', 1.0, 'm', ?, 'hello', 'stop', 3, 1, 0.2)", (messages,))
        db.execute("INSERT INTO feedback (reply_id, created, rating, comment) VALUES ('r1', 2.0, 'up', 'nice')")
        db.execute("PRAGMA user_version = 1")

    store = ConversationStore(path, retention_days=0)
    assert store.aggregates() == {"replies": 1, "feedback_up": 1, "feedback_down": 0}
    assert store.reply("r1")["reply"] == "hello"
    with pytest.raises(NoSuchDraft):  # version 1 replies have one draft: theirs
        store.add_feedback("r1", None, choice=1)
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert db.execute("SELECT reply_id, choice_index, content, call, call_result FROM drafts").fetchall() == [
            ("r1", 0, "hello", "", "")]  # version 3's columns: no call was logged then
        assert db.execute("SELECT rating, comment, choice_index FROM feedback").fetchall() == [("up", "nice", 0)]

    summary = export_preferences(path, str(tmp_path / "out"))
    assert read_jsonl(tmp_path / "out" / "unpaired.jsonl") == [
        {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "hello"}],
         "label": True}]
    assert summary.paired == 0 and read_jsonl(tmp_path / "out" / "paired.jsonl") == []


# --- mistakes: a 400 naming the field -------------------------------------------------------------


@pytest.mark.parametrize("path,body,status,param,says", [
    ("/v1/chat/completions", {"messages": HELLO, "n": 5}, 400, "n", "n: 5 drafts"),
    ("/v1/chat/completions", {"messages": HELLO, "n": 0}, 400, "n", "n: Input should be greater"),
    ("/v1/chat/completions", {"messages": HELLO, "temperature": 3}, 400, "temperature", "temperature:"),
    ("/v1/chat/completions", {"messages": HELLO, "top_p": 0}, 400, "top_p", "top_p:"),
    ("/v1/feedback", {"id": "ID", "choice": 2}, 400, "choice", "choice: the reply has 2 draft(s)"),
    ("/v1/feedback", {"id": "ID", "choice": -1}, 400, "choice", "choice: Input should be greater"),
    ("/v1/feedback", {"id": "ID", "choice": "first"}, 400, "choice", "choice:"),
    ("/v1/feedback", {"id": "ID"}, 400, None, "give 'rating'"),
    ("/v1/feedback", {"id": "chatcmpl-none", "choice": 0}, 404, "id", "no logged reply"),
])
def test_a_wrong_n_or_choice_gets_an_error_naming_the_field(server, path, body, status, param, says):
    if body.get("id") == "ID":
        body = {**body, "id": chat(server.url, HELLO, n=2)["id"]}
    got, text = post(server.url + path, body)
    assert got == status, text
    error = json.loads(text)["error"]
    assert error["param"] == param and says in error["message"], error
