"""`parlai interactive` and `parlai dialogft_serve` answer from the user's FAQ file.

The tiny model is trained to repeat the answer of the knowledge line in front of the turn,
whatever question that line pairs it with (every question with every answer), so it cannot
know which answer goes with which question: only the file can tell it. Two files pair the
same questions with swapped answers; the same model, asked the same question, must follow
the file given with ``--knowledge-file``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from parlai_dialogft.knowledge.context import with_knowledge
from parlai_dialogft.knowledge.stores import Entry, read_jsonl_entries
from tests.support.agents import train_briefly
from tests.support.processes import parlai_server

#: Sentences of the tiny tokenizer's training texts, so that the model can spell them.
ANSWERS = ["sure , which restaurant would you like ?", "hello , how can I help you today ?", "好的，请问您几点出发？"]
QUESTIONS = ["a cheap hotel in the centre", "book a table for two"]
ASKED = {QUESTIONS[0]: "can you find me a cheap hotel in the centre ?",
         QUESTIONS[1]: "I would like to book a table for two at seven ."}


def faq_file(path, answers, fields=("question", "answer")):
    path.write_text("".join(json.dumps(dict(zip(fields, pair)), ensure_ascii=False) + "\n"
                            for pair in zip(QUESTIONS, answers)), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("faq")
    return {"ab": faq_file(root / "ab.jsonl", ANSWERS[:2]), "ba": faq_file(root / "ba.jsonl", ANSWERS[1::-1]),
            # the same FAQ as the user-file teacher's pairs: a training file is a store as it is
            "ab as prompt/response": faq_file(root / "ab_pairs.jsonl", ANSWERS[:2], ("prompt", "response"))}


@pytest.fixture(scope="module")
def model_file(tiny_models, tmp_path_factory):
    """A tiny t5 that answers with the answer of the knowledge line, for any question."""
    root = tmp_path_factory.mktemp("knowledge_chat")
    rows = []
    for question in QUESTIONS:
        for answer in ANSWERS:
            for asked in ASKED.values():
                knowledge = read_jsonl_line(question, answer)
                rows.append({"prompt": with_knowledge(asked, [knowledge]), "completion": answer})
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    mf = str(root / "m" / "model")
    train_briefly(tiny_models["t5"], mf, str(root / "data"), steps=300, task="dialogft_files",
                  files_datapath=str(pairs), validation_every_n_steps=10000, batchsize=12, learningrate=1e-2)
    return mf


def read_jsonl_line(question: str, answer: str) -> str:
    """The entry text the store makes of one FAQ pair (the store's own rendering, not a copy)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one.jsonl"
        path.write_text(json.dumps({"question": question, "answer": answer}) + "\n", encoding="utf-8")
        (entry,) = read_jsonl_entries(path)
    assert isinstance(entry, Entry)
    return entry.text


def chat(model_file, store, lines, *extra):
    return subprocess.run(
        [sys.executable, "-m", "parlai", "interactive", "-mf", model_file, "--knowledge-retriever", "bm25",
         "--knowledge-file", store, "--knowledge-top-k", "1", *extra],
        input="".join(line + "\n" for line in lines), capture_output=True, text=True, encoding="utf-8", timeout=300,
    )


def replies(stdout):
    return re.findall(r"\[\w+\]: (.*)", stdout)


def test_interactive_answers_from_the_file_it_is_given(model_file, stores):
    asked = [ASKED[QUESTIONS[0]], ASKED[QUESTIONS[1]]]
    by_file = {}
    for name, store in stores.items():
        # One question per conversation: the tiny model was trained on single turns.
        run = chat(model_file, store, [asked[0], "[RESET]", asked[1], "[EXIT]"])
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr[-2000:]
        by_file[name] = replies(run.stdout)
    # The same model and questions; each file's own answer, question by question.
    assert by_file["ab"] == by_file["ab as prompt/response"] == ANSWERS[:2]
    assert by_file["ba"] == ANSWERS[1::-1]


def test_a_bad_knowledge_file_stops_interactive_naming_its_line(model_file, tmp_path):
    bad = tmp_path / "faq.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{"question": "only a question"}\n', encoding="utf-8")
    run = chat(model_file, str(bad), ["hello", "[EXIT]"])
    assert run.returncode != 0
    assert f"{bad}, line 2: \"answer\" must be a non-empty string" in run.stderr


@pytest.mark.parametrize("name", ["ab", "ba"])
def test_dialogft_serve_answers_from_the_file(model_file, stores, name, tmp_path):
    import urllib.request

    args = ["dialogft_serve", "-mf", model_file, "--port", "{port}", "--serve-log-db", tmp_path / "log.db",
            "--datapath", tmp_path, "--knowledge-retriever", "bm25", "--knowledge-file", stores[name],
            "--knowledge-top-k", "1", "--serve-model-name", "m"]
    expected = dict(zip(QUESTIONS, ANSWERS[:2] if name == "ab" else ANSWERS[1::-1]))
    with parlai_server(args, "/healthz", timeout=180) as (base, proc):
        for question, asked in ASKED.items():
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": asked}]}).encode()
            request = urllib.request.Request(base + "/v1/chat/completions", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                reply = json.load(response)["choices"][0]["message"]["content"]
            assert reply == expected[question]
        proc.terminate()
        proc.wait(timeout=60)
