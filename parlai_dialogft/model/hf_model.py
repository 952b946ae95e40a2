"""HuggingFace models behind ParlAI's ``TorchGeneratorModel`` contract.

ParlAI's search drives a model through four calls (see ``torch_generator_agent.py``)::

    encoder_states = model.encoder(text_vec)
    latent, incr_state = model.decoder(decoder_input, encoder_states, incr_state)
    logits = model.output(latent)
    incr_state = model.reorder_decoder_incremental_state(incr_state, beam_indices)

``decoder_input`` always holds the whole prefix ``[START, y1, ..., yt]``. With an
``incr_state`` (HF's KV cache) only the newest token is fed, so a decoding step costs one
token, never the prefix: that is the point of returning a real, reorderable cache.

Our ``decoder`` already returns vocabulary logits (HF's heads are part of its model), so
``output`` is the identity.

``START`` is a placeholder that ParlAI's search writes at position 0 and strips from the
output; it must differ from ``END`` (ParlAI stops decoding text at the first ``END``). The
model swaps it for what the network really expects there: the decoder start token for
seq2seq models, nothing at all for decoder-only models (the reply continues the context).
"""

from __future__ import annotations

import inspect
from typing import Optional, Tuple

import torch
from parlai.core.torch_generator_agent import TorchGeneratorModel
from transformers.modeling_outputs import BaseModelOutput

from parlai_dialogft.model import fast_search


def _as_index(indices, device) -> torch.LongTensor:
    if torch.is_tensor(indices):
        return indices.to(device)
    return torch.as_tensor(indices, dtype=torch.long, device=device)


def _cache_keyword(hf) -> str:
    """transformers 5 renamed ``past_key_values=`` to ``cache=``; accept either release."""
    return "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"


def _returned_cache(out):
    return getattr(out, "cache", None) if "cache" in out else getattr(out, "past_key_values", None)


def _is_identity(indices: torch.Tensor) -> bool:
    """Greedy search reorders by arange every step; that copy of the cache is skippable."""
    return bool(torch.equal(indices, torch.arange(len(indices), device=indices.device)))


class HFGeneratorModel(TorchGeneratorModel):
    """Shared parts of the two model kinds. ``hf`` is the transformers model."""

    def __init__(self, hf, null_idx: int, start_idx: int, end_idx: int, unk_idx: int):
        super().__init__(
            padding_idx=null_idx, start_idx=start_idx, end_idx=end_idx, unknown_idx=unk_idx
        )
        self.hf = hf
        self._cache_kw = _cache_keyword(hf)

    def output(self, latent: torch.Tensor) -> torch.Tensor:
        return latent

    def forward(self, *xs, ys=None, keep: Optional[torch.BoolTensor] = None, replies_per_context: int = 1, **kwargs):
        """ParlAI's forward, plus ``keep``: teacher-forced logits of the kept label positions.

        ``replies_per_context``: ``ys`` holds that many reply sets for the contexts ``xs``
        (set after set: preference training scores chosen and rejected replies), and the
        contexts are encoded once. Going through ``forward`` (not a side method) keeps DDP's
        gradient hooks in play.
        """
        if keep is None:
            return super().forward(*xs, ys=ys, **kwargs)
        states = self.encoder(*xs)
        if replies_per_context > 1:
            rows = len(states[0])
            states = self.reorder_encoder_states(states, torch.arange(rows).repeat(replies_per_context))
        return self.forced_logits(states, ys, keep)

    def forced_logits(self, encoder_states, ys: torch.LongTensor, keep: torch.BoolTensor) -> torch.Tensor:
        """(N, V) logits for the N positions of ``ys`` (B, T) where ``keep`` is true.

        The vocabulary projection is the largest matmul per target token (t5-small: 512 x
        32k), and in a padded batch many label positions are padding. A pre-hook on the
        model's output layer drops those rows before the projection, whatever the
        architecture does before it (T5's rescaling) or after (BART's logits bias).
        """
        inputs = torch.cat([self.START.detach().expand(len(ys), 1), ys[:, :-1]], 1)

        def pack(_module, args):
            hidden = args[0][:, -keep.size(1):]  # a causal model without logits_to_keep sees the context too
            return (hidden[keep],) + tuple(args[1:])

        handle = self.hf.get_output_embeddings().register_forward_pre_hook(pack)
        try:
            logits, _ = self.decoder(inputs, encoder_states)
        finally:
            handle.remove()
        return logits

    def reorder_encoder_states(self, encoder_states, indices):
        """Both kinds' encoder states are a pair of batch-first tensors (states, mask)."""
        states, mask = encoder_states
        indices = _as_index(indices, states.device)
        return states.index_select(0, indices), mask.index_select(0, indices)

    #: Set by the agent before each search; beams of one example are adjacent rows.
    beam_size: int = 1

    def _shares_cross_attention(self, inds: torch.Tensor) -> bool:
        """True when every row takes its state from a beam of its own example.

        Those beams share their encoder states, hence their cross-attention keys and
        values: reordering them copies identical rows (6 layers x 2 tensors of the whole
        context per step at t5-small size), which ``model.generate`` pays and we skip.
        """
        rows = torch.arange(len(inds), device=inds.device)
        return self.beam_size > 1 and torch.equal(inds // self.beam_size, rows // self.beam_size)

    def reorder_decoder_incremental_state(self, incr_state, inds):
        inds = _as_index(inds, self.START.device)
        if _is_identity(inds):
            return incr_state
        cache = incr_state["cache"]
        if hasattr(cache, "cross_attention_cache") and self._shares_cross_attention(inds):
            cache.self_attention_cache.reorder_cache(inds)
        else:
            cache.reorder_cache(inds)
        return {
            key: (value.index_select(0, inds) if torch.is_tensor(value) else value)
            for key, value in incr_state.items()
        }


class Seq2SeqModel(HFGeneratorModel):
    """T5, BART, mT5, ...: the context goes through the encoder once."""

    def __init__(self, hf, null_idx, start_idx, end_idx, unk_idx, decoder_start_idx: int):
        super().__init__(hf, null_idx, start_idx, end_idx, unk_idx)
        self.decoder_start_idx = decoder_start_idx

    #: Set by the agent around a search: encode the contexts in length groups with this fixed
    #: cost per pass (see fast_search.grouped_encode); None: the whole batch in one pass.
    encoder_group_cost: Optional[float] = None

    def encoder(self, text_vec: torch.LongTensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mask = text_vec.ne(self.NULL_IDX)  # (B, S)
        if self.encoder_group_cost is not None and not torch.is_grad_enabled():
            hidden = fast_search.grouped_encode(self.hf.get_encoder(), text_vec, mask, self.NULL_IDX,
                                                self.encoder_group_cost)
        else:
            hidden = self.hf.get_encoder()(input_ids=text_vec, attention_mask=mask)[0]  # (B, S, C)
        return hidden, mask

    def decoder(self, decoder_input, encoder_states, incr_state: Optional[dict] = None):
        hidden, mask = encoder_states
        decoder_mask = None
        if incr_state is None:
            decoder_input = decoder_input.clone()
            decoder_input[:, 0] = self.decoder_start_idx
            cache = None
        else:
            decoder_input = decoder_input[:, -1:]  # (B, 1): the cache holds the prefix
            cache = incr_state["cache"]
            if "decoder_mask" in incr_state:  # rows of unequal lengths, left-padded (model/continuous.py)
                decoder_mask = torch.cat([incr_state["decoder_mask"], incr_state["decoder_mask"].new_ones(len(hidden), 1)], 1)
        out = self.hf(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            decoder_input_ids=decoder_input,
            **({} if decoder_mask is None else {"decoder_attention_mask": decoder_mask.long()}),
            **{self._cache_kw: cache},
            # A one-token input is a search step (forced decoding sees whole labels).
            use_cache=cache is not None or decoder_input.size(1) == 1,
        )
        new_cache = _returned_cache(out)
        new_state = {"cache": new_cache} if new_cache is not None else None
        if new_state is not None and decoder_mask is not None:
            new_state["decoder_mask"] = decoder_mask
        return out.logits, new_state  # (B, T, V)


class CausalModel(HFGeneratorModel):
    """GPT-2, Llama, Qwen2, ...: the reply continues the (left-padded) context.

    The "encoder" only carries the context to the first decoder call, which runs it
    together with the reply prefix. Logits are returned from the last context position on,
    so that position ``i`` of the output predicts reply token ``i``: the same alignment as
    a seq2seq decoder, and the context never contributes to the loss.
    """

    def __init__(self, hf, null_idx, start_idx, end_idx, unk_idx):
        super().__init__(hf, null_idx, start_idx, end_idx, unk_idx)
        self._keeps_logits = "logits_to_keep" in inspect.signature(hf.forward).parameters

    def encoder(self, text_vec: torch.LongTensor):
        return text_vec, text_vec.ne(self.NULL_IDX)  # (B, S) each, left-padded

    def decoder(self, decoder_input, encoder_states, incr_state: Optional[dict] = None):
        if incr_state is None:
            ctx, ctx_mask = encoder_states
            reply = decoder_input[:, 1:]  # drop the START placeholder: (B, T-1)
            input_ids = torch.cat([ctx, reply], dim=1)
            # Reply padding sits at the end, after every token that matters, so it may be
            # attended; only the context's left padding must be masked.
            mask = torch.cat([ctx_mask, torch.ones_like(reply, dtype=torch.bool)], dim=1)
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # left padding aware
            keep = decoder_input.size(1)
            cache = None
        else:
            input_ids = decoder_input[:, -1:]
            mask = torch.cat([incr_state["mask"], incr_state["mask"].new_ones(len(input_ids), 1)], 1)
            positions = incr_state["positions"][:, -1:] + 1
            keep = 1
            cache = incr_state["cache"]
        kwargs = {"logits_to_keep": keep} if self._keeps_logits else {}
        out = self.hf(
            input_ids=input_ids,
            attention_mask=mask.long(),
            position_ids=positions,
            use_cache=cache is not None or decoder_input.size(1) == 1,
            **{self._cache_kw: cache},
            **kwargs,
        )
        # (B, T, V); (N, V) when forced_logits packed the label positions already.
        logits = out.logits[:, -keep:, :] if out.logits.dim() == 3 else out.logits
        new_cache = _returned_cache(out)
        if new_cache is None:
            return logits, None
        return logits, {"cache": new_cache, "mask": mask, "positions": positions}
