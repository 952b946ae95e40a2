"""``parlai dialogft_train_profile -mf MODEL``: what the training contexts looked like, beside the model.

    parlai dialogft_train_profile -mf /tmp/m/model              # the task the model was trained on
    parlai dialogft_train_profile -mf /tmp/m/model -t dialogft_customer --profile-max-examples 20000
    # -> /tmp/m/model.train_profile.json; dialogft_serve -mf /tmp/m/model then measures drift against it

The profile holds the 0th..100th percentiles of the training contexts' lengths in tokens and
their share of unknown tokens (see :class:`parlai_dialogft.serving.live_eval.TrainingProfile`),
a few kilobytes. Only the tokenizer is loaded, not the weights. Written after training rather
than during it, so that the training loop stays as it is and models trained before (the zoo's
too) get one as well.
"""

from __future__ import annotations

import itertools
import os

from parlai.core.params import ParlaiParser
from parlai.core.script import ParlaiScript, register_script

from parlai_dialogft.serving.live_eval import TrainingProfile, context_stats, episode_contexts, profile_path
from parlai_dialogft.utils.errors import UserError, one_line_errors


@register_script("dialogft_train_profile", hidden=False)
class DialogftTrainProfile(ParlaiScript):
    @classmethod
    def setup_args(cls):
        parser = ParlaiParser(True, True, description="Write MODEL.train_profile.json: the training "
                              "contexts' lengths and unknown-token share, for dialogft_serve's drift series")
        group = parser.add_argument_group("dialogft_train_profile")
        group.add_argument("--profile-max-examples", type=int, default=100_000,
                           help="profile the first this many training examples (train:ordered)")
        group.add_argument("--profile-out", type=str, default=None,
                           help="where to write (default: MODEL.train_profile.json, where dialogft_serve looks)")
        return parser

    @one_line_errors("dialogft_train_profile")
    def run(self):
        from parlai.core.build_data import modelzoo_path
        from parlai.core.opt import Opt
        from parlai.core.teachers import create_task_agent_from_taskname
        from transformers import AutoTokenizer

        from parlai_dialogft.model import hf_loading

        if not self.opt.get("model_file"):
            raise UserError("give -mf MODEL (the trained model to profile the training data of)")
        if self.opt["profile_max_examples"] < 1:
            raise UserError(f"--profile-max-examples {self.opt['profile_max_examples']}: must be at least 1")
        model_file = modelzoo_path(self.opt["datapath"], self.opt["model_file"])
        saved = Opt.load(model_file + ".opt") if os.path.isfile(model_file + ".opt") else {}
        task = self.opt.get("task") or saved.get("task")
        if not task:
            raise UserError(f"{model_file}.opt names no task: give the training task with -t")
        source = hf_loading.resolve_source({"model_file": model_file, "hf_model": saved.get("hf_model")})
        tokenizer = AutoTokenizer.from_pretrained(source)

        teacher_opt = self.opt.copy()
        teacher_opt.update({"task": task, "datatype": "train:ordered"})
        teacher = create_task_agent_from_taskname(teacher_opt)[0]

        def acts():
            while not teacher.epoch_done():
                yield teacher.act()

        lengths, unknown = [], 0
        for turns in itertools.islice(episode_contexts(acts()), self.opt["profile_max_examples"]):
            tokens, unk = context_stats(turns, lambda t: tokenizer(t, add_special_tokens=False)["input_ids"],
                                        tokenizer.unk_token_id)
            lengths.append(tokens)
            unknown += unk
        if not lengths:
            raise UserError(f"-t {task}: the training split has no examples")
        profile = TrainingProfile.from_contexts(lengths, unknown, task)
        out = self.opt.get("profile_out") or profile_path(model_file)
        profile.save(out)
        print(f"dialogft_train_profile: {profile.examples} training contexts of -t {task} -> {out}: "
              f"tokens p50 {profile.quantile(0.5):.0f}, p90 {profile.quantile(0.9):.0f}, "
              f"p99 {profile.quantile(0.99):.0f}; unknown tokens {profile.unknown_token_share:.2%}", flush=True)
        return profile


if __name__ == "__main__":
    DialogftTrainProfile.main()
