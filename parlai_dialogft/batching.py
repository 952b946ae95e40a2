"""Length-bucketed batches without copies of one example: a bound on ParlAI's buffer.

``--dynamic-batching batchsort`` (dialogft_agent's default) and ``full`` run ParlAI's
``DynamicBatchWorld``: it keeps 1021 episodes in flight, sorts them by length and cuts each
batch from neighbours. A training teacher never runs dry (it loops, or draws at random
with replacement), so on a task with fewer episodes than that the buffer holds several
copies of each; copies have the same length, sort next to each other and land in the same
batch. Fine-tuning on 200 pairs, 228 of the first 320 rows repeated another row of their
own batch; read as ``train:ordered``, the first 320 rows held only 80 distinct examples.

The bound: at most one eighth of the task's episodes in flight (never fewer than a batch,
never more than ParlAI's 1021). Tasks of 8,168 episodes or more are unchanged; on a small
task a copy meets its twin in the buffer rarely, and sorting still groups lengths.
"""

from __future__ import annotations

PARLAI_BUFFER = 1021
SHARE = 8


def buffer_size(num_episodes: int, batchsize: int) -> int:
    """How many episodes the buffer may hold for a task of ``num_episodes``."""
    return max(batchsize, min(PARLAI_BUFFER, num_episodes // SHARE))


def install(worlds) -> None:
    """Bound ``worlds.DynamicBatchWorld``'s buffer (called once, by the compat hook)."""
    world_cls = worlds.DynamicBatchWorld
    parlai_init = world_cls.__init__

    def __init__(self, opt, world):
        parlai_init(self, opt, world)
        episodes = world.num_episodes()
        if not episodes or episodes < 0:
            return  # a task that cannot count itself keeps ParlAI's buffer
        size = buffer_size(episodes, opt["batchsize"])
        if size < self._BUFFER_SIZE:
            # The surplus clones never acted; dropping them frees them (no shutdown: they
            # share the teacher's data with the clones that stay).
            del self.worlds[size:]
            self._BUFFER_SIZE = size
            self.max_batch_size = min(self.max_batch_size, size)
            self.reset()

    world_cls.__init__ = __init__
