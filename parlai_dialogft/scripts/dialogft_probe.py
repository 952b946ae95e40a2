"""``parlai dialogft_probe -mf MODEL -t TASK``: robustness gap and gender-bias probe.

    parlai dialogft_probe -mf /tmp/m/model -t dialogft_customer
    parlai dialogft_probe -mf /tmp/m/model -t dialogft_customer:lang=zh --probe-noise dialogft_typos+dialogft_width --out /tmp/m/probe

Prints the tables; ``--out`` also writes probe.json and probe.md. The logic and the method
are in :mod:`parlai_dialogft.evaluation.probe`; this module only reads flags.
"""

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.evaluation.probe import TEMPLATE_LANGS, ProbeOptions, markdown, run
from parlai_dialogft.utils.errors import one_line_errors

DEFAULTS = ProbeOptions(model_file="", task="")


@register_script("dialogft_probe", hidden=False)
class DialogftProbe(ParlaiScript):
    @classmethod
    def setup_args(cls):
        # -t is not stored as "task": ParlAI's parser imports any "task" while parsing, so
        # an unknown one would end in a traceback instead of one line.
        parser = ParlaiParser(False, False, description="Robustness gap (clean vs noisy inputs) and gender-bias probe")
        parser.add_argument("-mf", "--model-file", type=str, default=None, help="the trained ParlAI model file")
        parser.add_argument("-t", "--task", dest="probe_task", type=str, default=None, help="task whose split is probed")
        parser.add_argument("--out", type=str, default=None, help="folder for probe.json and probe.md (optional)")
        parser.add_argument("--probe-split", default=DEFAULTS.split, help="valid or test (train works but is slow to scan)")
        parser.add_argument("--probe-max-exs", type=int, default=DEFAULTS.max_exs, help="examples per pass of the robustness gap")
        parser.add_argument(
            "--probe-noise", default=DEFAULTS.noise,
            help="noise mutators of the noisy pass, joined by + (dialogft_typos, dialogft_case_punct, "
            "dialogft_width, dialogft_script_variant, dialogft_fillers)",
        )
        parser.add_argument("--noise-rate", type=float, default=DEFAULTS.noise_rate, help="probability that one unit is perturbed")
        parser.add_argument("--noise-seed", type=int, default=DEFAULTS.noise_seed, help="seed of the noise")
        parser.add_argument("--probe-max-pairs", type=int, default=DEFAULTS.max_pairs, help="gendered prompts taken from the split")
        parser.add_argument(
            "--probe-templates", dest="probe_template_lang", default=DEFAULTS.template_lang,
            help=f"shipped template prompts to add: {', '.join(TEMPLATE_LANGS)} (auto: the task's languages)",
        )
        parser.add_argument("--probe-batchsize", type=int, default=DEFAULTS.batchsize, help="batch size of generation")
        return parser

    @one_line_errors("dialogft_probe")
    def run(self):
        options = ProbeOptions(
            model_file=self.opt["model_file"] or "",
            task=self.opt["probe_task"] or "",
            out=self.opt["out"],
            split=self.opt["probe_split"],
            max_exs=self.opt["probe_max_exs"],
            noise=self.opt["probe_noise"],
            noise_rate=self.opt["noise_rate"],
            noise_seed=self.opt["noise_seed"],
            max_pairs=self.opt["probe_max_pairs"],
            template_lang=self.opt["probe_template_lang"],
            batchsize=self.opt["probe_batchsize"],
        )
        result = run(options)
        print(markdown(result))
        return result


if __name__ == "__main__":
    DialogftProbe.main()
