"""dialogft_agent on CUDA: training steps in fp32, ``--hf-bf16`` and ParlAI's ``--fp16``,
generation, length groups on and off, and serving. Marked ``gpu``; skipped without CUDA.

``bench/gpu.sh`` runs them first on a GPU machine. ``DIALOGFT_TEST_DEVICE=cpu`` runs the
same tests on the CPU (``--no-cuda``; ParlAI's fp16 is CUDA-only and skips), which checks
the tests themselves where no GPU is:

    DIALOGFT_TEST_DEVICE=cpu python -m pytest -m gpu tests/test_gpu.py
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.support.agents import all_different, batch_of, make_agent

DEVICE = os.environ.get("DIALOGFT_TEST_DEVICE", "cuda")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device"),
]

CONTEXTS = ["hello how can i help you", "i need a cheap hotel", "book a table for two", "thanks"]
REPLIES = ["sure", "the hotel is in the centre", "which day", "you are welcome"]


def on_device(hf_model: str, **opts):
    """The agent as ParlAI builds it on this machine: CUDA unless the test runs on the CPU."""
    if DEVICE == "cpu":
        opts["no_cuda"] = True
    agent = make_agent(hf_model, **opts)
    assert {p.device.type for p in agent.model.parameters()} == {DEVICE}
    return agent


def batch_on(agent, texts, labels=None):
    """:func:`tests.support.agents.batch_of` where the agent computes (ParlAI's ``batch_act`` moves it so)."""
    batch = batch_of(agent, texts, labels)
    return batch.to(0) if agent.use_cuda else batch


def search(agent, texts, beam_size: int, max_ts: int = 10):
    """Token ids of ParlAI's search, START stripped (as :func:`tests.support.agents.search`, on the device)."""
    agent.model.eval()
    with torch.no_grad():
        preds, _ = agent._generate(batch_on(agent, texts), beam_size, max_ts)
    return [tokens.tolist()[1:] for tokens, _score, _meta in preds]


def _loss(agent, batch) -> float:
    agent.model.eval()
    with torch.no_grad():
        loss = float(agent.compute_loss(batch))
    agent._local_metrics.clear()  # batch_act collates and clears them after each batch
    return loss


PRECISIONS = {
    "fp32": {},
    "bf16": {"hf_bf16": True},
    "fp16": {"fp16": True},  # ParlAI's: half weights, fp32 master copy, loss scaling
}


@pytest.mark.parametrize("arch", ["t5", "qwen2"])
@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_training_steps_lower_the_loss(tiny_models, arch, precision):
    if precision == "fp16" and DEVICE != "cuda":
        pytest.skip("ParlAI's --fp16 needs CUDA")
    torch.manual_seed(0)
    agent = on_device(tiny_models[arch], learningrate=1e-2, **PRECISIONS[precision])
    if precision == "fp16":
        assert {p.dtype for p in agent.model.parameters()} == {torch.float16}
    batch = batch_on(agent, CONTEXTS, REPLIES)
    before = _loss(agent, batch)
    # 16 updates: fp16's dynamic loss scale starts high and may skip its first steps.
    for _ in range(16):
        agent.train_step(batch)
        agent._local_metrics.clear()
    after = _loss(agent, batch)
    assert after < before - 0.1, (before, after)  # the same batch again and again: learned


@pytest.mark.parametrize("arch", ["t5", "qwen2"])
@pytest.mark.parametrize("inference,beam_size", [("greedy", 1), ("beam", 3)])
def test_generation_on_the_device_is_the_cpus(context_models, arch, inference, beam_size):
    """ParlAI's search in fp32 gives the CPU's replies; under bf16 it gives replies."""
    opts = dict(inference=inference, beam_size=beam_size)
    device = on_device(context_models[arch], **opts)
    cpu = make_agent(context_models[arch], no_cuda=True, **opts)
    assert all_different(search(device, CONTEXTS, beam_size)) == search(cpu, CONTEXTS, beam_size)
    bf16 = on_device(context_models[arch], hf_bf16=True, **opts)
    assert all(len(reply) > 1 for reply in search(bf16, CONTEXTS, beam_size))  # more than END


def _loss_and_gradients(agent, batch):
    agent.model.train()
    agent.zero_grad()
    loss = agent.compute_loss(batch)
    loss.backward()
    agent._local_metrics.clear()
    return float(loss.detach()), {name: p.grad.detach().float().cpu() for name, p in agent.model.named_parameters()
                         if p.grad is not None}


@pytest.mark.parametrize("arch", ["t5", "qwen2"])
def test_length_groups_give_the_whole_batchs_loss_and_gradients(tiny_models, arch):
    """On the device as on the CPU: grouping is a way to compute the batch, not a change of it."""
    long_context = " ".join(["hello"] * 120)
    texts, labels = [long_context, "hi", "hello", long_context + " again"], ["sure"] * 4
    results = {}
    for grouped in (True, False):
        torch.manual_seed(0)
        agent = on_device(tiny_models[arch], hf_length_groups=grouped)
        batch = batch_on(agent, texts, labels)
        assert len(agent._length_groups(batch)) == (2 if grouped else 1)
        results[grouped] = _loss_and_gradients(agent, batch)
    (loss_g, grads_g), (loss_w, grads_w) = results[True], results[False]
    assert loss_g == pytest.approx(loss_w, rel=1e-4)
    assert grads_g.keys() == grads_w.keys()
    for name in grads_g:
        torch.testing.assert_close(grads_g[name], grads_w[name], rtol=1e-3, atol=1e-5, msg=name)


def test_by_default_batches_stay_whole_on_cuda_and_are_grouped_on_a_cpu(tiny_models):
    agent = on_device(tiny_models["t5"])
    batch = batch_on(agent, [" ".join(["hello"] * 120), "hi"], ["sure", "sure"])
    assert len(agent._length_groups(batch)) == (1 if DEVICE == "cuda" else 2)


def test_serving_on_the_device_answers_as_the_cpu_does(served_model_file):
    """``dialogft_serve``'s app over HTTP, its agent on the device; the replies are the ones
    the same model gives on the CPU. ``served_model_file``: conftest's model trained to be served."""
    from parlai_dialogft.serving.protocol import Prompt
    from parlai_dialogft.serving.replier import Replier
    from tests.support.serving import PROMPTS, ask, serving, serving_agent

    served_model, prompts = served_model_file, PROMPTS[:4]
    cpu = Replier(serving_agent(served_model, "--no-cuda"), 4)
    expected = [reply.text for reply in cpu([Prompt(history=(), text=text) for text in prompts])]
    assert len(set(expected)) > 1  # the replies depend on the prompt: a mix-up would show
    args = ("--no-cuda",) if DEVICE == "cpu" else ()
    assert {p.device.type for p in serving_agent(served_model, *args).model.parameters()} == {DEVICE}
    with serving(served_model) as server:
        assert [ask(server.url, text) for text in prompts] == expected
