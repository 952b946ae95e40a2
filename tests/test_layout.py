"""The tree is the architecture: every module imports, and no two modules import each other.

Imports inside functions count: a lazy import only postpones a cycle to run time.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Dict, List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
# Folders of the repository and the names they are installed under (setup.py's package_dir).
ROOTS = {
    "parlai_dialogft": REPO / "parlai_dialogft",
    "parlai_dialogft.agents": REPO / "agents",
    "parlai_dialogft.tasks": REPO / "tasks",
    "parlai_dialogft.zoo": REPO / "zoo",
}
STAGES = ("plugin", "utils", "model", "knowledge", "data", "tod", "training", "evaluation", "mutators", "serving", "human_eval", "scripts")


def our_modules() -> Dict[str, Path]:
    modules = {}
    for prefix, root in ROOTS.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((prefix, *parts))] = path
    return modules


MODULES = our_modules()


def imported_modules(name: str, path: Path) -> Set[str]:
    """Our modules that ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # ``from package import module`` imports the module; ``from module import name`` the module.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One cycle of ``graph`` as [a, b, ..., a], or [] when it has none."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []


def test_the_import_graph_sees_relative_lazy_and_package_imports():
    assert "parlai_dialogft.plugin.compat" in GRAPH["parlai_dialogft.plugin.hook"]  # inside a function
    assert "parlai_dialogft.mutators.noise" in GRAPH["parlai_dialogft.mutators"]  # from package import module
    assert "parlai_dialogft.data.conversation" in GRAPH["parlai_dialogft.data.readers.chitchat"]


def test_no_two_modules_import_each_other():
    assert find_cycle(GRAPH) == []


def test_the_error_classes_import_nothing_of_ours():
    """Every stage raises them, so they sit below every stage."""
    assert GRAPH["parlai_dialogft.utils.errors"] == set()


def test_every_error_a_user_can_fix_is_a_user_error():
    """One family, printed one way (``utils.errors.one_line_errors``): a class named ``*Error``
    is a mistake the user can fix. The other exceptions are signals between our own parts
    (``QueueFull``, ``Unsupported``, ...), and ``ApiError`` is an HTTP answer in OpenAI's format."""
    from parlai_dialogft.utils.errors import UserError

    errors = {
        f"{name}.{attr}": value
        for name in MODULES for attr, value in vars(importlib.import_module(name)).items()
        if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == name
    }
    assert len(errors) > 8
    named_error = {where for where, cls in errors.items() if where.endswith("Error")}
    assert {where for where in named_error if not issubclass(errors[where], UserError)} == {
        "parlai_dialogft.serving.protocol.ApiError"}


def test_each_stage_says_what_it_is_for_and_what_to_read_first():
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse(MODULES[f"parlai_dialogft.{stage}"].read_text(encoding="utf-8")))
        assert doc and len(doc.splitlines()) >= 2, stage
        assert ":mod:`." in doc, f"{stage}'s docstring names none of its modules"


def test_no_module_is_left_at_the_top_of_the_package():
    top = sorted(p.name for p in ROOTS["parlai_dialogft"].glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    importlib.import_module(name)


# --- the tests: each test module stands alone ---------------------------------------------------

TESTS = REPO / "tests"
SUPPORT = "tests.support"


def imports_of_the_tests_folder(path: Path) -> Set[str]:
    """What ``path`` imports of the tests folder, anywhere in its body, other than
    ``tests.support``: a test module (``test_x`` or ``tests.test_x``), ``conftest``, a module
    at the folder's top, or ``support`` by another name than ``tests.support``."""
    ours = {p.stem for p in TESTS.glob("*.py")} | {p.name for p in TESTS.iterdir() if p.is_dir()} | {"support"}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            # ``from tests import test_x`` imports the module test_x.
            targets = [f"tests.{a.name}" for a in node.names] if node.module == "tests" else [node.module]
        else:
            continue
        for target in targets:
            top, _, rest = target.partition(".")
            if top == "tests" and rest and not f"{target}.".startswith(f"{SUPPORT}."):
                found.add(target)
            elif top in ours:
                found.add(target)
    return found


def test_the_test_imports_check_sees_every_way_to_import_a_test_module(tmp_path):
    source = tmp_path / "test_x.py"
    source.write_text(
        "import os\nfrom tests.support.agents import make_agent\nimport tests.support\n"
        "from test_serving import http\nimport test_cleaning\nfrom tests import test_zoo\n"
        "from conftest import TEXTS\nfrom support.agents import search\n"
        "def lazy():\n    from tests.test_fsdp import STEPS\n"
    )
    assert imports_of_the_tests_folder(source) == {"test_serving", "test_cleaning", "tests.test_zoo", "conftest",
                                           "support.agents", "tests.test_fsdp"}


@pytest.mark.parametrize("path", sorted(p.relative_to(TESTS).as_posix() for p in TESTS.rglob("*.py")))
def test_a_test_module_imports_no_other_only_tests_support(path):
    """Shared fixtures come from conftest by name, shared code from ``tests.support``: a test
    module runs (and fails) on its own, and ``tests.support`` never reaches back up."""
    assert imports_of_the_tests_folder(TESTS / path) == set()
