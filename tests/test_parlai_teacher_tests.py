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
