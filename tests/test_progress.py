"""Long commands say how far they are: a bar in a terminal, log lines in a file or pipe."""

from __future__ import annotations

import io

import pytest

from parlai_dialogft.utils import progress


@pytest.fixture
def clock(monkeypatch):
    """A hand-driven monotonic clock, so that intervals are exact."""
    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    return now


def test_a_pipe_gets_a_line_at_the_start_every_interval_and_at_the_end(clock):
    lines = []
    with progress.Progress(total=10, desc="report: valid", interval=30, log=lines.append, terminal=False) as p:
        for _ in range(10):
            clock[0] += 6  # 6 s per example: a line at 30 s and at 60 s
            p.update()
    assert lines == [
        "report: valid: 0/10 examples, 00:00 spent",
        "report: valid: 5/10 examples, 00:30 spent, about 00:30 left",
        "report: valid: 10/10 examples, 01:00 spent, about 00:00 left",
        "report: valid: 10/10 examples, 01:00 spent, done",
    ]


def test_a_terminal_gets_a_tqdm_bar_and_one_closing_line(clock, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    lines = []
    with progress.Progress(total=3, desc="probe", unit="prompt", log=lines.append, terminal=True) as p:
        p.update(3)
    assert "probe:   0%|" in stream.getvalue() and "0/3 [" in stream.getvalue()  # tqdm's own bar
    assert lines == ["probe: 3/3 prompts, 00:00 spent, done"]


def test_loglevel_warning_silences_it(clock):
    from parlai.utils import logging

    lines = []
    old = logging.logger.level
    logging.set_log_level("WARNING")
    try:
        with progress.Progress(total=2, desc="x", log=lines.append, terminal=False) as p:
            p.update(2)
        progress.stage(1, 2, "anything", log=lines.append)
    finally:
        logging.set_log_level(old)
    assert lines == []


def test_hours_and_unknown_totals_read_plainly(clock):
    lines = []
    p = progress.Progress(total=None, desc="bootstrap", unit="draw", interval=0, log=lines.append, terminal=False)
    clock[0] += 3723
    p.update(7)
    p.close()
    p.close()
    assert lines == ["bootstrap: 0 draws, 00:00 spent", "bootstrap: 7 draws, 1:02:03 spent",
                     "bootstrap: 7 draws, 1:02:03 spent, done"]
