"""The per-turn pairwise task: which next reply is better, and why; and its judgments as DPO pairs.

A worker sees a conversation so far and two candidate next replies, picks one and says why,
under the ACUTE task's quality control (practice items, attention checks whose one reply is
nonsense, a minimum justification). Each test runs the real app on 127.0.0.1 over a real
SQLite file; the export is read back with the project's own preference reader, the one
``-t dialogft_preferences --pref-datapath`` uses.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from parlai_dialogft.human_eval.db import turn_records
from parlai_dialogft.human_eval.preferences import export_preferences
from parlai_dialogft.human_eval.qc import BROKEN_TURN
from parlai_dialogft.human_eval.turn_items import read_turn_pairs
from parlai_dialogft.utils.errors import UserError
from tests.support.files import read_jsonl
from tests.support.human_eval import (
    ADMIN,
    http,
    link_worker,
    session_of,
    study,
    task_pairings,
    turn_items,
    turn_onboarding,
    turn_pair,
)

WHY = "it answers what the person said"


def good_side(shown):
    """What a careful worker picks: never nonsense (a check, a wrong practice answer), else not the curt reply."""
    for worse in (BROKEN_TURN, "purple window the the", "banana banana banana"):
        if worse in (shown["left"], shown["right"]):
            return "right" if shown["left"] == worse else "left"
    return "right" if shown["left"].startswith("ok. ") else "left"


def prefer(*texts):
    """A worker who picks the first of ``texts`` shown (else what a careful worker picks)."""
    def choose(shown):
        for text in texts:
            for side in ("left", "right"):
                if shown[side] == text:
                    return side
        return good_side(shown)
    return choose


def answer(s, session, choose=good_side, justification=WHY):
    status, _, shown = http(s.url + "/api/turns/next", session=session)
    assert status == 200, shown
    if shown["stage"] not in ("onboarding", "task"):
        return shown, None
    status, _, result = http(s.url + f"/api/turns/{shown['assignment_id']}", "POST",
                             {"choice": choose(shown), "justification": justification}, session=session)
    assert status == 200, result
    return shown, result


def work_through(s, session, choose=good_side, limit=50):
    """Answer until the stage is no longer an item: (items shown, the last stage)."""
    shown_all = []
    for _ in range(limit):
        shown, result = answer(s, session, choose)
        if result is None:
            return shown_all, shown
        shown_all.append(shown)
        if result.get("stage") == "blocked":
            return shown_all, result
    raise AssertionError("the task never ended")


def new_session(s):
    worker, token = link_worker(s)
    return worker, session_of(s.url, worker=worker, token=token, task="turns")


# --- assignment ---------------------------------------------------------------------------------


def test_a_worker_passes_onboarding_then_judges_n_items_with_one_attention_check(tmp_path):
    with study(tmp_path, turn_pairs=turn_onboarding() + turn_items(), comparisons_per_task=3,
               checks_per_task=1) as s:
        worker, session = new_session(s)
        shown, end = work_through(s, session)
        assert [x["stage"] for x in shown] == ["onboarding"] * 2 + ["task"] * 4
        assert [(x["number"], x["total"]) for x in shown] == [(1, 2), (2, 2), (1, 4), (2, 4), (3, 4), (4, 4)]
        assert end == {"stage": "done", "tasks_done": 1, "more_available": False}
        assert s.db.rows("SELECT turn_onboarding, onboarding FROM workers") == [
            {"turn_onboarding": "passed", "onboarding": "pending"}]  # the ACUTE practice round is another one
        status, _, code = http(s.url + "/api/done", session=session)
        assert status == 200 and len(code["code"]) == 8

        records = turn_records(s.path)
        assert [(r["is_onboarding"], r["is_attention_check"]) for r in records].count((False, False)) == 3
        assert all(r["passed_check"] for r in records if r["is_onboarding"] or r["is_attention_check"])
        assert sum(r["is_attention_check"] for r in records) == 1
        assert {r["worker_id"] for r in records} == {worker} and {r["justification"] for r in records} == {WHY}
        assert all(r["winner"] in ("a", "b") and r["left_side"] in ("a", "b") for r in records)
        (check,) = [x for x in shown if BROKEN_TURN in (x["left"], x["right"])]
        assert check["stage"] == "task"


def test_the_page_gets_the_context_with_roles_and_two_texts_never_models_and_sides_are_random(tmp_path):
    items = [dict(t, a={"model": "secret_model_x", "text": t["a"]["text"]}) for t in turn_items()]
    with study(tmp_path, turn_pairs=items, comparisons_per_task=6, checks_per_task=0) as s:
        _, session = new_session(s)
        shown, _ = work_through(s, session)
        assert len(shown) == 6
        for item in shown:
            assert "secret_model_x" not in json.dumps(item) and "tuned" not in json.dumps(item)
            # the newest turn is the user's; the candidates answer it
            assert [t["role"] for t in item["context"]] == ["user", "assistant", "user"]
            assert item["context"][-1]["text"].startswith("I like ")
            assert item["question"] == "Which reply is the better next message in this conversation?"
        assert {r["left_side"] for r in turn_records(s.path)} == {"a", "b"}  # both orders occur


def test_a_worker_judges_each_item_once_across_tasks_and_the_database_holds_to_it(tmp_path):
    with study(tmp_path, turn_pairs=turn_items(), comparisons_per_task=2, checks_per_task=0,
               tasks_per_worker=5) as s:
        workers = [new_session(s) for _ in range(2)]
        for _, session in workers:
            for _task in range(5):
                _, end = work_through(s, session)
                if not end.get("more_available"):
                    break
                assert http(s.url + "/api/turns/next?more=1", session=session)[2]["stage"] == "task"
        records = turn_records(s.path)
        for worker, _ in workers:
            items = [r["item_id"] for r in records if r["worker_id"] == worker]
            assert len(items) == 6 and len(set(items)) == 6  # all six items, each once: 3 tasks of 2
        done = s.db.rows("SELECT assignment_id, worker_id, item_id FROM turn_assignments LIMIT 1")[0]
        session = dict(workers)[done["worker_id"]]
        status, _, body = http(s.url + f"/api/turns/{done['assignment_id']}", "POST",
                               {"choice": "left", "justification": WHY}, session=session)
        assert status == 409 and body["error"] == "this item is already answered"
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"), sqlite3.connect(s.path) as db:
            db.execute("INSERT INTO turn_assignments (assignment_id, worker_id, item_id, left_side, position, "
                       "task_no, created) VALUES ('again', ?, ?, 'a', 99, 9, 0)", (done["worker_id"], done["item_id"]))


def test_judgments_per_pair_caps_how_often_an_item_is_assigned(tmp_path):
    with study(tmp_path, turn_pairs=turn_items()[:3], comparisons_per_task=2, checks_per_task=0,
               judgments_per_pair=1) as s:
        first, second, third = (new_session(s)[1] for _ in range(3))
        work_through(s, first)
        shown, _ = work_through(s, second)
        assert len(shown) == 1
        assert http(s.url + "/api/turns/next", session=third)[2] == {"stage": "no_work"}


# --- quality control ----------------------------------------------------------------------------


def test_failing_the_practice_round_blocks_before_any_real_item(tmp_path):
    with study(tmp_path, turn_pairs=turn_onboarding() + turn_items(), comparisons_per_task=2) as s:
        worker, session = new_session(s)
        wrong = lambda shown: "left" if good_side(shown) == "right" else "right"  # noqa: E731
        shown, end = work_through(s, session, choose=wrong)
        assert [x["stage"] for x in shown] == ["onboarding"] * 2
        assert end == {"recorded": True, "stage": "blocked", "reason": "did not pass the onboarding"}
        assert http(s.url + "/api/turns/next", session=session)[2]["stage"] == "blocked"
        assert s.db.rows("SELECT turn_onboarding FROM workers") == [{"turn_onboarding": "failed"}]
        assert turn_records(s.path) == []  # blocked: left out
        assert len(turn_records(s.path, include_blocked=True)) == 2


def test_a_failed_attention_check_is_flagged_blocks_and_the_workers_votes_leave_the_export(tmp_path):
    with study(tmp_path, turn_pairs=turn_items()[:4], comparisons_per_task=3, checks_per_task=1) as s:
        careful, careless = new_session(s), new_session(s)
        work_through(s, careful[1])
        shown, end = work_through(s, careless[1], choose=prefer(BROKEN_TURN))
        assert end == {"recorded": True, "stage": "blocked", "reason": "failed 1 attention check(s)"}
        flags = s.db.rows("SELECT worker_id, kind FROM flags")
        assert flags == [{"worker_id": careless[0], "kind": "failed_turn_check"}]
        assert {r["worker_id"] for r in turn_records(s.path)} == {careful[0]}
        summary = export_preferences(s.path, tmp_path / "prefs.jsonl")
        assert summary.judgments == 3 and summary.written == 3


@pytest.mark.parametrize("body, status, says", [
    ({"choice": "middle", "justification": WHY}, 400, "choice: Input should be 'left' or 'right'"),
    ({"justification": WHY}, 400, "choice: Field required"),
    ({"choice": "left"}, 400, "justification: Field required"),
    ({"choice": "left", "justification": 12}, 400, "justification: Input should be a valid string"),
    ({"choice": "left", "justification": "good"}, 422, "please explain your choice in at least 10 characters"),
])
def test_a_bad_answer_is_refused_naming_the_field_and_nothing_is_stored(tmp_path, body, status, says):
    with study(tmp_path, turn_pairs=turn_items()) as s:
        _, session = new_session(s)
        shown = http(s.url + "/api/turns/next", session=session)[2]
        code, _, answer_ = http(s.url + f"/api/turns/{shown['assignment_id']}", "POST", body, session=session)
        assert code == status and says in answer_["error"], answer_
        assert turn_records(s.path) == []


def test_answers_too_fast_for_someone_elses_item_or_from_another_task_are_refused(tmp_path):
    with study(tmp_path, pairings=task_pairings(), turn_pairs=turn_items(), min_seconds=3600) as s:
        _, mine = new_session(s)
        _, theirs = new_session(s)
        shown = http(s.url + "/api/turns/next", session=mine)[2]
        url = s.url + f"/api/turns/{shown['assignment_id']}"
        status, _, body = http(url, "POST", {"choice": "left", "justification": WHY}, session=mine)
        assert status == 422 and body["error"] == ("please read the conversation and both replies before "
                                                    "answering (at least 3600 s)")
        status, _, body = http(url, "POST", {"choice": "left", "justification": WHY}, session=theirs)
        assert status == 404 and body["error"] == "no such item"
        worker, token = link_worker(s)
        acute = session_of(s.url, worker=worker, token=token, task="pairwise")
        status, _, body = http(s.url + "/api/turns/next", session=acute)
        assert status == 403 and body["error"] == "this link is for the pairwise task"


# --- the items file -----------------------------------------------------------------------------

GOOD = {"id": 1, "context": ["hi"], "a": {"model": "m", "text": "hello!"}, "b": {"model": "m", "text": "bye"}}


@pytest.mark.parametrize("line, says", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "an item must be a JSON object"),
    (json.dumps({**GOOD, "id": ""}), "id: give each item a non-empty string or number"),
    (json.dumps({**GOOD, "context": []}), "context: must be a non-empty list of turns"),
    (json.dumps({**GOOD, "context": ["hi", 3]}), "context[1]: must be a non-empty string"),
    (json.dumps({**GOOD, "b": "bye"}), "b: must be an object"),
    (json.dumps({**GOOD, "a": {"text": "hello!"}}), "a.model: must be a non-empty string"),
    (json.dumps({**GOOD, "b": {"model": "m", "text": "  "}}), "b.text: must be a non-empty string"),
    (json.dumps({**GOOD, "b": {"model": "m", "text": "hello! "}}), "a.text and b.text are the same reply"),
    (json.dumps({**GOOD, "is_onboarding": True}), "correct_answer: an onboarding item needs one"),
    (json.dumps({**GOOD, "correct_answer": "left"}), "correct_answer: must be \"a\" or \"b\", not 'left'"),
    (json.dumps({**GOOD, "id": 7}), "id: '7' is already the id of line 1"),
])
def test_a_bad_items_file_is_refused_at_its_line_naming_the_field(tmp_path, line, says):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({**GOOD, "id": 7}) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        read_turn_pairs(path)
    assert str(caught.value).startswith(f"{path}, line 3: ") and says in str(caught.value), str(caught.value)


def test_a_good_items_file_is_read_normalised_and_loading_it_twice_adds_nothing(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in turn_onboarding() + turn_items()) + "\n", encoding="utf-8")
    items = read_turn_pairs(path)
    assert [i["id"] for i in items[:3]] == ["practice-1", "practice-2", "tea-1"]
    assert items[0]["correct_answer"] == "a" and items[2]["is_onboarding"] is False
    with study(tmp_path, turn_pairs=items) as s:
        from parlai_dialogft.human_eval.turn_items import load_turn_pairs

        assert load_turn_pairs(s.db, items, 1) == {"onboarding": 2, "task": 6, "attention": 6}
        counts = {r["kind"]: r["n"] for r in s.db.rows("SELECT kind, count(*) n FROM turn_items GROUP BY kind")}
        assert counts == {"onboarding": 2, "task": 6, "attention": 6}
        checks = [json.loads(r["data"]) for r in s.db.rows("SELECT data FROM turn_items WHERE kind = 'attention'")]
        for check in checks:  # one reply is nonsense, and the answer is the other one
            broken = "a" if check["a"]["text"] == BROKEN_TURN else "b"
            assert check[broken]["text"] == BROKEN_TURN and check["correct_answer"] != broken


# --- the export ---------------------------------------------------------------------------------

ITEMS = [
    turn_pair("x-majority", ["I lost my keys", "oh no, where did you see them last?", "in the car I think"],
              "Then let's check the car first.", "Keys are made of metal."),
    turn_pair("y-tie", ["any film tips?", "what do you like?"], "Comedies, mostly.", "I am a film."),
    turn_pair("z-b-wins", ["what's 2 + 2?"], "5", "4"),
]


def test_the_export_writes_majorities_as_trl_pairs_and_counts_ties_and_unjudged_items(tmp_path, capsys):
    from parlai_dialogft.data.readers.preferences import PAIRED, read_preference_file
    from parlai_dialogft.scripts.dialogft_human_eval_preferences import DialogftHumanEvalPreferences

    workers = [  # the replies each prefers; the careless one fails a check (counted only on request)
        prefer("Then let's check the car first.", "Comedies, mostly.", "4"),
        prefer("Then let's check the car first.", "I am a film.", "4"),
        prefer(BROKEN_TURN, "Keys are made of metal.", "Comedies, mostly.", "4"),
    ]
    with study(tmp_path, turn_pairs=ITEMS, comparisons_per_task=3, checks_per_task=1, max_failed_checks=1) as s:
        for choose in workers:
            work_through(s, new_session(s)[1], choose=choose)
        s.db.add_turn_items([turn_pair("w-unjudged", ["hello"], "hi!", "go away")], "task")
        out = tmp_path / "prefs.jsonl"
        summary = DialogftHumanEvalPreferences.main(he_db=s.path, he_preferences_out=str(out))
        printed = capsys.readouterr().out
        assert (summary.items, summary.written, summary.ties, summary.no_judgments) == (4, 2, 1, 1)
        assert len(summary.excluded_workers) == 1 and summary.judgments == 6
        assert "written: 2 preference pairs" in printed
        assert "skipped: 1 ties, 1 items with no judgments" in printed
        assert "workers left out (failed a check): 1" in printed

        assert read_jsonl(out) == [
            {"prompt": [{"role": "user", "content": "I lost my keys"},
                        {"role": "assistant", "content": "oh no, where did you see them last?"},
                        {"role": "user", "content": "in the car I think"}],
             "chosen": [{"role": "assistant", "content": "Then let's check the car first."}],
             "rejected": [{"role": "assistant", "content": "Keys are made of metal."}]},
            {"prompt": [{"role": "user", "content": "what's 2 + 2?"}],
             "chosen": [{"role": "assistant", "content": "4"}],
             "rejected": [{"role": "assistant", "content": "5"}]},
        ]
        # what -t dialogft_preferences --pref-datapath reads
        records = read_preference_file(out)
        assert [r.kind for r in records] == [PAIRED, PAIRED] and records[1].chosen == "4"
        assert [t.speaker for t in records[0].prompt] == ["user", "assistant", "user"]

        # the careless worker's votes count only when asked for: the tie breaks, x keeps its majority
        kept = export_preferences(s.path, out, keep_failed_workers=True)
        assert (kept.written, kept.ties, kept.no_judgments, kept.judgments) == (3, 0, 1, 9)
        by_prompt = {r["prompt"][-1]["content"]: r["chosen"][0]["content"] for r in read_jsonl(out)}
        assert by_prompt == {"in the car I think": "Then let's check the car first.", "what do you like?":
                             "Comedies, mostly.", "what's 2 + 2?": "4"}
        # an even context opens with the assistant: roles are counted back from the newest turn
        (tie,) = [r for r in read_jsonl(out) if r["chosen"][0]["content"] == "Comedies, mostly."]
        assert [m["role"] for m in tie["prompt"]] == ["assistant", "user"]


def test_the_export_refuses_a_missing_study_or_folder(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        export_preferences(tmp_path / "none.sqlite", tmp_path / "p.jsonl")
    with study(tmp_path, turn_pairs=ITEMS) as s:
        with pytest.raises(UserError, match="--he-preferences-out .*: the folder .* does not exist"):
            export_preferences(s.path, tmp_path / "no" / "p.jsonl")


def test_admin_progress_counts_turn_items_and_judgments(tmp_path):
    with study(tmp_path, turn_pairs=turn_items(), comparisons_per_task=2, checks_per_task=0) as s:
        worker, session = new_session(s)
        work_through(s, session)
        progress = http(s.url + "/admin/api/progress", session=ADMIN)[2]
        assert progress["turn_items"] == {"task": 6} and progress["turn_judgments"] == 2
        (row,) = http(s.url + "/admin/api/workers", session=ADMIN)[2]["workers"]
        assert row["worker_id"] == worker and row["turn_judgments"] == 2


# --- the command --------------------------------------------------------------------------------


def _parlai(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "parlai", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.mark.slow
def test_the_commands_refuse_a_bad_items_file_and_a_missing_flag_in_one_line(tmp_path):
    (tmp_path / "items.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "a": None}) + "\n")
    for args, says in [
        (("dialogft_human_eval", "--he-db", "s.sqlite", "--he-turn-pairs", "items.jsonl"), "items.jsonl, line 2: a: "),
        (("dialogft_human_eval", "--he-db", "s.sqlite", "--he-turn-pairs", "none.jsonl"),
         "--he-turn-pairs none.jsonl: no such file"),
        (("dialogft_human_eval_preferences", "--he-db", "s.sqlite"), "give --he-preferences-out"),
    ]:
        run = _parlai(*args, cwd=tmp_path)
        assert run.returncode == 2 and says in run.stderr, (args, run.stderr[-2000:])
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
