"""``parlai dialogft_pretrain --pretrain-out DIR``: the recipe of ``zoo:dialogft/bilingual_t5``.

    parlai dialogft_pretrain --pretrain-out /tmp/bilingual_t5                 # the released sizes
    parlai dialogft_pretrain --pretrain-out /tmp/t --pretrain-max-train-steps 50 --pretrain-d-model 64

Every field of :class:`parlai_dialogft.training.pretrain.Recipe` is a ``--pretrain-*`` flag.
"""

from dataclasses import MISSING, fields

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.training.pretrain import Recipe, pretrain
from parlai_dialogft.utils.errors import UserError, one_line_errors


@register_script("dialogft_pretrain", hidden=False)
class DialogftPretrain(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(False, False, description="Pretrain the zoo's bilingual dialogue model")
        group = parser.add_argument_group("dialogft_pretrain")
        for f in fields(Recipe):
            default = None if f.default is MISSING else f.default
            kind = str if default is None else type(default)
            group.add_argument("--pretrain-" + f.name.replace("_", "-"), type=kind, default=default,
                               help=f.metadata["help"])
        return parser

    @one_line_errors("dialogft_pretrain")
    def run(self):
        values = {f.name: self.opt.get("pretrain_" + f.name) for f in fields(Recipe)}
        if not values["out"]:
            raise UserError("--pretrain-out is required: the folder to write the model into")
        out = pretrain(Recipe(**values))
        print(f"pretrained model written to {out}")
        return out


if __name__ == "__main__":
    DialogftPretrain.main()
