"""Shared fixtures: tiny HuggingFace models built locally (no hub), and ParlAI agents on them."""

from __future__ import annotations

import os

import pytest

# Two cores: one torch thread per test process keeps parallel helpers from thrashing.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests build every model locally; never wait on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

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

    from parlai_dialogft.tiny import ARCHS, build_tiny_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny_model(str(root / arch), arch, TEXTS, vocab_size=300) for arch in ARCHS}


def make_agent(hf_model: str, **overrides):
    """A dialogft_agent as ParlAI's scripts would build it."""
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser

    kwargs = dict(model="dialogft_agent", hf_model=hf_model, datapath="/tmp/dialogft-test-data")
    kwargs.update(overrides)
    opt = ParlaiParser(True, True).parse_kwargs(**kwargs)
    return create_agent(opt, requireModelExists=False)
