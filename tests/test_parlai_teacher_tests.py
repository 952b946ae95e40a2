"""ParlAI's own teacher test (AutoTeacherTest) for every shipped-data teacher.

It streams the first acts of each split through a world and compares them, with the
episode and example counts, to the regression files in tests/test_parlai_teacher_tests/
(written by the first run; `pytest --force-regen` rewrites them after a deliberate change).
"""

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
