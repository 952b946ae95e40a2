"""Commands run as a user runs them: ``parlai`` in a fresh login shell, and a ``parlai``
server on a free loopback port, waited for until it answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

#: The venv's bin folder: ``python``, ``parlai``, ``torchrun`` as installed.
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_shell(args, cwd, input=None, timeout=600, python_bin=BIN, env=None):
    """Run a command as in a new login shell: only PATH and HOME (and ``env``), nothing of ours."""
    env = {"PATH": f"{python_bin}:/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           **(env or {})}
    # No inherited stdin: a terminal-like stdin was seen to stall multiprocessing_train's exit.
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(
        args, cwd=cwd, env=env, input=input, stdin=stdin, capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def parlai_server(args, ready_path: str, cwd=None, timeout: float = 180):
    """``python -m parlai ARGS``, ``{port}`` in ARGS replaced by a free loopback port, yielded
    once ``ready_path`` answers 200: ``(base_url, process)``. The caller stops it (and checks
    how it stopped); whatever is left running at the end is killed."""
    port = free_port()
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
