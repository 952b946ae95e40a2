"""What ``dialogft_agent`` does under ``--pref-loss``: preference training in ParlAI's loop.

The data comes from ``-t dialogft_preferences`` (TRL's preference files): a pair is a
message with ``labels: [chosen]`` and ``rejected``, an unpaired reply one with
``labels: [completion]`` and ``desirable``. Vectorising adds the rejected reply's ids, cut
and ended like a label's; the loss scores each reply by the summed log-probability of its
tokens, EOS included, over exactly the positions the SFT loss counts (the agent's packed
logits), and :mod:`parlai_dialogft.training.preference` turns them into the loss.

Before the first step the reference log-probabilities of every training and validation
example are computed with the starting weights and cached
(:mod:`parlai_dialogft.training.reference`). Validation keeps ParlAI's metrics of the chosen
reply (``ppl``, ``f1``, ...) and adds the preference ones.

Metrics, as TRL names them: ``pref_loss``, ``rewards_chosen``, ``rewards_rejected``,
``reward_margin``, ``reward_acc`` (chosen reward above rejected: DPO, SimPO),
``logps_chosen``, ``logps_rejected``.
"""

from __future__ import annotations

import os
from typing import List, Optional

import torch
from parlai.core.metrics import AverageMetric
from parlai.core.torch_generator_agent import PPLMetric
from parlai.utils import logging

from parlai_dialogft.training import preference
from parlai_dialogft.training.reference import ReferenceLogps, example_key
from parlai_dialogft.utils.errors import UserError
from parlai_dialogft.utils.progress import Progress

#: Examples per batch of the reference pass (no gradients: memory is the logits').
REFERENCE_BATCH = 16


class PreferenceMixin:
    """Mixed into the agent before ``TorchGeneratorAgent``; inert with ``--pref-loss none``."""

    @property
    def pref_loss(self) -> str:
        return self.opt.get("pref_loss") or "none"

    # --- data ------------------------------------------------------------------------------

    def vectorize(self, obs, history, add_start=True, add_end=True, text_truncate=None, label_truncate=None):
        obs = super().vectorize(obs, history, add_start=add_start, add_end=add_end,
                                text_truncate=text_truncate, label_truncate=label_truncate)
        if self.pref_loss == "none" or obs.get("text_vec") is None:
            return obs
        if "rejected" in obs and "rejected_vec" not in obs:
            # Exactly as TorchGeneratorAgent.vectorize makes a label: no START (the model
            # adds it), END appended, cut at --label-truncate keeping the start.
            vec = self._vectorize_text(obs["rejected"], False, True, label_truncate, False)
            obs["rejected_vec"] = torch.LongTensor(vec)
        label = obs.get("labels_vec", obs.get("eval_labels_vec"))
        if label is not None:
            scored = [label.tolist()] + ([obs["rejected_vec"].tolist()] if "rejected_vec" in obs else [])
            obs["pref_key"] = example_key(obs["text_vec"].tolist(), *scored)
        return obs

    def batchify(self, obs_batch, sort=False):
        batch = super().batchify(obs_batch, sort=sort)
        if self.pref_loss == "none" or not batch.batchsize or batch.label_vec is None:
            return batch
        exs = [obs_batch[i] for i in batch.valid_indices.tolist()]
        if self.pref_loss in preference.PAIRED:
            if not all("rejected_vec" in ex for ex in exs):
                return batch  # not preference data (an SFT task beside it): ParlAI's loss
            batch.rejected_vec, _ = self._pad_tensor([ex["rejected_vec"] for ex in exs], is_label=True)
        else:
            if not all("desirable" in ex for ex in exs):
                return batch
            batch.desirable = torch.tensor([bool(ex["desirable"]) for ex in exs])
        batch.pref_keys = [ex["pref_key"] for ex in exs]
        return batch

    # --- loss ------------------------------------------------------------------------------

    def _is_preference_batch(self, batch) -> bool:
        return self.pref_loss != "none" and batch.get("pref_keys") is not None

    def _replies_logps(self, batch, replies: List[torch.Tensor]):
        """(summed logps, token counts, token logps) of each reply set, one forward pass."""
        width = max(r.size(1) for r in replies)
        ys = torch.cat([torch.nn.functional.pad(r, (0, width - r.size(1)), value=self.NULL_IDX) for r in replies])
        keep = ys.ne(self.NULL_IDX)
        # The contexts are encoded once for all reply sets (a seq2seq encoder's work halves).
        logits = self.model(*self._model_input(batch), ys=ys, keep=keep, replies_per_context=len(replies))
        summed, counts, tokens = preference.sequence_logps(logits, ys, keep)
        return summed.split(len(batch.text_vec)), counts.split(len(batch.text_vec)), tokens, keep

    def _preference_loss(self, batch, sft_metrics: bool = True) -> torch.Tensor:
        opt, beta = self.opt, self.opt.get("pref_beta", 0.1)
        paired = self.pref_loss in preference.PAIRED
        replies = [batch.label_vec, batch.rejected_vec] if paired else [batch.label_vec]
        (policy, *rest), (count, *rest_counts), tokens, keep = self._replies_logps(batch, replies)
        if self.pref_loss in preference.NEEDS_REFERENCE:
            ref = torch.tensor(self.pref_reference.lookup(batch.pref_keys), device=policy.device)
        if self.pref_loss == "dpo":
            out = preference.dpo(policy, rest[0], ref[:, 0], ref[:, 1], beta)
        elif self.pref_loss == "simpo":
            out = preference.simpo(policy, rest[0], count, rest_counts[0], beta, opt.get("pref_simpo_gamma", 0.5))
        else:
            out = preference.kto(policy, ref[:, 0], batch.desirable.to(policy.device), beta,
                                 opt.get("pref_kto_desirable_weight", 1.0), opt.get("pref_kto_undesirable_weight", 1.0))
        loss = out.losses.mean()
        sft_weight = opt.get("pref_sft_weight") or 0.0
        if sft_weight:
            # NLL per token of the chosen replies (KTO: of the good ones).
            good = torch.ones_like(policy, dtype=torch.bool) if paired else batch.desirable.to(policy.device)
            chosen_tokens = tokens[: int(keep[: len(policy)].sum())]
            rows = keep[: len(policy)].nonzero(as_tuple=True)[0]
            picked = good[rows]
            if picked.any():
                loss = loss - sft_weight * chosen_tokens[picked].mean()
        self._record_preference_metrics(out, policy, rest[0] if paired else None, paired)
        if not sft_metrics:
            return loss
        # ParlAI's own: per-token loss and perplexity of the chosen (KTO: every) reply.
        self.record_local_metric("loss", AverageMetric.many([-float(v) for v in policy.detach()], count.tolist()))
        self.record_local_metric("ppl", PPLMetric.many([-float(v) for v in policy.detach()], count.tolist()))
        return loss

    def _record_preference_metrics(self, out, policy, rejected: Optional[torch.Tensor], paired: bool) -> None:
        def many(values: torch.Tensor):
            return AverageMetric.many([float(v) for v in values.detach().cpu()])

        def present(values: torch.Tensor) -> torch.Tensor:
            return values[~torch.isnan(values)]

        self.record_local_metric("pref_loss", many(out.losses))
        chosen, rejected_rewards = present(out.rewards_chosen), present(out.rewards_rejected)
        if len(chosen):
            self.global_metrics.add("rewards_chosen", AverageMetric(float(chosen.sum()), len(chosen)))
        if len(rejected_rewards):
            self.global_metrics.add("rewards_rejected", AverageMetric(float(rejected_rewards.sum()), len(rejected_rewards)))
        if paired:
            margin = out.rewards_chosen - out.rewards_rejected
            self.record_local_metric("reward_margin", many(margin))
            self.record_local_metric("reward_acc", many((margin > 0).float()))
            self.record_local_metric("logps_chosen", many(policy))
            self.record_local_metric("logps_rejected", many(rejected))
        else:
            self.record_local_metric("logps_completion", many(policy))

    # --- the reference pass ------------------------------------------------------------------

    def _pref_reference_path(self) -> str:
        path = self.opt.get("pref_ref_cache") or (self.opt.get("model_file") or "") + ".pref_ref.json"
        if path == ".pref_ref.json":
            raise UserError("--pref-loss needs -mf (the reference log-probabilities are cached beside it) "
                            "or --pref-ref-cache FILE")
        return path

    def _pref_setup(self, shared, training: bool) -> None:
        """The reference log-probabilities: shared between copies, loaded, or computed now.

        Computed only for a training run: a model trained with --pref-loss keeps the flag in
        its opt, and a later self-chat or chat (datatype train, nothing trained) must not
        score its task.
        """
        self.pref_reference = None
        if self.pref_loss not in preference.NEEDS_REFERENCE:
            return
        if shared:
            self.pref_reference = shared.get("pref_reference")
            return
        path = self._pref_reference_path()
        self.pref_reference = ReferenceLogps.load(path) or ReferenceLogps(path)
        if not training:
            return  # evaluation only reads it (validation examples were scored before training)
        todo = [ex for ex in self._pref_examples() if ex["pref_key"] not in self.pref_reference]
        if not todo:
            return
        if os.path.isfile(self.opt.get("model_file") or ""):
            # Resuming: the checkpoint's weights are no longer the reference; never score with them.
            raise UserError(
                f"--pref-ref-cache {path}: {len(todo)} example(s) have no reference log-probabilities, and the "
                f"weights of -mf {self.opt['model_file']} have moved since training started; start from them "
                "with --init-model and a new -mf to compute the reference afresh")
        self._score_reference(todo)
        from parlai.utils.distributed import is_primary_worker

        if is_primary_worker():
            self.pref_reference.save()

    def share(self):
        shared = super().share()
        shared["pref_reference"] = getattr(self, "pref_reference", None)
        return shared

    def _pref_examples(self) -> List[dict]:
        """Every training and validation example, vectorised exactly as training will."""
        from parlai.core.message import Message
        from parlai.core.teachers import create_task_agent_from_taskname

        found = []
        scorer = self.clone()
        for datatype in ("train:evalmode", "valid"):
            opt = self.opt.copy()
            opt["datatype"] = datatype
            for teacher in create_task_agent_from_taskname(opt):
                for _ in range(teacher.num_examples()):
                    message = teacher.act()
                    if "rejected" in message or "desirable" in message:
                        scorer.reset()
                        obs = scorer.observe(Message(message))
                        if obs.get("pref_key") is not None:
                            found.append(obs)
        unique = {ex["pref_key"]: ex for ex in found}
        return list(unique.values())

    @torch.no_grad()
    def _score_reference(self, examples: List[dict]) -> None:
        paired = self.pref_loss in preference.PAIRED
        was_training = self.model.training
        self.model.eval()
        logging.info(f"--pref-loss {self.pref_loss}: reference log-probabilities of {len(examples)} examples, "
                     f"once, into {self.pref_reference.path}")
        try:
            with Progress(len(examples), "reference log-probabilities") as progress:
                for start in range(0, len(examples), REFERENCE_BATCH):
                    chunk = examples[start:start + REFERENCE_BATCH]
                    batch = self.batchify(chunk)
                    replies = [batch.label_vec, batch.rejected_vec] if paired else [batch.label_vec]
                    sums, _counts, _tokens, _keep = self._replies_logps(batch, replies)
                    self.pref_reference.add(batch.pref_keys, torch.stack(sums, dim=1).tolist())
                    progress.update(len(chunk))
        finally:
            self.model.train(was_training)
