"""Task success: reply-only against call-and-reply, from the same start model and the same updates.

For each mode, ``parlai train_model`` fine-tunes ``--start`` for ``--steps`` updates of batch 16
on SGD, MultiWOZ and CrossWOZ together (both languages):

* ``reply``: ``-t dialogft_customer`` (user turns in, agent replies out);
* ``call``: ``-t dialogft_customer:system`` (ParlAI's TOD format: the call, then the reply after
  the database's answer). A round is two examples, so in the same updates this mode sees half as
  many replies.

Then, on ``--dialogues`` whole test dialogues per corpus, spread over the split (ParlAI's
``--n-shot`` after a shuffle with ``--episodes-randomization-seed``), greedy decoding:

* MultiWOZ and CrossWOZ through ``dialogft_customer:end_to_end``: the call mode runs the loop
  against the SQLite database (``--task-db``) and is scored on its own states; the reply mode
  writes no calls and is scored with the gold states and answers (the policy setting, its best
  case). MultiWOZ Inform, Success, BLEU and Combined come from
  :func:`parlai_dialogft.evaluation.task_success.score_multiwoz` on the written predictions,
  with intervals; CrossWOZ Inform (ours) and joint goal accuracy from the teacher's report.
* SGD through ``dialogft_customer:system`` (teacher-forced: the gold answer follows each call),
  seen and unseen services apart: ``jga`` is ParlAI's exact match of the whole call on every
  turn, ``jga_noempty`` on the turns that call.

Every stage's result is kept in ``--out`` (a JSON file) as soon as it is measured, and a rerun
skips what is there: the run is resumable (training resumes from its own checkpoint).
``--write`` puts the table into docs/task.md between its markers.

    python bench/task.py                                   # 1500 updates, 100 dialogues per corpus
    python bench/task.py --steps 200 --dialogues 10 --out /tmp/task-sample.json   # a sample
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

TASKS = {"reply": "dialogft_customer", "call": "dialogft_customer:system"}
SOURCES = ["--customer-lang", "all", "--customer-sources", "sgd,multiwoz,crosswoz"]
#: Histories with calls and answers are long: room for them; calls are longer than replies.
TRUNCATE = ["--text-truncate", "512", "--truncate", "512", "--label-truncate", "128"]
DECODING = ["--inference", "greedy", "--skip-generation", "false"]
TABLE_BEGIN, TABLE_END = "<!-- task-table:begin -->", "<!-- task-table:end -->"


def load(path: str) -> Dict:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {}


def save(path: str, results: Dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".tmp"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    os.replace(partial, path)


def numbers(report) -> Dict[str, float]:
    return {k: float(v.value() if hasattr(v, "value") else v) for k, v in report.items()
            if isinstance(v, (int, float)) or hasattr(v, "value")}


def train(mode: str, args, model_file: str) -> Dict[str, float]:
    from parlai.scripts.train_model import TrainModel

    report = TrainModel.main(
        "-t", TASKS[mode], *SOURCES, "-m", "dialogft_agent", "--hf-model", args.start, "-mf", model_file,
        "-bs", "16", "--max-train-steps", str(args.steps), "-lr", str(args.lr), "--warmup-updates", "50",
        "--seed", "0", *TRUNCATE, "-vstep", str(args.steps), "-vme", "64", "--skip-generation", "true",
        "--datapath", args.datapath,
    )
    valid = report[0] if isinstance(report, tuple) else report
    return numbers(valid)


def end_to_end(mode: str, source: str, args, model_file: str, predictions: str) -> Dict[str, float]:
    from parlai.scripts.eval_model import EvalModel

    task_db = ["--task-db", source] if mode == "call" else []
    report = EvalModel.main(
        "-mf", model_file, "-t", f"dialogft_customer:end_to_end:sources={source}", "-dt", "test",
        "--n-shot", str(args.dialogues), "--episodes-randomization-seed", str(args.sample_seed),
        *task_db, "--tod-predictions", predictions, *TRUNCATE, *DECODING, "-bs", "1", "--datapath", args.datapath,
    )
    return numbers(report)


def multiwoz_scores(predictions: str) -> Dict[str, float]:
    from parlai_dialogft.evaluation.mwzeval_format import read_predictions
    from parlai_dialogft.evaluation.task_success import score_multiwoz
    from parlai_dialogft.tod.database import open_database
    from parlai_dialogft.tod.scoring import corpus

    report = score_multiwoz(read_predictions(predictions), corpus("multiwoz"), open_database("multiwoz").query)
    out = {key: value for key, value in report.to_dict().items() if isinstance(value, (int, float))}
    for key in ("inform_interval", "success_interval", "combined_interval"):
        if key in report.to_dict():
            out[key] = list(report.to_dict()[key])
    return out


def sgd(mode: str, services: str, args, model_file: str) -> Dict[str, float]:
    from parlai.scripts.eval_model import EvalModel

    report = EvalModel.main(
        "-mf", model_file, "-t", "dialogft_customer:system:sources=sgd", "--customer-sgd-services", services,
        "-dt", "test", "--n-shot", str(args.dialogues), "--episodes-randomization-seed", str(args.sample_seed),
        *TRUNCATE, *DECODING, "-bs", "16", "--datapath", args.datapath,
    )
    return {k: v for k, v in numbers(report).items() if k in ("jga", "jga_noempty", "jga_empty", "slot_f1", "exs")}


def wilson(rate: float, n: int) -> List[float]:
    """The Wilson interval of a share measured on ``n`` dialogues, in percent."""
    from parlai_dialogft.evaluation.task_success import wilson as interval

    return list(interval(round(rate * n), n))


def table(results: Dict) -> str:
    def get(mode, key, metric, scale=100.0, digits=1):
        value = results.get(mode, {}).get(key, {}).get(metric)
        if value is None or value != value:  # not measured, or NaN (ParlAI's slot F1 with no slots)
            return "—"
        return f"{value * scale:.{digits}f}" if scale != 1 else f"{value:.{digits}f}"

    def interval(mode, key, metric):
        value = results.get(mode, {}).get(key, {}).get(metric)
        return "" if not value else f" [{value[0]:.1f}, {value[1]:.1f}]"

    rows = ["| mode | MultiWOZ Inform | Success | BLEU | Combined | JGA | slot F1 | CrossWOZ Inform | JGA | SGD seen JGA (calls) | unseen JGA (calls) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode in TASKS:
        if mode not in results:
            continue
        rows.append(
            f"| {mode} "
            f"| {get(mode, 'multiwoz_scored', 'inform', 1)}{interval(mode, 'multiwoz_scored', 'inform_interval')} "
            f"| {get(mode, 'multiwoz_scored', 'success', 1)}{interval(mode, 'multiwoz_scored', 'success_interval')} "
            f"| {get(mode, 'multiwoz_scored', 'bleu', 1, 2)} "
            f"| {get(mode, 'multiwoz_scored', 'combined', 1)}{interval(mode, 'multiwoz_scored', 'combined_interval')} "
            f"| {get(mode, 'multiwoz', 'jga')} | {get(mode, 'multiwoz', 'slot_f1')} "
            f"| {get(mode, 'crosswoz', 'inform')}{interval(mode, 'crosswoz', 'inform_interval')} | {get(mode, 'crosswoz', 'jga')} "
            f"| {get(mode, 'sgd_seen', 'jga')} ({get(mode, 'sgd_seen', 'jga_noempty')}) "
            f"| {get(mode, 'sgd_unseen', 'jga')} ({get(mode, 'sgd_unseen', 'jga_noempty')}) |"
        )
    return "\n".join(rows)


def write_table(text: str) -> None:
    path = os.path.join(ROOT, "docs", "task.md")
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    pattern = re.compile(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path}: no {TABLE_BEGIN} ... {TABLE_END} markers")
    with open(path, "w", encoding="utf-8") as f:
        f.write(pattern.sub(lambda _: f"{TABLE_BEGIN}\n{text}\n{TABLE_END}", doc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="zoo:dialogft/bilingual_t5", help="the model both modes fine-tune")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--dialogues", type=int, default=100, help="test dialogues per corpus (and per SGD group)")
    parser.add_argument("--sample-seed", type=int, default=0, help="which dialogues: the shuffle's seed")
    parser.add_argument("--modes", default="reply,call")
    parser.add_argument("--out", default=os.path.join(HERE, "task.json"))
    parser.add_argument("--workdir", default=os.path.join(ROOT, ".bench", "task"), help="models and predictions")
    parser.add_argument("--datapath", default=os.path.join(ROOT, ".bench", "data"))
    parser.add_argument("--write", action="store_true", help="put the table into docs/task.md")
    args = parser.parse_args()

    results = load(args.out)
    results["settings"] = {"start": args.start, "steps": args.steps, "lr": args.lr, "batch": 16,
                           "dialogues": args.dialogues, "sample_seed": args.sample_seed,
                           "decoding": "greedy", "command": "python bench/task.py " + " ".join(sys.argv[1:])}
    for mode in args.modes.split(","):
        done = results.setdefault(mode, {})
        folder = os.path.join(args.workdir, f"{mode}-{args.steps}")
        os.makedirs(folder, exist_ok=True)
        model_file = os.path.join(folder, "model")
        stages = {
            "train": lambda: train(mode, args, model_file),
            "multiwoz": lambda: end_to_end(mode, "multiwoz", args, model_file, os.path.join(folder, "multiwoz.json")),
            "multiwoz_scored": lambda: multiwoz_scores(os.path.join(folder, "multiwoz.json")),
            "crosswoz": lambda: end_to_end(mode, "crosswoz", args, model_file, os.path.join(folder, "crosswoz.json")),
        }
        if mode == "call":
            stages["sgd_seen"] = lambda: sgd(mode, "seen", args, model_file)
            stages["sgd_unseen"] = lambda: sgd(mode, "unseen", args, model_file)
        for stage, run in stages.items():
            if stage in done:
                continue
            print(f"# {mode}: {stage}", flush=True)
            done[stage] = run()
            if stage == "crosswoz" and "inform" in done[stage]:
                done[stage]["inform_interval"] = wilson(done[stage]["inform"], args.dialogues)
            save(args.out, results)
    save(args.out, results)
    text = table(results)
    print(text)
    if args.write:
        write_table(text)


if __name__ == "__main__":
    main()
