"""The speed paths change nothing but speed.

- Training logits are computed for real label tokens only: loss, gradients and every
  metric equal ParlAI's own ``compute_loss`` on a padded batch.
- Beam search keeps the cross-attention cache in place (beams of one example share their
  encoder states): the replies equal those of a search that reorders it.
- A batch is computed as groups of rows of similar length, each at its own width: loss,
  gradients and metrics again equal ParlAI's on the whole padded batch.
"""

from __future__ import annotations

import pytest
import torch
from parlai.core.torch_generator_agent import TorchGeneratorAgent

from parlai_dialogft.model import length_groups
from tests.support.agents import all_different, batch_of, finished, make_agent, same_hypotheses

ARCHS = ["t5", "bart", "gpt2", "llama", "qwen2"]
CONTEXTS = ["hello , how can I help you today ?", "我想订一张明天去北京的火车票。", "thanks"]
# Replies of very different lengths, so the label batch is mostly padding.
REPLIES = ["a table for two at seven , please , near the centre of town .", "好的", "ok"]


def _metrics(agent):
    """Per-example values of the metrics the loss recorded (batch_act would collate them)."""
    recorded = {k: [m.value() for m in agent._local_metrics[k]] for k in ("loss", "ppl", "token_acc", "token_em")}
    agent._local_metrics.clear()
    return recorded


@pytest.mark.parametrize("grouped", [False, True], ids=["whole", "one-group-per-row"])
@pytest.mark.parametrize("arch", ARCHS)
def test_packed_loss_equals_parlai_loss_metrics_and_gradients(tiny_models, arch, grouped, monkeypatch):
    torch.manual_seed(0)
    # A group costing nothing splits the batch into single rows, each at its own width.
    monkeypatch.setattr(length_groups, "CPU_GROUP_COST", 0 if grouped else float("inf"))
    agent = make_agent(tiny_models[arch])
    agent.model.train()  # dropout is 0 in the tiny configs: both passes see the same network
    batch = batch_of(agent, CONTEXTS, REPLIES)
    assert batch.label_vec.eq(agent.NULL_IDX).any(), "the test needs label padding"
    assert batch.text_vec.eq(agent.NULL_IDX).any(), "the test needs context padding"
    assert len(agent._length_groups(batch)) == (len(CONTEXTS) if grouped else 1)

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


def test_length_groups_under_distributed_data_parallel_give_the_whole_batch_gradients(tiny_models, monkeypatch):
    """Several passes through the DDP wrapper, one backward: each gradient is reduced once.

    (One gloo rank, in this process: the reducer and its hooks run as with many ranks.)
    """
    from parlai.utils.distributed import find_free_port

    monkeypatch.setattr(length_groups, "CPU_GROUP_COST", 0)  # every row its own group
    torch.manual_seed(0)
    agent = make_agent(tiny_models["t5"])
    batch = batch_of(agent, CONTEXTS, REPLIES)
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{find_free_port()}", rank=0, world_size=1)
    try:
        agent.model = torch.nn.parallel.DistributedDataParallel(agent.model)
        agent.model.train()
        assert len(agent._length_groups(batch)) == len(CONTEXTS)
        grads = []
        for compute in (agent.compute_loss, lambda b: TorchGeneratorAgent.compute_loss(agent, b)):
            agent.model.zero_grad()
            compute(batch).backward()  # twice in a row: the reducer is ready again after ours
            grads.append([p.grad.clone() for p in agent.model.parameters() if p.grad is not None])
            _metrics(agent)
    finally:
        torch.distributed.destroy_process_group()
    assert len(grads[0]) == len(grads[1]) > 0
    for ours, theirs in zip(*grads):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_beam_search_without_reordering_cross_attention_gives_the_same_replies(context_models, arch, monkeypatch):
    torch.manual_seed(0)
    agent = make_agent(context_models[arch], inference="beam", beam_size=3, beam_min_length=4)
    shares = agent.model._shares_cross_attention
    answers = []
    monkeypatch.setattr(agent.model, "_shares_cross_attention", lambda inds: answers.append(shares(inds)) or answers[-1])
    fast = finished(agent, CONTEXTS, beam_size=3)
    assert any(answers), "beam search never skipped the cross-attention reorder"
    all_different([hypotheses[0][0] for hypotheses in fast])
    monkeypatch.setattr(agent.model, "_shares_cross_attention", lambda inds: False)
    same_hypotheses(finished(agent, CONTEXTS, beam_size=3), fast)


def test_by_default_a_batch_of_a_long_and_short_rows_runs_as_two_groups(tiny_models):
    agent = make_agent(tiny_models["t5"])
    assert agent.opt["dynamic_batching"] is None  # batches stay as drawn: see length_groups.py
    long_context = " ".join(["word"] * 150)
    batch = batch_of(agent, [long_context, "hi", "hello", long_context + " again"], ["ok"] * 4)
    groups = [rows.tolist() for rows, _ in agent._length_groups(batch)]
    assert sorted(map(sorted, groups)) == [[0, 3], [1, 2]]
    short = next(group for rows, group in agent._length_groups(batch) if 1 in rows.tolist())
    assert short.text_vec.size(1) < batch.text_vec.size(1) / 10  # padded to its own width only


def test_length_groups_can_be_switched_off(tiny_models):
    agent = make_agent(tiny_models["t5"], hf_length_groups=False)
    batch = batch_of(agent, [" ".join(["word"] * 150), "hi"], ["ok", "ok"])
    assert len(agent._length_groups(batch)) == 1
