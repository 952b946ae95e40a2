"""``parlai dialogft_human_eval_preferences``: a study's per-turn judgments as DPO pairs.

    parlai dialogft_human_eval --he-db /tmp/he/turns.sqlite --he-turn-pairs items.jsonl   # workers judge
    parlai dialogft_human_eval_preferences --he-db /tmp/he/turns.sqlite --he-preferences-out /tmp/he/prefs.jsonl
    parlai train_model -t dialogft_preferences --pref-datapath /tmp/he/prefs.jsonl --pref-loss dpo ...

One TRL conversational preference record (prompt, chosen, rejected) per item whose kept
judgments have a majority; ties and items nobody judged are counted and skipped. The logic
is in :mod:`parlai_dialogft.human_eval.preferences`.
"""

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.utils.errors import UserError, one_line_errors


@register_script("dialogft_human_eval_preferences", hidden=False)
class DialogftHumanEvalPreferences(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(False, False, description="Turn a study's per-turn judgments into DPO preference pairs")
        group = parser.add_argument_group("dialogft_human_eval_preferences")
        group.add_argument("--he-db", type=str, default=None, help="SQLite file of parlai dialogft_human_eval")
        group.add_argument("--he-preferences-out", type=str, default=None,
                           help="JSONL file to write (replaced if present): TRL's conversational preference "
                           "format, for -t dialogft_preferences --pref-datapath")
        group.add_argument("--he-keep-failed-workers", type="bool", default=False,
                           help="count the judgments of workers who failed a practice item or an attention check")
        group.add_argument("--he-include-blocked", type="bool", default=False,
                           help="also count the judgments of blocked workers")
        return parser

    @one_line_errors("dialogft_human_eval_preferences")
    def run(self):
        from parlai_dialogft.human_eval.preferences import export_preferences

        opt = self.opt
        for flag, key in (("--he-db", "he_db"), ("--he-preferences-out", "he_preferences_out")):
            if not opt.get(key):
                raise UserError(f"give {flag}")
        summary = export_preferences(opt["he_db"], opt["he_preferences_out"],
                                     include_blocked=bool(opt["he_include_blocked"]),
                                     keep_failed_workers=bool(opt["he_keep_failed_workers"]))
        print(f"dialogft_human_eval_preferences: {opt['he_db']} -> {opt['he_preferences_out']}")
        for line in summary.lines():
            print("  " + line)
        return summary


if __name__ == "__main__":
    DialogftHumanEvalPreferences.main()
