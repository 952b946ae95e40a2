"""Models saved by earlier versions of the plugin keep loading with ``-mf``.

The fixture ``fixtures/saved_model_0.1.0`` (see its README) was written before the package
was grouped into subpackages: its ``.opt`` names the dictionary class by the old module path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "saved_model_0.1.0"


def _copy(tmp_path) -> str:
    folder = tmp_path / "saved_model_0.1.0"
    shutil.copytree(FIXTURE, folder)
    return str(folder / "model")


def test_the_dictionary_class_named_by_an_old_opt_is_upgraded_to_its_path_today():
    """ParlAI's ``build_dict`` builds the dictionary from the saved ``dict_class`` string; the
    agent's ``upgrade_opt`` (ParlAI's hook for older saved options) rewrites the 0.1.0 path."""
    from parlai.core.opt import Opt
    from parlai.core.params import str2class

    from parlai_dialogft.agents.dialogft_agent.dialogft_agent import DialogftAgent
    from parlai_dialogft.model.hf_dict import HFDictionaryAgent

    saved_opt = Opt(json.loads((FIXTURE / "model.opt").read_text()))
    assert saved_opt["dict_class"] == "parlai_dialogft.hf_dict:HFDictionaryAgent"
    with pytest.raises(ModuleNotFoundError):
        str2class(saved_opt["dict_class"])  # the 0.1.0 module path is gone since 0.2.0
    upgraded = DialogftAgent.upgrade_opt(saved_opt)
    assert str2class(upgraded["dict_class"]) is HFDictionaryAgent


def test_a_model_saved_by_0_1_0_evaluates_with_mf(tmp_path):
    from parlai.scripts.eval_model import EvalModel

    report = EvalModel.main(model_file=_copy(tmp_path), task="integration_tests", num_examples=4,
                            datapath=str(tmp_path / "data"), batchsize=2)
    assert report["exs"] == 4 and report["ppl"] > 1


def test_a_model_saved_by_0_1_0_loads_with_mf_and_keeps_its_weights(tmp_path):
    import torch
    from parlai.core.agents import create_agent_from_model_file

    model_file = _copy(tmp_path)

    agent = create_agent_from_model_file(model_file, {"datapath": str(tmp_path / "data")})

    assert type(agent).__name__ == "DialogftAgent"
    assert type(agent.dict).__name__ == "HFDictionaryAgent"
    saved = torch.load(model_file, map_location="cpu", weights_only=False)["model"]
    loaded = agent.model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[name], saved[name]) for name in saved)
    # The tokenizer came back too: a sentence of the training texts round-trips.
    text = "can you find me a cheap hotel in the centre ?"
    assert agent.dict.vec2txt(agent.dict.txt2vec(text)) == text


def test_training_a_model_saved_by_0_1_0_continues_from_its_step(tmp_path):
    import torch
    from parlai.scripts.train_model import TrainModel

    model_file = _copy(tmp_path)
    TrainModel.main(
        task="integration_tests", model_file=model_file, max_train_steps=5, batchsize=4,
        validation_max_exs=4, short_final_eval=True, datapath=str(tmp_path / "data"),
    )
    states = torch.load(model_file, map_location="cpu", weights_only=False)
    # Saved after 3 updates: 2 more, with the saved optimizer (a run started over would make 5).
    assert states["number_training_updates"] == 5
    assert all(s["step"] == 5 for s in states["optimizer"]["state"].values())
