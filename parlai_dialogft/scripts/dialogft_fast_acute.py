"""``parlai dialogft_fast_acute``: self-chats of several models, paired for ACUTE-Eval.

    parlai dialogft_fast_acute --fa-model-files a=/runs/a/model,b=/runs/b/model \\
        --fa-task dialogft_chitchat --fa-num-chats 20 --fa-turns 6 --fa-out /tmp/fa
    parlai dialogft_human_eval --he-db /tmp/fa/study.sqlite --he-pairings /tmp/fa/pairings.jsonl

The logic is in :mod:`parlai_dialogft.human_eval.fast_acute`; this module only reads flags.
"""

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.human_eval.fast_acute import FastAcuteOptions, run
from parlai_dialogft.utils.errors import UserError, one_line_errors

D = FastAcuteOptions.__dataclass_fields__


def _default(name):
    return D[name].default


@register_script("dialogft_fast_acute", hidden=False)
class DialogftFastAcute(ParlaiScript):
    @classmethod
    def setup_args(cls):
        # Only our flags: ParlAI's full parser would import -t while parsing and turn an
        # unknown task into a traceback instead of one line.
        parser = ParlaiParser(False, False, description="Fast-ACUTE: self-chats of each model, ACUTE pairings")
        group = parser.add_argument_group("Fast-ACUTE")
        group.add_argument("--fa-model-files", type=str, default=None,
                           help="comma-separated model files, each path or name=path (at least two)")
        group.add_argument("--fa-out", type=str, default=None, help="folder for openers, self-chats and pairings.jsonl")
        group.add_argument("--fa-task", type=str, default=_default("task"),
                           help="ParlAI task whose first messages open the chats")
        group.add_argument("--fa-datatype", type=str, default=_default("datatype"), help="split of --fa-task to draw openers from")
        group.add_argument("--fa-openers-file", type=str, default=None, help="openers, one a line (replaces --fa-task)")
        group.add_argument("--fa-num-chats", type=int, default=_default("num_chats"), help="self-chats per model")
        group.add_argument("--fa-turns", type=int, default=_default("turns"), help="turns per self-chat")
        group.add_argument("--fa-seed", type=int, default=_default("seed"), help="seed of the openers and of self_chat")
        group.add_argument("--fa-speaker-index", type=int, default=_default("speaker_index"),
                           help="self-chat speaker judged: 1 (default) answers the opener, 0 says it")
        group.add_argument("--fa-onboarding", type="bool", default=_default("onboarding"),
                           help="put the built-in onboarding pairings first in pairings.jsonl")
        group.add_argument("--fa-reuse-chats", type="bool", default=_default("reuse_chats"),
                           help="keep self-chat logs already in --fa-out")
        group.add_argument("--fa-datapath", type=str, default=None, help="ParlAI data folder")
        group.add_argument("--fa-inference", type=str, default=None, help="decoding for the self-chats (default: the model's)")
        group.add_argument("--fa-beam-size", type=int, default=None, help="beam size for the self-chats")
        group.add_argument("--fa-beam-min-length", type=int, default=None, help="least reply length in tokens")
        return parser

    @one_line_errors("dialogft_fast_acute")
    def run(self):
        opt = self.opt
        if not opt.get("fa_model_files"):
            raise UserError("--fa-model-files is required: two or more model files, comma-separated")
        options = FastAcuteOptions(
            model_files=opt["fa_model_files"], out=opt.get("fa_out") or "", task=opt.get("fa_task"),
            datatype=opt["fa_datatype"], openers_file=opt.get("fa_openers_file"), num_chats=opt["fa_num_chats"],
            turns=opt["fa_turns"], seed=opt["fa_seed"], speaker_index=opt["fa_speaker_index"],
            onboarding=bool(opt["fa_onboarding"]), reuse_chats=bool(opt["fa_reuse_chats"]),
            datapath=opt.get("fa_datapath"), inference=opt.get("fa_inference"),
            beam_size=opt.get("fa_beam_size"), beam_min_length=opt.get("fa_beam_min_length"),
        )
        summary = run(options)
        print(f"wrote {summary['pairings']} ({summary['comparison_pairings']} comparisons, "
              f"{summary['onboarding_pairings']} onboarding)")
        return summary


if __name__ == "__main__":
    DialogftFastAcute.main()
