"""Progress of long commands: a tqdm bar in a terminal, ParlAI-style log lines elsewhere.

In a terminal, tqdm draws its bar in place. Written to a file or a pipe (CI logs, ``nohup``,
``| tee``), a bar would be a wall of carriage returns, so the count goes out as ParlAI's own
log lines do: one at the start, then at most one every ``interval`` seconds, and one at the
end, each with the count, the time spent and the time left. ParlAI's ``--loglevel warning``
(or higher) silences both, as it silences ParlAI's own progress.

    with Progress(total=200, desc="dialogft_report: valid", unit="example") as progress:
        for ...:
            progress.update()
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional


def _log(message: str) -> None:
    from parlai.utils import logging

    logging.info(message)


def _quiet() -> bool:
    import logging as std_logging

    from parlai.utils import logging

    return logging.logger.getEffectiveLevel() > std_logging.INFO


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Counts ``update`` calls towards ``total`` and shows them as suits the output."""

    def __init__(self, total: Optional[int], desc: str, unit: str = "example", interval: float = 30.0,
                 log: Callable[[str], None] = _log, terminal: Optional[bool] = None):
        self.total, self.desc, self.unit, self.interval, self.log = total, desc, unit, interval, log
        self.count = 0
        self.start = self.last = time.monotonic()
        self.quiet = _quiet()
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bar = None
        if terminal and not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)
        elif not self.quiet:
            self.log(self._line())

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if not self.quiet and now - self.last >= self.interval:
            self.last = now
            self.log(self._line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.quiet:
            self.log(self._line(done=True))
        self.quiet = True  # one closing line, however often close() is called

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _line(self, done: bool = False) -> str:
        spent = time.monotonic() - self.start
        of = f"/{self.total}" if self.total else ""
        text = f"{self.desc}: {self.count}{of} {self.unit}s, {_clock(spent)} spent"
        if done:
            return text + ", done"
        if self.total and self.count:
            text += f", about {_clock(spent / self.count * (self.total - self.count))} left"
        return text


def stage(number: int, of: int, what: str, log: Callable[[str], None] = _log) -> None:
    """Announce step ``number`` of ``of`` of a multi-step command (unless quiet)."""
    if not _quiet():
        log(f"step {number}/{of}: {what}")
