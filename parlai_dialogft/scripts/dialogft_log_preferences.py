"""``parlai dialogft_log_preferences --serve-log LOG --out-dir DIR``: served feedback as preference data.

    parlai dialogft_serve -mf /tmp/m/model --serve-log-db /tmp/m/log.db      # clients ask n: 2, post choices
    parlai dialogft_log_preferences --serve-log /tmp/m/log.db --out-dir /tmp/m/prefs
    # /tmp/m/prefs/paired.jsonl (DPO: prompt, chosen, rejected), unpaired.jsonl (KTO: prompt, completion, label)

The files are TRL's conversational preference formats; see :mod:`parlai_dialogft.serving.preferences`.
"""

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.serving.preferences import export_preferences
from parlai_dialogft.utils.errors import UserError, one_line_errors


@register_script("dialogft_log_preferences", hidden=False)
class DialogftLogPreferences(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(False, False, description="Turn a dialogft_serve log into DPO and KTO preference files")
        group = parser.add_argument_group("dialogft_log_preferences")
        group.add_argument("--serve-log", type=str, default=None,
                           help="the SQLite file dialogft_serve wrote with --serve-log-db (an older one is "
                           "migrated in place, as the server would)")
        group.add_argument("--out-dir", type=str, default=None,
                           help="folder to write paired.jsonl and unpaired.jsonl into (replaced if present)")
        return parser

    @one_line_errors("dialogft_log_preferences")
    def run(self):
        for flag, key in (("--serve-log", "serve_log"), ("--out-dir", "out_dir")):
            if not self.opt.get(key):
                raise UserError(f"give {flag}")
        summary = export_preferences(self.opt["serve_log"], self.opt["out_dir"])
        print(f"dialogft_log_preferences: {self.opt['serve_log']} -> {self.opt['out_dir']}")
        for line in summary.lines():
            print("  " + line)
        return summary


if __name__ == "__main__":
    DialogftLogPreferences.main()
