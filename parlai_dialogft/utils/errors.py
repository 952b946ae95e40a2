"""The errors a user can fix, and the one way they reach the user: one line, exit status 2.

A user who mistypes a flag or a path should read one line that names it, not a traceback.
Every error of that kind is a :class:`UserError`; a stage may subclass it to say where the
mistake was found (``HFLoadError``, ``GuardError``, ...), never to change how it is shown.
:func:`one_line_errors` is the one place that prints them: it wraps our scripts' ``run``, the
``parlai`` command itself (:mod:`parlai_dialogft.plugin.cli_errors`) and the torchrun launcher.
"""

from __future__ import annotations

import contextlib
import sys


class UserError(ValueError):
    """A mistake the user can fix (bad flag, missing file, wrong model type): the message says how."""


class ParlAIMissing(UserError, ImportError):
    """ParlAI is absent or does not import; the message is one line saying how to fix it."""


class DataFormatError(UserError):
    """Bad input data, reported as one line that names the file and the line to fix."""

    def __init__(self, path: object, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@contextlib.contextmanager
def one_line_errors(command: str):
    """A :class:`UserError` inside becomes ``command: message`` on stderr and exit status 2.

    A context manager, and (as every ``contextmanager``) a decorator: ``@one_line_errors("x")``.
    Anything else keeps its traceback: it is a bug to fix, not a mistake to report.
    """
    try:
        yield
    except UserError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
