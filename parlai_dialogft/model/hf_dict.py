"""A HuggingFace tokenizer as a ParlAI dictionary.

ParlAI agents talk to their vocabulary through ``DictionaryAgent``: ``txt2vec``/``vec2txt``
and the ids of the null (pad), start, end and unknown tokens. Here all of that comes from
``AutoTokenizer``; nothing is built from data (``is_prebuilt``).
"""

from __future__ import annotations

import json
from collections import defaultdict

from parlai.core.dict import DictionaryAgent

from parlai_dialogft.model import hf_loading

#: Added to tokenizers that have no pad token (GPT-2, Llama): padding must differ from EOS,
#: because ParlAI's loss ignores the pad id and a model that never sees EOS never stops.
ADDED_PAD_TOKEN = "<|pad|>"


class HFDictionaryAgent(DictionaryAgent):
    def __init__(self, opt, shared=None):
        if shared:
            self.hf_tokenizer = shared["hf_tokenizer"]
            self.config = shared["hf_config"]
            self.source = shared["hf_source"]
        else:
            self.source = source = hf_loading.resolve_source(opt)
            self.config = hf_loading.load_config(source)
            hf_loading.model_kind(self.config)  # refuse a non-generative model before more loading
            self.hf_tokenizer = hf_loading.load_tokenizer(source)
            if self.hf_tokenizer.eos_token is None:
                raise hf_loading.HFLoadError(
                    f"the tokenizer of {source!r} has no EOS token, so replies could not "
                    "end; pick a model whose tokenizer defines eos_token"
                )
            if self.hf_tokenizer.pad_token is None or (
                self.hf_tokenizer.pad_token_id == self.hf_tokenizer.eos_token_id
            ):
                self.hf_tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
        tok = self.hf_tokenizer
        self.opt = opt
        self.tok2ind = tok.get_vocab()
        self.ind2tok = {i: t for t, i in self.tok2ind.items()}
        self.freq = defaultdict(lambda: 1)
        self.minfreq = 0
        self.lower = False
        self.tokenizer = "hf"
        self.is_seq2seq = hf_loading.is_seq2seq(self.config)

        self.null_token = tok.pad_token
        self.end_token = tok.eos_token
        self.unk_token = tok.unk_token or tok.pad_token
        self._unk_token_idx = self.tok2ind[self.unk_token]
        # START is a placeholder ParlAI's search writes first and strips again; it must not
        # be END (see hf_model). Seq2seq models use their decoder start token when allowed.
        self.decoder_start_id = getattr(self.config, "decoder_start_token_id", None)
        if self.decoder_start_id is None:
            self.decoder_start_id = tok.pad_token_id
        use_decoder_start = self.is_seq2seq and self.decoder_start_id != tok.eos_token_id
        self.start_token = self.ind2tok[self.decoder_start_id if use_decoder_start else tok.pad_token_id]
        # Seq2seq encoders were pretrained on inputs that end with EOS (T5, BART): keep that.
        probe = tok("a")["input_ids"]
        self.text_suffix = [tok.eos_token_id] if self.is_seq2seq and probe[-1:] == [
            tok.eos_token_id
        ] else []

    def is_prebuilt(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self.hf_tokenizer)

    def txt2vec(self, text: str, vec_type=list):
        ids = self.hf_tokenizer(text, add_special_tokens=False)["input_ids"]
        return vec_type(ids) if vec_type in (list, tuple) else ids

    def vec2txt(self, vector, **kwargs) -> str:
        if hasattr(vector, "tolist"):
            vector = vector.tolist()
        return self.hf_tokenizer.decode(vector, skip_special_tokens=True).strip()

    def act(self):
        return {}

    def save(self, filename=None, append=False, sort=True):
        """The tokenizer itself is saved with the model (``MODEL.hf/``, see the agent).

        ParlAI still expects ``MODEL.dict`` to exist beside a model; it says where to look.
        """
        if filename:
            with open(filename, "w", encoding="utf-8") as f:
                json.dump({"tokenizer": "see the .hf folder beside the model file"}, f)

    def share(self):
        shared = super().share()
        shared["hf_tokenizer"] = self.hf_tokenizer
        shared["hf_config"] = self.config
        shared["hf_source"] = self.source
        return shared
