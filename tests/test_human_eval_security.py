"""Security of the human-evaluation app.

A worker's session reaches only that worker's data; the admin pages need the admin token;
HTML inside conversations, chat messages and justifications is shown as text in a real
browser (no script runs); parallel clients lose no submission and create nothing twice.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from parlai_dialogft.human_eval.db import chat_records, pairwise_records
from tests.support.browser import Browser
from tests.support.human_eval import ADMIN, http, link_worker, pairing, session_of, start_url, study, task_pairings

WHY = "the highlighted speaker was clearly better"
RATINGS = {"engagingness": 4, "humanness": 2, "fluency": 5, "consistency": 3}


class EchoModel:
    """Says back the worker's last message (so an injected message comes back from the 'model' too)."""

    def __call__(self, messages):
        return "you said: " + messages[-1]["content"]


def two_workers(s):
    return [session_of(s.url, worker=w, token=t) for w, t in (link_worker(s) for _ in range(2))]


# --- one worker, one worker's data ----------------------------------------------------------------


def test_a_worker_cannot_answer_or_see_another_worker_s_comparison(tmp_path):
    with study(tmp_path, task_pairings(), comparisons_per_task=2, checks_per_task=0) as s:
        alice, bob = two_workers(s)
        hers = http(s.url + "/api/pairwise/next", session=alice)[2]["assignment_id"]
        his = http(s.url + "/api/pairwise/next", session=bob)[2]["assignment_id"]
        assert hers != his
        status, _, body = http(s.url + f"/api/pairwise/{hers}", "POST", {"choice": "left", "justification": WHY},
                               session=bob)
        assert (status, body) == (404, {"error": "no such comparison"})  # as for an id that does not exist
        assert http(s.url + "/api/pairwise/as_0000000000000000", "POST", {"choice": "left", "justification": WHY},
                    session=bob)[:3:2] == (404, {"error": "no such comparison"})
        assert pairwise_records(s.path) == []
        assert http(s.url + f"/api/pairwise/{hers}", "POST", {"choice": "right", "justification": WHY},
                    session=alice)[0] == 200
        status, _, body = http(s.url + f"/api/pairwise/{hers}", "POST", {"choice": "left", "justification": WHY},
                               session=bob)
        assert status == 404
        (record,) = pairwise_records(s.path)
        assert record["winner"] != record["left_model"]  # alice's "right" stands
        me = http(s.url + "/api/me", session=bob)[2]
        assert me["worker_id"] != record["worker_id"]


def test_a_worker_cannot_write_into_or_finish_another_worker_s_chat(tmp_path):
    with study(tmp_path, models={"m": EchoModel()}, chat_turns=1) as s:
        alice, bob = two_workers(s)
        hers = http(s.url + "/api/chat", session=alice)[2]["chat_id"]
        assert http(s.url + "/api/chat", session=bob)[2]["chat_id"] != hers
        assert http(s.url + f"/api/chat/{hers}/message", "POST", {"text": "hello from alice"}, session=alice)[0] == 200
        for step, body in (("message", {"text": "bob was here", "problems": ["none"]}),
                           ("finish", {"problems": ["none"], "ratings": RATINGS})):
            status, _, answer = http(s.url + f"/api/chat/{hers}/{step}", "POST", body, session=bob)
            assert (status, answer) == (404, {"error": "no such chat"})
        turns = s.db.rows("SELECT speaker, text, problems FROM chat_turns WHERE chat_id = ? ORDER BY idx", (hers,))
        assert turns == [{"speaker": "human", "text": "hello from alice", "problems": None},
                         {"speaker": "bot", "text": "you said: hello from alice", "problems": None}]
        assert chat_records(s.path) == []


WORKER_ROUTES = [("GET", "/api/me"), ("GET", "/api/pairwise/next"), ("POST", "/api/pairwise/as_x"),
                 ("GET", "/api/turns/next"), ("POST", "/api/turns/ta_x"),
                 ("GET", "/api/chat"), ("POST", "/api/chat/chat_x/message"), ("POST", "/api/chat/chat_x/finish"),
                 ("GET", "/api/done")]


@pytest.mark.parametrize("method,path", WORKER_ROUTES)
def test_every_worker_call_needs_a_valid_session(tmp_path, method, path):
    with study(tmp_path, task_pairings(), models={"m": EchoModel()}) as s:
        body = {} if method == "POST" else None
        for headers in ({}, {"Authorization": "Bearer not-a-session"}, {"Authorization": f"Basic {ADMIN}"},
                        {"Authorization": f"Bearer {ADMIN}"}):
            status, _, answer = http(s.url + path, method, body, headers=headers)
            assert status == 401 and "open your start link again" in answer["error"], (headers, answer)


def test_a_stranger_is_refused_before_a_malformed_query_is_looked_at(tmp_path):
    with study(tmp_path, task_pairings()) as s:
        for path, says in (("/api/pairwise/next?more=x", "open your start link again"),
                           ("/api/turns/next?more=x", "open your start link again"),
                           ("/admin/api/judgments?limit=x", "admin token")):
            status, _, answer = http(s.url + path)
            assert status == 401 and says in answer["error"], (path, answer)


ADMIN_ROUTES = [("GET", "/admin"), ("GET", "/admin/api/progress"), ("GET", "/admin/api/workers"),
                ("GET", "/admin/api/judgments"), ("GET", "/admin/api/blocklist"), ("POST", "/admin/api/blocklist"),
                ("DELETE", "/admin/api/blocklist/w1"), ("POST", "/admin/api/links"),
                ("GET", "/admin/api/export/pairwise.csv"), ("GET", "/admin/api/export/chats.json")]


@pytest.mark.parametrize("method,path", ADMIN_ROUTES)
def test_admin_pages_refuse_without_the_admin_token(tmp_path, method, path):
    with study(tmp_path, task_pairings()) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        body = {"worker_id": worker, "count": 1} if method == "POST" else None
        for headers, query in (({}, ""), ({"Authorization": "Bearer wrong-token-0123456789"}, ""),
                               ({"Authorization": f"Bearer {session}"}, ""), ({}, "?token=wrong"),
                               ({}, f"?token={ADMIN[:-1]}")):
            status, _, answer = http(s.url + path + query, method, body, headers=headers)
            assert status == 401 and "admin token" in answer["error"], (headers, query, answer)
        assert s.db.rows("SELECT count(*) n FROM blocklist") == [{"n": 0}]
        assert s.db.rows("SELECT count(*) n FROM workers") == [{"n": 1}]
        status, _, _ = http(s.url + path, method, body, session=ADMIN)
        assert status in (200, 404)  # 404: unblocking a worker who is not blocked


# --- HTML is text -----------------------------------------------------------------------------------

INJECTIONS = ['<script>window.pwned = 1; alert(1)</script>', '<img src=x onerror="window.pwned = 2; alert(2)">',
              '"><svg onload="window.pwned = 3">']


def injected_pairings():
    found = []
    for n, text in enumerate(INJECTIONS):
        p = pairing("alpha", "beta", f"topic{n}")
        for d in p["dialogue_dicts"]:
            d["dialogue"][0]["text"] = text
            d["dialogue"][1]["text"] = text
        found.append(p)
    return found


def assert_inert(browser, root):
    assert browser.js("window.pwned === undefined")
    assert browser.js(f"document.querySelectorAll('{root} script, {root} img, {root} svg').length") == 0
    assert browser.dialogs() == []


@pytest.mark.browser
def test_html_in_conversations_justifications_and_chats_is_shown_as_text_in_chromium(tmp_path):
    with study(tmp_path, injected_pairings(), models={"m": EchoModel()}, comparisons_per_task=3, checks_per_task=0,
               chat_turns=1, min_justification_chars=5) as s:
        browser = Browser()
        try:
            worker, token = link_worker(s)
            browser.open(start_url(s.url, worker=worker, token=token))
            for _ in INJECTIONS:
                browser.state_is("pairwise")
                shown = browser.js("Array.from(document.querySelectorAll('#left li .text, #right li .text'))"
                                   ".map(n => n.textContent)")
                assert set(shown) & set(INJECTIONS)  # the markup, as characters on the screen
                assert_inert(browser, "#pairwise")
                progress = browser.text("#progress")
                browser.click("#choice-left")
                browser.type("#justification", INJECTIONS[0])
                browser.wait_for("!document.getElementById('submit').disabled")
                browser.click("#submit")
                browser.wait_for(f"document.body.dataset.state === 'done' || "
                                 f"document.getElementById('progress').textContent !== '{progress}'")
            assert browser.state_is("done") == "done"
            assert [r["justification"] for r in pairwise_records(s.path)] == [INJECTIONS[0]] * 3

            chatter, chat_token = link_worker(s)
            browser.open(start_url(s.url, worker=chatter, token=chat_token, task="chat"))
            browser.state_is("chat")
            browser.type("#chat-input", INJECTIONS[1])
            browser.click("#send")
            browser.wait_for("document.querySelectorAll('#messages li').length === 2")
            shown = browser.js("Array.from(document.querySelectorAll('#messages li .text')).map(n => n.textContent)")
            assert shown == [INJECTIONS[1], "you said: " + INJECTIONS[1]]
            assert_inert(browser, "#chat")

            browser.open(f"{s.url}/admin?token={ADMIN}")
            browser.wait_for("document.body.dataset.state === 'ready'")
            cells = browser.js("Array.from(document.querySelectorAll('#judgments td')).map(n => n.textContent)")
            assert INJECTIONS[0] in cells
            assert_inert(browser, "body")
        finally:
            browser.close()


def test_pages_forbid_inline_scripts_and_json_is_not_html(tmp_path):
    with study(tmp_path, injected_pairings(), checks_per_task=0) as s:
        worker, token = link_worker(s)
        for path in ("/work", "/static/work.js", f"/admin?token={ADMIN}"):
            status, head, _ = http(s.url + path)
            assert status == 200
            assert "script-src 'self'" in head["content-security-policy"]
            assert head["x-content-type-options"] == "nosniff"
        status, head, _ = http(s.url + "/api/pairwise/next", session=session_of(s.url, worker=worker, token=token))
        assert head["content-type"] == "application/json"
        assert http(s.url + "/static/../db.py")[0] == 404 and http(s.url + "/static/app.py")[0] == 404


# --- parallel clients ----------------------------------------------------------------------------------


def test_parallel_workers_lose_no_judgment(tmp_path):
    workers, per_task = 12, 3
    with study(tmp_path, task_pairings(), comparisons_per_task=per_task, checks_per_task=0) as s:
        sessions = [session_of(s.url, worker=w, token=t) for w, t in (link_worker(s) for _ in range(workers))]
        start = threading.Barrier(workers)

        def work(session):
            start.wait(timeout=60)
            answered = 0
            while True:
                shown = http(s.url + "/api/pairwise/next", session=session)[2]
                if shown["stage"] != "task":
                    return answered, shown["stage"]
                status, _, _ = http(s.url + f"/api/pairwise/{shown['assignment_id']}", "POST",
                                    {"choice": "left", "justification": WHY}, session=session)
                assert status == 200
                answered += 1

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(work, sessions, timeout=300))
        assert results == [(per_task, "done")] * workers
        records = pairwise_records(s.path)
        assert len(records) == workers * per_task
        for worker in {r["worker_id"] for r in records}:
            assert len({r["pair_id"] for r in records if r["worker_id"] == worker}) == per_task
        assert s.db.rows("SELECT count(*) n FROM assignments WHERE done = 1") == [{"n": workers * per_task}]


def test_one_comparison_sent_by_ten_clients_at_once_is_recorded_once(tmp_path):
    with study(tmp_path, task_pairings(), checks_per_task=0) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        start = threading.Barrier(10)

        def fetch(_):
            start.wait(timeout=60)
            return http(s.url + "/api/pairwise/next", session=session)[2]["assignment_id"]

        with ThreadPoolExecutor(10) as pool:
            ids = set(pool.map(fetch, range(10)))
        assert len(ids) == 1  # ten tabs opening at once built one task, not ten
        assert s.db.rows("SELECT count(*) n FROM assignments") == [{"n": 5}]
        (aid,) = ids

        def send(i):
            start.wait(timeout=60)
            return http(s.url + f"/api/pairwise/{aid}", "POST",
                        {"choice": "left" if i % 2 else "right", "justification": f"{WHY} {i}"}, session=session)[0]

        with ThreadPoolExecutor(10) as pool:
            statuses = sorted(pool.map(send, range(10)))
        assert statuses == [200] + [409] * 9
        assert len(pairwise_records(s.path)) == 1


def test_parallel_chats_and_platform_starts_lose_nothing(tmp_path):
    workers = 10
    with study(tmp_path, models={"m": EchoModel()}, chat_turns=2) as s:
        start = threading.Barrier(workers)

        def chat(i):
            start.wait(timeout=60)
            session = session_of(s.url, PROLIFIC_PID=f"pid{i % 5}")  # two browsers per worker id
            cid = http(s.url + "/api/chat", session=session)[2]["chat_id"]
            return cid, session

        with ThreadPoolExecutor(workers) as pool:
            started = list(pool.map(chat, range(workers)))
        assert s.db.rows("SELECT count(*) n FROM workers") == [{"n": 5}]
        assert len({cid for cid, _ in started}) == 5  # one chat per worker, whichever browser asked

        first = {cid: session for cid, session in started}

        def talk(item):
            cid, session = item
            start.wait(timeout=60)
            for n, problems in enumerate((None, ["none"])):
                body = {"text": f"message number {n} in {cid}"}
                if problems:
                    body["problems"] = problems
                assert http(s.url + f"/api/chat/{cid}/message", "POST", body, session=session)[0] == 200
            return http(s.url + f"/api/chat/{cid}/finish", "POST", {"problems": ["none"], "ratings": RATINGS},
                        session=session)[0]

        start = threading.Barrier(len(first))
        with ThreadPoolExecutor(len(first)) as pool:
            assert list(pool.map(talk, first.items())) == [200] * 5
        records = chat_records(s.path)
        assert len(records) == 5 and all(r["turns"] == 2 and r["bot_turn_problems"] == [["none"]] * 2 for r in records)
        assert s.db.rows("SELECT count(*) n FROM chat_turns") == [{"n": 5 * 4}]


def test_an_oversized_body_is_refused(tmp_path):
    with study(tmp_path, task_pairings()) as s:
        worker, token = link_worker(s)
        session = session_of(s.url, worker=worker, token=token)
        aid = http(s.url + "/api/pairwise/next", session=session)[2]["assignment_id"]
        status, _, body = http(s.url + f"/api/pairwise/{aid}", "POST",
                               {"choice": "left", "justification": "x" * 200_000}, session=session)
        assert status == 413 and "request body over" in body["error"]
        assert pairwise_records(s.path) == []


def test_a_session_reaches_only_the_task_its_link_was_for(tmp_path):
    with study(tmp_path, task_pairings(), models={"m": EchoModel()}) as s:
        worker, token = link_worker(s)
        pairwise = session_of(s.url, worker=worker, token=token)  # the first protocol is the default
        chat = session_of(s.url, worker=worker, token=token, task="chat")
        assert http(s.url + "/api/chat", session=pairwise)[:3:2] == (403, {"error": "this link is for the pairwise task"})
        assert http(s.url + "/api/pairwise/next", session=chat)[:3:2] == (403, {"error": "this link is for the chat task"})
        assert http(s.url + "/api/chat", session=chat)[2]["stage"] == "chat"
        assert http(s.url + "/api/pairwise/next", session=pairwise)[2]["stage"] == "task"
