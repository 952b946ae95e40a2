"""Each ParlAI patch in parlai_dialogft.compat, shown to be needed and to work."""

import numpy as np
import pytest
import torch


def _unpatched(module_name):
    """A fresh copy of a ParlAI module, executed without our import hook."""
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    module = importlib.util.module_from_spec(spec)
    getattr(spec.loader, "wrapped", spec.loader).exec_module(module)  # skip our post-import patch
    return module


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_reduce_on_plateau_scheduler_needs_the_patch():
    with pytest.raises(TypeError, match="verbose"):
        _unpatched("parlai.nn.lr_scheduler").ReduceOnPlateauLRScheduler(_optimizer(), 3, 0.5, -1, 1e-4)


def test_reduce_on_plateau_scheduler_builds_and_steps_when_patched():
    from parlai.nn.lr_scheduler import ReduceOnPlateauLRScheduler

    optimizer = _optimizer()
    scheduler = ReduceOnPlateauLRScheduler(optimizer, patience=0, decay=0.5, warmup_updates=-1, warmup_rate=1e-4)
    scheduler.scheduler.step(1.0)
    scheduler.scheduler.step(2.0)  # worse: decays at once with patience 0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_dictionary_txt2vec_to_ndarray_needs_the_patch():
    module = _unpatched("parlai.core.dict")
    d = module.DictionaryAgent({"dict_tokenizer": "split"})
    with pytest.raises(AttributeError, match="int"):
        d.txt2vec("hello world", vec_type=np.ndarray)


def test_dictionary_txt2vec_to_ndarray_works_when_patched():
    from parlai.core.dict import DictionaryAgent

    d = DictionaryAgent({"dict_tokenizer": "split"})
    d.add_token("hello")
    vec = d.txt2vec("hello world", vec_type=np.ndarray)
    assert vec.tolist() == [d["hello"], d[d.unk_token]]


def test_numpy_itself_is_left_alone():
    assert not hasattr(np, "int")


def test_patches_are_applied_once():
    from parlai_dialogft import compat
    import parlai.nn.lr_scheduler as lr

    init = lr.ReduceOnPlateauLRScheduler.__init__
    compat.apply_all()
    compat.apply_all()
    assert lr.ReduceOnPlateauLRScheduler.__init__ is init
