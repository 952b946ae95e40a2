"""Import paths of 0.1.0 (``parlai_dialogft.metrics``) keep working after the move to subpackages."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from parlai_dialogft.plugin.moved import MOVED, new_name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_is_the_new_module_with_a_deprecation_warning(old):
    new = importlib.import_module(f"parlai_dialogft.{MOVED[old]}")
    sys.modules.pop(f"parlai_dialogft.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"parlai_dialogft.{old} moved to parlai_dialogft.{MOVED[old]}"):
        assert importlib.import_module(f"parlai_dialogft.{old}") is new


def test_what_users_wrote_still_runs_in_a_fresh_interpreter():
    code = (
        "from parlai_dialogft.metrics import compute\n"
        "from parlai_dialogft.readers.chitchat import read_kdconv\n"
        "import parlai_dialogft.evaluation.metrics as m, parlai_dialogft.data.readers.chitchat as c\n"
        "assert compute is m.compute and read_kdconv is c.read_kdconv\n"
        "print(compute(['hello there'], ['hello there'])['f1'])\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 1.0


def test_submodules_of_a_moved_package_follow_it():
    assert new_name("parlai_dialogft.readers.user_files") == "parlai_dialogft.data.readers.user_files"
    assert new_name("parlai_dialogft.serving.app") is None
    assert new_name("parlai_dialogft.metricsx") is None


def test_a_name_that_never_existed_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("parlai_dialogft.no_such_module")
