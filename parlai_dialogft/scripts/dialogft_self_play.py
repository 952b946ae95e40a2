"""``parlai dialogft_self_play -mf MODEL -t TASK --out FILE``: SPIN-style preference pairs.

    parlai dialogft_self_play -mf /tmp/m/model -t dialogft_customer --out /tmp/m/self_play.jsonl
    parlai dialogft_self_play -mf /tmp/m/model -t dialogft_customer:lang=zh --out p.jsonl --sp-max-exs 500 --topp 0.8

The logic is in :mod:`parlai_dialogft.training.self_play`; this module only reads flags.
"""

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.training.self_play import SelfPlayOptions, run
from parlai_dialogft.utils.errors import one_line_errors

DEFAULTS = SelfPlayOptions(model_file="", task="", out="")


@register_script("dialogft_self_play", hidden=False)
class DialogftSelfPlay(ParlaiScript):
    @classmethod
    def setup_args(cls):
        # Only our flags, and -t not stored as "task": ParlAI's parser imports any "task"
        # while parsing, so an unknown one would end in a traceback instead of one line.
        parser = ParlaiParser(False, False, description="Preference pairs from a model's own replies (SPIN)")
        parser.add_argument("-mf", "--model-file", type=str, default=None, help="the model whose replies are rejected")
        parser.add_argument("-t", "--task", dest="sp_task", type=str, default=None,
                            help="task whose reference replies are chosen")
        parser.add_argument("--out", type=str, default=None, help="preference file to write (TRL's format, JSONL)")
        parser.add_argument("--sp-split", type=str, default=DEFAULTS.split, choices=["train", "valid", "test"])
        parser.add_argument("--sp-max-exs", type=int, default=DEFAULTS.max_exs, help="examples to reply to, in file order")
        parser.add_argument("--sp-max-f1", type=float, default=DEFAULTS.max_f1,
                            help="skip pairs whose replies overlap this much (token F1) or more")
        parser.add_argument("--sp-batchsize", type=int, default=DEFAULTS.batchsize)
        parser.add_argument("--sp-seed", type=int, default=DEFAULTS.seed, help="seed of the sampled replies")
        decoding = parser.add_argument_group("how the model replies (default: nucleus sampling, top-p 0.9)")
        decoding.add_argument("--inference", type=str, default="nucleus", choices=["greedy", "beam", "topk", "nucleus"])
        decoding.add_argument("--topp", type=float, default=0.9)
        decoding.add_argument("--topk", type=int, default=10)
        decoding.add_argument("--temperature", type=float, default=1.0)
        decoding.add_argument("--beam-size", type=int, default=1)
        return parser

    @one_line_errors("dialogft_self_play")
    def run(self):
        o = self.opt
        summary = run(SelfPlayOptions(
            model_file=o["model_file"], task=o["sp_task"], out=o["out"], split=o["sp_split"],
            max_exs=o["sp_max_exs"], max_f1=o["sp_max_f1"], batchsize=o["sp_batchsize"], seed=o["sp_seed"],
            decoding={k: o[k] for k in ("inference", "topp", "topk", "temperature", "beam_size")},
        ))
        print(f"{o['out']}: {summary}")
        return summary


if __name__ == "__main__":
    DialogftSelfPlay.main()
