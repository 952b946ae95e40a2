"""Mistakes on a ``parlai`` command line end in one line on stderr and exit status 2.

ParlAI 1.7.2 answers a mistyped flag with its whole ``--help`` (hundreds of lines) and the
error below it, and a mistyped task or agent name, a missing ``-mf`` file or a bad option
with a traceback. :func:`install` wraps ``superscript_main`` (the ``parlai`` command, every
script of ParlAI and of this plugin): our :class:`~parlai_dialogft.utils.errors.UserError`
and the ParlAI exceptions recognised here as user mistakes are printed by
:func:`~parlai_dialogft.utils.errors.one_line_errors` as ``parlai COMMAND: message``, with a
suggestion where one is close; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import pkgutil
import re
import sys
from typing import Iterable, List, Optional

from parlai_dialogft.utils.errors import UserError, one_line_errors


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _package_names(*packages: str) -> List[str]:
    import importlib

    names = []
    for package in packages:
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        names += [m.name for m in pkgutil.iter_modules(module.__path__)]
    return names


def known_tasks() -> List[str]:
    return _package_names("parlai.tasks", "parlai_dialogft.tasks")


def known_agents() -> List[str]:
    return _package_names("parlai.agents", "parlai_dialogft.agents")


_NO_TEACHER = re.compile(r"module '(?P<module>[\w.]+)\.agents' has no attribute '(?P<cls>\w+)'")
_NO_MODEL_FILE = "WARNING: Model file does not exist, check to make sure it is correct: "
_NO_MODEL = "Need to set `model` argument"


def user_message(exc: BaseException) -> Optional[str]:
    """One line for a user mistake, or None when ``exc`` is not one (a bug: keep the traceback)."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        # Only the task or agent module itself missing; a module *it* imports is a real bug.
        for namespace, flag, kind, known in (
            ("parlai.tasks.", "-t", "task", known_tasks),
            ("parlai.agents.", "-m", "agent", known_agents),
        ):
            if exc.name.startswith(namespace) and "." not in exc.name[len(namespace):]:
                name = exc.name[len(namespace):]
                return f"{flag} {name}: no such {kind}{did_you_mean(name, known())}"
    if isinstance(exc, AttributeError):
        match = _NO_TEACHER.search(str(exc))
        if match and ".tasks." in match["module"]:
            task = match["module"].rsplit(".", 1)[-1]
            teacher = match["cls"][: -len("Teacher")] if match["cls"].endswith("Teacher") else match["cls"]
            teachers = _teachers_of(match["module"] + ".agents")
            return (
                f"-t {task}:{teacher}: the task has no teacher {teacher!r}"
                f"{did_you_mean(teacher, teachers)}; its teachers: {', '.join(teachers) or 'none'}"
            )
    if isinstance(exc, RuntimeError) and str(exc).startswith((_NO_MODEL_FILE, _NO_MODEL)):
        zoo = _unknown_zoo_name(sys.argv[1:])
        if zoo:
            return f"-mf {zoo}"
        if str(exc).startswith(_NO_MODEL_FILE):
            return f"-mf {str(exc)[len(_NO_MODEL_FILE):]}: no such model file"
    return None


def _unknown_zoo_name(argv: List[str]) -> Optional[str]:
    from parlai_dialogft.zoo.dialogft.build import unknown_name

    for token in argv:
        problem = unknown_name(token)
        if problem:
            return problem
    return None


def _teachers_of(module_name: str) -> List[str]:
    import importlib

    module = importlib.import_module(module_name)
    suffix = "Teacher"
    return sorted(
        name[: -len(suffix)] for name in vars(module)
        if name.endswith(suffix) and name != suffix and not name.startswith("_")
        and getattr(module, name).__module__ == module.__name__
    )


def _command_parser(parser, argv: List[str]):
    """The parser of the command in ``argv`` (``parlai train_model ...``), or ``parser``.

    ``parlai``'s top parser reports flags that no parser took; the command's own parser
    (which ParlAI grew with the agent's and task's flags while parsing) knows the close ones.
    """
    subparsers = getattr(parser, "_subparsers", None)
    for action in subparsers._group_actions if subparsers else []:
        choices = getattr(action, "choices", None) or {}
        for token in argv:
            if isinstance(choices, dict) and token in choices:
                return choices[token]
    return parser


def parse_error(parser, message: str, argv: Optional[List[str]] = None) -> str:
    """ParlAI's parse error as one line, with the closest known flag for each unknown one."""
    parser = _command_parser(parser, sys.argv[1:] if argv is None else argv)
    flags = list(getattr(parser, "_option_string_actions", {}))
    if message.startswith("unrecognized arguments:"):
        hints = [
            f"{token}{did_you_mean(token, flags)}"
            for token in message.split(":", 1)[1].split()
            if token.startswith("-")
        ]
        if hints:
            message = "unrecognized arguments: " + ", ".join(hints)
    return f"{parser.prog}: {message}; see {parser.prog} --help"


def install_parse_errors(params) -> None:
    """``ParlaiParser.error``: one line on stderr, exit status 2 (not the whole help first)."""

    def error(self, message):
        print(parse_error(self, message), file=sys.stderr)
        raise SystemExit(2)

    params.ParlaiParser.error = error


def install(script) -> None:
    """Wrap ``parlai.core.script.superscript_main``, the ``parlai`` command."""
    original = script.superscript_main

    def superscript_main(args=None):
        argv = sys.argv[1:] if args is None else args
        with one_line_errors(f"parlai {argv[0]}" if argv else "parlai"):
            try:
                return original(args)
            except Exception as exc:
                message = user_message(exc)
                if message is None or isinstance(exc, UserError):
                    raise
                raise UserError(message) from None

    script.superscript_main = superscript_main
