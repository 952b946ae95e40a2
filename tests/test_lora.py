"""LoRA via peft: only adapters train, merged export replies like the adapted agent."""

from __future__ import annotations

import pytest
import torch
from parlai.core.agents import create_agent_from_model_file

from conftest import make_agent, search, train_briefly

CONTEXTS = ["hello , how can I help you today ?", "我想订一张明天去北京的火车票。"]
LORA = dict(lora_r=4, lora_alpha=8.0, lora_dropout=0.0)


def _weights(agent):
    return {name: p.detach().clone() for name, p in agent.model.hf.named_parameters()}


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_only_adapter_weights_change_in_training(tiny_models, tmp_path, arch):
    mf = str(tmp_path / "m" / "model")
    before = _weights(make_agent(tiny_models[arch], **LORA))
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"), steps=3, **LORA)
    after = _weights(create_agent_from_model_file(mf))
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    adapters = {name for name in before if "lora_" in name}
    assert adapters and changed  # training moved something ...
    assert changed <= adapters   # ... and only adapters
    assert {n for n in adapters if "lora_B" in n} <= changed  # B starts at zero and must move


def test_target_modules_choose_the_adapted_layers(tiny_models):
    agent = make_agent(tiny_models["t5"], lora_target_modules="q,v", **LORA)
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name, _ in agent.model.hf.named_parameters() if "lora_A" in name}
    assert adapted == {"q", "v"}
    trainable = [name for name, p in agent.model.hf.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)


def test_unknown_target_modules_name_the_flag(tiny_models):
    with pytest.raises(ValueError, match="--lora-target-modules"):
        make_agent(tiny_models["t5"], lora_target_modules="no_such_layer", **LORA)


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_merged_export_replies_like_the_adapted_agent(tiny_models, tmp_path, arch):
    from parlai_dialogft.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"), steps=3, **LORA)
    adapted = create_agent_from_model_file(mf)  # also: -mf reload rebuilds the adapters
    replies = search(adapted, CONTEXTS)

    out = export(mf, str(tmp_path / "hf"))
    merged = make_agent(out)
    assert not any("lora_" in name for name, _ in merged.model.hf.named_parameters())
    assert search(merged, CONTEXTS) == replies
