"""Models saved by earlier versions of the plugin keep loading with ``-mf``.

The fixture ``fixtures/saved_model_0.1.0`` (see its README) was written before the package
was grouped into subpackages: its ``.opt`` names the dictionary class by the old module path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "saved_model_0.1.0"


def test_a_model_saved_by_0_1_0_loads_with_mf_and_keeps_its_weights(tmp_path):
    import torch
    from parlai.core.agents import create_agent_from_model_file

    folder = tmp_path / "saved_model_0.1.0"
    shutil.copytree(FIXTURE, folder)
    model_file = str(folder / "model")
    saved_opt = json.loads((folder / "model.opt").read_text())
    assert saved_opt["dict_class"] == "parlai_dialogft.hf_dict:HFDictionaryAgent"

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
