"""--hf-freeze: the named weights stay exactly as loaded while the rest trains."""

from __future__ import annotations

import pytest
import torch
from parlai.core.agents import create_agent_from_model_file

from tests.support.agents import make_agent, train_briefly


def _weights(agent):
    return {name: p.detach().clone() for name, p in agent.model.hf.named_parameters()}


@pytest.mark.parametrize(
    "arch,freeze,frozen_prefix",
    [("t5", "encoder", "encoder."), ("gpt2", "embeddings", "transformer.wte.")],
)
def test_frozen_weights_do_not_move(tiny_models, tmp_path, arch, freeze, frozen_prefix):
    mf = str(tmp_path / "m" / "model")
    before = _weights(make_agent(tiny_models[arch], hf_freeze=freeze))
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"), steps=3, hf_freeze=freeze)
    after = _weights(create_agent_from_model_file(mf))
    frozen = [name for name in before if name.startswith(frozen_prefix)]
    assert frozen
    assert all(torch.equal(before[name], after[name]) for name in frozen)
    moved = [name for name in before if not torch.equal(before[name], after[name])]
    assert moved and not set(moved) & set(frozen)


def test_freezing_the_encoder_of_a_decoder_only_model_is_refused(tiny_models):
    from parlai_dialogft.model.hf_loading import HFLoadError

    with pytest.raises(HFLoadError, match="--hf-freeze encoder needs a seq2seq model"):
        make_agent(tiny_models["gpt2"], hf_freeze="encoder")
