"""ParlAI's own teacher test (AutoTeacherTest) for every shipped-data teacher.

It streams the first acts of each split through a world and compares them, with the
episode and example counts, to the regression files in tests/test_parlai_teacher_tests/
(written by the first run; `pytest --force-regen` rewrites them after a deliberate change).
"""

import os
from pathlib import Path

from parlai.utils.testing import AutoTeacherTest


class TestCustomerService(AutoTeacherTest):
    task = "dialogft_customer"


class TestCustomerServiceChinese(AutoTeacherTest):
    task = "dialogft_customer:lang=zh"


class TestChitChat(AutoTeacherTest):
    task = "dialogft_chitchat"


class TestKnowledgeGroundedQA(AutoTeacherTest):
    task = "dialogft_qa"


def test_streamed_counts_follow_the_options_and_stay_out_of_the_working_dir(tmp_path, monkeypatch):
    """ParlAI's stream mode caches counts in DATAFILE.lengths: one cache per data-shaping
    option set, under --datapath (a shared cache once gave lang=zh the English counts)."""
    from parlai.core.params import ParlaiParser
    from parlai.core.teachers import create_task_agent_from_taskname

    monkeypatch.chdir(tmp_path)
    counts = {}
    for flag in ("en", "zh"):
        opt = ParlaiParser(True, False).parse_kwargs(
            task="dialogft_customer", customer_lang=flag, datatype="valid:stream",
            datapath=str(tmp_path / "data"),
        )
        counts[flag] = create_task_agent_from_taskname(opt)[0].num_examples()
    assert counts == {"en": 6831, "zh": 448}
    assert not list(tmp_path.glob("*.lengths"))


def test_a_streamed_count_cached_before_the_data_changed_is_not_read_back(tmp_path):
    """ParlAI's streaming mode caches a count per datafile: an upgrade that moves dialogues
    between splits must not find the old count under the same name."""
    from parlai.core.params import ParlaiParser

    from parlai_dialogft.data import dialog_teacher
    from parlai_dialogft.tasks.dialogft_customer.agents import DefaultTeacher

    opt = ParlaiParser(True, False).parse_kwargs(task="dialogft_customer", datapath=str(tmp_path))
    before = DefaultTeacher.datafile_for(opt, "train")
    assert DefaultTeacher.datafile_for(opt, "train") == before
    readers = Path(dialog_teacher.__file__).resolve().parent / "readers" / "task_oriented.py"
    stat = readers.stat()
    try:
        os.utime(readers, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        dialog_teacher.data_version.cache_clear()
        assert DefaultTeacher.datafile_for(opt, "train") != before
    finally:
        os.utime(readers, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        dialog_teacher.data_version.cache_clear()
