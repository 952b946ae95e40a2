"""Running an app under uvicorn: in the foreground (the script) or in a thread (tests, notebooks).

Graceful shutdown is uvicorn's: on SIGTERM or Ctrl-C it stops accepting connections, lets
in-flight requests finish for up to ``shutdown_timeout_s``, then runs the app's shutdown
(which drains the batcher). A server in a thread stops the same way via ``should_exit``.
:func:`serve_in_foreground` makes a drained SIGTERM end the process with status 0.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn


def build_server(app, host: str, port: int, shutdown_timeout_s: float = 30.0,
                 log_level: str = "info") -> uvicorn.Server:
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="on",
        timeout_graceful_shutdown=max(1, math.ceil(shutdown_timeout_s)),
        # Access lines at info level would drown a load test; errors are still logged.
        access_log=log_level == "debug",
    )
    return uvicorn.Server(config)


def serve_in_foreground(server: uvicorn.Server) -> None:
    """``server.run()`` in the main thread, where a SIGTERM is a clean stop: status 0.

    After its graceful shutdown uvicorn puts back the signal handlers it found and raises the
    signal that stopped it again, so with Python's default handler the process would end
    "killed by SIGTERM" (status 143) although every request was answered. The handler
    installed here is the one uvicorn finds: it receives that repeated signal and only asks
    the (already stopped) server to exit, so ``run()`` returns and the script ends normally.
    A SIGTERM before uvicorn has installed its own handlers stops the server the same way.
    """

    def stop(_signum, _frame) -> None:
        server.should_exit = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def bound_port(server: uvicorn.Server) -> int:
    """The port actually bound (``port=0`` picks a free one)."""
    return server.servers[0].sockets[0].getsockname()[1]


@contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0, shutdown_timeout_s: float = 10.0,
            startup_timeout_s: float = 30.0, log_level: str = "warning") -> Iterator[uvicorn.Server]:
    """Serve ``app`` in a background thread; yields the server (``bound_port(server)``)."""
    server = build_server(app, host, port, shutdown_timeout_s, log_level)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout_s + 5)
