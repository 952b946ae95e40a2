"""Multi-LoRA serving: several LoRA-trained models answered by one base model in memory.

    parlai dialogft_serve -mf /runs/support/model --serve-lora billing=/runs/billing/model \\
                          --serve-lora travel=/runs/travel/model

Models trained with ``--lora-r`` from the same ``--hf-model`` differ only in their adapters
(training froze everything else), so one copy of the base serves them all, as vLLM's
multi-LoRA does: each ``--serve-lora NAME=MODEL_FILE`` adds that model's adapters to the
``-mf`` model under a peft adapter name of its own, and a request's ``model`` (``NAME``, or
the ``-mf`` model's id) chooses the adapter its reply is generated with. ``GET /v1/models``
lists every id.

At start, each checkpoint is read once: its base weights must equal the served model's
(checked tensor by tensor, then dropped) and its tokenizer must be the same, or the server
stops with a one-line error naming the flag. A model whose saved decoding settings
(``--inference``, ``--beam-size``, truncation) differ from the server's is served with the
server's, and a warning says so: the same decoding for every adapter is what lets one
generation call serve each group.

Requests for different adapters are never generated together: :class:`AdapterRouter`
splits each micro-batch by adapter, in order of arrival, and runs one generation call per
group with that adapter active (peft's ``set_adapter`` on every LoRA layer; with an ``-mf``
model that has no adapters, its own requests run with adapters disabled). Groups of a batch
run one after the other, so a batch mixing adapters costs one call per adapter.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from parlai_dialogft.serving.guard import GuardError

log = logging.getLogger(__name__)

#: Decoding settings every adapter is served with: the server's (the ``-mf`` model's or flags).
DECODING_KEYS = ("inference", "beam_size", "topp", "topk", "beam_min_length", "beam_block_ngram",
                 "text_truncate", "label_truncate", "hf_chat_template")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


def parse_serve_lora(values: Optional[Sequence[str]], model_name: str) -> Tuple[Tuple[str, str], ...]:
    """``["billing=/runs/b/model", ...]`` -> ``(("billing", "/runs/b/model"), ...)``, checked."""
    pairs: List[Tuple[str, str]] = []
    for value in values or ():
        name, sep, path = value.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise GuardError(f"--serve-lora {value}: give NAME=MODEL_FILE (the id clients send as 'model')")
        if not _NAME.match(name):
            raise GuardError(f"--serve-lora {value}: the name may hold letters, digits and . _ : / - only")
        if name == model_name or name in (n for n, _ in pairs):
            raise GuardError(f"--serve-lora {value}: the id {name!r} is served already (--serve-model-name, "
                             "or an earlier --serve-lora)")
        pairs.append((name, path))
    return tuple(pairs)


def _lora_layers(hf) -> list:
    from peft.tuners.lora import LoraLayer

    return [module for module in hf.modules() if isinstance(module, LoraLayer)]


class AdapterSwitch:
    """The served model's adapters by served id, and which one is active.

    Only the batcher's worker thread may call :meth:`activate` (it owns the model).
    """

    def __init__(self, agent, model_name: str):
        self.agent = agent
        self.hf = agent.model.hf
        # The -mf model's own adapters are peft's "default"; a model without adapters is the base.
        self._peft: Dict[str, Optional[str]] = {model_name: "default" if _lora_layers(self.hf) else None}
        self._active: Optional[Tuple[Optional[str]]] = None

    @property
    def names(self) -> List[str]:
        """Every served id, the ``-mf`` model's first."""
        return list(self._peft)

    def add(self, name: str, model_file: str) -> None:
        """Add the adapters of the LoRA model ``model_file`` under the served id ``name``."""
        import torch
        from parlai.core.opt import Opt
        from peft import LoraConfig, inject_adapter_in_model

        from parlai_dialogft.model import hf_loading, lora

        flag = f"--serve-lora {name}={model_file}"
        if not os.path.isfile(model_file) or not os.path.isfile(model_file + ".opt"):
            raise GuardError(f"{flag}: no trained model there (MODEL and MODEL.opt, as train_model writes)")
        opt = Opt.load(model_file + ".opt")
        if not opt.get("lora_r"):
            raise GuardError(f"{flag}: not a LoRA model (trained without --lora-r); serve it with a "
                             "dialogft_serve of its own")
        self._check_tokenizer(flag, hf_loading.hf_dir_for(model_file))
        states = torch.load(model_file, map_location="cpu", weights_only=False)["model"]
        own = self.agent.model.state_dict()
        self._check_base(flag, {k: v for k, v in states.items() if "lora_" not in k}, own)

        peft_name = f"lora{len(self._peft)}"  # peft's module keys: no dots or slashes from the id
        config = LoraConfig(r=opt["lora_r"], lora_alpha=opt.get("lora_alpha", 16.0),
                            lora_dropout=opt.get("lora_dropout", 0.0),
                            target_modules=lora.target_modules(opt.get("lora_target_modules", "all-linear")))
        inject_adapter_in_model(config, self.hf, adapter_name=peft_name)
        renamed = {re.sub(r"(\.lora_[A-Za-z_]+)\.default(?=\.|$)", rf"\1.{peft_name}", key): value
                   for key, value in states.items() if "lora_" in key}
        wanted = {key for key in self.agent.model.state_dict() if f".{peft_name}." in key or key.endswith(f".{peft_name}")}
        if set(renamed) != wanted:
            raise GuardError(f"{flag}: its adapters do not fit the layers its --lora-target-modules name "
                             f"({len(set(renamed) ^ wanted)} tensors differ)")
        self.agent.model.load_state_dict(renamed, strict=False)
        self.hf.eval()
        self._peft[name] = peft_name
        self._active = None
        differing = [key for key in DECODING_KEYS if key in opt and opt.get(key) != self.agent.opt.get(key)]
        if differing:
            log.warning("%s: served with the server's decoding settings, not its own: %s", flag,
                        ", ".join(f"{k} {self.agent.opt.get(k)!r} (saved {opt.get(k)!r})" for k in differing))

    def _check_tokenizer(self, flag: str, hf_dir: str) -> None:
        from transformers import AutoTokenizer

        if not os.path.isdir(hf_dir):
            raise GuardError(f"{flag}: no tokenizer folder {hf_dir}")
        if AutoTokenizer.from_pretrained(hf_dir).get_vocab() != self.agent.dict.hf_tokenizer.get_vocab():
            raise GuardError(f"{flag}: its tokenizer differs from the served model's; LoRA models share a "
                             "server only when trained from the same --hf-model")

    @staticmethod
    def _check_base(flag: str, base: Dict[str, object], own: Dict[str, object]) -> None:
        """Every base tensor of the adapter's checkpoint equals the served model's."""
        import torch

        differ = []
        for key, value in base.items():
            mine = own.get(key)
            if mine is None:  # the served model has no adapters: peft's base_layer is the plain layer
                mine = own.get(key.replace(".base_layer.", "."))
            if mine is None or mine.shape != value.shape or not torch.equal(mine.detach().cpu(), value):
                differ.append(key)
        if differ or not base:
            raise GuardError(f"{flag}: its base weights differ from the served model's ({len(differ)} tensors, "
                             f"e.g. {differ[0] if differ else '(none saved)'}); LoRA models share a server only "
                             "when trained from the same --hf-model (a tokenizer that grew, e.g. a pad token "
                             "added, gives each run new embedding rows)")

    def activate(self, name: Optional[str]) -> None:
        """Make ``name``'s adapters the ones the model runs with (None: the ``-mf`` model)."""
        peft_name = self._peft[self.names[0] if name is None else name]
        if self._active == (peft_name,):
            return
        for layer in _lora_layers(self.hf):
            if peft_name is None:
                layer.enable_adapters(False)
            else:
                layer.enable_adapters(True)
                layer.set_adapter(peft_name)
        self._active = (peft_name,)


class AdapterRouter:
    """``generate(prompts)`` per adapter: a micro-batch split by ``prompt.adapter``, in order.

    Wraps the :class:`~.replier.Replier` (the batcher's ``process``); runs in its thread.
    """

    def __init__(self, generate, switch: AdapterSwitch):
        self.generate, self.switch = generate, switch

    def __call__(self, prompts: Sequence) -> list:
        groups: Dict[Optional[str], List[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(getattr(prompt, "adapter", None), []).append(i)
        replies: list = [None] * len(prompts)
        for adapter, rows in groups.items():
            self.switch.activate(adapter)
            for i, reply in zip(rows, self.generate([prompts[i] for i in rows])):
                replies[i] = reply
        return replies


def serve_adapters(agent, model_name: str, lora_models: Sequence[Tuple[str, str]]) -> AdapterSwitch:
    """An :class:`AdapterSwitch` with every ``--serve-lora`` model added (GuardError names a bad one)."""
    switch = AdapterSwitch(agent, model_name)
    for name, model_file in lora_models:
        switch.add(name, model_file)
    switch.activate(None)
    return switch
