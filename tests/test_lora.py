"""LoRA via peft: only adapters train, merged export replies like the adapted agent."""

from __future__ import annotations

import pytest
import torch
from parlai.core.agents import create_agent_from_model_file

from tests.support.agents import batch_of, make_agent, search, train_briefly

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


def _logits(agent):
    agent.model.eval()
    batch = batch_of(agent, CONTEXTS, labels=["a table for two .", "好的。"])
    with torch.no_grad():
        return agent.model(*agent._model_input(batch), ys=batch.label_vec)[0]


# gpt2: peft's Conv1D (fan_in_fan_out) merge; llama: untied, so its replies vary by context.
@pytest.mark.parametrize("arch", ["t5", "gpt2", "llama"])
def test_merged_export_replies_like_the_adapted_agent(tiny_models, tmp_path, arch):
    from parlai_dialogft.model.export import export

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models[arch], mf, str(tmp_path / "data"), steps=3, **LORA)
    adapted = create_agent_from_model_file(mf)  # also: -mf reload rebuilds the adapters
    assert any("lora_" in name for name, _ in adapted.model.hf.named_parameters())

    out = export(mf, str(tmp_path / "hf"))
    merged = make_agent(out)
    assert not any("lora_" in name for name, _ in merged.model.hf.named_parameters())
    torch.testing.assert_close(_logits(merged), _logits(adapted), atol=1e-5, rtol=1e-5)
    assert search(merged, CONTEXTS) == search(adapted, CONTEXTS)


def test_lora_can_start_from_a_full_fine_tune(tiny_models, tmp_path):
    """--init-model of a checkpoint without adapters: base weights load, adapters start at B=0."""
    full = str(tmp_path / "full" / "model")
    train_briefly(tiny_models["llama"], full, str(tmp_path / "data"), steps=2)
    plain = create_agent_from_model_file(full)
    adapted = make_agent(tiny_models["llama"], init_model=full, **LORA)
    assert any("lora_" in name for name, _ in adapted.model.hf.named_parameters())
    torch.testing.assert_close(_logits(adapted), _logits(plain))
    assert search(adapted, CONTEXTS) == search(plain, CONTEXTS)


def test_adapters_are_not_dropped_silently(tiny_models, tmp_path):
    from parlai_dialogft.model.hf_loading import HFLoadError

    mf = str(tmp_path / "m" / "model")
    train_briefly(tiny_models["llama"], mf, str(tmp_path / "data"), steps=1, **LORA)
    with pytest.raises(HFLoadError, match="holds LoRA adapters but --lora-r is 0"):
        make_agent(tiny_models["llama"], init_model=mf)
