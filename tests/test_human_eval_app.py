"""The human-evaluation app over HTTP: ACUTE tasks, quality control, recruitment, live chat, admin.

Each test runs a real uvicorn server on 127.0.0.1 over a real SQLite file and speaks to it as
a worker's page does; what lands in the database is read back through the functions the
analysis uses (``pairwise_records``, ``chat_records``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from parlai_dialogft.human_eval.db import chat_records, pairwise_records
from parlai_dialogft.human_eval.qc import BROKEN_TURN
from tests.support.human_eval import (
    ADMIN,
    http,
    link_worker,
    onboarding_pairings,
    pairing,
    session_of,
    start_url,
    study,
    task_pairings,
)
from tests.support.processes import parlai_server

PAIRWISE_KEYS = {"judgment_id", "worker_id", "pair_id", "question", "model_a", "model_b", "winner", "left_model",
                 "justification", "duration_s", "is_onboarding", "is_attention_check", "passed_check"}
CHAT_KEYS = {"chat_id", "worker_id", "model", "turns", "bot_turn_problems", "ratings", "duration_s"}
WHY = "the highlighted speaker was clearly better"


def left_model_of(s, assignment_id):
    with sqlite3.connect(s.path) as db:
        return db.execute("SELECT left_model FROM assignments WHERE assignment_id = ?", (assignment_id,)).fetchone()[0]


def nonsense(side):
    return any(turn["evaluated"] and turn["text"] in (BROKEN_TURN, "me me me me") for turn in side)


def sensible_choice(shown):
    """What a careful worker answers: never the side whose speaker talks nonsense, else left."""
    return "right" if nonsense(shown["left"]) else "left"


def answer(s, session, choose=sensible_choice, justification=WHY):
    status, _, shown = http(s.url + "/api/pairwise/next", session=session)
    assert status == 200, shown
    if shown["stage"] not in ("onboarding", "task"):
        return shown, None
    status, _, result = http(s.url + f"/api/pairwise/{shown['assignment_id']}", "POST",
                             {"choice": choose(shown), "justification": justification}, session=session)
    assert status == 200, result
    return shown, result


def work_through(s, session, choose=sensible_choice, limit=50):
    """Answer until the worker's stage is no longer a comparison; the comparisons shown, the last stage."""
    shown_all = []
    for _ in range(limit):
        shown, result = answer(s, session, choose)
        if result is None:
            return shown_all, shown
        shown_all.append(shown)
        if result.get("stage") == "blocked":
            return shown_all, result
    raise AssertionError("the task never ended")


# --- ACUTE-Eval tasks ---------------------------------------------------------------------------


def test_a_worker_passes_onboarding_then_judges_n_comparisons_with_one_attention_check(tmp_path):
    with study(tmp_path, onboarding_pairings() + task_pairings(), comparisons_per_task=4, checks_per_task=1) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        shown, end = work_through(s, session)
        assert [x["stage"] for x in shown] == ["onboarding"] * 2 + ["task"] * 5
        assert [x["total"] for x in shown] == [2, 2] + [5] * 5 and [x["number"] for x in shown[2:]] == [1, 2, 3, 4, 5]
        assert end == {"stage": "done", "tasks_done": 1, "more_available": False}
        status, _, code = http(s.url + "/api/done", session=session)
        assert status == 200 and code["platform"] == "link" and len(code["code"]) == 8

        records = pairwise_records(s.path)
        assert all(set(r) == PAIRWISE_KEYS for r in records)
        assert [r["is_onboarding"] for r in records] == [True, True] + [False] * 5
        assert all(r["passed_check"] for r in records if r["is_onboarding"] or r["is_attention_check"])
        assert sum(r["is_attention_check"] for r in records) == 1
        real = [r for r in records if not r["is_onboarding"] and not r["is_attention_check"]]
        assert len(real) == 4 and all(r["passed_check"] is None for r in real)
        for r in records:
            assert r["worker_id"] == worker and r["question"] == "engagingness" and r["justification"] == WHY
            assert r["model_a"] < r["model_b"] and r["winner"] in (r["model_a"], r["model_b"])
            assert r["winner"] == r["left_model"] or r["is_onboarding"] or r["is_attention_check"]
            assert r["duration_s"] >= 0


def test_the_page_never_learns_model_names_and_sides_are_random(tmp_path):
    models = ("alpha", "beta", "gamma")
    with study(tmp_path, task_pairings(), comparisons_per_task=6, checks_per_task=0) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        shown, _ = work_through(s, session)
        for comparison in shown:
            text = repr(comparison).lower()
            assert not any(m in text for m in models), comparison
        lefts = [r["left_model"] == r["model_a"] for r in pairwise_records(s.path)]
        assert len(lefts) == 6 and set(lefts) == {True, False}  # both orders occur


def test_a_worker_never_sees_the_same_pair_twice_across_tasks_and_pairs_are_spread(tmp_path):
    with study(tmp_path, task_pairings(), comparisons_per_task=2, checks_per_task=0, tasks_per_worker=5) as s:
        sessions = []
        for _ in range(3):
            worker, token = link_worker(s)
            sessions.append((worker, session_of(s.url, worker=worker, token=token)))
        for worker, session in sessions:
            for _task in range(5):
                _, end = work_through(s, session)
                if not end.get("more_available"):
                    break
                status, _, more = http(s.url + "/api/pairwise/next?more=1", session=session)
                assert status == 200 and more["stage"] == "task", more
        records = pairwise_records(s.path)
        for worker, _ in sessions:
            pairs = [r["pair_id"] for r in records if r["worker_id"] == worker]
            assert len(pairs) == 6 and len(set(pairs)) == 6  # all six pairings, each once: 3 tasks of 2
        assert len(records) == 18


def test_judgments_per_pair_caps_assignment_and_leaves_no_work(tmp_path):
    with study(tmp_path, task_pairings(("cats", "rivers", "chess")), comparisons_per_task=2, checks_per_task=0,
               judgments_per_pair=1) as s:
        first, second, third = (session_of(s.url, worker=w, token=t) for w, t in (link_worker(s) for _ in range(3)))
        work_through(s, first)
        shown, end = work_through(s, second)
        assert len(shown) == 1 and end["stage"] == "done"  # only the pairing the first worker did not get
        assert http(s.url + "/api/pairwise/next", session=third)[2] == {"stage": "no_work"}
        pairs = [r["pair_id"] for r in pairwise_records(s.path)]
        assert len(pairs) == 3 and len(set(pairs)) == 3


@pytest.mark.parametrize("hold_s,stage", [(3600.0, "no_work"), (0.0, "task")])
def test_a_worker_who_leaves_holds_a_pair_only_for_the_hold_time(tmp_path, hold_s, stage):
    with study(tmp_path, task_pairings(("cats",)), comparisons_per_task=1, checks_per_task=0, judgments_per_pair=1,
               hold_s=hold_s) as s:
        leaver, stayer = (session_of(s.url, worker=w, token=t) for w, t in (link_worker(s) for _ in range(2)))
        assert http(s.url + "/api/pairwise/next", session=leaver)[2]["stage"] == "task"  # then closes the tab
        assert http(s.url + "/api/pairwise/next", session=stayer)[2]["stage"] == stage


def test_several_questions_are_asked_in_turn(tmp_path):
    with study(tmp_path, task_pairings(), comparisons_per_task=4, checks_per_task=0,
               questions=("engagingness", "humanness")) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        status, _, me = http(s.url + "/api/me", session=session)
        assert me["questions"]["humanness"]["question"] == "Which speaker sounds more human?"
        shown, _ = work_through(s, session)
        assert [x["question"] for x in shown] == ["engagingness", "humanness"] * 2
        assert [r["question"] for r in pairwise_records(s.path)] == ["engagingness", "humanness"] * 2


# --- quality control ----------------------------------------------------------------------------


def test_failing_onboarding_blocks_the_worker_and_drops_their_judgments(tmp_path):
    with study(tmp_path, onboarding_pairings() + task_pairings(), onboarding_threshold=1.0) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        wrong = lambda shown: "left" if nonsense(shown["left"]) else "right"  # noqa: E731
        shown, result = answer(s, session, wrong)
        assert shown["stage"] == "onboarding" and result == {"recorded": True}
        _, result = answer(s, session, sensible_choice)  # one of two right: under the threshold of 1.0
        assert result == {"recorded": True, "stage": "blocked", "reason": "did not pass the onboarding"}
        assert http(s.url + "/api/pairwise/next", session=session)[2] == {
            "stage": "blocked", "reason": "did not pass the onboarding"}
        assert s.db.rows("SELECT worker_id, reason FROM blocklist") == [
            {"worker_id": worker, "reason": "did not pass the onboarding"}]
        assert s.db.rows("SELECT onboarding FROM workers WHERE worker_id = ?", (worker,)) == [{"onboarding": "failed"}]
        assert pairwise_records(s.path) == []
        assert len(pairwise_records(s.path, include_blocked=True)) == 2


def test_a_failed_attention_check_blocks_and_is_flagged(tmp_path):
    with study(tmp_path, task_pairings(), comparisons_per_task=3, checks_per_task=1, max_failed_checks=0) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        careless = lambda shown: "left" if nonsense(shown["left"]) else "right"  # noqa: E731
        shown, end = work_through(s, session, careless)
        assert end == {"recorded": True, "stage": "blocked", "reason": "failed 1 attention check(s)"}
        check = [r for r in pairwise_records(s.path, include_blocked=True) if r["is_attention_check"]]
        assert len(check) == 1 and check[0]["passed_check"] is False
        assert [f["kind"] for f in s.db.rows("SELECT kind FROM flags WHERE worker_id = ?", (worker,))] == ["failed_check"]
        status, _, refused = http(s.url + "/api/pairwise/next", session=session)
        assert refused["stage"] == "blocked"


def test_too_fast_or_unexplained_answers_are_refused_with_a_message(tmp_path):
    with study(tmp_path, task_pairings(), min_seconds=3600, min_justification_chars=15) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        shown = http(s.url + "/api/pairwise/next", session=session)[2]
        url = s.url + f"/api/pairwise/{shown['assignment_id']}"
        status, _, body = http(url, "POST", {"choice": "left", "justification": "short"}, session=session)
        assert status == 422 and body["error"] == "please explain your choice in at least 15 characters"
        status, _, body = http(url, "POST", {"choice": "left", "justification": WHY}, session=session)
        assert status == 422 and "please read both conversations" in body["error"] and "3600 s" in body["error"]
        status, _, body = http(url, "POST", {"choice": "middle", "justification": WHY}, session=session)
        assert status == 400 and "'left' or 'right'" in body["error"]
        assert pairwise_records(s.path) == []


def test_always_choosing_one_side_is_flagged_and_can_block(tmp_path):
    for block in (False, True):
        path = tmp_path / str(block)
        path.mkdir()
        with study(path, task_pairings(), comparisons_per_task=4, checks_per_task=0, block_uniform=block) as s:
            worker, token = link_worker(s)
            session = session_of(s.url, worker=worker, token=token)
            _, end = work_through(s, session, lambda shown: "left")
            flags = s.db.rows("SELECT kind, detail FROM flags")
            assert flags == [{"kind": "uniform_side", "detail": "chose the left side in all 4 comparisons of a task"}]
            assert end["stage"] == ("blocked" if block else "done")


def test_a_blocklist_entry_stops_a_worker_and_an_admin_can_lift_it(tmp_path):
    with study(tmp_path, task_pairings()) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        status, _, body = http(s.url + "/admin/api/blocklist", "POST", {"worker_id": worker, "reason": "spam"},
                               session=ADMIN)
        assert status == 200
        assert http(s.url + "/api/pairwise/next", session=session)[2] == {"stage": "blocked", "reason": "spam"}
        assert http(s.url + f"/admin/api/blocklist/{worker}", "DELETE", session=ADMIN)[0] == 200
        assert http(s.url + "/api/pairwise/next", session=session)[2]["stage"] == "task"
        assert http(s.url + f"/admin/api/blocklist/{worker}", "DELETE", session=ADMIN)[0] == 404


# --- recruitment --------------------------------------------------------------------------------


def test_platform_ids_become_workers_and_get_the_platform_s_code(tmp_path):
    codes = {"prolific": "C1AB2CD"}
    from parlai_dialogft.human_eval.recruit import RecruitSettings

    with study(tmp_path, task_pairings(), comparisons_per_task=1, checks_per_task=0,
               recruit=RecruitSettings(("prolific", "mturk"), codes)) as s:
        prolific = session_of(s.url, PROLIFIC_PID="5f1e2d3c4b5a", STUDY_ID="s1", SESSION_ID="x")
        mturk = session_of(s.url, workerId="A1B2C3", assignmentId="as1", hitId="h1")
        assert http(s.url + "/api/me", session=prolific)[2]["worker_id"] == "prolific:5f1e2d3c4b5a"
        assert http(s.url + "/api/me", session=mturk)[2]["worker_id"] == "mturk:A1B2C3"
        status, _, body = http(s.url + "/api/done", session=prolific)
        assert status == 409 and body["error"] == "not finished yet"
        work_through(s, prolific)
        work_through(s, mturk)
        assert http(s.url + "/api/done", session=prolific)[2] == {
            "code": "C1AB2CD", "platform": "prolific",
            "url": "https://app.prolific.com/submissions/complete?cc=C1AB2CD"}
        mturk_code = http(s.url + "/api/done", session=mturk)[2]
        assert mturk_code["platform"] == "mturk" and mturk_code["code"] != "C1AB2CD"
        assert http(s.url + "/api/done", session=mturk)[2] == mturk_code  # the same code every time
        stored = s.db.rows("SELECT completion_code FROM workers WHERE worker_id = 'mturk:A1B2C3'")
        assert stored == [{"completion_code": mturk_code["code"]}]
        # lab links are off in this study
        status, _, page = http(start_url(s.url, worker="w1", token="x"))
        assert status == 400 and "incomplete" in page


@pytest.mark.parametrize("params,status,says", [
    ({"worker": "KNOWN", "token": "wrong"}, 403, "this link is not valid"),
    ({"worker": "nobody", "token": "wrong"}, 403, "this link is not valid"),
    ({"worker": "KNOWN"}, 403, "this link is not valid"),
    ({}, 400, "this link is incomplete"),
    ({"PROLIFIC_PID": "a b<c>"}, 400, "PROLIFIC_PID is not a valid id"),
    ({"worker": "KNOWN", "token": "TOKEN", "task": "chat"}, 404, "this study has no &#x27;chat&#x27; task"),
])
def test_a_bad_start_link_gets_a_page_that_says_so(tmp_path, params, status, says):
    with study(tmp_path, task_pairings()) as s:
        worker, token = link_worker(s)
        params = {k: {"KNOWN": worker, "TOKEN": token}.get(v, v) for k, v in params.items()}
        got, head, page = http(start_url(s.url, **params))
        assert got == status and says in page and head["content-type"].startswith("text/html")


def test_admin_links_start_sessions(tmp_path):
    with study(tmp_path, task_pairings()) as s:
        status, _, body = http(s.url + "/admin/api/links", "POST", {"count": 2}, session=ADMIN)
        assert status == 200 and len(body["links"]) == 2
        url = body["links"][0]["url"]
        assert url.startswith(s.url + "/start?worker=")
        status, head, _ = http(url)
        assert status == 303 and head["location"].startswith("/work#s=")


# --- live chat ----------------------------------------------------------------------------------


class EchoModel:
    """A stand-in model: replies with how many messages it read (the real one is in the browser test)."""

    def __init__(self, name):
        self.name, self.calls = name, []

    def __call__(self, messages):
        self.calls.append(messages)
        return f"{self.name} read {len(messages)} messages"


def chat_once(s, session, texts, problems, ratings):
    chat = http(s.url + "/api/chat", session=session)[2]
    assert chat["stage"] == "chat" and chat["messages"] == []
    cid = chat["chat_id"]
    for i, text in enumerate(texts):
        body = {"text": text} if i == 0 else {"text": text, "problems": problems[i - 1]}
        status, _, reply = http(s.url + f"/api/chat/{cid}/message", "POST", body, session=session)
        assert status == 200, reply
    status, _, end = http(s.url + f"/api/chat/{cid}/finish", "POST", {"problems": problems[-1], "ratings": ratings},
                          session=session)
    assert status == 200, end
    return cid


RATINGS = {"engagingness": 4, "humanness": 2, "fluency": 5, "consistency": 3}


def test_a_live_chat_records_problems_per_bot_turn_and_ratings(tmp_path):
    models = {"m1": EchoModel("m1"), "m2": EchoModel("m2")}
    with study(tmp_path, models=models, chat_turns=3) as s:
        sessions = [session_of(s.url, worker=w, token=t, task="chat") for w, t in (link_worker(s) for _ in range(2))]
        problems = [["repetition", "nonsense"], ["none"], ["off_topic"]]
        first = chat_once(s, sessions[0], ["hello there friend", "what do you like", "tell me more please"],
                          problems, RATINGS)
        chat_once(s, sessions[1], ["good morning to you", "how is the weather", "that sounds quite nice"],
                  [["none"]] * 3, RATINGS)
        assert http(s.url + "/api/chat", session=sessions[0])[2] == {"stage": "done"}
        # the model reads the whole conversation, the worker's message last
        assert [m["role"] for m in models["m1"].calls[-1]] == ["user", "assistant", "user", "assistant", "user"]
        records = chat_records(s.path)
        assert all(set(r) == CHAT_KEYS for r in records)
        assert sorted(r["model"] for r in records) == ["m1", "m2"]  # the least-used model goes next
        mine = next(r for r in records if r["chat_id"] == first)
        assert mine["turns"] == 3 and mine["bot_turn_problems"] == problems and mine["ratings"] == RATINGS
        turns = s.db.rows("SELECT speaker, text FROM chat_turns WHERE chat_id = ? ORDER BY idx", (first,))
        assert [t["speaker"] for t in turns] == ["human", "bot"] * 3
        assert turns[1]["text"] == f"{mine['model']} read 1 messages"


@pytest.mark.parametrize("step,body,status,says", [
    ("message", {"text": "second message here"}, 422, "tick its problems, or 'none'"),
    ("message", {"text": "second message here", "problems": ["none", "repetition"]}, 422, "'none' cannot go"),
    ("message", {"text": "second message here", "problems": ["boring"]}, 422, "unknown problem 'boring'"),
    ("message", {"text": "   ", "problems": ["none"]}, 422, "write a message first"),
    ("finish", {"problems": ["none"], "ratings": RATINGS}, 409, "chat for 2 turns before rating"),
    ("finish", {"problems": ["none"], "ratings": {**RATINGS, "fluency": 6}}, 422, "'fluency' must be a whole number"),
])
def test_a_bad_chat_step_is_refused_with_a_message(tmp_path, step, body, status, says):
    with study(tmp_path, models={"m": EchoModel("m")}, chat_turns=2) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        cid = http(s.url + "/api/chat", session=session)[2]["chat_id"]
        assert http(s.url + f"/api/chat/{cid}/message", "POST", {"text": "first message here"}, session=session)[0] == 200
        got, _, answer_ = http(s.url + f"/api/chat/{cid}/{step}", "POST", body, session=session)
        assert got == status and says in answer_["error"], answer_


# Bodies of the wrong shape, per route: refused with 400 and a message naming the field, before
# anything is stored. What the study decides (known problems, the 1-5 range) is a 422 above.
WRONG_SHAPES = {
    "pairwise": [
        ({"choice": "left"}, "justification: Field required"),
        ({"choice": "left", "justification": 5}, "justification: Input should be a valid string"),
        ({"choice": "middle", "justification": WHY}, "choice: Input should be 'left' or 'right'"),
        (b"{not json", "not valid JSON"),
        ([{"choice": "left"}], "send a JSON object"),
    ],
    "message": [
        ({"problems": ["none"]}, "text: Field required"),
        ({"text": ["second message"], "problems": ["none"]}, "text: Input should be a valid string"),
        ({"text": "second message here", "problems": "none"}, "problems: Input should be a valid list"),
    ],
    "finish": [
        ({"problems": ["none"]}, "ratings: Field required"),
        ({"problems": ["none"], "ratings": {**RATINGS, "fluency": "5"}}, "ratings.fluency: Input should be a valid integer"),
        ({"problems": ["none"], "ratings": {**RATINGS, "fluency": True}}, "ratings.fluency: Input should be a valid integer"),
        ({"problems": ["none"], "ratings": {**RATINGS, "fluency": 4.0}}, "ratings.fluency: Input should be a valid integer"),
    ],
    "/admin/api/blocklist": [
        ({}, "worker_id: Field required"),
        ({"worker_id": "   "}, "worker_id: String should have at least 1 character"),
        ({"worker_id": 7}, "worker_id: Input should be a valid string"),
        ({"worker_id": "w1", "reason": ["spam"]}, "reason: Input should be a valid string"),
    ],
    "/admin/api/links": [
        ({}, "count: Field required"),
        ({"count": 0}, "count: Input should be greater than or equal to 1"),
        ({"count": 1001}, "count: Input should be less than or equal to 1000"),
        ({"count": "2"}, "count: Input should be a valid integer"),
    ],
}


def test_a_body_of_the_wrong_shape_is_refused_naming_the_field(tmp_path):
    with study(tmp_path, task_pairings(), models={"m": EchoModel("m")}, chat_turns=2) as s:
        pairwise = session_of(s.url, **dict(zip(("worker", "token"), link_worker(s))), task="pairwise")
        chat = session_of(s.url, **dict(zip(("worker", "token"), link_worker(s))), task="chat")
        shown = http(s.url + "/api/pairwise/next", session=pairwise)[2]
        cid = http(s.url + "/api/chat", session=chat)[2]["chat_id"]
        assert http(s.url + f"/api/chat/{cid}/message", "POST", {"text": "first message here"}, session=chat)[0] == 200
        routes = {"pairwise": (f"/api/pairwise/{shown['assignment_id']}", pairwise),
                  "message": (f"/api/chat/{cid}/message", chat), "finish": (f"/api/chat/{cid}/finish", chat),
                  "/admin/api/blocklist": ("/admin/api/blocklist", ADMIN), "/admin/api/links": ("/admin/api/links", ADMIN)}
        for route, cases in WRONG_SHAPES.items():
            path, session = routes[route]
            for body, says in cases:
                status, _, answer_ = http(s.url + path, "POST", body, session=session)
                assert status == 400 and says in answer_["error"], (route, body, answer_)
        assert pairwise_records(s.path, include_blocked=True) == []
        assert s.db.rows("SELECT count(*) n FROM chat_turns") == [{"n": 2}]  # the first message and its reply
        assert s.db.rows("SELECT count(*) n FROM blocklist") == [{"n": 0}]
        assert s.db.rows("SELECT count(*) n FROM workers") == [{"n": 2}]
        # The right shapes still pass: a worker id is stored without its spaces.
        assert http(s.url + "/admin/api/blocklist", "POST", {"worker_id": " w9 ", "reason": ""}, session=ADMIN)[2] == {
            "blocked": "w9"}
        assert s.db.rows("SELECT worker_id, reason FROM blocklist") == [{"worker_id": "w9", "reason": "blocked by an admin"}]


def test_low_effort_chats_are_flagged_and_left_out(tmp_path):
    with study(tmp_path, models={"m": EchoModel("m")}, chat_turns=2, min_chat_words=3) as s:
        lazy, keen = (session_of(s.url, worker=w, token=t) for w, t in (link_worker(s) for _ in range(2)))
        chat_once(s, lazy, ["ok", "ok"], [["none"]] * 2, RATINGS)
        chat_once(s, keen, ["hello how are you", "what is your favourite book"], [["none"]] * 2, RATINGS)
        assert len(chat_records(s.path)) == 1
        assert len(chat_records(s.path, include_low_effort=True)) == 2
        (flag,) = s.db.rows("SELECT kind, detail FROM flags")
        assert flag["kind"] == "low_effort_chat" and "1.0 words per message" in flag["detail"]


# --- admin and the command ----------------------------------------------------------------------


def test_admin_progress_workers_and_exports(tmp_path):
    with study(tmp_path, task_pairings(), comparisons_per_task=2, checks_per_task=0) as s:
        worker, token = link_worker(s)
        work_through(s, session_of(s.url, worker=worker, token=token))
        progress = http(s.url + "/admin/api/progress", session=ADMIN)[2]
        assert progress["judgments"] == 2 and progress["workers"] == 1
        assert sum(p["n"] for p in progress["judgments_per_pair"]) == 2
        workers = http(s.url + "/admin/api/workers", session=ADMIN)[2]["workers"]
        assert workers[0]["worker_id"] == worker and workers[0]["judgments"] == 2
        status, head, text = http(s.url + f"/admin/api/export/pairwise.csv?token={ADMIN}")
        assert status == 200 and head["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 2 and set(rows[0]) == PAIRWISE_KEYS and rows[0]["worker_id"] == worker
        assert http(s.url + "/admin/api/export/pairwise.json", session=ADMIN)[2] == pairwise_records(s.path)


def _parlai(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "parlai", "dialogft_human_eval", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_the_command_prints_links_and_refuses_bad_input_in_one_line(tmp_path):
    made = _parlai("--he-db", "s.sqlite", "--he-make-links", "2", "--he-base-url", "https://eval.example.org",
                   cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    lines = made.stdout.strip().splitlines()
    assert len(lines) == 2 and all("\thttps://eval.example.org/start?worker=" in line for line in lines)
    stored = sqlite3.connect(tmp_path / "s.sqlite").execute("SELECT count(*) FROM workers").fetchone()[0]
    assert stored == 2
    (tmp_path / "p.jsonl").write_text('{"speakers_to_eval": ["a"]}\n')
    for args, says in [
        (("--he-db", "s.sqlite"), "nothing to evaluate: give --he-pairings FILE and/or --he-model-file MODEL"),
        (("--he-db", "s.sqlite", "--he-pairings", "p.jsonl"), "p.jsonl, line 1: speakers_to_eval must be a list of two"),
        (("--he-db", "s.sqlite", "--he-model-file", "nope/model"), "--he-model-file nope/model: no such model file"),
        (("--he-db", "s.sqlite", "--he-model-file", "x", "--he-questions", "wit"), "unknown question 'wit'"),
        (("--he-db", "no/such/dir/s.sqlite",), "the folder no/such/dir does not exist"),
    ]:
        run = _parlai(*args, cwd=tmp_path)
        assert run.returncode == 2 and says in run.stderr, (args, run.stderr[-2000:])
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_the_task_settings_check_the_questions_and_the_queue_flags():
    from parlai_dialogft.human_eval.tasks import TaskSettings
    from parlai_dialogft.human_eval.work_queue import QueueSettings
    from parlai_dialogft.utils.errors import UserError

    assert isinstance(TaskSettings(), QueueSettings)  # what both queues read, and ACUTE's questions
    with pytest.raises(UserError, match="--he-questions: give at least one question key"):
        TaskSettings(questions=())
    with pytest.raises(UserError, match="--he-comparisons 0: must be at least 1"):
        TaskSettings(comparisons_per_task=0)
    with pytest.raises(UserError, match="--he-tasks-per-worker 0: must be at least 1"):
        QueueSettings(tasks_per_worker=0)
    with pytest.raises(UserError, match=r"--he-hold-minutes -2.0: must be at least 0"):  # minutes, as given
        QueueSettings(hold_s=-120)


def test_pairing_with_onboarding_needs_a_correct_answer(tmp_path):
    from parlai_dialogft.utils.errors import UserError

    broken = pairing("a", "b", "tea", onboarding=True)
    with pytest.raises(UserError, match="onboarding pairing 1: 'correct_answer' must name one of speakers_to_eval"):
        with study(tmp_path, [broken]):
            pass


@pytest.mark.slow
def test_the_command_serves_a_study_from_a_pairings_file(tmp_path):
    import signal

    from parlai_dialogft.human_eval.formats import write_pairings

    write_pairings(tmp_path / "pairs.jsonl", onboarding_pairings() + task_pairings())
    (tmp_path / "blocked.txt").write_text("# known spammers\nprolific:spammer1\n")
    args = ["dialogft_human_eval", "--he-db", "s.sqlite", "--he-pairings", "pairs.jsonl", "--he-port", "{port}",
            "--he-admin-token", ADMIN, "--he-blocklist", "blocked.txt", "--he-comparisons", "2",
            "--he-completion-codes", "prolific=C0DE42", "--he-min-seconds", "0"]
    with parlai_server(args, "/work", cwd=tmp_path) as (base, proc):
        spammer = session_of(base, PROLIFIC_PID="spammer1")
        assert http(base + "/api/pairwise/next", session=spammer)[2]["stage"] == "blocked"
        s = type("Study", (), {"url": base, "path": str(tmp_path / "s.sqlite")})
        session = session_of(base, PROLIFIC_PID="honest1")
        shown, end = work_through(s, session)
        assert [x["stage"] for x in shown] == ["onboarding"] * 2 + ["task"] * 3 and end["stage"] == "done"
        assert http(base + "/api/done", session=session)[2]["code"] == "C0DE42"
        progress = http(base + "/admin/api/progress", session=ADMIN)[2]
        assert progress["pairings"] == {"onboarding": 2, "task": 6, "attention": 6} and progress["judgments"] == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    output = proc.stdout.read()
    assert "6 pairings, 2 onboarding, 6 attention checks from pairs.jsonl" in output
    assert f"admin at {base}/admin?token={ADMIN}" in output
    assert len(pairwise_records(tmp_path / "s.sqlite")) == 2 + 3
    assert chat_records(tmp_path / "s.sqlite") == []


def test_an_attention_check_comes_from_a_pairing_outside_the_task(tmp_path):
    with study(tmp_path, task_pairings(), comparisons_per_task=3, checks_per_task=1) as s:
        for _ in range(4):
            worker, token = link_worker(s)
            work_through(s, session_of(s.url, worker=worker, token=token))
            mine = s.db.rows("SELECT a.pair_id, p.kind, p.data FROM assignments a JOIN pairings p USING (pair_id) "
                             "WHERE a.worker_id = ?", (worker,))
            (check,) = [m for m in mine if m["kind"] == "attention"]
            source = json.loads(check["data"])["check_of"]
            assert source.startswith("task_") and source not in {m["pair_id"] for m in mine}


class FailingOnce(EchoModel):
    def __call__(self, messages):
        if not self.calls:
            self.calls.append(None)
            raise RuntimeError("out of memory")
        return super().__call__(messages)


def test_a_model_failure_lets_the_worker_send_again(tmp_path):
    with study(tmp_path, models={"m": FailingOnce("m")}, chat_turns=1) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        cid = http(s.url + "/api/chat", session=session)[2]["chat_id"]
        status, _, body = http(s.url + f"/api/chat/{cid}/message", "POST", {"text": "hello out there"}, session=session)
        assert status == 503 and "please send your message again" in body["error"]
        assert s.db.rows("SELECT count(*) n FROM chat_turns") == [{"n": 0}]
        status, _, body = http(s.url + f"/api/chat/{cid}/message", "POST", {"text": "hello out there"}, session=session)
        assert status == 200 and body == {"reply": "m read 1 messages", "turn": 1, "turns": 1}


def test_the_analysis_reads_what_the_app_wrote(tmp_path):
    """Workers who all prefer alpha, through the app; the analysis command counts exactly their choices."""
    from parlai_dialogft.scripts.dialogft_human_eval_analysis import DialogftHumanEvalAnalysis

    def prefer_alpha(s):
        def choose(shown):
            if nonsense(shown["left"]) or nonsense(shown["right"]):
                return sensible_choice(shown)
            left = left_model_of(s, shown["assignment_id"])
            others = s.db.rows("SELECT p.model_a, p.model_b FROM assignments a JOIN pairings p USING (pair_id) "
                               "WHERE a.assignment_id = ?", (shown["assignment_id"],))[0]
            if "alpha" in others.values():
                return "left" if left == "alpha" else "right"
            return "left" if left == "beta" else "right"  # beta over gamma
        return choose

    with study(tmp_path, onboarding_pairings() + task_pairings(), models={"m1": EchoModel("m1")},
               comparisons_per_task=6, checks_per_task=1, chat_turns=1) as s:
        for _ in range(3):
            worker, token = link_worker(s)
            work_through(s, session_of(s.url, worker=worker, token=token), prefer_alpha(s))
        chatter = session_of(s.url, PROLIFIC_PID="chatter1", task="chat")
        chat_once(s, chatter, ["hello there my friend"], [["repetition"]], RATINGS)
    out = tmp_path / "analysis"
    DialogftHumanEvalAnalysis.main(he_db=s.path, he_out=str(out), he_bootstrap=50)
    rows = list(csv.DictReader(open(out / "pairwise.csv", encoding="utf-8")))
    wins = {(r["model_a"], r["model_b"]): (int(r["wins_a"]), int(r["wins_b"])) for r in rows}
    # 6 pairings (2 of each model pair) x 3 workers; onboarding and attention checks left out
    assert wins == {("alpha", "beta"): (6, 0), ("alpha", "gamma"): (6, 0), ("beta", "gamma"): (6, 0)}
    problems = list(csv.DictReader(open(out / "chat_problems.csv", encoding="utf-8")))
    repetition = next(r for r in problems if r["model"] == "m1" and r["category"] == "repetition")
    assert (repetition["bot_turns"], repetition["count"]) == ("1", "1")
    assert (out / "report.md").is_file()
