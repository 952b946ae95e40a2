"""Length-bucketed batches without copies of one example: a bound on ParlAI's buffer.

``--dynamic-batching batchsort`` and ``full`` (dialogft_agent's default is off: see
:mod:`parlai_dialogft.model.length_groups`; the pretraining recipe uses ``full``) run ParlAI's
``DynamicBatchWorld``: it keeps 1021 episodes in flight, sorts them by length and cuts each
batch from neighbours. A training teacher never runs dry (it loops, or draws at random
with replacement), so on a task with fewer episodes than that the buffer holds several
copies of each; copies have the same length, sort next to each other and land in the same
batch. Fine-tuning on 200 pairs, 228 of the first 320 rows repeated another row of their
own batch; read as ``train:ordered``, the first 320 rows held only 80 distinct examples.

The bound: at most one eighth of the task's episodes in flight (never fewer than a batch,
never more than ParlAI's 1021). Tasks of 8,168 episodes or more are unchanged; on a small
task a copy meets its twin in the buffer rarely, and sorting still groups lengths.

In a multitask mixture each task fills its share of the buffer (its ``--multitask-weights``
share of new episodes), so the bound holds for every task: a small task with a large weight
(CrossWOZ's 447 dialogues at a fifth of pretraining's mixture) shrinks the whole buffer.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

PARLAI_BUFFER = 1021
SHARE = 8


def buffer_size(tasks: Sequence[Tuple[int, float]], batchsize: int) -> int:
    """How many episodes the buffer may hold: ``tasks`` are (episodes, share of the draws)."""
    bound = min(episodes / (SHARE * share) for episodes, share in tasks)
    return max(batchsize, min(PARLAI_BUFFER, int(bound)))


def task_shares(world) -> List[Tuple[int, float]]:
    """(episodes, share of new episodes) of each task ``world`` reads that can count itself."""
    subworlds, cumulative = getattr(world, "worlds", None), getattr(world, "cum_task_weights", None)
    if not subworlds or cumulative is None:  # one task
        shares = [(world.num_episodes(), 1.0)]
    elif not world.should_shuffle:  # ParlAI goes round robin: weights are ignored
        shares = [(w.num_episodes(), 1 / len(subworlds)) for w in subworlds]
    else:
        weights = [high - low for high, low in zip(cumulative, [0] + list(cumulative[:-1]))]
        shares = [(w.num_episodes(), weight / cumulative[-1]) for w, weight in zip(subworlds, weights)]
    return [(episodes, share) for episodes, share in shares if episodes and episodes > 0 and share > 0]


def install(worlds) -> None:
    """Bound ``worlds.DynamicBatchWorld``'s buffer (called once, by the compat hook)."""
    world_cls = worlds.DynamicBatchWorld
    parlai_init = world_cls.__init__

    def __init__(self, opt, world):
        parlai_init(self, opt, world)
        tasks = task_shares(world)
        if not tasks:
            return  # tasks that cannot count themselves keep ParlAI's buffer
        size = buffer_size(tasks, opt["batchsize"])
        if size < self._BUFFER_SIZE:
            # The surplus clones never acted; dropping them frees them (no shutdown: they
            # share the teacher's data with the clones that stay).
            del self.worlds[size:]
            self._BUFFER_SIZE = size
            self.max_batch_size = min(self.max_batch_size, size)
            self.reset()

    world_cls.__init__ = __init__
