"""The task scorer against the field: gold replies and states of the MultiWOZ 2.1 test split.

The standardized MultiWOZ evaluation (Nekvinda & Dušek, 2021) reports the human reference,
MultiWOZ 2.2's own delexicalized replies with 2.2's states, at Inform 93.7 / Success 90.9.
This script scores the same thing on the data we ship, MultiWOZ 2.1 (ConvLab-2's copy) with
our database, through :func:`parlai_dialogft.evaluation.task_success.score_multiwoz`, and
says why the dialogues that fail, fail. With ``--mwzeval-predictions DIR`` (the
``predictions/`` folder of Tomiinek/MultiWOZ_Evaluation) it also scores the published
systems' files and sets them beside the figures the MultiWOZ README lists for them.
CrossWOZ Inform of the corpus's own replies, with the calls its annotated states make, is
added for reference (no published figure exists).

    python bench/task_scorer_check.py                       # writes bench/task_scorer_check.json
    python bench/task_scorer_check.py --mwzeval-predictions ~/MultiWOZ_Evaluation/predictions

Takes about a minute on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from parlai_dialogft.data.readers.corpus_files import corpus_dir, load_json  # noqa: E402
from parlai_dialogft.evaluation.crosswoz_inform import CrossWOZTurn, score_crosswoz_inform  # noqa: E402
from parlai_dialogft.evaluation.mwzeval_format import Turn, gold_predictions, read_predictions  # noqa: E402
from parlai_dialogft.evaluation.task_success import PredictionError, score_multiwoz  # noqa: E402
from parlai_dialogft.tod import calls  # noqa: E402
from parlai_dialogft.tod.database import open_database  # noqa: E402

# The MultiWOZ README's response-generation tables (all computed with the standardized
# evaluation, BLEU against MultiWOZ 2.2's references): system -> (BLEU, Inform, Success).
PUBLISHED = {
    "reference corpus": (None, 93.7, 90.9),
    "labes": (18.9, 68.5, 58.1), "damd": (16.4, 57.9, 47.6), "augpt": (16.8, 76.6, 60.5),
    "mintl": (19.4, 73.7, 65.4), "soloist": (13.6, 82.3, 72.4), "dots": (16.8, 80.4, 68.7),
    "ubar": (17.6, 83.4, 70.3), "pptod": (18.2, 83.1, 72.7), "galaxy-e2e": (19.64, 85.4, 75.7),
    "uniconv": (18.1, 66.7, 58.7), "sfn": (14.1, 93.4, 82.3), "hdsa": (20.7, 87.9, 79.4),
    "lava": (10.8, 95.9, 93.5), "hdno": (17.8, 93.3, 83.4), "marco": (17.3, 94.5, 87.2),
    "galaxy-policy": (19.92, 92.8, 83.5),
}


def headline(report) -> dict:
    return {
        "inform": round(report.inform, 2), "success": round(report.success, 2), "bleu": round(report.bleu, 2),
        "combined": round(report.combined, 2),
        "inform_interval": [round(x, 2) for x in report.inform_interval],
        "success_interval": [round(x, 2) for x in report.success_interval],
        "combined_interval": [round(x, 2) for x in report.combined_interval],
        "dialogues": len(report.dialogues), "turns": report.turns, "settings": report.settings,
        "per_domain": {d: {k: round(v, 2) for k, v in r.items()} for d, r in report.per_domain.items()},
    }


def why(report) -> dict:
    """Why dialogues fail: per domain, no venue ever offered / offered rows not all the goal's;
    per requested slot class, how often it was never given in a dialogue that informed."""
    inform_fails, success_misses = Counter(), Counter()
    for score in report.dialogues:
        for domain, result in score.domains.items():
            if not result["inform"]:
                inform_fails[f"{domain}: {'nothing offered' if result['offered'] == 0 else 'offered rows not all the goal'}"] += 1
            if score.inform:
                for cls in result["missing"]:
                    success_misses[f"{domain}: {cls} never given"] += 1
    return {"inform_failures": dict(inform_fails.most_common()), "success_misses": dict(success_misses.most_common())}


def crosswoz_gold(db) -> dict:
    """CrossWOZ Inform of the corpus's replies, each with the call its annotated state makes (the
    last call carried over turns without one, as :mod:`~parlai_dialogft.evaluation.crosswoz_inform` does)."""
    dialogues = load_json(corpus_dir("crosswoz") / "test.json.zip")
    predictions = {}
    for key, dialogue in dialogues.items():
        turns, before = [], {}
        for message in dialogue["messages"]:
            if message["role"] != "sys":
                continue
            # sys_state: the search the agent ran (relaxed where the user's constraints found
            # nothing), as the task-oriented episodes' calls are (parlai_dialogft.tod.episodes).
            after = calls.crosswoz_state(message.get("sys_state") or {})
            call = calls.turn_call(before, after, hint=[act[1] for act in message.get("dialog_act") or ()])
            before = after
            turns.append(CrossWOZTurn(message["content"], call or None, db.answer(call) if call else None))
        predictions[key] = turns
    report = score_crosswoz_inform(predictions, dialogues, db.query)
    return {"inform": round(report.inform, 2), "inform_interval": [round(x, 2) for x in report.inform_interval],
            "dialogues": len(report.dialogues),
            "failures": dict(Counter("a sub-goal met by no offer" if s.unmet else "an offer fitting no sub-goal"
                                     for s in report.dialogues if not s.inform))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "task_scorer_check.json"), help="JSON results")
    parser.add_argument("--mwzeval-predictions", default="",
                        help="the predictions/ folder of Tomiinek/MultiWOZ_Evaluation, to score the published systems")
    parser.add_argument("--bootstrap-samples", type=int, default=1000)
    args = parser.parse_args()

    started = time.time()
    test = load_json(corpus_dir("multiwoz21_convlab2") / "test.json.zip")
    query = open_database("multiwoz").query
    results = {"command": "python bench/task_scorer_check.py" + (" --mwzeval-predictions DIR" if args.mwzeval_predictions else "")}

    gold = gold_predictions(test)
    report = score_multiwoz(gold, test, query, gold_states=True, bootstrap_samples=args.bootstrap_samples)
    results["gold replies, gold states, estimated active domains"] = {**headline(report), **why(report)}
    print(f"# gold: {json.dumps(headline(report))}", flush=True)

    # The same replies with the states left out of the file: the scorer falls back to the
    # annotated states, so the figures must not move.
    stateless = {k: [Turn(t.response) for t in turns] for k, turns in gold.items()}
    again = score_multiwoz(stateless, test, query, bootstrap_samples=0)
    results["gold replies, states left out of the file"] = {"inform": round(again.inform, 2), "success": round(again.success, 2)}

    if args.mwzeval_predictions:
        published = {}
        for name, (bleu, inform, success) in PUBLISHED.items():
            path = os.path.join(args.mwzeval_predictions, f"{name}.json")
            if not os.path.exists(path):
                continue
            row = {"published": {"bleu": bleu, "inform": inform, "success": success}}
            try:
                ours = score_multiwoz(read_predictions(path), test, query, bootstrap_samples=0)
                row["ours"] = {"bleu": round(ours.bleu, 2), "inform": round(ours.inform, 2),
                               "success": round(ours.success, 2), "dialogues": len(ours.dialogues),
                               "states": ours.settings["states"]}
            except PredictionError as err:
                row["ours"] = {"error": str(err)}
            published[name] = row
            print(f"# {name}: {json.dumps(row)}", flush=True)
        results["published systems (their files, our scorer)"] = published

    results["crosswoz test: gold replies with the annotated states' calls"] = crosswoz_gold(open_database("crosswoz"))
    results["seconds"] = round(time.time() - started, 1)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(results["gold replies, gold states, estimated active domains"], indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
