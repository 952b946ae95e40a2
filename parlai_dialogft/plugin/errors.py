"""The errors a user can fix, and the one way the plugin's scripts report them.

A user who mistypes a flag or a path should read one line that names it, not a traceback.
"""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A mistake the user can fix (bad flag, missing file, wrong model type): the message says how."""


class ParlAIMissing(ImportError):
    """ParlAI is absent or does not import; the message is one line saying how to fix it."""


def one_line_errors(script: str, *also: type):
    """Decorate a script's ``run``: a ``UserError`` becomes ``script: message`` on stderr, exit status 2.

    ``also``: a module's own error classes that mean the same (the user's input is wrong),
    so the module needs no dependency on this one and the script no try/except.
    """
    caught = (UserError, *also)

    def wrap(run):
        @functools.wraps(run)
        def wrapped(*args, **kwargs):
            try:
                return run(*args, **kwargs)
            except caught as exc:
                print(f"{script}: {exc}", file=sys.stderr)
                raise SystemExit(2) from None

        return wrapped

    return wrap
