"""ParlAI's human-evaluation formats: ACUTE pairings in, conversation logs in, ACUTE analysis files out."""

from __future__ import annotations

import csv
import json
import math

import pytest

from parlai_dialogft.human_eval import formats
from parlai_dialogft.utils.errors import UserError


def dialogue(model, texts, other="human_evaluator"):
    turns = []
    for i, text in enumerate(texts):
        turns.append({"id": model if i % 2 == 0 else other, "text": text})
    return {"speakers": [model, other], "id": f"{model}-convo", "dialogue": turns}


def pairing(a="alpha", b="beta", **extra):
    return {
        "is_onboarding": False,
        "speakers_to_eval": [a, b],
        "tags": ["example"],
        "dialogue_dicts": [dialogue(a, ["hi", "hello", "how are you"]), dialogue(b, ["hey", "yo"])],
        **extra,
    }


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_read_pairings_keeps_parlai_fields_and_fills_is_onboarding(tmp_path):
    first = pairing()
    del first["is_onboarding"]
    onboarding = pairing("good", "bad", is_onboarding=True, correct_answer="good")
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(first), "", json.dumps(onboarding)])
    got = formats.read_pairings(path)
    # Every field as written (the blank line skipped), plus the flag ParlAI's own reader defaults.
    assert got == [{**first, "is_onboarding": False}, onboarding]
    assert "is_onboarding" not in first  # the default came from the reader, not the test


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.pop("speakers_to_eval"), "speakers_to_eval must be a list of two"),
        (lambda p: p.update(speakers_to_eval=["alpha", "alpha"]), "names 'alpha' twice"),
        (lambda p: p.update(dialogue_dicts=p["dialogue_dicts"][:1]), "dialogue_dicts must be a list of two"),
        (lambda p: p["dialogue_dicts"][1].update(dialogue=[{"id": "x", "text": "?"}]), "no turn by 'beta'"),
        (lambda p: p["dialogue_dicts"][0]["dialogue"].append({"id": "alpha"}), r"dialogue\[3\] needs string"),
        (lambda p: p.update(is_onboarding=True), "onboarding pairing needs a correct_answer"),
        (lambda p: p.update(correct_answer="gamma"), "correct_answer 'gamma' is not one of"),
        (lambda p: p.update(is_onboarding="yes"), "is_onboarding must be true or false"),
    ],
)
def test_read_pairings_names_file_and_line_of_a_bad_pairing(tmp_path, mutate, message):
    bad = pairing()
    mutate(bad)
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(pairing()), json.dumps(bad)])
    with pytest.raises(UserError, match=f"p.jsonl, line 2: .*{message}"):
        formats.read_pairings(path)


def test_read_pairings_bad_json_missing_and_empty_files(tmp_path):
    with pytest.raises(UserError, match=r"p.jsonl, line 1: not valid JSON"):
        formats.read_pairings(write_lines(tmp_path / "p.jsonl", ["{nope"]))
    with pytest.raises(UserError, match="no such pairings file"):
        formats.read_pairings(tmp_path / "absent.jsonl")
    with pytest.raises(UserError, match="no pairings in the file"):
        formats.read_pairings(write_lines(tmp_path / "e.jsonl", ["", "  "]))


def test_read_pairings_takes_a_bom_and_names_the_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(pairing()).encode() + b"\n")
    assert formats.read_pairings(path)[0]["speakers_to_eval"] == ["alpha", "beta"]
    path.write_bytes(json.dumps(pairing()).encode() + b"\n" + b'{"x": "caf\xe9"}\n')
    with pytest.raises(UserError, match=r"bom.jsonl, line 2: not valid UTF-8"):
        formats.read_pairings(path)


def test_an_empty_conversation_log_holds_no_conversations(tmp_path):
    assert formats.read_conversations(write_lines(tmp_path / "c.jsonl", ["", " "])) == []
    with pytest.raises(UserError, match="absent.jsonl: no such conversation log"):
        formats.read_conversations(tmp_path / "absent.jsonl")


def test_write_pairings_round_trips_and_refuses_a_bad_pairing(tmp_path):
    path = formats.write_pairings(tmp_path / "out" / "p.jsonl", [pairing(), pairing("c", "d")])
    assert [p["speakers_to_eval"] for p in formats.read_pairings(path)] == [["alpha", "beta"], ["c", "d"]]
    with pytest.raises(UserError, match="pairing 0"):
        formats.write_pairings(tmp_path / "bad.jsonl", [pairing(is_onboarding=True)])
    assert not (tmp_path / "bad.jsonl").exists()


# A line as `parlai self_chat --outfile x.jsonl` writes it (ids and extra fields as ParlAI logs them).
SELF_CHAT_LINE = {
    "dialog": [
        [{"text": "hello , how are you ?", "episode_done": False, "id": "Dialogft_1"},
         {"id": "Dialogft_2", "episode_done": False, "text": "fine <b>thanks</b>", "metrics": {"clen": 11.0}}],
        [{"id": "Dialogft_1", "episode_done": False, "text": " and you? "},
         {"id": "Dialogft_2", "episode_done": False, "text": "good"}],
    ],
    "context": [{"text": "Hi!", "episode_done": False, "id": "context"}],
    "metadata_path": "/tmp/x.metadata",
}


def test_read_conversations_agrees_with_parlais_own_reader(tmp_path):
    from parlai.utils.conversations import Conversations

    path = write_lines(tmp_path / "chats.jsonl", [json.dumps(SELF_CHAT_LINE)] * 2)
    ours = formats.read_conversations(path)
    theirs = list(Conversations(str(path)))
    assert len(ours) == len(theirs) == 2
    assert [act["text"] for turn in ours[0]["dialog"] for act in turn] == [t["text"] for t in theirs[0].turns]


def test_read_conversations_rejects_what_is_not_a_conversation_log(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [json.dumps(SELF_CHAT_LINE), json.dumps({"text": "hi"})])
    with pytest.raises(UserError, match=r"c.jsonl, line 2: expected a ParlAI conversation"):
        formats.read_conversations(path)
    path = write_lines(tmp_path / "d.jsonl", [json.dumps({"dialog": [[{"text": "no id"}]]})])
    with pytest.raises(UserError, match=r"d.jsonl, line 1: dialog\[0\] has an act without"):
        formats.read_conversations(path)


def test_acute_dialogue_names_the_judged_side_after_the_model():
    first = formats.acute_dialogue(SELF_CHAT_LINE, "modelA", speaker_index=0, dialogue_id="modelA-0")
    assert first["speakers"] == ["modelA", "other_speaker"]
    assert [t["id"] for t in first["dialogue"]] == ["modelA", "other_speaker"] * 2
    assert first["dialogue"][2]["text"] == "and you?"
    assert first["context"][0]["text"] == "Hi!"
    assert first["id"] == "modelA-0"
    second = formats.acute_dialogue(SELF_CHAT_LINE, "modelA", speaker_index=1)
    assert [t["id"] for t in second["dialogue"]] == ["other_speaker", "modelA"] * 2
    # The result is a valid half of an ACUTE pairing.
    formats.validate_pairing(
        {"speakers_to_eval": ["modelA", "modelB"],
         "dialogue_dicts": [first, formats.acute_dialogue(SELF_CHAT_LINE, "modelB")]}, "test")


def judgment(i, worker, winner, pair="p1", question="engagingness", a="alpha", b="beta"):
    return {
        "judgment_id": f"j{i}", "worker_id": worker, "pair_id": pair, "question": question,
        "model_a": a, "model_b": b, "winner": winner, "left_model": a, "justification": f"reason {i}",
        "duration_s": 12.5, "is_onboarding": False, "is_attention_check": False, "passed_check": None,
    }


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_parlai_shaped_results_for_one_question(tmp_path):
    # alpha vs beta: 3 of 4 to alpha; pair p1 judged twice (alpha, alpha: agreement 1),
    # pair p2 judged twice (alpha, beta: a 1-1 split counts 0) -> agree = 0.5.
    # alpha vs gamma: gamma wins 1 of 1. beta vs gamma never compared.
    records = [
        judgment(1, "w1", "alpha", "p1"), judgment(2, "w2", "alpha", "p1"),
        judgment(3, "w1", "alpha", "p2"), judgment(4, "w2", "beta", "p2"),
        judgment(5, "w3", "gamma", "p3", b="gamma"),
    ]
    pairings = {"p1": pairing(), "p2": pairing(), "p3": pairing("alpha", "gamma")}
    written = formats.write_parlai_acute_results(
        records, tmp_path, {"engagingness": "Who would you prefer to talk to for a long conversation?"},
        pairing_lookup=pairings.get,
    )
    assert sorted(p.name for p in written) == sorted(
        f"engagingness.{suffix}" for suffix in
        ("full.csv", "significance.csv", "grid.csv", "grid.winners_as_rows.csv",
         "ratings_per_worker.csv", "all_convo_pairs.txt")
    )
    significance = read_csv(tmp_path / "engagingness.significance.csv")
    # ParlAI's column order (AcuteAnalyzer.get_matchup_totals_with_significance).
    assert significance[0] == ["question", "matchup", "model1", "numwins1", "winrate1", "model2",
                               "numwins2", "winrate2", "numratings", "sigf", "stars", "p", "agree"]
    ab = dict(zip(significance[0], significance[1]))
    assert ab["matchup"] == "alpha__vs__beta" and ab["numwins1"] == "3" and ab["numwins2"] == "1"
    assert float(ab["winrate1"]) == 0.75 and ab["numratings"] == "4"
    assert float(ab["p"]) == pytest.approx(2 * 5 / 16)  # 2 P(X <= 1), n = 4
    assert ab["sigf"] == "p>.05" and ab["stars"] == ""
    assert float(ab["agree"]) == pytest.approx(0.5)
    ag = dict(zip(significance[0], significance[2]))
    assert ag["agree"] == ""  # one judgment of p3: nothing to agree with (ParlAI writes NaN)

    grid = read_csv(tmp_path / "engagingness.grid.csv")
    # Mean win fraction: alpha (0.75 + 0) / 2, beta 0.25, gamma 1 -> beta, alpha, gamma.
    assert grid[0] == ["loser", "beta", "alpha", "gamma"]
    rows = {row[0]: dict(zip(grid[0][1:], row[1:])) for row in grid[1:]}
    assert float(rows["beta"]["alpha"]) == 0.75 and float(rows["alpha"]["beta"]) == 0.25
    assert float(rows["alpha"]["gamma"]) == 1.0 and float(rows["gamma"]["alpha"]) == 0.0
    assert rows["beta"]["gamma"] == "" and rows["alpha"]["alpha"] == ""
    transposed = read_csv(tmp_path / "engagingness.grid.winners_as_rows.csv")
    assert transposed[0][0] == "winner"
    assert [r[1:] for r in transposed[1:]] == [list(col) for col in zip(*[r[1:] for r in grid[1:]])]

    assert read_csv(tmp_path / "engagingness.ratings_per_worker.csv") == [
        ["worker", "run_id"], ["w1", "2"], ["w2", "2"], ["w3", "1"]]
    full = read_csv(tmp_path / "engagingness.full.csv")
    assert full[0][:4] == ["run_id", "worker", "worker_name", "time_taken"]
    assert dict(zip(full[0], full[4]))["loser"] == "alpha"
    text = (tmp_path / "engagingness.all_convo_pairs.txt").read_text()
    assert text.count("CONVO PAIR ID:") == 5
    assert "WINNING DIALOGUE: gamma\n[gamma]: hey" in text
    assert "QUESTION: Who would you prefer to talk to for a long conversation?" in text


def test_one_run_per_question_and_no_convo_file_without_pairings(tmp_path):
    records = [judgment(1, "w1", "alpha"), judgment(2, "w1", "beta", question="humanness")]
    written = formats.write_parlai_acute_results(records, tmp_path)
    names = {p.name for p in written}
    assert "engagingness.significance.csv" in names and "humanness.significance.csv" in names
    assert not any(name.endswith("all_convo_pairs.txt") for name in names)
    row = read_csv(tmp_path / "humanness.significance.csv")[1]
    assert row[0] == "humanness"  # no wording given: the key stands in
    assert float(row[11]) == 1.0 and not math.isnan(float(row[11]))


# --- question tables (parlai_dialogft.human_eval.questions) --------------------------------------


def test_the_published_acute_eval_wordings():
    from parlai_dialogft.human_eval.questions import load_questions

    questions = load_questions()
    # Li, Weston and Roller (2019), as ParlAI's acute_eval/fast_eval.py ships them.
    assert questions["engagingness"]["question"] == "Who would you prefer to talk to for a long conversation?"
    assert questions["humanness"]["question"] == "Which speaker sounds more human?"
    assert questions["interestingness"]["question"] == (
        "If you had to say one of these speakers is interesting and one is boring, "
        "who would you say is more interesting?")
    assert questions["knowledgeability"]["question"] == (
        "If you had to say that one speaker is more knowledgeable and one is more ignorant, "
        "who is more knowledgeable?")
    assert {q["parlai_type"] for q in questions.values()} == {"engaging", "human", "interesting", "knowledge"}


def test_question_files_in_yaml_and_json_replace_the_table(tmp_path):
    from parlai_dialogft.human_eval.questions import load_chat_ratings, load_problem_categories, load_questions

    (tmp_path / "q.yaml").write_text("empathy:\n  question: Which speaker understands feelings better?\n")
    got = load_questions(tmp_path / "q.yaml")
    assert list(got) == ["empathy"] and got["empathy"]["s1_choice"] == "<Speaker 1>"
    (tmp_path / "p.json").write_text(json.dumps({"rude": {"name": "Rude"}}))
    assert load_problem_categories(tmp_path / "p.json") == {"rude": {"name": "Rude", "description": ""}}
    (tmp_path / "r.json").write_text(json.dumps({"fun": {"question": "How fun?", "low": "dull"}}))
    assert load_chat_ratings(tmp_path / "r.json")["fun"] == {"question": "How fun?", "low": "dull", "high": "5"}


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("q.yaml", "empathy: {}\n", "empathy: 'question' is missing"),
        ("q.yaml", "Bad Key:\n  question: x\n", "key 'Bad Key' must be lower-case"),
        ("q.yaml", "a:\n  question: x\n  colour: red\n", "unknown field"),
        ("q.json", "{oops", "not valid JSON"),
        ("q.yaml", "- a list\n", "expected a non-empty mapping"),
    ],
)
def test_bad_question_files_name_the_file_and_the_problem(tmp_path, name, text, message):
    from parlai_dialogft.human_eval.questions import load_questions

    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=f"{name}: .*{message}"):
        load_questions(tmp_path / name)


def test_none_is_reserved_among_problem_categories(tmp_path):
    from parlai_dialogft.human_eval.questions import load_problem_categories

    (tmp_path / "p.yaml").write_text("none:\n  name: Nothing\n")
    with pytest.raises(UserError, match="'none' is reserved"):
        load_problem_categories(tmp_path / "p.yaml")
