"""What the human-eval tests share: pairings and per-turn items, a study served on loopback,
and an HTTP client that keeps redirects (the pages themselves: :mod:`tests.support.browser`).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from types import SimpleNamespace

ADMIN = "admin-token-for-tests-0123456789"


def pairing(model_a, model_b, topic, turns=3, onboarding=False, correct=None, bad=None):
    """An ACUTE pairing: each model talks with a partner about ``topic``; ``bad`` says nonsense."""

    def dialogue(model):
        lines = []
        for t in range(turns):
            lines.append({"id": "partner", "text": f"tell me about {topic}, part {t}"})
            said = "me me me me" if model == bad else f"{topic} is fascinating: fact {t} of {len(lines)}"
            lines.append({"id": model, "text": said})
        return {"speakers": ["partner", model], "id": model, "dialogue": lines}

    data = {"is_onboarding": onboarding, "speakers_to_eval": [model_a, model_b],
            "dialogue_dicts": [dialogue(model_a), dialogue(model_b)]}
    if correct:
        data["correct_answer"] = correct
    return data


def onboarding_pairings():
    return [pairing("good_bot", "bad_bot", topic, onboarding=True, correct="good_bot", bad="bad_bot")
            for topic in ("tea", "trains")]


def task_pairings(topics=("cats", "rivers", "chess", "bread", "jazz", "maps")):
    models = ("alpha", "beta", "gamma")
    return [pairing(models[i % 3], models[(i + 1) % 3], topic) for i, topic in enumerate(topics)]


def turn_pair(item_id, context, a, b, a_model="base", b_model="tuned", correct=None):
    """A per-turn item: ``context`` so far and candidates ``a``, ``b``; ``correct`` makes it onboarding."""
    item = {"id": item_id, "context": list(context), "a": {"model": a_model, "text": a},
            "b": {"model": b_model, "text": b}}
    if correct:
        item.update(is_onboarding=True, correct_answer=correct)
    return item


def turn_items(topics=("tea", "trains", "chess", "bread", "jazz", "maps")):
    """Real items: one context per topic, a helpful reply and a curt one (the sides vary)."""
    items = []
    for n, topic in enumerate(topics):
        helpful, curt = f"I love {topic} too; what got you into it?", f"ok. {topic}."
        a, b = (helpful, curt) if n % 2 == 0 else (curt, helpful)
        items.append(turn_pair(f"{topic}-1", ["hello there", "hi! what do you like?", f"I like {topic}"], a, b))
    return items


def turn_onboarding():
    return [turn_pair("practice-1", ["can you help me book a flight?"], "Sure, where are you flying to?",
                      "purple window the the", correct="a"),
            turn_pair("practice-2", ["hi", "hello! how are you?", "good, and you?"], "banana banana banana",
                      "I'm well, thanks for asking!", correct="b")]


@contextmanager
def study(tmp_path, pairings=(), models=None, turn_pairs=(), **overrides):
    """A real app on 127.0.0.1 (a free port) over a real SQLite file."""
    from parlai_dialogft.human_eval import qc
    from parlai_dialogft.human_eval.app import AppSettings, create_app
    from parlai_dialogft.human_eval.db import Database
    from parlai_dialogft.human_eval.questions import load_chat_ratings, load_problem_categories, load_questions
    from parlai_dialogft.human_eval.tasks import TaskSettings, load_pairings
    from parlai_dialogft.human_eval.turn_items import load_turn_pairs, validate_turn_pair
    from parlai_dialogft.serving.server import bound_port, running

    task_kw = {k: overrides.pop(k) for k in list(overrides) if k in TaskSettings.__dataclass_fields__}
    qc_kw = {k: overrides.pop(k) for k in list(overrides) if k in qc.QcSettings.__dataclass_fields__}
    qc_kw.setdefault("min_seconds", 0.0)
    tasks = TaskSettings(**task_kw)
    path = tmp_path / "study.sqlite"
    database = Database(path)
    load_pairings(database, list(pairings), tasks.checks_per_task)
    load_turn_pairs(database, [validate_turn_pair(t, "turn pair") for t in turn_pairs], tasks.checks_per_task)
    settings = AppSettings(admin_token=ADMIN, questions=load_questions(), problem_categories=load_problem_categories(),
                           chat_ratings=load_chat_ratings(), tasks=tasks, qc=qc.QcSettings(**qc_kw), seed=0,
                           **overrides)
    app = create_app(database, settings, models)
    with running(app, shutdown_timeout_s=5) as server:
        yield SimpleNamespace(url=f"http://127.0.0.1:{bound_port(server)}", db=database, path=str(path),
                              settings=settings)


# --- HTTP ---------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(url, method="GET", body=None, session=None, headers=None, timeout=60):
    """(status, headers, parsed JSON or text); redirects are returned, not followed."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        headers.setdefault("Content-Type", "application/json")
    if session:
        headers["Authorization"] = f"Bearer {session}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, head, text = response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        status, head, text = error.code, error.headers, error.read().decode()
    if (head.get("content-type") or "").startswith("application/json"):
        return status, head, json.loads(text)
    return status, head, text


def start_url(base, **params):
    return f"{base}/start?{urllib.parse.urlencode(params)}"


def session_of(base, **params):
    """The session token ``/start`` gives these link parameters (what the page would keep)."""
    status, head, text = http(start_url(base, **params))
    assert status == 303, (status, text)
    location = head["location"]
    assert location.startswith(("/work#s=", "/turns#s=")), location
    return location.split("#s=", 1)[1]


def link_worker(s):
    (made,) = s.db.create_link_workers(1)
    return made["worker_id"], made["token"]
