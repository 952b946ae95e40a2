"""``-m dialogft_agent``: any HuggingFace seq2seq or decoder-only model as a ParlAI generator.

    parlai train_model -t dialogft_customer -m dialogft_agent --hf-model t5-small -mf /tmp/m/model
    parlai interactive -mf /tmp/m/model

The transformers model lives in :mod:`parlai_dialogft.model.hf_model`, the tokenizer-as-dictionary
in :mod:`parlai_dialogft.model.hf_dict`; this agent only wires them into ParlAI's
``TorchGeneratorAgent``, so ParlAI's search, metrics and scripts work unchanged.
"""

from __future__ import annotations

import json
import os

from parlai_dialogft.plugin import compat

compat.require_parlai()

import torch  # noqa: E402
from parlai.core.metrics import AverageMetric  # noqa: E402
from parlai.core.torch_agent import Batch  # noqa: E402
from parlai.core.torch_generator_agent import PPLMetric, TorchGeneratorAgent  # noqa: E402
from parlai.utils import logging  # noqa: E402
from parlai.utils.distributed import is_primary_worker  # noqa: E402
from parlai.utils.torch import padded_tensor  # noqa: E402

from parlai_dialogft.knowledge.agent_mixin import KnowledgeAgentMixin  # noqa: E402
from parlai_dialogft.model import chat_format, fast_search, hf_loading, length_groups, lora  # noqa: E402
from parlai_dialogft.model.hf_dict import HFDictionaryAgent  # noqa: E402
from parlai_dialogft.model.hf_model import CausalModel, Seq2SeqModel  # noqa: E402
from parlai_dialogft.plugin import hook  # noqa: E402
from parlai_dialogft.serving.interactive_chat import InteractiveChatMixin  # noqa: E402
from parlai_dialogft.tod.agent_mixin import TodLoopMixin  # noqa: E402
from parlai_dialogft.training import checkpoint, preference, preflight, sharding  # noqa: E402
from parlai_dialogft.training.preference_agent import PreferenceMixin  # noqa: E402

hook.apply_all()

#: Pretrained by our recipe and shipped in the package (``zoo/dialogft/``), so the main
#: job runs offline; any hub id or local folder works in its place.
DEFAULT_HF_MODEL = "zoo:dialogft/bilingual_t5"

FREEZE_CHOICES = ("none", "embeddings", "encoder")


# InteractiveChatMixin first: empty lines, [RESET] and notices in `parlai interactive`;
# KnowledgeAgentMixin: --knowledge-retriever puts retrieved knowledge before each turn (inert otherwise);
# TodLoopMixin: --task-db calls the database and replies from its answer (inert otherwise);
# PreferenceMixin: DPO, IPO, KTO, SimPO and unlikelihood under --pref-loss (inert otherwise).
class DialogftAgent(InteractiveChatMixin, KnowledgeAgentMixin, TodLoopMixin, PreferenceMixin, TorchGeneratorAgent):
    @classmethod
    def add_cmdline_args(cls, parser, partial_opt=None):
        super().add_cmdline_args(parser, partial_opt=partial_opt)
        group = parser.add_argument_group("dialogft_agent: HuggingFace model")
        group.add_argument(
            "--hf-model",
            type=str,
            default=DEFAULT_HF_MODEL,
            help="hub id (t5-small, gpt2, Qwen/Qwen2.5-0.5B), a local save_pretrained "
            "folder, or a zoo:dialogft/... path; seq2seq or causal is read from its config",
        )
        group.add_argument(
            "--hf-freeze",
            type=str,
            default="none",
            choices=FREEZE_CHOICES,
            help="keep these weights fixed while fine-tuning (encoder: seq2seq only)",
        )
        group.add_argument(
            "--hf-chat-template",
            type="bool",
            default=False,
            help="render the history with the tokenizer's chat template (instruct models): "
            "turns alternate user/assistant, the newest being the user's",
        )
        group.add_argument(
            "--hf-bf16",
            type="bool",
            default=False,
            help="run forward passes under bfloat16 autocast (weights stay fp32)",
        )
        # Instead of ParlAI's --dynamic-batching (off, as ParlAI's default): its length
        # buckets are fast but each holds one dialogue position, and cost 0.13 of
        # validation loss in bench/training.py; groups keep the batch as drawn.
        group.add_argument(
            "--hf-length-groups",
            type="bool",
            default=None,
            help="compute each batch with labels as groups of rows of similar length, each "
            "padded only to its own longest: the same loss and gradients as the whole padded "
            "batch, less work on padding (default: on a CPU; on a GPU only if set true, "
            "which bench/gpu.sh measures)",
        )
        lora.add_lora_args(parser.add_argument_group("dialogft_agent: LoRA adapters (peft)"))
        preference.add_pref_args(parser)
        sharding.add_args(parser.add_argument_group("dialogft_agent: sharded training (torch FSDP2)"))
        parser.set_defaults(
            dict_tokenizer="hf",
            optimizer="adamw",
            # Fine-tuning a pretrained model: at 5e-4 the zoo's model ended below its start (docs/zoo.md).
            learningrate=1e-4,
            text_truncate=256,
            label_truncate=64,
            truncate=256,
            inference="greedy",
            beam_size=1,
            # The tokenizer already knows how to write text; no extra ParlAI markers.
            history_add_global_end_token=None,
            # Validation generates a reply per example: on a CPU, a full SGD dev split takes
            # many minutes each time. Validate on a sample during training (and at its end);
            # `parlai eval_model` always scores every example. -vme -1 restores ParlAI's.
            validation_max_exs=1000,
            short_final_eval=True,
            # ParlAI's default, accuracy (exact match), almost never improves for a
            # generator, so -mf would keep the first validation's weights.
            validation_metric="ppl",
            validation_metric_mode="min",
            # ParlAI writes MODEL.checkpoint only when asked: a crash at hour three would
            # lose the run. Every 15 minutes; rerunning the command resumes from it.
            save_every_n_secs=900,
        )
        return parser

    # ParlAI wraps the model in DistributedDataParallel with device_ids=[opt['gpu']] unless
    # model_parallel is set; on CPU that is [-1], which torch refuses. ParlAI sets this flag
    # and reads it only in __init__; without CUDA it means exactly "device_ids=None".
    @property
    def model_parallel(self) -> bool:
        return self._model_parallel or not self.use_cuda

    @model_parallel.setter
    def model_parallel(self, value: bool) -> None:
        self._model_parallel = value

    @staticmethod
    def dictionary_class():
        return HFDictionaryAgent

    # Class paths that models saved by 0.1.0 name in their .opt, before the package was
    # grouped into subpackages (removed in 0.2.0, CHANGELOG.md).
    SAVED_CLASS_PATHS = {"parlai_dialogft.hf_dict:HFDictionaryAgent": "parlai_dialogft.model.hf_dict:HFDictionaryAgent"}

    @classmethod
    def upgrade_opt(cls, opt_from_disk):
        """ParlAI's hook for options of older saved models: old class paths become today's."""
        opt_from_disk = super().upgrade_opt(opt_from_disk)
        old = opt_from_disk.get("dict_class")
        if old in cls.SAVED_CLASS_PATHS:
            opt_from_disk["dict_class"] = cls.SAVED_CLASS_PATHS[old]
            logging.warning(f"dict_class {old} of a model saved by 0.1.0 is now {opt_from_disk['dict_class']}")
        return opt_from_disk

    def __init__(self, opt, shared=None):
        datatype = opt.get("datatype", "")
        # `parlai interactive` runs with datatype train; it trains nothing.
        training = datatype.startswith("train") and "evalmode" not in datatype and not opt.get("interactive_mode")
        if not shared:
            preflight.check_options(opt)
            sharding.check_options(opt)
            sharding.claim_backend(opt)
            preflight.check_model_folders(opt, training)
            preflight.check_model_dir(opt.get("model_file"))
        super().__init__(opt, shared)
        if not shared and training and opt.get("model_file"):
            # Before the first step: leftovers of a killed save go (rank 0's, as only it saves:
            # two ranks deleting one file would race), and a full disk fails now.
            if is_primary_worker():
                checkpoint.remove_leftovers(opt["model_file"])
            preflight.check_free_space(opt["model_file"], preflight.checkpoint_bytes(self.model))
        self._fit_truncation_to_model()
        if self.opt.get("hf_chat_template"):
            chat_format.check(self.dict.hf_tokenizer)
        self._pref_setup(shared, training)
        self._pref_guard_setup(shared, training)

    # --- model -------------------------------------------------------------------------

    def build_model(self):
        source = self.dict.source  # resolved once, by the dictionary (zoo build included)
        config = self.dict.config
        # A ParlAI checkpoint provides the weights: building from config skips loading
        # (and maybe downloading) pretrained weights that load() would overwrite.
        has_checkpoint = self._has_checkpoint()
        hf = hf_loading.load_model(source, config, pretrained=not has_checkpoint)
        if len(self.dict) > hf.get_input_embeddings().num_embeddings:
            # The tokenizer grew (an added pad). New rows are drawn at random: from a fixed
            # seed, so the same --hf-model always yields the same starting weights.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                hf.resize_token_embeddings(len(self.dict))
        hf.config.pad_token_id = self.dict.hf_tokenizer.pad_token_id
        lora.apply(hf, self.opt)  # before ParlAI loads a checkpoint: its keys include lora_*
        ids = dict(
            null_idx=self.NULL_IDX,
            start_idx=self.START_IDX,
            end_idx=self.END_IDX,
            unk_idx=self.dict[self.dict.unk_token],
        )
        if self.dict.is_seq2seq:
            model = Seq2SeqModel(hf, decoder_start_idx=self.dict.decoder_start_id, **ids)
        else:
            model = CausalModel(hf, **ids)
        self._freeze(model)
        return model

    def _get_init_model(self, opt, shared):
        init_model, is_finetune = super()._get_init_model(opt, shared)
        if init_model and os.path.isdir(init_model):
            # -mf zoo:dialogft/NAME (or any Hugging Face folder with a NAME.opt beside it):
            # build_model loaded the folder's weights; there is no ParlAI checkpoint to read.
            return None, False
        return init_model, is_finetune

    def load_state_dict(self, state_dict):
        # --init-model from a full fine-tune into a LoRA run: peft renamed the base weights.
        super().load_state_dict(lora.fit_state_dict(self.model, state_dict))

    def init_optim(self, params, optim_states=None, saved_optim_type=None, is_finetune=False):
        # --hf-fsdp: shard here, after ParlAI synced the ranks' weights and loaded the
        # checkpoint into the whole model, before the optimizer exists (it must see the shards).
        if not sharding.requested(self.opt) or sharding.is_sharded(self.model):
            return super().init_optim(params, optim_states, saved_optim_type, is_finetune)
        sharding.shard(self.model, self.model.hf)
        params = [p for p in self.model.parameters() if p.requires_grad]
        was_reset = super().init_optim(params, None, saved_optim_type, is_finetune)
        if not optim_states or is_finetune or saved_optim_type != self.opt["optimizer"]:
            return was_reset or bool(optim_states)
        sharding.load_optimizer(self.model, self.optimizer, optim_states)
        return False

    def state_dict(self):
        states = super().state_dict()
        if hasattr(self, "model") and sharding.is_sharded(self.model):  # whole, on rank 0 (collective)
            states["model"], optimizer = sharding.full_states(self.model, getattr(self, "optimizer", None))
            if optimizer is not None:
                states["optimizer"] = optimizer
        return states

    def save_nonprimary(self, path=None):
        if hasattr(self, "model") and sharding.is_sharded(self.model):
            self.state_dict()  # the other ranks' part of rank 0's save
        else:
            super().save_nonprimary(path)

    def _has_checkpoint(self) -> bool:
        for key in ("init_model", "model_file"):
            path = self.opt.get(key)
            if path and os.path.isfile(path):
                return True
        return False

    def _freeze(self, model) -> None:
        what = self.opt.get("hf_freeze", "none")
        if what == "embeddings":
            for p in model.hf.get_input_embeddings().parameters():
                p.requires_grad = False
        elif what == "encoder":
            if not self.dict.is_seq2seq:
                raise hf_loading.HFLoadError(
                    "--hf-freeze encoder needs a seq2seq model; this one is decoder-only"
                )
            for p in model.hf.get_encoder().parameters():
                p.requires_grad = False

    def _fit_truncation_to_model(self) -> None:
        """Keep inputs inside the model's position table, and the reply's room in it.

        Decoder-only models see context and reply in one window; seq2seq models with
        absolute positions (BART) bound the context and the reply separately. T5's relative
        positions have no bound.
        """
        config = self.dict.config
        max_positions = getattr(config, "n_positions", None) or getattr(
            config, "max_position_embeddings", None
        )
        if not max_positions:
            return
        label_budget = self.label_truncate or 0
        if label_budget > max_positions or (not self.dict.is_seq2seq and label_budget >= max_positions):
            raise hf_loading.HFLoadError(
                f"--label-truncate {label_budget} does not fit a model with {max_positions} "
                "positions; lower --label-truncate"
            )
        room = max_positions - (0 if self.dict.is_seq2seq else label_budget)
        if self.text_truncate is None or self.text_truncate > room:
            if self.text_truncate is not None:
                logging.warning(
                    f"--text-truncate {self.text_truncate} does not fit the model's "
                    f"{max_positions} positions (with --label-truncate {label_budget}): "
                    f"using --text-truncate {room}"
                )
            self.text_truncate = room

    # --- vectorising -------------------------------------------------------------------

    def _set_text_vec(self, obs, history, truncate):
        if self.opt.get("hf_chat_template") and "text" in obs and "text_vec" not in obs:
            ids = chat_format.encode(self.dict.hf_tokenizer, history.history_strings, truncate)
            obs["full_text"] = history.get_history_str()
            obs.force_set("text_vec", torch.LongTensor(ids))
            return obs
        suffix = self.dict.text_suffix
        budget = None if truncate is None else max(truncate - len(suffix), 1)
        obs = super()._set_text_vec(obs, history, budget)
        if suffix and obs.get("text_vec") is not None:
            obs.force_set("text_vec", torch.cat([obs["text_vec"], torch.LongTensor(suffix)]))
        return obs

    def _set_label_vec(self, obs, add_start, add_end, truncate):
        super()._set_label_vec(obs, add_start, add_end, truncate)
        vec = obs.get("labels_vec")
        if vec is not None and len(vec) <= 1:
            # A reply with no tokens would only teach the model to stop at once: skip it.
            self._empty_labels = getattr(self, "_empty_labels", 0) + 1
            if self._empty_labels in (1, 10, 100, 1000):
                logging.warning(
                    f"skipped {self._empty_labels} training example(s) whose reply has no "
                    f"tokens (e.g. {obs.get('labels')!r}); they add no loss"
                )
            obs.pop("labels_vec")
        return obs

    def _pad_tensor(self, items, is_label=False):
        # Decoder-only models continue the context, so contexts are padded on the left
        # (the reply starts at the same column in every row of the batch).
        left = not is_label and not self.dict.is_seq2seq
        return padded_tensor(items, pad_idx=self.NULL_IDX, left_padded=left, fp16friendly=self.fp16)

    # --- training and inference ----------------------------------------------------------

    def _autocast(self):
        if self.opt.get("hf_bf16"):
            device = "cuda" if self.use_cuda else "cpu"
            return torch.autocast(device_type=device, dtype=torch.bfloat16)
        return torch.autocast(device_type="cpu", enabled=False)

    def train_step(self, batch):
        sharding.for_training(self.model)
        return super().train_step(batch)

    def eval_step(self, batch):
        sharding.for_evaluation(self.model)  # whole weights: ranks generate unequal lengths
        return super().eval_step(batch)

    def compute_loss(self, batch, return_output=False):
        with self._autocast():
            if self._is_preference_batch(batch):
                if not return_output:
                    return self._preference_loss(batch)
                # Validation: the preference metrics where the reference scored the examples,
                # and ParlAI's own on the chosen reply.
                if self.pref_reference is None or all(k in self.pref_reference for k in self._pref_scored_keys(batch)):
                    with torch.no_grad():
                        self._preference_loss(batch, sft_metrics=False)
            if return_output or batch.label_vec is None:
                return super().compute_loss(batch, return_output=return_output)
            return self._packed_loss(batch)

    def _packed_loss(self, batch):
        """ParlAI's loss and metrics, computed on real tokens only.

        Same numbers as ``TorchGeneratorAgent.compute_loss`` (tests hold them equal), but
        the rows run as groups of similar length (:mod:`parlai_dialogft.model.length_groups`),
        and no vocabulary projection, softmax or argmax is spent on label padding.
        """
        labels = batch.label_vec
        notnull = labels.ne(self.NULL_IDX)
        loss_per_token = torch.zeros(labels.shape, device=labels.device)  # (B, T), for the metrics
        correct = torch.zeros_like(notnull)
        summed = 0.0
        # One backward over every group's pass: each weight's gradient is summed over the
        # groups before DistributedDataParallel's hook reduces it, once.
        for rows, group in self._length_groups(batch):
            keep = notnull[rows, : group.label_vec.size(1)]
            logits = self.model(*self._model_input(group), ys=group.label_vec, keep=keep)  # (N, V)
            token_loss = self.criterion(logits, group.label_vec[keep])  # (N,)
            summed = summed + token_loss.sum()
            width = keep.size(1)
            loss_per_token[rows, :width] = loss_per_token[rows, :width].masked_scatter(keep, token_loss.detach().float())
            correct[rows, :width] = correct[rows, :width].masked_scatter(keep, logits.argmax(-1) == group.label_vec[keep])
        self.record_local_metric("loss", AverageMetric.from_mask(loss_per_token, notnull))
        self.record_local_metric("ppl", PPLMetric.from_mask(loss_per_token, notnull))
        self.record_local_metric("token_acc", AverageMetric.from_mask(correct, notnull))
        target_tokens = notnull.sum(dim=-1)
        self.record_local_metric("token_em", AverageMetric.many(correct.sum(dim=-1) == target_tokens))
        self.record_per_token_metrics(batch, loss_per_token)
        return summed / target_tokens.sum()

    def _groups_rows(self) -> bool:
        """Whether batches are computed in length groups here: --hf-length-groups, on a CPU by
        default, never when sharded."""
        grouped = self.opt.get("hf_length_groups")
        if grouped is None:
            grouped = not self.use_cuda
        return bool(grouped) and not sharding.is_sharded(self.model)

    def _length_groups(self, batch):
        """(row indices, sub-batch trimmed to its own widths) for each group of the batch.

        One group, the whole batch, with --hf-length-groups false, by default on a GPU (where
        one more pass may cost more than the padding it saves: bench/gpu.sh measures it), or
        sharded (every rank must make the same number of passes).
        """
        text, labels = batch.text_vec, batch.label_vec
        if not self._groups_rows():
            return [(torch.arange(len(labels), device=labels.device), batch)]
        left = not self.dict.is_seq2seq  # decoder-only contexts are padded on the left
        # Measured from the tensors: ParlAI 1.7.2's batchify computes each row's length but
        # does not pass it into the Batch (text_lengths and label_lengths stay None).
        text_widths = length_groups.widths(text, self.NULL_IDX, left_padded=left)
        label_widths = length_groups.widths(labels, self.NULL_IDX)
        groups = []
        for rows in length_groups.length_groups(text_widths, label_widths, length_groups.CPU_GROUP_COST):
            text_width = max(max(text_widths[i] for i in rows), 1)
            label_width = max(label_widths[i] for i in rows)
            index = torch.tensor(rows, device=labels.device)
            group_text = text[index, -text_width:] if left else text[index, :text_width]
            groups.append((index, Batch(text_vec=group_text, label_vec=labels[index, :label_width])))
        return groups

    def bare_model(self):
        """The HFGeneratorModel itself, out of DDP's wrapper when there is one."""
        return self.model.module if hasattr(self.model, "module") else self.model

    def _generate(self, batch, beam_size, max_ts, prefix_tokens=None):
        model = self.bare_model()
        model.beam_size = beam_size
        # Contexts encoded in length groups wherever training groups rows (a CPU by default).
        model.encoder_group_cost = length_groups.CPU_GROUP_COST if self._groups_rows() else None
        try:
            with self._autocast():
                if fast_search.supports(self, beam_size, prefix_tokens):  # greedy: every row in one step
                    try:
                        return fast_search.greedy_generate(self, model, batch, max_ts)
                    except fast_search.NeedsTreeSearch:
                        pass
                return super()._generate(batch, beam_size, max_ts, prefix_tokens=prefix_tokens)
        finally:
            model.encoder_group_cost = None

    # --- saving -------------------------------------------------------------------------

    #: The training loop may store its state in our checkpoints (see parlai_dialogft.training.resume).
    saves_resume_state = True

    def save(self, path=None):
        path = self.opt.get("model_file") if path is None else path
        if not path or not hasattr(self, "model") or not is_primary_worker():
            return super().save(path)
        if not self._pref_guard_allows(path):
            return  # --pref-keep-start: worse than the start on held-out gold replies
        # Every file atomically, the weights last; config and tokenizer beside them, so
        # -mf reloads need nothing else.
        checkpoint.save_agent(self, path, self._write_hf_dir, hf_loading.hf_dir_for(path))

    def _write_hf_dir(self, hf_dir: str) -> None:
        model = self.bare_model()
        model.hf.config.save_pretrained(hf_dir)
        self.dict.hf_tokenizer.save_pretrained(hf_dir)
        with open(os.path.join(hf_dir, "dialogft.json"), "w") as f:
            json.dump({"source": self.opt.get("hf_model")}, f)


# ParlAI resolves ``-m dialogft_agent`` to the class named ``DialogftAgentAgent``.
DialogftAgentAgent = DialogftAgent
