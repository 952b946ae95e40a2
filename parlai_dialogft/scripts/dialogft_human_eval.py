"""``parlai dialogft_human_eval``: serve a crowdsourced human evaluation (ACUTE-Eval, live chat, per-turn pairs).

    # ACUTE-Eval on pairings (from `parlai dialogft_fast_acute` or ParlAI's own JSONL):
    parlai dialogft_human_eval --he-db study.sqlite --he-pairings pairings.jsonl \\
        --he-questions engagingness,humanness --he-comparisons 5 --he-port 8090
    # Live chat with two fine-tuned models (blind; each chat gets the least-used one):
    parlai dialogft_human_eval --he-db chat.sqlite --he-model-file a=/runs/a/model,b=/runs/b/model \\
        --he-chat-turns 6
    # Which next reply is better, and why (items: context + two candidates, JSONL):
    parlai dialogft_human_eval --he-db turns.sqlite --he-turn-pairs items.jsonl
    # Links for a lab's own volunteers (printed, then the command exits):
    parlai dialogft_human_eval --he-db study.sqlite --he-make-links 20 --he-base-url https://eval.example.org

Workers open ``/start?worker=ID&token=T`` (lab links), or the platform's own parameters:
Prolific ``/start?PROLIFIC_PID={{%PROLIFIC_PID%}}``, MTurk ``/start?workerId=...``; add
``&task=chat`` for the live chat (``&task=turns`` for the per-turn task) when a study has
several. The admin pages are at
``/admin?token=ADMIN`` (the token is printed at start unless ``--he-admin-token`` gives one).
Analysis: ``parlai dialogft_human_eval_analysis --he-db study.sqlite --he-out DIR``; per-turn
judgments as DPO pairs: ``parlai dialogft_human_eval_preferences --he-db study.sqlite --he-preferences-out F``.
"""

from __future__ import annotations

import os
import secrets

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.utils.errors import UserError, one_line_errors


def add_human_eval_args(parser) -> None:
    group = parser.add_argument_group("dialogft_human_eval: the study")
    group.add_argument("--he-db", type=str, default=None, help="SQLite file of the study (created if absent; required)")
    group.add_argument("--he-pairings", type=str, default=None,
                       help="ACUTE pairings JSONL (ParlAI's format); onboarding pairings need correct_answer")
    group.add_argument("--he-turn-pairs", type=str, default=None,
                       help="per-turn items JSONL: {id, context: [turn, ...], a: {model, text}, b: {model, text}}; "
                       "workers choose the better next reply (see docs/human-eval.md)")
    group.add_argument("--he-model-file", type=str, default=None,
                       help="live chat: comma-separated model files, each optionally NAME=PATH")
    group.add_argument("--he-host", type=str, default="127.0.0.1", help="address to bind")
    group.add_argument("--he-port", type=int, default=8090, help="TCP port (0: any free port)")
    group.add_argument("--he-admin-token", type=str, default=None,
                       help="token of the admin pages, 16+ characters (default: a random one, printed)")
    group.add_argument("--he-make-links", type=int, default=0,
                       help="print this many new lab-worker links and exit")
    group.add_argument("--he-base-url", type=str, default=None,
                       help="public address in printed links (default http://HOST:PORT)")
    group.add_argument("--he-seed", type=int, default=None, help="seed of assignment and left/right order")

    group = parser.add_argument_group("dialogft_human_eval: questions and tasks")
    group.add_argument("--he-questions", type=str, default="engagingness",
                       help="comma-separated question keys, asked in turn (engagingness, interestingness, "
                       "humanness, knowledgeability, or keys of --he-questions-file)")
    group.add_argument("--he-questions-file", type=str, default=None, help="JSON/YAML file replacing the questions")
    group.add_argument("--he-problems-file", type=str, default=None,
                       help="JSON/YAML file replacing the live-chat problem categories")
    group.add_argument("--he-ratings-file", type=str, default=None,
                       help="JSON/YAML file replacing the final 1-5 chat ratings")
    group.add_argument("--he-comparisons", type=int, default=5, help="comparisons per task")
    group.add_argument("--he-checks-per-task", type=int, default=1, help="attention checks added to each task")
    group.add_argument("--he-tasks-per-worker", type=int, default=1, help="most tasks one worker may do")
    group.add_argument("--he-judgments-per-pair", type=int, default=0,
                       help="stop assigning a pairing after this many judgments (0: no cap)")
    group.add_argument("--he-hold-minutes", type=float, default=60.0,
                       help="an unanswered comparison holds its place under --he-judgments-per-pair this long")
    group.add_argument("--he-chat-turns", type=int, default=5, help="worker messages per live chat")

    group = parser.add_argument_group("dialogft_human_eval: quality control and recruitment")
    group.add_argument("--he-onboarding-threshold", type=float, default=0.75,
                       help="fraction of onboarding answers that must be right")
    group.add_argument("--he-max-failed-checks", type=int, default=0,
                       help="attention checks a worker may fail before being blocked")
    group.add_argument("--he-min-seconds", type=float, default=5.0, help="least time on a comparison before answering")
    group.add_argument("--he-min-justification", type=int, default=10, help="least characters of justification")
    group.add_argument("--he-uniform-min", type=int, default=4,
                       help="tasks at least this long with every answer on one side are flagged")
    group.add_argument("--he-block-uniform", type="bool", default=False, help="block (not just flag) uniform answers")
    group.add_argument("--he-min-chat-words", type=float, default=3.0,
                       help="live chats whose worker averages fewer words per message are flagged low effort")
    group.add_argument("--he-min-chat-seconds", type=float, default=0.0,
                       help="live chats finished faster than this are flagged low effort")
    group.add_argument("--he-blocklist", type=str, default=None, help="file of worker ids to block, one a line")
    group.add_argument("--he-platforms", type=str, default="link,prolific,mturk",
                       help="ways in: link (token links), prolific (PROLIFIC_PID), mturk (workerId)")
    group.add_argument("--he-completion-codes", type=str, default=None,
                       help="fixed completion codes per platform, e.g. prolific=C1AB2CD (default: one per worker)")
    parser.set_defaults(interactive_mode=True, datatype="valid")


def settings_from_opt(opt):
    """Every flag checked, before any model loads."""
    from parlai_dialogft.human_eval import qc, recruit
    from parlai_dialogft.human_eval.app import AppSettings
    from parlai_dialogft.human_eval.questions import load_chat_ratings, load_problem_categories, load_questions
    from parlai_dialogft.human_eval.tasks import TaskSettings

    token = opt.get("he_admin_token") or secrets.token_urlsafe(18)
    if len(token) < 16:
        raise UserError("--he-admin-token: use at least 16 characters")
    tasks = TaskSettings(questions=tuple(q.strip() for q in opt["he_questions"].split(",") if q.strip()),
                         comparisons_per_task=opt["he_comparisons"], checks_per_task=opt["he_checks_per_task"],
                         tasks_per_worker=opt["he_tasks_per_worker"], judgments_per_pair=opt["he_judgments_per_pair"],
                         hold_s=opt["he_hold_minutes"] * 60)
    checks = qc.QcSettings(onboarding_threshold=opt["he_onboarding_threshold"],
                           max_failed_checks=opt["he_max_failed_checks"], min_seconds=opt["he_min_seconds"],
                           min_justification_chars=opt["he_min_justification"],
                           uniform_min_judgments=opt["he_uniform_min"], block_uniform=bool(opt["he_block_uniform"]),
                           min_chat_words=opt["he_min_chat_words"],
                           min_chat_seconds=opt["he_min_chat_seconds"])
    platforms = tuple(p.strip() for p in opt["he_platforms"].split(",") if p.strip())
    return AppSettings(admin_token=token, questions=load_questions(opt.get("he_questions_file")),
                       problem_categories=load_problem_categories(opt.get("he_problems_file")),
                       chat_ratings=load_chat_ratings(opt.get("he_ratings_file")), tasks=tasks, qc=checks,
                       chat_turns=opt["he_chat_turns"],
                       recruit=recruit.RecruitSettings(platforms, recruit.parse_codes(opt.get("he_completion_codes"))),
                       seed=opt.get("he_seed"))


def model_files(value):
    """``a=/x/model,/y/model`` -> {"a": "/x/model", "y": "/y/model"} (unnamed: the run folder's name)."""
    from parlai_dialogft.serving.options import default_model_name

    found = {}
    for item in filter(None, (part.strip() for part in (value or "").split(","))):
        name, sep, path = item.partition("=")
        if not sep:
            name, path = default_model_name({"model_file": item}), item
        if not os.path.isfile(path):
            raise UserError(f"--he-model-file {path}: no such model file")
        if name in found:
            raise UserError(f"--he-model-file: two models are called {name!r}; name them, NAME=PATH")
        found[name] = path
    return found


@register_script("dialogft_human_eval", hidden=False)
class DialogftHumanEval(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(False, False, description="Serve a crowdsourced human evaluation "
                              "(ACUTE-Eval, live chat, per-turn pairs)")
        add_human_eval_args(parser)
        return parser

    @one_line_errors("dialogft_human_eval")
    def run(self):
        from parlai_dialogft.human_eval import qc
        from parlai_dialogft.human_eval.db import Database

        opt = self.opt
        if not opt.get("he_db"):
            raise UserError("give --he-db FILE (the study's SQLite file)")
        database = Database(opt["he_db"])
        base = (opt.get("he_base_url") or f"http://{opt['he_host']}:{opt['he_port']}").rstrip("/")
        if opt["he_make_links"]:
            if opt["he_make_links"] < 0:
                raise UserError("--he-make-links: give a positive number")
            for worker in database.create_link_workers(opt["he_make_links"]):
                print(f"{worker['worker_id']}\t{base}/start?worker={worker['worker_id']}&token={worker['token']}")
            return
        settings = settings_from_opt(opt)
        models = model_files(opt.get("he_model_file"))
        if opt.get("he_pairings"):
            from parlai_dialogft.human_eval.formats import read_pairings
            from parlai_dialogft.human_eval.tasks import load_pairings

            counts = load_pairings(database, read_pairings(opt["he_pairings"]), settings.tasks.checks_per_task)
            print(f"dialogft_human_eval: {counts['task']} pairings, {counts['onboarding']} onboarding, "
                  f"{counts['attention']} attention checks from {opt['he_pairings']}", flush=True)
        if opt.get("he_turn_pairs"):
            from parlai_dialogft.human_eval.turn_items import load_turn_pairs, read_turn_pairs

            counts = load_turn_pairs(database, read_turn_pairs(opt["he_turn_pairs"]), settings.tasks.checks_per_task)
            print(f"dialogft_human_eval: {counts['task']} per-turn items, {counts['onboarding']} onboarding, "
                  f"{counts['attention']} attention checks from {opt['he_turn_pairs']}", flush=True)
        has_work = database.rows("SELECT 1 FROM pairings WHERE kind = 'task' UNION ALL "
                                 "SELECT 1 FROM turn_items WHERE kind = 'task' LIMIT 1")
        if not has_work and not models:
            raise UserError("nothing to evaluate: give --he-pairings FILE and/or --he-model-file MODEL "
                            "(or --he-turn-pairs FILE)")
        for worker_id in qc.load_blocklist(opt["he_blocklist"]) if opt.get("he_blocklist") else []:
            database.block(worker_id, f"in {opt['he_blocklist']}")
        self._serve(database, settings, models, base)

    def _serve(self, database, settings, models, base):
        from parlai.core.agents import create_agent_from_model_file

        from parlai_dialogft.human_eval.app import create_app
        from parlai_dialogft.human_eval.live_chat import ServedModel
        from parlai_dialogft.serving.server import build_server

        served = {name: ServedModel(create_agent_from_model_file(path, {"interactive_mode": True, "datatype": "valid"}))
                  for name, path in models.items()}
        server = build_server(create_app(database, settings, served), self.opt["he_host"], self.opt["he_port"])
        print(f"dialogft_human_eval: workers start at {base}/start?worker=ID&token=T (or ?PROLIFIC_PID= / ?workerId=; "
              f"&task=pairwise|chat|turns)",
              flush=True)
        print(f"dialogft_human_eval: admin at {base}/admin?token={settings.admin_token}", flush=True)
        try:
            server.run()
        finally:
            for model in served.values():
                model.close()


if __name__ == "__main__":
    DialogftHumanEval.main()
