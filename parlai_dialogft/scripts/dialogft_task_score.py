"""``parlai dialogft_task_score --predictions FILE.json``: MultiWOZ Inform, Success, BLEU, Combined.

    parlai dialogft_task_score --predictions ubar.json                      # test split, its own states
    parlai dialogft_task_score --predictions ours.json --gold-states --out report.json
    parlai dialogft_task_score --predictions ours.json --split val

``FILE.json`` is in the standardized MultiWOZ evaluation's format (dialogue id -> turns of
``response``, optional ``state`` and ``active_domains``), as published systems share their
outputs; :mod:`parlai_dialogft.evaluation.mwzeval_format` reads it and
:mod:`parlai_dialogft.evaluation.task_success` scores it against MultiWOZ 2.1 (ConvLab-2's
copy) and the shipped database. This module only reads flags.
"""

import json
from pathlib import Path

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.data.readers.corpus_files import corpus_dir, load_json
from parlai_dialogft.evaluation.mwzeval_format import read_predictions
from parlai_dialogft.evaluation.task_success import PredictionError, score_multiwoz
from parlai_dialogft.tod.database import open_database
from parlai_dialogft.utils.errors import DataFormatError, UserError, one_line_errors

CORPUS = "multiwoz21_convlab2"
SPLITS = {"test": "test.json.zip", "val": "val.json.zip"}


@register_script("dialogft_task_score", hidden=False)
class DialogftTaskScore(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(False, False, description="MultiWOZ Inform, Success, BLEU and Combined of predicted replies")
        group = parser.add_argument_group("dialogft_task_score")
        group.add_argument("--predictions", type=str, default=None,
                           help="JSON in the standardized MultiWOZ evaluation's format: dialogue id -> turns")
        group.add_argument("--gold-states", action="store_true", default=False,
                           help="use the corpus's annotated belief states even where the file has its own")
        group.add_argument("--split", type=str, default="test", choices=sorted(SPLITS),
                           help="the MultiWOZ 2.1 split the predictions are for")
        group.add_argument("--out", type=str, default=None, help="write the full report (per dialogue too) as JSON here")
        group.add_argument("--bootstrap-samples", type=int, default=1000,
                           help="resamples of the dialogues for the BLEU and Combined intervals (0: none)")
        return parser

    @one_line_errors("dialogft_task_score")
    def run(self):
        path = self.opt.get("predictions")
        if not path:
            raise UserError("give --predictions FILE.json")
        predictions = read_predictions(path)
        dialogues = load_json(corpus_dir(CORPUS) / SPLITS[self.opt["split"]])
        try:
            report = score_multiwoz(
                predictions, dialogues, open_database("multiwoz").query,
                gold_states=self.opt["gold_states"], bootstrap_samples=self.opt["bootstrap_samples"],
            )
        except PredictionError as err:
            raise DataFormatError(path, None, f"{err} (MultiWOZ 2.1 {self.opt['split']} split)") from None
        print(report.summary())
        if self.opt.get("out"):
            Path(self.opt["out"]).write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
            print(f"\ndialogft_task_score: report written to {self.opt['out']}")
        return report


if __name__ == "__main__":
    DialogftTaskScore.main()
