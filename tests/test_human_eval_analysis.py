"""The analysis of a human evaluation reproduces statistics worked by hand on a fixed data set.

The fixed data set (question ``engagingness``): three models, 40 counted judgments, each
pair of conversations judged twice (by w1, then w2), so 20 units::

    matchup  units (both judgments)          wins of the first model
    A vs B   AA x4, AB x1, BB x1             9 of 12
    A vs C   AA x8, AC x2                    18 of 20
    B vs C   BB x2, BC x2                    6 of 8

Win rates, Wilson intervals, binomial and Holm p-values and Bradley-Terry scores are those
of the 9 : 3 : 1 table worked in ``test_human_eval_stats.py``: A-B 0.75 [0.4677, 0.9111]
p = 598/4096, Holm 2·598/4096; A-C 0.90 [0.6990, 0.9721] p = 422/2^20, Holm 3·422/2^20;
B-C 0.75 [0.4093, 0.9285] p = 74/256, Holm 2·598/4096; scores (log 3, 0, -log 3).

Krippendorff's alpha, nominal, units = pairs: coincidences o_AA = 2·12 = 24, o_BB = 2·3 = 6,
o_AB = o_BA = 1, o_AC = o_CA = 2, o_BC = o_CB = 2; marginals n_A = 27, n_B = 9, n_C = 4,
n = 40. D_o = 10/40; D_e = (40² - 27² - 9² - 4²) / (40·39) = 774/1560;
alpha = 1 - (10/40) / (774/1560) = 384/774 = 0.496124.

ParlAI's majority agreement per matchup: A-B (4·1 + 0 + 1)/6 = 5/6, A-C 8/10, B-C 2/4.

Besides: w1 and w2 passed onboarding, w1 passed an attention check; w3 failed onboarding,
so w3's five judgments (all for C) and its chat are left out. w1 always chose the
conversation shown on the left; w2's left side was always model A, chosen 14 of 20 times.

Chats: model A, two chats, 5 annotated bot turns: repetition 2/5, contradiction 1/5, any
problem 2/5, none 3/5; engagingness ratings 4 and 2: mean 3, sd sqrt 2, 95% Student t
interval with 1 degree of freedom 3 ± 12.706205·sqrt(2)/sqrt(2) = [-9.706, 15.706], cut to
the scale: [1, 5] (two chats say next to nothing; a normal z = 1.96 would claim [1.04, 4.96]).
Model B: one chat, one annotated turn of
two (off_topic), rating 5.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
import sys

import pytest

from parlai_dialogft.human_eval import analysis
from parlai_dialogft.utils.errors import UserError

P_AB, P_AC, P_BC = 598 / 4096, 422 / 2**20, 74 / 256
UNITS = (
    [("A", "B", "A", "A")] * 4 + [("A", "B", "A", "B")] + [("A", "B", "B", "B")]
    + [("A", "C", "A", "A")] * 8 + [("A", "C", "A", "C")] * 2
    + [("B", "C", "B", "B")] * 2 + [("B", "C", "B", "C")] * 2
)


def _judgment(jid, worker, pair, a, b, winner, left, **extra):
    record = {
        "judgment_id": jid, "worker_id": worker, "pair_id": pair, "question": "engagingness",
        "model_a": a, "model_b": b, "winner": winner, "left_model": left,
        "justification": f"{winner} kept the conversation going", "duration_s": 30.0 + len(jid),
        "is_onboarding": False, "is_attention_check": False, "passed_check": None,
    }
    record.update(extra)
    return record


def fixed_judgments():
    records = []
    for u, (a, b, first, second) in enumerate(UNITS):
        pair = f"pair{u:02d}"
        records.append(_judgment(f"j{u}w1", "w1", pair, a, b, first, left=first))
        records.append(_judgment(f"j{u}w2", "w2", pair, a, b, second, left=a))
    for w, passed in (("w1", True), ("w2", True), ("w3", False)):
        records.append(_judgment(f"onb-{w}", w, "onb", "A", "C", "A" if passed else "C", "A",
                                 is_onboarding=True, passed_check=passed))
    records.append(_judgment("att-w1", "w1", "att", "A", "B", "A", "B", is_attention_check=True, passed_check=True))
    for i in range(5):
        records.append(_judgment(f"bad{i}", "w3", f"pair{i:02d}", "A", "C", "C", "C"))
    return records


def fixed_chats():
    return [
        {"chat_id": "c1", "worker_id": "w1", "model": "A", "turns": 3,
         "bot_turn_problems": [["none"], ["repetition"], ["repetition", "contradiction"]],
         "ratings": {"engagingness": 4}, "duration_s": 200.0},
        {"chat_id": "c2", "worker_id": "w2", "model": "A", "turns": 2,
         "bot_turn_problems": [["none"], ["none"]], "ratings": {"engagingness": 2}, "duration_s": 100.0},
        {"chat_id": "c3", "worker_id": "w2", "model": "B", "turns": 2,
         "bot_turn_problems": [["off_topic"], []], "ratings": {"engagingness": 5}, "duration_s": 150.0},
        {"chat_id": "c4", "worker_id": "w3", "model": "B", "turns": 1,
         "bot_turn_problems": [["offensive"]], "ratings": {"engagingness": 1}, "duration_s": 5.0},
    ]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis")
    options = analysis.AnalysisOptions(out=str(out), bootstrap=200, seed=3)
    path = analysis.analyze(fixed_judgments(), fixed_chats(), options,
                            categories=["contradiction", "repetition", "off_topic"])
    return out, path


def test_the_fixed_data_set_counts_40_judgments():
    assert len(analysis.counted_judgments(fixed_judgments())) == 40
    assert analysis.failed_workers(fixed_judgments()) == ["w3"]


def test_pairwise_csv_reproduces_hand_computed_rates_intervals_and_p_values(report):
    out, _ = report
    rows = {(r["model_a"], r["model_b"]): r for r in read_csv(out / "pairwise.csv")}
    assert set(rows) == {("A", "B"), ("A", "C"), ("B", "C")}
    expected = {
        ("A", "B"): (12, 9, 0.4677, 0.9111, P_AB, 2 * P_AB),
        ("A", "C"): (20, 18, 0.6990, 0.9721, P_AC, 3 * P_AC),
        ("B", "C"): (8, 6, 0.4093, 0.9285, P_BC, 2 * P_AB),
    }
    for key, (n, wins, low, high, p, p_holm) in expected.items():
        row = rows[key]
        assert int(row["n"]) == n and int(row["wins_a"]) == wins
        assert float(row["win_rate_a"]) == pytest.approx(wins / n, rel=1e-5)
        assert float(row["ci_low"]) == pytest.approx(low, abs=5e-5)
        assert float(row["ci_high"]) == pytest.approx(high, abs=5e-5)
        assert float(row["p"]) == pytest.approx(p, rel=1e-5)
        assert float(row["p_holm"]) == pytest.approx(p_holm, rel=1e-5)


def test_bradley_terry_csv_has_the_exact_scores_and_seeded_intervals(report, tmp_path):
    out, _ = report
    rows = {r["model"]: r for r in read_csv(out / "bradley_terry.csv")}
    assert float(rows["A"]["score"]) == pytest.approx(math.log(3), abs=1e-5)
    assert float(rows["B"]["score"]) == pytest.approx(0.0, abs=1e-5)
    assert float(rows["C"]["score"]) == pytest.approx(-math.log(3), abs=1e-5)
    assert (rows["A"]["wins"], rows["A"]["comparisons"]) == ("27", "32")
    for r in rows.values():
        assert float(r["ci_low"]) < float(r["score"]) < float(r["ci_high"])
        assert float(r["prior"]) == 0.0
    # Same data, same seed: the same intervals, to the last digit written.
    again = analysis.analyze(fixed_judgments(), [], analysis.AnalysisOptions(out=str(tmp_path), bootstrap=200, seed=3))
    rerun = {r["model"]: r for r in read_csv(again.parent / "bradley_terry.csv")}
    assert [(rerun[m]["ci_low"], rerun[m]["ci_high"]) for m in "ABC"] == [
        (rows[m]["ci_low"], rows[m]["ci_high"]) for m in "ABC"]


def test_agreement_csv_has_the_hand_computed_alpha(report):
    out, _ = report
    (row,) = read_csv(out / "agreement.csv")
    assert float(row["krippendorff_alpha"]) == pytest.approx(384 / 774, abs=1e-5)
    assert row["units"] == "20" and row["units_judged_twice_or_more"] == "20"
    assert float(row["majority_agreement"]) == pytest.approx(15 / 20, abs=1e-5)


def test_parlai_acute_files_mirror_parlai_shapes_with_hand_values(report):
    out, _ = report
    rows = {r["matchup"]: r for r in read_csv(out / "parlai_acute" / "engagingness.significance.csv")}
    assert set(rows) == {"A__vs__B", "A__vs__C", "B__vs__C"}
    assert rows["A__vs__C"]["numwins1"] == "18" and rows["A__vs__C"]["stars"] == "***"
    assert rows["A__vs__C"]["question"] == "Who would you prefer to talk to for a long conversation?"
    assert float(rows["A__vs__B"]["agree"]) == pytest.approx(5 / 6)
    assert float(rows["A__vs__C"]["agree"]) == pytest.approx(0.8)
    assert float(rows["B__vs__C"]["agree"]) == pytest.approx(0.5)
    with open(out / "parlai_acute" / "engagingness.grid.csv", newline="") as f:
        grid = list(csv.reader(f))
    assert grid[0] == ["loser", "C", "B", "A"]  # ParlAI orders by mean win fraction, lowest first
    per_worker = read_csv(out / "parlai_acute" / "engagingness.ratings_per_worker.csv")
    assert [(r["worker"], r["run_id"]) for r in per_worker] == [("w1", "20"), ("w2", "20")]


def test_chat_tables_reproduce_hand_computed_rates_and_means(report):
    out, _ = report
    problems = {(r["model"], r["category"]): r for r in read_csv(out / "chat_problems.csv")}
    assert float(problems[("A", "repetition")]["rate"]) == pytest.approx(0.4)
    assert float(problems[("A", "contradiction")]["rate"]) == pytest.approx(0.2)
    assert float(problems[("A", "off_topic")]["rate"]) == 0.0
    assert float(problems[("A", "any_problem")]["rate"]) == pytest.approx(0.4)
    assert float(problems[("A", "none")]["rate"]) == pytest.approx(0.6)
    assert problems[("B", "off_topic")]["bot_turns"] == "1"  # the unmarked turn is not counted
    assert ("B", "offensive") not in problems  # only w3, who is excluded, marked it
    ratings = {(r["model"], r["question"]): r for r in read_csv(out / "chat_ratings.csv")}
    a = ratings[("A", "engagingness")]
    assert (a["n"], float(a["mean"])) == ("2", 3.0)
    assert float(a["sd"]) == pytest.approx(math.sqrt(2), abs=1e-5)
    assert (float(a["ci_low"]), float(a["ci_high"])) == (1.0, 5.0)  # t's [-9.706, 15.706], cut to the scale
    b = ratings[("B", "engagingness")]
    assert (b["n"], b["mean"], b["sd"]) == ("1", "5", "")


def test_workers_csv_shows_the_quality_signals(report):
    out, _ = report
    workers = {r["worker_id"]: r for r in read_csv(out / "workers.csv")}
    assert workers["w1"]["judgments"] == "20" and float(workers["w1"]["left_choice_share"]) == 1.0
    assert float(workers["w2"]["left_choice_share"]) == pytest.approx(0.7)
    assert workers["w1"]["attention_passed"] == "1" and workers["w1"]["onboarding_passed"] == "1"
    assert workers["w3"]["onboarding_failed"] == "1" and workers["w3"]["excluded"] == "True"
    assert workers["w2"]["chats"] == "2"


def test_report_markdown_links_real_png_plots(report):
    out, path = report
    text = path.read_text()
    for heading in ("## Pairwise: engagingness", "## Live chat: problems per bot turn",
                    "## Live chat: final ratings (1-5)", "## Method"):
        assert heading in text
    assert "40 counted" in text and "w3" in text
    assert "| A | B | 12 | 9 | 0.750 [0.468, 0.911] | 0.146 | 0.292 |" in text
    for png in ("win_matrix_engagingness.png", "bradley_terry_engagingness.png",
                "problem_rates.png", "ratings.png"):
        assert f"]({png})" in text
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_report_escapes_markup_in_names(tmp_path):
    evil = "<script>alert(1)</script>"
    records = [_judgment(f"j{i}", "w1", f"p{i}", "A", evil, "A" if i % 2 else evil, "A") for i in range(4)]
    path = analysis.analyze(records, [], analysis.AnalysisOptions(out=str(tmp_path), bootstrap=20))
    text = path.read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_model_that_never_wins_gets_a_finite_score_and_a_note(tmp_path):
    records = [_judgment(f"j{i}", "w1", f"p{i}", "A", "B", "A", "A") for i in range(6)]
    options = analysis.AnalysisOptions(out=str(tmp_path), bootstrap=50)
    result = analysis.compute(records, [], options)
    scores = {r["model"]: r["score"] for r in result.bradley_terry}
    assert math.isfinite(scores["A"]) and scores["A"] > scores["B"]
    assert all(r["prior"] == 0.5 for r in result.bradley_terry)
    assert any("pseudo-wins" in note for note in result.notes)
    with pytest.raises(UserError, match="--he-bt-prior 0.0"):
        analysis.compute(records, [], analysis.AnalysisOptions(out=str(tmp_path), bt_prior=0.0))


def test_bad_options_and_empty_input_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--he-confidence"):
        analysis.AnalysisOptions(out=str(tmp_path), confidence=1.5)
    with pytest.raises(UserError, match="nothing to analyse"):
        analysis.analyze([], [], analysis.AnalysisOptions(out=str(tmp_path)))


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _parlai(*args):
    return subprocess.run([sys.executable, "-m", "parlai", *args], capture_output=True, text=True, timeout=300)


def test_the_parlai_script_writes_the_report_from_record_files(tmp_path):
    judgments = _write_jsonl(tmp_path / "j.jsonl", fixed_judgments())
    chats = _write_jsonl(tmp_path / "c.jsonl", fixed_chats())
    done = _parlai("dialogft_human_eval_analysis", "--he-judgments", str(judgments), "--he-chats", str(chats),
                   "--he-out", str(tmp_path / "out"), "--he-bootstrap", "50")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {(r["model_a"], r["model_b"]): r for r in read_csv(tmp_path / "out" / "pairwise.csv")}
    assert float(rows[("A", "C")]["p"]) == pytest.approx(P_AC, rel=1e-5)
    assert (tmp_path / "out" / "report.md").is_file()
    # The bootstrap is the slow part: its progress is shown, per question, to the last draw.
    assert "Bradley-Terry bootstrap: " in done.stdout and "50/50 draws" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--he-out", "OUT"], "--he-db (or --he-judgments / --he-chats) is required"),
        (["--he-db", "NOPE.sqlite", "--he-out", "OUT"], "--he-db NOPE.sqlite: no such file"),
        (["--he-judgments", "BAD", "--he-out", "OUT"], "BAD, line 2: missing winner"),
    ],
)
def test_the_parlai_script_reports_bad_input_in_one_line(tmp_path, args, message):
    bad = _write_jsonl(tmp_path / "bad.jsonl", [fixed_judgments()[0], {"judgment_id": "x", "worker_id": "w",
                       "pair_id": "p", "question": "q", "model_a": "A", "model_b": "B", "left_model": "A",
                       "justification": "", "duration_s": 1, "is_onboarding": False, "is_attention_check": False}])
    args = [a.replace("OUT", str(tmp_path / "out")).replace("BAD", str(bad)) for a in args]
    message = message.replace("BAD", str(bad))
    done = _parlai("dialogft_human_eval_analysis", *args)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dialogft_human_eval_analysis: {message}")
    assert "Traceback" not in done.stderr


def _conversation(model, texts):
    return {"speakers": ["other_speaker", model],
            "dialogue": [{"id": "other_speaker" if i % 2 == 0 else model, "text": t} for i, t in enumerate(texts)]}


def _answer_side(database, assignment_id, want_model):
    """Which side ('left'/'right') shows ``want_model`` (the test peeks at the stored left_model)."""
    (row,) = database.rows("SELECT left_model FROM assignments WHERE assignment_id = ?", (assignment_id,))
    return "left" if row["left_model"] == want_model else "right"


def test_the_script_reads_the_web_apps_sqlite_and_counts_only_trusted_judgments(tmp_path):
    """Pairings from Fast-ACUTE's onboarding plus four real ones go through the app's task
    assignment; worker 1 passes onboarding and checks and always prefers alpha; worker 2 fails
    onboarding. The analysis of the SQLite file: alpha wins 4 of 4 (p = 2/16 = 0.125), and
    worker 2 appears nowhere."""
    from parlai_dialogft.human_eval import db as he_db
    from parlai_dialogft.human_eval import qc, tasks
    from parlai_dialogft.human_eval.onboarding import onboarding_pairings

    real = [{"is_onboarding": False, "speakers_to_eval": ["alpha", "beta"],
             "dialogue_dicts": [_conversation("alpha", [f"opener {i}", f"a reply {i}"]),
                                _conversation("beta", [f"opener {i}", f"b reply {i}"])]} for i in range(4)]
    path = tmp_path / "study.sqlite"
    database = he_db.Database(path)
    tasks.load_pairings(database, onboarding_pairings() + real, checks_per_task=1, seed=0)
    assigner = tasks.Assigner(database, tasks.TaskSettings(comparisons_per_task=4, checks_per_task=1),
                              qc.QcSettings(min_seconds=0, min_justification_chars=5))
    good, bad = (w["worker_id"] for w in database.create_link_workers(2))
    for worker, honest in ((good, True), (bad, False)):
        while True:
            shown = assigner.next(worker)
            if shown["stage"] not in ("onboarding", "task"):
                break
            (row,) = database.rows(
                "SELECT p.correct_answer, p.model_a, p.model_b FROM assignments a JOIN pairings p USING (pair_id) "
                "WHERE a.assignment_id = ?", (shown["assignment_id"],))
            if row["correct_answer"]:
                right = row["correct_answer"]
                want = right if honest else (row["model_b"] if right == row["model_a"] else row["model_a"])
            else:
                want = "alpha"
            assigner.submit(worker, shown["assignment_id"], _answer_side(database, shown["assignment_id"], want),
                            "because it answers what was said")
    assert database.blocked_reason(bad)

    done = _parlai("dialogft_human_eval_analysis", "--he-db", str(path), "--he-out", str(tmp_path / "out"),
                   "--he-bootstrap", "50")
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = read_csv(tmp_path / "out" / "pairwise.csv")
    assert (row["model_a"], row["model_b"], row["n"], row["wins_a"]) == ("alpha", "beta", "4", "4")
    assert float(row["p"]) == pytest.approx(2 / 16)
    workers = {r["worker_id"] for r in read_csv(tmp_path / "out" / "workers.csv")}
    assert workers == {good}
    convo_pairs = (tmp_path / "out" / "parlai_acute" / "engagingness.all_convo_pairs.txt").read_text()
    assert convo_pairs.count("CONVO PAIR ID:") == 4 and "[alpha]: a reply" in convo_pairs


def test_rating_intervals_are_student_t_inside_the_scale_and_cut_at_its_ends():
    from scipy.stats import t

    chats = [{"model": "A", "ratings": {"fluency": r}} for r in (4, 4, 5, 3, 4, 5, 4, 3)]
    chats += [{"model": "B", "ratings": {"fluency": r}} for r in (5, 5, 4)]
    rows = {r["model"]: r for r in analysis.chat_rating_table(chats)}
    values = [4, 4, 5, 3, 4, 5, 4, 3]
    half = t.ppf(0.975, 7) * statistics.stdev(values) / math.sqrt(8)
    assert (rows["A"]["ci_low"], rows["A"]["ci_high"]) == pytest.approx((4 - half, 4 + half))
    assert rows["B"]["ci_high"] == 5 and 1 < rows["B"]["ci_low"] < rows["B"]["mean"]
