"""Run a benchmark's child process with its output in a log, and say how it is going.

A child that trains for minutes would otherwise leave the terminal silent: every
``interval`` seconds a line gives the time spent and the last line the child logged.
"""

from __future__ import annotations

import subprocess
import time


def last_line(path: str) -> str:
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 4096))
        lines = [line.strip() for line in f.read().decode("utf-8", "replace").replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:160] if lines else ""


def run_child(cmd, log_path: str, desc: str, stdout=None, interval: float = 30.0) -> int:
    """``cmd`` with stderr (and stdout, unless given) into ``log_path``; returns its exit status."""
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=stdout or log, stderr=log)
        while True:
            try:
                return proc.wait(timeout=interval)
            except subprocess.TimeoutExpired:
                spent = int(time.monotonic() - start)
                print(f"  {desc}: {spent // 60:02d}:{spent % 60:02d} spent; {last_line(log_path)}", flush=True)
