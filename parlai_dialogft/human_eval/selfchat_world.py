"""ParlAI's self-chat world with the openers taken in order: chat i opens with line i.

ParlAI's ``SelfChatWorld.get_openers`` draws an opener at random for each episode, so two
models' runs would not share openers one for one, and some lines would never be used.
Fast-ACUTE runs ``self_chat`` with ``-t parlai_dialogft.human_eval.selfchat_world`` (ParlAI
loads a task's ``SelfChatWorld`` from a dotted module path) to compare every model on the
same openers, each used once, and no "Hi!" context before them.
"""

from typing import List, Optional

from parlai.tasks.self_chat.agents import DefaultTeacher  # noqa: F401  (ParlAI's parser looks the task's teacher up)
from parlai.tasks.self_chat.worlds import SelfChatWorld as _ParlaiSelfChatWorld

TASK = "parlai_dialogft.human_eval.selfchat_world"


class SelfChatWorld(_ParlaiSelfChatWorld):
    def get_openers(self, episode_num: int) -> Optional[List[str]]:
        if self._openers:
            return [self._openers[episode_num % len(self._openers)]]
        return None

    def get_contexts(self):
        # ParlAI's default seeds the first speaker's history with "Hi!" (and spends the
        # first parley on it): our models have no personas, so the opener comes first.
        return None
