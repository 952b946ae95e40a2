"""The zoo recipe batches as fine-tuning does: batches as drawn, computed in length groups.

ParlAI's length buckets (``--dynamic-batching``) cost 0.13 of validation loss in
bench/training.py; the recipe's ``train_model`` command must not turn them on.
"""

from __future__ import annotations

from parlai_dialogft.training.pretrain import Recipe, train_args


def test_the_recipe_trains_in_length_groups_not_length_buckets(tmp_path):
    from parlai.core.params import ParlaiParser
    from parlai.scripts.train_model import setup_args

    recipe = Recipe(out=str(tmp_path / "model"), batchsize=8)
    opt = setup_args(ParlaiParser(True, True)).parse_args(train_args(recipe, str(tmp_path / "init")))
    assert opt["dynamic_batching"] in (None, "none")
    assert opt["hf_length_groups"] is True
    assert opt["batchsize"] == 8
