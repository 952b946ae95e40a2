"""``parlai dialogft_report -mf MODEL -t TASK --out DIR``: a Markdown report with plots.

    parlai dialogft_report -mf /tmp/m/model -t dialogft_customer --out /tmp/m/report
    parlai dialogft_report -mf /tmp/m/model -t dialogft_customer:lang=zh --out r --report-max-exs 50
    parlai dialogft_report -mf zoo:dialogft/customer_t5 -t dialogft_customer --out r --inference greedy
    parlai dialogft_report -mf zoo:dialogft/customer_t5 -t dialogft_customer:end_to_end --report-dialogues 20 --out r

The logic is in :mod:`parlai_dialogft.evaluation.report`; this module only reads flags.
"""

import os

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.evaluation.report import SUMMARY_TXT, ReportOptions, build
from parlai_dialogft.utils.errors import one_line_errors

DEFAULTS = ReportOptions(model_file="", task="", out="")
DECODING = ("inference", "beam_size", "beam_block_ngram", "beam_min_length", "task_db")


@register_script("dialogft_report", hidden=False)
class DialogftReport(ParlaiScript):
    @classmethod
    def setup_args(cls):
        # Only our flags, and -t not stored as "task": ParlAI's parser imports any "task"
        # while parsing, so an unknown one would end in a traceback instead of one line.
        parser = ParlaiParser(False, False, description="Report on a trained model: curves, metrics, sample dialogues")
        parser.add_argument("-mf", "--model-file", type=str, default=None, help="the trained ParlAI model file")
        parser.add_argument("-t", "--task", dest="report_task", type=str, default=None, help="task whose valid and test splits are evaluated")
        parser.add_argument("--out", type=str, default=None, help="folder for report.md, the PNG plots and metrics.json")
        parser.add_argument(
            "--report-max-exs", type=int, default=DEFAULTS.max_exs,
            help="evaluate at most this many examples per split (generation is the slow part)",
        )
        parser.add_argument(
            "--report-dialogues", type=int, default=DEFAULTS.dialogues,
            help="evaluate this many whole dialogues per split, spread over it, instead of "
            "--report-max-exs examples: task success (-t dialogft_customer:end_to_end) is per dialogue",
        )
        parser.add_argument("--report-samples", type=int, default=DEFAULTS.samples, help="sample dialogues shown per split")
        parser.add_argument("--report-batchsize", type=int, default=DEFAULTS.batchsize, help="batch size of the evaluation")
        decoding = parser.add_argument_group("decoding of the evaluation (default: as the model was saved)")
        decoding.add_argument("--inference", type=str, default=None, choices=["greedy", "beam", "topk", "nucleus"])
        decoding.add_argument("--beam-size", type=int, default=None)
        decoding.add_argument("--beam-block-ngram", type=int, default=None)
        decoding.add_argument("--beam-min-length", type=int, default=None)
        decoding.add_argument("--task-db", type=str, default=None,
                              help="the database the model calls (multiwoz, crosswoz, both): with "
                              "-t dialogft_customer:end_to_end, Inform, Success and joint goal accuracy")
        return parser

    @one_line_errors("dialogft_report")
    def run(self):
        options = ReportOptions(
            model_file=self.opt["model_file"],
            task=self.opt["report_task"],
            out=self.opt["out"],
            max_exs=self.opt["report_max_exs"],
            samples=self.opt["report_samples"],
            dialogues=self.opt["report_dialogues"],
            batchsize=self.opt["report_batchsize"],
            decoding={k: self.opt[k] for k in DECODING if self.opt.get(k) is not None},
        )
        path = build(options)
        with open(os.path.join(options.out, SUMMARY_TXT), encoding="utf-8") as f:
            print("\n" + f.read(), end="")
        return path


if __name__ == "__main__":
    DialogftReport.main()
