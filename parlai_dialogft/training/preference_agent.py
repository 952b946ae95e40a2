"""What ``dialogft_agent`` does under ``--pref-loss``: preference training in ParlAI's loop.

The data comes from ``-t dialogft_preferences`` (TRL's preference files): a pair is a
message with ``labels: [chosen]`` and ``rejected``, an unpaired reply one with
``labels: [completion]`` and ``desirable``. Vectorising adds the rejected reply's ids, cut
and ended like a label's; the loss scores each reply by the summed log-probability of its
tokens, EOS included, over exactly the positions the SFT loss counts (the agent's packed
logits), and :mod:`parlai_dialogft.training.preference` turns them into the loss.

A batch may mix preference examples with plain (context, reply) ones from another task: each
row trains on its own loss (the plain ones on the reference NLL), each a share of the batch.

Before the first step the reference log-probabilities of every training and validation
example are computed with the starting weights and cached
(:mod:`parlai_dialogft.training.reference`), and the start's held-out gold perplexity is
measured, so that ``-mf`` never holds a model worse than the start
(:mod:`parlai_dialogft.training.selection`). Validation keeps ParlAI's metrics of the chosen
reply (``ppl``, ``f1``, ...) and adds the preference ones.

Metrics, as TRL names them: ``pref_loss``, ``rewards_chosen``, ``rewards_rejected``,
``reward_margin``, ``reward_acc`` (chosen reward above rejected: DPO, IPO, SimPO),
``logps_chosen`` (every row's chosen reply, at every step: a fall is likelihood
displacement), ``logps_rejected``, ``logps_completion`` (KTO); unlikelihood's ``ul_loss`` (the
mean penalty per penalised token) and ``ul_tokens`` (penalised tokens per pair).
"""

from __future__ import annotations

import os
from typing import List, Optional

import torch
from parlai.core.metrics import AverageMetric
from parlai.core.torch_generator_agent import PPLMetric
from parlai.utils import logging

from parlai_dialogft.training import preference, selection, unlikelihood
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
        """ParlAI's batch, plus which rows are preference examples and their rejected replies.

        Rows of a plain reference task beside the preference one (``-t dialogft_preferences,
        dialogft_customer``) stay in the batch and train on the reference loss; their
        ``rejected_vec`` row is a lone END, scored in the same pass and never used.
        """
        batch = super().batchify(obs_batch, sort=sort)
        if self.pref_loss == "none" or not batch.batchsize or batch.label_vec is None:
            return batch
        exs = [obs_batch[i] for i in batch.valid_indices.tolist()]
        field = "rejected_vec" if self.pref_loss in preference.PAIRED else "desirable"
        rows = [field in ex for ex in exs]
        if not any(rows):
            return batch  # no preference example: ParlAI's loss, as for any reference task
        batch.pref_rows = torch.tensor(rows)
        if field == "rejected_vec":
            lone_end = torch.LongTensor([self.END_IDX])
            batch.rejected_vec, _ = self._pad_tensor([ex.get("rejected_vec", lone_end) for ex in exs], is_label=True)
        else:
            batch.desirable = torch.tensor([bool(ex.get("desirable")) for ex in exs])
        batch.pref_keys = [ex["pref_key"] if row else None for ex, row in zip(exs, rows)]
        return batch

    # --- loss ------------------------------------------------------------------------------

    def _is_preference_batch(self, batch) -> bool:
        return self.pref_loss != "none" and batch.get("pref_keys") is not None

    def _pref_scored_keys(self, batch) -> List[str]:
        """The keys of the rows the reference scored (the preference rows)."""
        return [k for k in batch.pref_keys if k is not None]

    def _replies_logps(self, batch, replies: List[torch.Tensor]):
        """(summed logps, token counts, token logps (R*B, T), kept positions) of each reply set, one pass."""
        width = max(r.size(1) for r in replies)
        ys = torch.cat([torch.nn.functional.pad(r, (0, width - r.size(1)), value=self.NULL_IDX) for r in replies])
        keep = ys.ne(self.NULL_IDX)
        # The contexts are encoded once for all reply sets (a seq2seq encoder's work halves).
        logits = self.model(*self._model_input(batch), ys=ys, keep=keep, replies_per_context=len(replies))
        summed, counts, tokens = preference.sequence_logps(logits, ys, keep)
        per_position = torch.zeros(keep.shape, dtype=tokens.dtype, device=tokens.device).masked_scatter(keep, tokens)
        return summed.split(len(batch.text_vec)), counts.split(len(batch.text_vec)), per_position, keep

    def _preference_loss(self, batch, sft_metrics: bool = True) -> torch.Tensor:
        """The objective of each row: its preference loss, or the reference NLL where it has no
        rejected reply (KTO: no mark), each row an equal share of the batch."""
        beta = self.opt.get("pref_beta", 0.1)
        paired = self.pref_loss in preference.PAIRED
        replies = [batch.label_vec, batch.rejected_vec] if paired else [batch.label_vec]
        (policy, *rest), (count, *rest_counts), token_logps, keep = self._replies_logps(batch, replies)
        size = len(policy)
        chosen_logps, chosen_keep = token_logps[:size], keep[:size]  # (B, T)
        pref = batch.pref_rows.to(policy.device)
        if self.pref_loss == "unlikelihood":
            loss = self._unlikelihood_loss(batch, chosen_logps, chosen_keep, token_logps[size:], pref)
        else:
            loss = self._pairwise_loss(batch, policy, rest, count, rest_counts, chosen_logps, chosen_keep, pref, beta)
        if paired:
            # Through training, so that a fall of the chosen replies' likelihood shows.
            self.record_local_metric("logps_chosen", AverageMetric.many([float(v) for v in policy.detach()]))
        if not sft_metrics:
            return loss
        # ParlAI's own: per-token loss and perplexity of the chosen (KTO: every) reply.
        self.record_local_metric("loss", AverageMetric.many([-float(v) for v in policy.detach()], count.tolist()))
        self.record_local_metric("ppl", PPLMetric.many([-float(v) for v in policy.detach()], count.tolist()))
        return loss

    def _pairwise_loss(self, batch, policy, rest, count, rest_counts, chosen_logps, chosen_keep, pref, beta):
        opt = self.opt
        rows = pref.nonzero(as_tuple=True)[0]
        p_policy, p_count = policy[rows], count[rows]
        if self.pref_loss in preference.NEEDS_REFERENCE:
            ref = torch.tensor(self.pref_reference.lookup(self._pref_scored_keys(batch)), device=policy.device)
        if self.pref_loss == "dpo":
            out = preference.dpo(p_policy, rest[0][rows], ref[:, 0], ref[:, 1], beta)
        elif self.pref_loss == "ipo":
            out = preference.ipo(p_policy, rest[0][rows], ref[:, 0], ref[:, 1], p_count, rest_counts[0][rows], beta)
        elif self.pref_loss == "simpo":
            out = preference.simpo(p_policy, rest[0][rows], p_count, rest_counts[0][rows], beta,
                                   opt.get("pref_simpo_gamma", 0.5))
        else:
            out = preference.kto(p_policy, ref[:, 0], batch.desirable.to(policy.device)[rows], beta,
                                 opt.get("pref_kto_desirable_weight", 1.0), opt.get("pref_kto_undesirable_weight", 1.0))
        size = len(policy)
        loss = out.losses.sum() / size
        weight = preference.sft_weight(opt)
        good = pref if self.pref_loss in preference.PAIRED else pref & batch.desirable.to(policy.device)
        if weight and good.any():
            # TRL's sft term: NLL per token of the chosen (KTO: good) replies, a share of the
            # batch as large as their rows'.
            nll = -chosen_logps[good][chosen_keep[good]].mean()
            loss = loss + weight * nll * len(rows) / size
        plain = ~pref
        if plain.any():
            # Rows with no preference: the reference loss, per token, their share of the batch.
            nll = -chosen_logps[plain][chosen_keep[plain]].mean()
            loss = loss + nll * int(plain.sum()) / size
        self._record_preference_metrics(out, p_policy, rest[0][rows] if len(rest) else None)
        return loss

    def _unlikelihood_loss(self, batch, chosen_logps, chosen_keep, rejected_logps, pref):
        opt = self.opt
        n = opt.get("pref_ul_ngram") or 4
        usage = getattr(self, "_ul_usage", None)
        if usage is None or usage.n != n:
            usage = self._ul_usage = unlikelihood.NgramUsage(n, opt.get("pref_ul_window") or 32)

        def stripped(vec):  # reply tokens without END and padding
            return [t for t in vec.tolist() if t not in (self.NULL_IDX, self.END_IDX)]

        golds = [stripped(v) for v in batch.label_vec]
        rejected = [stripped(v) if row else [] for v, row in zip(batch.rejected_vec, pref.tolist())]
        if self.is_training:  # the shares are the training data's, as ParlAI keeps them
            usage.add([r for r in rejected if r], golds)
        overused = usage.overused(opt.get("pref_ul_threshold", 1e-3))
        mask = torch.zeros(rejected_logps.shape, dtype=torch.bool, device=rejected_logps.device)
        for i, (reply, gold, context) in enumerate(zip(rejected, golds, batch.text_vec)):
            marked = unlikelihood.penalised(reply, gold, [t for t in context.tolist() if t != self.NULL_IDX],
                                            overused, n)
            mask[i, : len(marked)] = torch.tensor(marked, dtype=torch.bool)
        loss, penalties, counts = unlikelihood.loss(chosen_logps, chosen_keep, rejected_logps, mask,
                                                    opt.get("pref_ul_alpha", 1.0))
        if int(counts.sum()):
            self.global_metrics.add("ul_loss", AverageMetric(float(penalties.sum()), int(counts.sum())))
        self.global_metrics.add("ul_tokens", AverageMetric(int(counts.sum()), int(pref.sum())))
        return loss

    def _record_preference_metrics(self, out, policy, rejected: Optional[torch.Tensor]) -> None:
        """Batch metrics over the preference rows (a mixed batch has rows without them)."""
        def add(name: str, values: torch.Tensor) -> None:
            values = values.detach()
            values = values[~torch.isnan(values)]
            if len(values):
                self.global_metrics.add(name, AverageMetric(float(values.sum()), len(values)))

        add("pref_loss", out.losses)
        add("rewards_chosen", out.rewards_chosen)
        add("rewards_rejected", out.rewards_rejected)
        if rejected is not None:
            margin = out.rewards_chosen - out.rewards_rejected
            add("reward_margin", margin)
            add("reward_acc", (margin > 0).float())
            add("logps_rejected", rejected)
        else:
            add("logps_completion", policy)

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

    # --- never keep a model worse than the start (parlai_dialogft.training.selection) -----------

    def _pref_guard_setup(self, shared, training: bool) -> None:
        self.pref_guard = None
        model_file = self.opt.get("model_file")
        if shared or not training or self.pref_loss == "none" or not self.opt.get("pref_keep_start", True):
            return
        from parlai.utils.distributed import is_distributed

        if not model_file or is_distributed():
            return  # nothing to guard / every rank would have to measure alike: not offered
        guard = selection.StartGuard.load(model_file + ".pref_start.json")
        if guard is None:
            if os.path.isfile(model_file):
                # A run begun without the guard, resumed: its weights are no longer the start's.
                logging.warning(f"--pref-keep-start: -mf {model_file} exists without its start's perplexity "
                                f"({model_file}.pref_start.json): saves are not checked against the start")
                return
            guard = selection.StartGuard(model_file + ".pref_start.json", self._heldout_gold_ppl())
            guard.save()
            logging.info(f"--pref-keep-start: the start's held-out gold ppl is {guard.start_ppl:.4g}; its weights "
                         f"are in -mf {model_file} until a model no worse replaces them")
            self.save(model_file)  # the start, before any step (self.pref_guard still None: unguarded)
        self.pref_guard = guard

    def _pref_guard_allows(self, path: Optional[str]) -> bool:
        """Whether saving to ``path`` may go ahead: always, except -mf with weights whose
        held-out gold perplexity is worse than the start's."""
        guard = getattr(self, "pref_guard", None)
        if guard is None or path != self.opt.get("model_file"):
            return True
        ppl = self._heldout_gold_ppl()
        if guard.decide(ppl):
            logging.info(f"--pref-keep-start: held-out gold ppl {ppl:.4g}, the start's {guard.start_ppl:.4g}: saved")
            return True
        logging.warning(f"--pref-keep-start: held-out gold ppl {ppl:.4g} is worse than the start's "
                        f"{guard.start_ppl:.4g}: -mf keeps its weights")
        return False

    def _heldout_examples(self) -> List[dict]:
        """The first --pref-select-exs validation examples of the task ParlAI validates on
        (--evaltask where given, as ParlAI's validation reads it)."""
        if getattr(self, "_pref_heldout", None) is None:
            self._pref_heldout = self._teacher_examples(
                ("valid",), lambda obs: obs.get("labels_vec", obs.get("eval_labels_vec")) is not None,
                limit=self.opt.get("pref_select_exs") or 200, task=self.opt.get("evaltask") or None)
        return self._pref_heldout

    @torch.no_grad()
    def _heldout_gold_ppl(self) -> float:
        """Perplexity of the held-out examples' gold replies (every token, EOS included)."""
        examples = self._heldout_examples()
        was_training = self.model.training
        self.model.eval()
        nll, tokens = 0.0, 0
        try:
            for start in range(0, len(examples), REFERENCE_BATCH):
                batch = self.batchify(examples[start:start + REFERENCE_BATCH])
                (sums,), (counts,), _, _ = self._replies_logps(batch, [batch.label_vec])
                nll, tokens = nll - float(sums.sum()), tokens + int(counts.sum())
        finally:
            self.model.train(was_training)
        return selection.perplexity(nll, tokens)

    def share(self):
        shared = super().share()
        shared["pref_reference"] = getattr(self, "pref_reference", None)
        return shared

    def _pref_examples(self) -> List[dict]:
        """Every training and validation preference example, vectorised exactly as training will."""
        # Only preference messages are observed: a plain task beside them may be large.
        found = self._teacher_examples(("train:evalmode", "valid"), lambda obs: obs.get("pref_key") is not None,
                                       messages=lambda m: "rejected" in m or "desirable" in m)
        unique = {ex["pref_key"]: ex for ex in found}
        return list(unique.values())

    def _teacher_examples(self, datatypes, wanted, limit: int = -1, task: Optional[str] = None,
                          messages=lambda message: True) -> List[dict]:
        """The examples of ``datatypes`` of ``task`` (default: -t), observed by a copy of this
        agent, that pass ``wanted``."""
        from parlai.core.message import Message
        from parlai.core.teachers import create_task_agent_from_taskname

        found = []
        scorer = self.clone()
        scorer.reset()
        for datatype in datatypes:
            opt = self.opt.copy()
            opt["datatype"] = datatype
            if task:
                opt["task"] = task
            for teacher in create_task_agent_from_taskname(opt):
                for _ in range(teacher.num_examples()):
                    if 0 <= limit <= len(found):
                        return found
                    message = teacher.act()
                    if not messages(message):
                        continue
                    obs = scorer.observe(Message(message))
                    if obs.get("text_vec") is not None and wanted(obs):
                        found.append(obs)
                    # As a world would: the gold reply joins the history, or the episode ends.
                    scorer.self_observe(Message({"text": ""}))
        return found

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
