"""End to end in headless Chromium: workers click and type through the real pages.

One worker opens their link, passes the practice round and judges a pairwise task; another
chats with a tiny trained model served through the plugin, marks each reply and rates it; a
third judges which next reply is better, by keyboard, and their choices become DPO pairs.
Each sees a completion code, and what they did is read back from the SQLite file.
"""

from __future__ import annotations

import json

import pytest

from parlai_dialogft.human_eval.db import chat_records, pairwise_records, turn_records
from parlai_dialogft.human_eval.preferences import export_preferences
from parlai_dialogft.human_eval.qc import BROKEN_TURN
from tests.support.browser import Browser
from tests.support.human_eval import (
    link_worker,
    onboarding_pairings,
    start_url,
    study,
    task_pairings,
    turn_items,
    turn_onboarding,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def side_is_nonsense(browser, side):
    texts = browser.js(f"Array.from(document.querySelectorAll('#{side} li.evaluated .text')).map(n => n.textContent)")
    return all(t in (BROKEN_TURN, "me me me me") for t in texts)


def test_a_worker_passes_onboarding_and_completes_a_pairwise_task_in_chromium(tmp_path, browser):
    with study(tmp_path, onboarding_pairings() + task_pairings(), comparisons_per_task=3, checks_per_task=1) as s:
        worker, token = link_worker(s)
        browser.open(start_url(s.url, worker=worker, token=token))
        assert browser.state_is("onboarding") == "onboarding"
        assert browser.js("location.hash") == ""  # the session left the address bar
        assert browser.text("#question") == "Who would you prefer to talk to for a long conversation?"
        assert browser.text("#choice-left-text") == "I would prefer to talk to Speaker 1"
        labels = browser.js("Array.from(document.querySelectorAll('#left li.evaluated .who')).map(n => n.textContent)")
        assert labels and set(labels) == {"Speaker 1"}

        seen, typed = [], []
        while browser.state_is("onboarding", "pairwise", "done") != "done":
            progress = browser.text("#progress")
            seen.append((browser.js("document.body.dataset.state"), progress))
            side = "right" if side_is_nonsense(browser, "left") else "left"
            browser.click(f"#choice-{side}")
            assert browser.js("document.getElementById('submit').disabled")  # no justification yet
            why = f"speaker on the {side} answers the questions ({len(seen)})"
            browser.type("#justification", why)
            typed.append(why)
            browser.wait_for("!document.getElementById('submit').disabled")
            browser.click("#submit")
            browser.wait_for(f"document.body.dataset.state === 'done' || "
                             f"document.getElementById('progress').textContent !== {json.dumps(progress)}")

        assert seen == [("onboarding", "Practice 1 of 2"), ("onboarding", "Practice 2 of 2"),
                        ("pairwise", "Comparison 1 of 4"), ("pairwise", "Comparison 2 of 4"),
                        ("pairwise", "Comparison 3 of 4"), ("pairwise", "Comparison 4 of 4")]
        code = browser.text("#done-code")
        assert s.db.rows("SELECT completion_code, onboarding FROM workers WHERE worker_id = ?", (worker,)) == [
            {"completion_code": code, "onboarding": "passed"}]
        records = pairwise_records(s.path)
        assert [r["justification"] for r in records] == typed
        assert [r["is_onboarding"] for r in records] == [True, True, False, False, False, False]
        assert all(r["passed_check"] for r in records if r["is_onboarding"] or r["is_attention_check"])
        assert sum(r["is_attention_check"] for r in records) == 1 and {r["worker_id"] for r in records} == {worker}


def better_reply_key(browser):
    """"1" or "2": the reply that is not nonsense (the practice items) and not the curt "ok. ..." one."""
    left, right = browser.text("#left"), browser.text("#right")
    worse = left if any(w in left for w in ("purple", "banana")) or left.startswith("ok. ") else right
    return "2" if worse == left else "1"


def test_a_worker_judges_which_next_reply_is_better_by_keyboard_and_the_choices_become_dpo_pairs(tmp_path,
                                                                                                 browser):
    with study(tmp_path, turn_pairs=turn_onboarding() + turn_items(("tea", "jazz")), comparisons_per_task=2,
               checks_per_task=0) as s:
        worker, token = link_worker(s)
        browser.open(start_url(s.url, worker=worker, token=token, task="turns"))
        assert browser.state_is("onboarding") == "onboarding"
        assert browser.js("location.hash") == "" and browser.js("location.pathname") == "/turns"
        assert browser.focused() == "context-heading"  # keyboard users start at the conversation
        assert browser.text("#question") == "Which reply is the better next message in this conversation?"

        seen, chosen = [], []
        while browser.state_is("onboarding", "turns", "done") != "done":
            progress = browser.text("#progress")
            seen.append(progress)
            context = browser.js("Array.from(document.querySelectorAll('#context li')).map(n => n.className)")
            assert context and context[-1] == "user"  # the replies answer the newest turn, the user's
            key = better_reply_key(browser)
            browser.press(key)  # 1 or 2 chooses a reply
            assert browser.js(f"document.getElementById('choice-{'left' if key == '1' else 'right'}').checked")
            assert browser.js("document.getElementById('submit').disabled")  # a reason is still needed
            browser.type("#justification", "short")
            assert browser.js("document.getElementById('submit').disabled")  # under 10 characters
            browser.js("document.getElementById('justification').value = ''")
            why = f"it answers the person ({len(seen)})"
            browser.type("#justification", why)
            browser.press("2")  # typing in the reason never changes the choice
            assert browser.js("document.getElementById('justification').value") == why + "2"
            assert browser.js(f"document.getElementById('choice-{'left' if key == '1' else 'right'}').checked")
            browser.wait_for("!document.getElementById('submit').disabled")
            chosen.append(browser.text("#left" if key == "1" else "#right"))
            browser.js("document.getElementById('submit').focus()")
            browser.press("Enter")  # submits the form, as Enter on a focused button does
            browser.wait_for(f"document.body.dataset.state === 'done' || "
                             f"document.getElementById('progress').textContent !== {json.dumps(progress)}")

        assert seen == ["Practice 1 of 2", "Practice 2 of 2", "Item 1 of 2", "Item 2 of 2"]
        assert s.db.rows("SELECT completion_code, turn_onboarding FROM workers WHERE worker_id = ?", (worker,)) == [
            {"completion_code": browser.text("#done-code"), "turn_onboarding": "passed"}]
        records = turn_records(s.path)
        assert [r["is_onboarding"] for r in records] == [True, True, False, False]
        assert all(r["passed_check"] for r in records[:2])
        assert [r[r["winner"]]["text"] for r in records] == chosen

        out = tmp_path / "prefs.jsonl"
        summary = export_preferences(s.path, out)
        assert (summary.written, summary.ties, summary.no_judgments) == (2, 0, 0)
        assert [json.loads(line) for line in out.read_text().splitlines()] == [
            {"prompt": [{"role": "user", "content": "hello there"},
                        {"role": "assistant", "content": "hi! what do you like?"},
                        {"role": "user", "content": f"I like {topic}"}],
             "chosen": [{"role": "assistant", "content": f"I love {topic} too; what got you into it?"}],
             "rejected": [{"role": "assistant", "content": f"ok. {topic}."}]}
            for topic in ("jazz", "tea")]  # ordered by item id


@pytest.fixture(scope="module")
def tiny_model_file(tiny_models, tmp_path_factory):
    from tests.support.agents import train_briefly

    root = tmp_path_factory.mktemp("human_eval_model")
    mf = str(root / "m" / "model")
    train_briefly(tiny_models["gpt2"], mf, str(root / "data"), steps=2, label_truncate=16)
    return mf


def test_a_worker_chats_with_a_served_model_marks_replies_and_rates_it_in_chromium(tmp_path, browser,
                                                                                   tiny_model_file):
    from parlai.core.agents import create_agent_from_model_file

    from parlai_dialogft.human_eval.live_chat import ServedModel

    model = ServedModel(create_agent_from_model_file(tiny_model_file, {"interactive_mode": True,
                                                                       "datatype": "valid"}))
    try:
        with study(tmp_path, models={"tiny": model}, chat_turns=2) as s:
            worker, token = link_worker(s)
            browser.open(start_url(s.url, worker=worker, token=token, task="chat"))
            assert browser.state_is("chat") == "chat"
            assert browser.js("document.getElementById('problems').hidden")  # nothing to mark yet
            said = ["hello , how can I help you today ?", "I would like to book a table for two at seven ."]
            browser.type("#chat-input", said[0])
            browser.click("#send")
            browser.wait_for("document.querySelectorAll('#messages li').length === 2 && "
                             "document.body.dataset.state === 'chat'")
            assert not browser.js("document.getElementById('problems').hidden")
            browser.type("#chat-input", said[1])
            browser.click("#send")  # refused on the page: the reply is not marked yet
            assert "First tick the problems" in browser.text("#message")
            browser.click("#problem-repetition")
            browser.click("#problem-nonsense")
            browser.click("#send")
            assert browser.state_is("rating") == "rating"
            browser.click("#problem-off_topic")
            browser.click("#problem-none")  # "none" unticks the others
            assert browser.js("document.getElementById('problem-off_topic').checked") is False
            ratings = {"engagingness": 2, "humanness": 1, "fluency": 3, "consistency": 4}
            for key, value in ratings.items():
                browser.click(f"#rating-{key}-{value}")
            browser.click("#finish")
            assert browser.state_is("done") == "done"
            code = browser.text("#done-code")
            shown = browser.js("Array.from(document.querySelectorAll('#messages li .text')).map(n => n.textContent)")

            (record,) = chat_records(s.path)
            assert record["worker_id"] == worker and record["model"] == "tiny" and record["turns"] == 2
            assert record["bot_turn_problems"] == [["repetition", "nonsense"], ["none"]]
            assert record["ratings"] == ratings
            turns = s.db.rows("SELECT speaker, text FROM chat_turns ORDER BY idx")
            assert [t["text"] for t in turns if t["speaker"] == "human"] == said
            assert s.db.rows("SELECT completion_code FROM workers WHERE worker_id = ?", (worker,)) == [
                {"completion_code": code}]
        # what the page showed is what the served model says to that conversation
        bot = [t["text"] for t in turns if t["speaker"] == "bot"]
        assert shown[:3] == [said[0], bot[0], said[1]]
        assert model([{"role": "user", "content": said[0]}]) == bot[0]
        assert model([{"role": "user", "content": said[0]}, {"role": "assistant", "content": bot[0]},
                      {"role": "user", "content": said[1]}]) == bot[1]
    finally:
        model.close()
