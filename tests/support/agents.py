"""A dialogft_agent as ParlAI's scripts build it, fed batches as a world feeds it, briefly
trained, and what its searches produce (token ids, every finished hypothesis).

A decoding test compares two searches; it first checks with :func:`all_different` that the
model reads its contexts, else "equal" proves nothing.
"""

from __future__ import annotations

import pytest


def make_agent(hf_model: str, **overrides):
    """A dialogft_agent as ParlAI's scripts would build it."""
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser

    kwargs = dict(model="dialogft_agent", hf_model=hf_model, datapath="/tmp/dialogft-test-data")
    kwargs.update(overrides)
    opt = ParlaiParser(True, True).parse_kwargs(**kwargs)
    return create_agent(opt, requireModelExists=False)


def batch_of(agent, texts, labels=None):
    """A ParlAI batch of single-turn episodes, vectorised by the agent as in a world."""
    from parlai.core.message import Message

    observations = []
    for i, text in enumerate(texts):
        message = {"text": text, "episode_done": True}
        if labels:
            message["labels"] = [labels[i]]
        observations.append(agent.clone().observe(Message(message)))
    return agent.batchify(observations)


def search(agent, texts, beam_size=1, max_ts=10):
    """Token ids ParlAI's search produces for ``texts`` (START stripped, END kept)."""
    import torch

    agent.model.eval()
    with torch.no_grad():
        preds, _ = agent._generate(batch_of(agent, texts), beam_size, max_ts)
    out = []
    for tokens, _score, _meta in preds:
        tokens = tokens.tolist()
        assert tokens[0] == agent.START_IDX
        out.append(tokens[1:])
    return out


def all_different(replies):
    """Each context got its own reply: the model reads what it is given. A decoding test
    checks this first; on a model that says the same whatever it reads, "equal" proves nothing."""
    assert len({tuple(reply) for reply in replies}) == len(replies), replies
    return replies


def finished(agent, texts, beam_size, max_ts=40):
    """Every finished hypothesis of each example's search, best first: (tokens, score). The
    best alone may never leave beam 0; the others show whether each beam's cache followed it."""
    import torch

    agent.model.eval()
    with torch.no_grad():
        _preds, beams = agent._generate(batch_of(agent, texts), beam_size, max_ts)
    return [[(tokens.tolist(), float(score)) for tokens, score, _ in beam.get_rescored_finished()] for beam in beams]


def same_hypotheses(a, b):
    """Two results of :func:`finished`: the same tokens, scores equal to rounding."""
    assert [[tokens for tokens, _ in row] for row in a] == [[tokens for tokens, _ in row] for row in b]
    assert [score for row in a for _, score in row] == pytest.approx([score for row in b for _, score in row], abs=1e-4)


def reseed(seed: int = 0) -> None:
    """Seed the global RNGs ParlAI trains with (its shuffling, dropout, sampling), so that a
    model trained next is the same whichever tests ran before."""
    import random

    import numpy
    import torch

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


def train_briefly(hf_model: str, model_file: str, datapath: str, steps: int = 3, **opts):
    """A few real training steps through ParlAI's train_model (weights move off init).

    Seeded: the agent is built with the global RNGs, and the training loop seeds them with
    ``--seed`` (else with a seed drawn at random), so the weights would otherwise depend on
    which tests ran before and differ from run to run.
    """
    from parlai.scripts.train_model import TrainModel

    reseed(0)

    kwargs = dict(
        task="integration_tests", model="dialogft_agent", hf_model=hf_model,
        model_file=model_file, max_train_steps=steps, batchsize=4, validation_max_exs=4,
        short_final_eval=True, datapath=datapath, learningrate=1e-2, seed=0,
    )
    kwargs.update(opts)
    return TrainModel.main(**kwargs)
