"""``parlai dialogft_human_eval_analysis --he-db X.sqlite --he-out DIR``: statistics and a report.

    parlai dialogft_human_eval_analysis --he-db /tmp/eval/he.sqlite --he-out /tmp/eval/results
    parlai dialogft_human_eval_analysis --he-judgments j.jsonl --he-chats c.jsonl --he-out r

Reads the judgments and chats of ``parlai dialogft_human_eval`` (from its SQLite file, or
from JSONL files of the same records) and writes CSV tables, ParlAI's ACUTE analysis files
and ``report.md`` with plots. The logic is in :mod:`parlai_dialogft.human_eval.analysis`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.human_eval.analysis import AnalysisOptions, analyze
from parlai_dialogft.human_eval.formats import jsonl_records
from parlai_dialogft.utils.errors import UserError, one_line_errors

DEFAULTS = AnalysisOptions(out="")

PAIRWISE_KEYS = ("judgment_id", "worker_id", "pair_id", "question", "model_a", "model_b", "winner",
                 "left_model", "justification", "duration_s", "is_onboarding", "is_attention_check")
CHAT_KEYS = ("chat_id", "worker_id", "model", "turns", "bot_turn_problems", "ratings", "duration_s")


def _read_records(path: str, keys, flag: str) -> List[Dict[str, Any]]:
    """JSONL records of the db.py shapes, each checked for its keys (file and line on error)."""
    records = []
    for where, _, record in jsonl_records(path, f"{flag} {path}: no such file"):
        missing = [k for k in keys if not isinstance(record, dict) or k not in record]
        if missing:
            raise UserError(f"{where}: missing {', '.join(missing)}")
        records.append(record)
    return records


def _check_pairwise(records: List[Dict[str, Any]], where: str) -> None:
    for i, r in enumerate(records):
        if r["winner"] not in (r["model_a"], r["model_b"]):
            raise UserError(f"{where}: judgment {r['judgment_id']}: winner {r['winner']!r} is neither "
                            f"{r['model_a']!r} nor {r['model_b']!r}")


@register_script("dialogft_human_eval_analysis", hidden=False)
class DialogftHumanEvalAnalysis(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(False, False, description="Statistics and a report from a human evaluation")
        group = parser.add_argument_group("Human evaluation analysis")
        group.add_argument("--he-db", type=str, default=None, help="SQLite file of parlai dialogft_human_eval")
        group.add_argument("--he-judgments", type=str, default=None,
                           help="instead of --he-db: JSONL of pairwise judgments (db.pairwise_records' shape)")
        group.add_argument("--he-chats", type=str, default=None,
                           help="instead of --he-db: JSONL of live-chat records (db.chat_records' shape)")
        group.add_argument("--he-out", type=str, default=None, help="folder for the CSV files, plots and report.md")
        group.add_argument("--he-questions-file", type=str, default=None,
                           help="JSON/YAML question file used in the evaluation (for the wordings in the report)")
        group.add_argument("--he-problems-file", type=str, default=None,
                           help="JSON/YAML problem categories used (their order in the tables; all zero rows kept)")
        group.add_argument("--he-confidence", type=float, default=DEFAULTS.confidence,
                           help="confidence of every interval")
        group.add_argument("--he-bootstrap", type=int, default=DEFAULTS.bootstrap,
                           help="bootstrap resamples for the Bradley-Terry intervals (0: none)")
        group.add_argument("--he-seed", type=int, default=DEFAULTS.seed, help="seed of the bootstrap")
        group.add_argument("--he-bt-prior", type=float, default=None,
                           help="pseudo-wins each way per compared pair in Bradley-Terry "
                                "(default: 0 when the plain estimate exists, else 0.5)")
        group.add_argument("--he-keep-failed-workers", type="bool", default=False,
                           help="count the judgments of workers who failed an onboarding or attention check")
        group.add_argument("--he-include-blocked", type="bool", default=False,
                           help="with --he-db: also read the records of blocked workers")
        return parser

    @one_line_errors("dialogft_human_eval_analysis")
    def run(self):
        from parlai_dialogft.human_eval.questions import load_problem_categories, load_questions

        opt = self.opt
        if not opt.get("he_out"):
            raise UserError("--he-out is required: the folder for the results")
        judgments, chats, lookup = self._records()
        options = AnalysisOptions(
            out=opt["he_out"], confidence=opt["he_confidence"], bootstrap=opt["he_bootstrap"],
            seed=opt["he_seed"], bt_prior=opt["he_bt_prior"],
            keep_failed_workers=bool(opt["he_keep_failed_workers"]),
        )
        questions = load_questions(opt.get("he_questions_file"))
        categories = list(load_problem_categories(opt.get("he_problems_file")))
        report = analyze(judgments, chats, options,
                         question_texts={k: v["question"] for k, v in questions.items()},
                         categories=categories, pairing_lookup=lookup)
        print(f"wrote {report}")
        return str(report)

    def _records(self):
        opt = self.opt
        db_path: Optional[str] = opt.get("he_db")
        if db_path and (opt.get("he_judgments") or opt.get("he_chats")):
            raise UserError("give --he-db, or --he-judgments/--he-chats, not both")
        if db_path:
            # Imported here: the web app's module is only needed when reading its database.
            from parlai_dialogft.human_eval import db

            if not Path(db_path).is_file():
                raise UserError(f"--he-db {db_path}: no such file")
            blocked = bool(opt.get("he_include_blocked"))
            judgments = db.pairwise_records(db_path, include_blocked=blocked)
            chats = db.chat_records(db_path, include_blocked=blocked)
            _check_pairwise(judgments, db_path)
            return judgments, chats, _db_pairing_lookup(db_path)
        if not opt.get("he_judgments") and not opt.get("he_chats"):
            raise UserError("--he-db (or --he-judgments / --he-chats) is required: where the results are")
        judgments = (_read_records(opt["he_judgments"], PAIRWISE_KEYS, "--he-judgments")
                     if opt.get("he_judgments") else [])
        chats = _read_records(opt["he_chats"], CHAT_KEYS, "--he-chats") if opt.get("he_chats") else []
        _check_pairwise(judgments, opt.get("he_judgments") or "")
        for j in judgments:
            j.setdefault("passed_check", None)
        return judgments, chats, None


def _db_pairing_lookup(db_path: str):
    """pair_id -> the pairing stored by the web app, for ParlAI's all_convo_pairs.txt (None if absent)."""
    from parlai_dialogft.human_eval import db

    database = getattr(db, "Database", None)
    if database is None or not hasattr(database, "pairing"):
        return None
    store = database(db_path)

    def lookup(pair_id: str):
        try:
            return store.pairing(pair_id)["data"]
        except (ValueError, KeyError):
            return None

    return lookup


if __name__ == "__main__":
    DialogftHumanEvalAnalysis.main()
