"""``parlai train_model`` after a crash: the same run, continued.

ParlAI 1.7.2 reloads ``MODEL.checkpoint`` (weights, optimizer, LR scheduler) and the step
counters from ``MODEL.checkpoint.trainstats`` when the same command runs again, but not
where the data stream was: teachers draw episodes with the global ``random`` module and
ParlAI never seeds it, so a resumed run sees other batches than the run it continues, and
may re-validate at once because the validation counters start over. Here, for agents that
save a resume state (``dialogft_agent``, through :mod:`parlai_dialogft.training.checkpoint`):

* the data stream starts from a seed (``--seed``, or one drawn once and kept in the
  checkpoint), and validation leaves the random generators as it found them, so the
  batches are a function of the seed and the number of batches drawn;
* each checkpoint bundle carries the loop's counters, ``.trainstats`` content and the
  random generators' states; on restart ``.trainstats`` is rewritten from the bundle (a
  kill between the two writes cannot leave them disagreeing);
* the resumed run redraws the batches already trained on, without training on them
  (tokenising only: seconds for thousands of batches), then continues with the random
  generators restored, so the next batch is the one the crashed run would have drawn.

Multi-process training keeps ParlAI's behaviour (weights and schedule resume; the data
order does not).
"""

from __future__ import annotations

import os
import random
from typing import Any, Dict, Optional

from parlai_dialogft.training import checkpoint

#: Counters of ParlAI's TrainLoop that its own resume does not restore.
_LOOP_COUNTERS = ("_last_valid_steps", "last_valid_epoch", "_last_log_steps", "saved")


def capture_rng() -> Dict[str, Any]:
    import numpy
    import torch

    name, keys, pos, has_gauss, cached = numpy.random.get_state()
    # Plain Python values and a tensor: a bundle must unpickle without numpy's classes.
    return {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: Dict[str, Any]) -> None:
    import numpy
    import torch

    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    numpy.random.set_state((name, numpy.asarray(keys, dtype=numpy.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def seed_all(seed: int) -> None:
    import numpy
    import torch

    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_stats(loop) -> Dict[str, Any]:
    """The content of ParlAI's ``MODEL.trainstats`` (same keys, read by its TrainLoop)."""
    from parlai.core.metrics import dict_report

    return {
        "parleys": loop.parleys,
        "train_time": loop.train_time.time(),
        "train_steps": loop._train_steps,
        "total_epochs": getattr(loop, "_total_epochs", 0.0),
        "train_reports": loop.train_reports,
        "valid_reports": loop.valid_reports,
        "best_valid": loop.best_valid,
        "impatience": loop.impatience,
        "final_valid_report": dict_report(loop.final_valid_report),
        "final_test_report": dict_report(loop.final_test_report),
        "final_extra_valid_report": dict_report(loop.final_extra_valid_report),
    }


def loop_state(loop) -> Dict[str, Any]:
    """What a checkpoint bundle carries for the training loop."""
    counters = {name: getattr(loop, name) for name in _LOOP_COUNTERS}
    validating = loop._dialogft_rng_before_validation is not None
    if validating:
        # TrainLoop moves its validation marks only after validate() returns.
        counters.update(_last_valid_steps=loop._train_steps, last_valid_epoch=getattr(loop, "_total_epochs", 0.0))
    return {
        "seed": loop._dialogft_seed,
        "parleys": loop.parleys,
        "counters": counters,
        # Inside validation, the generators as they were before it (validation is neutral).
        "rng": loop._dialogft_rng_before_validation if validating else capture_rng(),
        "trainstats": train_stats(loop),
    }


def resume_source(opt) -> Optional[str]:
    """The model file ParlAI's TrainLoop will resume from, as it decides it."""
    model_file = opt.get("model_file")
    if not model_file:
        return None
    if opt.get("load_from_checkpoint") and os.path.isfile(model_file + ".checkpoint"):
        return model_file + ".checkpoint"
    if os.path.isfile(model_file):
        return model_file
    return None


def replay(loop, state: Dict[str, Any]) -> None:
    """Redraw the batches the crashed run trained on, without training on them."""
    from parlai.utils import logging

    world, agent, parleys = loop.world, loop.agent, state["parleys"]
    logging.info(
        f"resuming at step {loop._train_steps}: redrawing the {parleys} batches already "
        "trained on (no training), so that the data order continues"
    )
    agent.train_step = lambda batch: None  # shadows the method on this instance only
    try:
        for _ in range(parleys):
            world.parley()
    finally:
        del agent.train_step
    # The redrawn batches are counted in the loop's counters already (from .trainstats).
    for name in ("total_exs", "total_parleys", "total_epochs"):
        if hasattr(world, name):
            setattr(world, name, 0)
    world.reset_metrics()
    if random.getstate() != state["rng"]["python"]:
        logging.warning("resuming: the data stream did not replay identically; the order may differ")
    restore_rng(state["rng"])


def install(train_model) -> None:
    """Wrap ParlAI's ``TrainLoop`` (module ``parlai.scripts.train_model``)."""
    loop_class = train_model.TrainLoop
    original_init = loop_class.__init__
    original_save_model = loop_class.save_model
    original_validate = loop_class.validate
    original_train_steps = loop_class.train_steps

    def __init__(self, opt):
        from parlai.utils.distributed import is_distributed, is_primary_worker

        source = resume_source(opt)
        state = checkpoint.read_resume_state(source) if source else None
        if state is not None and is_primary_worker():  # one writer: ranks share the folder
            # The bundle is the commit point: a kill after it but before .trainstats was
            # rewritten must not pair new weights with old counters.
            checkpoint.write_json_atomically(source + ".trainstats", state["trainstats"])
        original_init(self, opt)
        self._dialogft_active = getattr(self.agent, "saves_resume_state", False) and not is_distributed()
        self._dialogft_resume = state if self._dialogft_active else None
        self._dialogft_rng_before_validation = None
        if state is not None:
            self._dialogft_seed = state["seed"]
            for name, value in state["counters"].items():
                setattr(self, name, value)
        elif opt.get("seed") is not None:
            self._dialogft_seed = opt["seed"]
        else:
            self._dialogft_seed = random.SystemRandom().randrange(2**31)

    def save_model(self, suffix=None):
        if not getattr(self, "_dialogft_active", False):
            return original_save_model(self, suffix)
        setattr(self.agent, checkpoint.AGENT_RESUME_ATTR, loop_state(self))
        try:
            return original_save_model(self, suffix)
        finally:
            setattr(self.agent, checkpoint.AGENT_RESUME_ATTR, None)

    def _save_train_stats(self, suffix=None):
        from parlai.utils.distributed import is_primary_worker

        if not is_primary_worker() or not self.opt.get("model_file"):
            return
        checkpoint.write_json_atomically(self.opt["model_file"] + (suffix or "") + ".trainstats", train_stats(self))

    def validate(self):
        if not getattr(self, "_dialogft_active", False):
            return original_validate(self)
        before = capture_rng()
        self._dialogft_rng_before_validation = before
        try:
            return original_validate(self)
        finally:
            self._dialogft_rng_before_validation = None
            restore_rng(before)

    def train_steps(self):
        if getattr(self, "_dialogft_active", False):
            seed_all(self._dialogft_seed)
            finished = self._train_steps >= self.max_train_steps or self.train_time.time() > self.max_train_time
            if self._dialogft_resume is not None and not finished:  # a finished run stops at once
                replay(self, self._dialogft_resume)
        yield from original_train_steps(self)

    loop_class.__init__ = __init__
    loop_class.save_model = save_model
    loop_class._save_train_stats = _save_train_stats
    loop_class.validate = validate
    loop_class.train_steps = train_steps
