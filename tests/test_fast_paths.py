"""The speed paths change nothing but speed.

- Training logits are computed for real label tokens only: loss, gradients and every
  metric equal ParlAI's own ``compute_loss`` on a padded batch.
- Beam search keeps the cross-attention cache in place (beams of one example share their
  encoder states): the replies equal those of a search that reorders it.
- Length-bucketed batching is our agent's default.
"""

from __future__ import annotations

import pytest
import torch
from parlai.core.torch_generator_agent import TorchGeneratorAgent

from conftest import batch_of, make_agent, search

ARCHS = ["t5", "bart", "gpt2", "llama", "qwen2"]
CONTEXTS = ["hello , how can I help you today ?", "我想订一张明天去北京的火车票。", "thanks"]
# Replies of very different lengths, so the label batch is mostly padding.
REPLIES = ["a table for two at seven , please , near the centre of town .", "好的", "ok"]


def _metrics(agent):
    """Per-example values of the metrics the loss recorded (batch_act would collate them)."""
    recorded = {k: [m.value() for m in agent._local_metrics[k]] for k in ("loss", "ppl", "token_acc", "token_em")}
    agent._local_metrics.clear()
    return recorded


@pytest.mark.parametrize("arch", ARCHS)
def test_packed_loss_equals_parlai_loss_metrics_and_gradients(tiny_models, arch):
    torch.manual_seed(0)
    agent = make_agent(tiny_models[arch])
    agent.model.train()  # dropout is 0 in the tiny configs: both passes see the same network
    batch = batch_of(agent, CONTEXTS, REPLIES)
    assert batch.label_vec.eq(agent.NULL_IDX).any(), "the test needs label padding"

    def run(compute):
        agent.model.zero_grad()
        loss = compute(batch)
        loss.backward()
        grads = [p.grad.clone() for p in agent.model.parameters() if p.grad is not None]
        return loss.item(), _metrics(agent), grads

    packed_loss, packed_metrics, packed_grads = run(agent.compute_loss)
    parlai_loss, parlai_metrics, parlai_grads = run(lambda b: TorchGeneratorAgent.compute_loss(agent, b))

    assert packed_loss == pytest.approx(parlai_loss, rel=1e-5)
    for key, values in parlai_metrics.items():
        assert packed_metrics[key] == pytest.approx(values, rel=1e-5), key
    assert len(packed_grads) == len(parlai_grads) > 0
    for ours, theirs in zip(packed_grads, parlai_grads):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_beam_search_without_reordering_cross_attention_gives_the_same_replies(tiny_models, arch, monkeypatch):
    torch.manual_seed(0)
    agent = make_agent(tiny_models[arch], inference="beam", beam_size=3, beam_min_length=4)
    shares = agent.model._shares_cross_attention
    answers = []
    monkeypatch.setattr(agent.model, "_shares_cross_attention", lambda inds: answers.append(shares(inds)) or answers[-1])
    fast = search(agent, CONTEXTS, beam_size=3, max_ts=10)
    assert any(answers), "beam search never skipped the cross-attention reorder"
    monkeypatch.setattr(agent.model, "_shares_cross_attention", lambda inds: False)
    slow = search(agent, CONTEXTS, beam_size=3, max_ts=10)
    assert fast == slow


def test_our_agent_batches_by_length_by_default(tiny_models):
    agent = make_agent(tiny_models["t5"])
    assert agent.opt["dynamic_batching"] == "batchsort"
