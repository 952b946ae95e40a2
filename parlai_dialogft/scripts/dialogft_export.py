"""``parlai dialogft_export -mf MODEL --out DIR``: a trained model as a plain HF folder.

    parlai dialogft_export -mf /tmp/m/model --out /tmp/m/hf
    python -c "from transformers import pipeline; ..."   # transformers alone loads /tmp/m/hf
    parlai dialogft_export -mf /tmp/m/model --out /tmp/m/adapter --export-adapter true   # LoRA: a PEFT folder
"""

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.model.export import export
from parlai_dialogft.utils.errors import one_line_errors


@register_script("dialogft_export", hidden=False)
class DialogftExport(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(False, False, description="Export a dialogft_agent model as a save_pretrained folder")
        parser.add_argument("-mf", "--model-file", type=str, default=None, help="the ParlAI model file to export")
        parser.add_argument("--out", type=str, default=None, help="folder to write (model, tokenizer, generation config)")
        parser.add_argument("--overwrite", type="bool", default=False, help="replace a non-empty --out folder")
        parser.add_argument(
            "--export-adapter", type="bool", default=False,
            help="for a model trained with --lora-r > 0: write a PEFT adapter folder (adapter_config.json, "
            "adapter_model.safetensors) for its --hf-model instead of merged weights",
        )
        return parser

    @one_line_errors("dialogft_export")
    def run(self):
        out = export(self.opt["model_file"], self.opt["out"], self.opt["overwrite"], self.opt["export_adapter"])
        print(f"exported {self.opt['model_file']} to {out}")
        return out


if __name__ == "__main__":
    DialogftExport.main()
