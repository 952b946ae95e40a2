"""Shared fixtures: tiny HuggingFace models built locally (no hub), and models trained on
them to be served. Shared code is in :mod:`tests.support`; tests import it from there."""

from __future__ import annotations

import os

import pytest

from tests.support.browser import CHROMIUM
from tests.support.models import TEXTS

# Two cores: one torch thread per test process keeps parallel helpers from thrashing.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests build every model locally; never wait on a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_runtest_setup(item):
    """``@pytest.mark.browser`` tests need Debian's headless chromium. Without it they are
    skipped locally, saying so; under CI (``CI`` set, as ``.ci/run`` runs) they fail, so a
    green CI run always drove a real browser."""
    if item.get_closest_marker("browser") is None or CHROMIUM:
        return
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed, and CI must run the browser tests (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def pytest_terminal_summary(terminalreporter, config):
    """pytest-randomly shuffles the tests and reseeds ``random`` and numpy per test; ``-q``
    hides its header, so the seed is said at the end, where a failure is read."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int):
        terminalreporter.write_line(f"pytest-randomly: the same order and seeds again with --randomly-seed={seed}")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """arch -> folder of a random-init tiny model with its own trained tokenizer."""
    import torch

    from parlai_dialogft.model.tiny import ARCHS, build_tiny_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny_model(str(root / arch), arch, TEXTS, vocab_size=300) for arch in ARCHS}


class _ContextModels(dict):
    """arch -> folder, each trained on first use (tests/support/models.py)."""

    def __init__(self, tiny_models, root):
        super().__init__()
        self.tiny_models, self.root = tiny_models, root

    def __missing__(self, arch):
        from tests.support.models import train_next_sentence

        self[arch] = train_next_sentence(self.tiny_models[arch], str(self.root / arch), list(dict.fromkeys(TEXTS)))
        return self[arch]


@pytest.fixture(scope="session")
def context_models(tiny_models, tmp_path_factory):
    """arch -> a tiny model that answers each distinct sentence of TEXTS with the next one, so
    that its replies depend on the context (decoding tests need that to be able to fail)."""
    return _ContextModels(tiny_models, tmp_path_factory.mktemp("context_models"))


@pytest.fixture(scope="module")
def served_model_file(tiny_models, tmp_path_factory):
    """A tiny GPT-2 trained two steps on integration_tests, as `dialogft_serve -mf` serves it;
    one per test module."""
    from tests.support.serving import train_served_model

    return train_served_model(tiny_models["gpt2"], tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def profiled_model_file(tiny_models, tmp_path_factory):
    """A tiny GPT-2 trained two steps on ``PROFILED_TASK`` (episodes of growing contexts, so
    lengths vary), with the training profile `parlai dialogft_train_profile` writes beside
    it; one per test module. Its data is in ``../data`` of the model's folder."""
    from parlai_dialogft.scripts.dialogft_train_profile import DialogftTrainProfile
    from tests.support.serving import PROFILED_TASK, train_served_model

    model_file = train_served_model(tiny_models["gpt2"], tmp_path_factory.mktemp("live_eval"), task=PROFILED_TASK,
                                    label_truncate=8)
    DialogftTrainProfile.main(model_file=model_file, datapath=os.path.join(os.path.dirname(model_file), "..", "data"))
    return model_file
