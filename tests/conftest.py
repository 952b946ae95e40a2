"""Shared fixtures: tiny HuggingFace models built locally (no hub), and ParlAI agents on them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest

# Two cores: one torch thread per test process keeps parallel helpers from thrashing.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests build every model locally; never wait on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def pytest_runtest_setup(item):
    """``@pytest.mark.browser`` tests need Debian's headless chromium. Without it they are
    skipped locally, saying so; under CI (``CI`` set, as ``.ci/run`` runs) they fail, so a
    green CI run always drove a real browser."""
    if item.get_closest_marker("browser") is None or CHROMIUM:
        return
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed, and CI must run the browser tests (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


TEXTS = [
    "hello , how can I help you today ?",
    "I would like to book a table for two at seven .",
    "sure , which restaurant would you like ?",
    "can you find me a cheap hotel in the centre ?",
    "thanks , that is all I need .",
    "你好，请问有什么可以帮您？",
    "我想订一张明天去北京的火车票。",
    "好的，请问您几点出发？",
] * 20


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """arch -> folder of a random-init tiny model with its own trained tokenizer."""
    import torch

    from parlai_dialogft.model.tiny import ARCHS, build_tiny_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny_model(str(root / arch), arch, TEXTS, vocab_size=300) for arch in ARCHS}


class _ContextModels(dict):
    """arch -> folder, each trained on first use (tests/context_models.py)."""

    def __init__(self, tiny_models, root):
        super().__init__()
        self.tiny_models, self.root = tiny_models, root

    def __missing__(self, arch):
        from context_models import train_next_sentence

        self[arch] = train_next_sentence(self.tiny_models[arch], str(self.root / arch), list(dict.fromkeys(TEXTS)))
        return self[arch]


@pytest.fixture(scope="session")
def context_models(tiny_models, tmp_path_factory):
    """arch -> a tiny model that answers each distinct sentence of TEXTS with the next one, so
    that its replies depend on the context (decoding tests need that to be able to fail)."""
    return _ContextModels(tiny_models, tmp_path_factory.mktemp("context_models"))


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


def train_briefly(hf_model: str, model_file: str, datapath: str, steps: int = 3, **opts):
    """A few real training steps through ParlAI's train_model (weights move off init).

    Seeded: ParlAI shuffles with the global RNGs, so the weights would otherwise depend on
    which tests ran before.
    """
    import random

    import numpy
    import torch
    from parlai.scripts.train_model import TrainModel

    random.seed(0)
    numpy.random.seed(0)
    torch.manual_seed(0)

    kwargs = dict(
        task="integration_tests", model="dialogft_agent", hf_model=hf_model,
        model_file=model_file, max_train_steps=steps, batchsize=4, validation_max_exs=4,
        short_final_eval=True, datapath=datapath, learningrate=1e-2,
    )
    kwargs.update(opts)
    return TrainModel.main(**kwargs)


@contextmanager
def parlai_server(args, ready_path: str, cwd=None, timeout: float = 180):
    """``python -m parlai ARGS``, ``{port}`` in ARGS replaced by a free loopback port, yielded
    once ``ready_path`` answers 200: ``(base_url, process)``. The caller stops it (and checks
    how it stopped); whatever is left running at the end is killed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "parlai", *[str(a).format(port=port) for a in args]],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + ready_path, timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
            time.sleep(0.3)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def png_is_drawn(path, min_size=(300, 200)) -> bool:
    """``path`` is a PNG of at least ``min_size`` (width, height) with something drawn on it:
    a fair share of pixels off the background (the corner's colour) and more than a handful
    of colours (axes, text and data, antialiased), so neither a blank nor a flat canvas passes."""
    import numpy
    from PIL import Image

    with Image.open(path) as image:
        if image.format != "PNG" or image.width < min_size[0] or image.height < min_size[1]:
            return False
        pixels = numpy.asarray(image.convert("RGB")).reshape(-1, 3)  # (H*W, 3)
    drawn = (pixels != pixels[0]).any(axis=1).mean()
    return drawn > 0.02 and len(numpy.unique(pixels, axis=0)) > 16
