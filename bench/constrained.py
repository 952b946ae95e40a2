"""Constrained decoding libraries compared on our tokenizer: llguidance, xgrammar, outlines-core.

    python bench/constrained.py                       # writes bench/constrained.json
    python bench/constrained.py --samples 10 --out /tmp/c.json

For each library and each JSON schema below, on the shipped models' byte-level BPE
tokenizer (``zoo:dialogft/customer_t5``, 8,000 tokens):

* **correctness**: ``--samples`` texts drawn from random logits under the library's token
  mask (seeded), each ended by EOS or by ``--max-steps``; a text that ended must parse as
  JSON and validate against the schema (``jsonschema``). Random logits walk into corners a
  trained model avoids (every byte-level piece, long numbers, escapes, CJK split over tokens).
* **speed**: the customer model's own greedy decoding under the mask, per token: the
  library's time (mask + apply + advance) and the model step's, so the ratio is what
  constraining costs against an unconstrained step on this CPU; and the time to compile
  each schema against the vocabulary.
* **install weight**: what ``pip install LIB`` brings into a fresh environment (read from
  ``pip install --dry-run --report`` when ``--pip-report DIR`` holds its reports).

xgrammar and outlines-core need not be installed in the project's environment: the script
imports whatever is importable (``PYTHONPATH`` may point at a ``pip install --target`` folder)
and marks the rest missing. Tiny by design (2 CPU cores shared with training): minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import torch

SCHEMAS: Dict[str, Dict[str, Any]] = {
    "booking": {"type": "object", "additionalProperties": False, "required": ["hotel", "people", "day"],
                "properties": {"hotel": {"type": "string", "maxLength": 24},
                               "people": {"type": "integer", "minimum": 1, "maximum": 8},
                               "day": {"enum": ["monday", "tuesday", "friday"]},
                               "parking": {"type": "boolean"}}},
    "nested": {"type": "object", "additionalProperties": False, "required": ["items"],
               "properties": {"items": {"type": "array", "maxItems": 3, "items": {
                   "type": "object", "additionalProperties": False, "required": ["name", "price"],
                   "properties": {"name": {"type": "string", "maxLength": 12}, "price": {"type": "number"}}}},
                   "note": {"type": ["string", "null"], "maxLength": 16}}},
    "zh_enum": {"type": "object", "additionalProperties": False, "required": ["城市", "等级"],
                "properties": {"城市": {"enum": ["北京", "上海", "广州"]}, "等级": {"type": "integer", "minimum": 1,
                                                                               "maximum": 5}}},
}


def model_folder() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(here, "zoo", "dialogft", "customer_t5")


# --- one adaptor per library: compile(schema) -> factory of matchers with mask/advance/done ------


class Adaptor:
    name = ""

    def __init__(self, tok, vocab_size: int, eos: int):
        self.tok, self.vocab_size, self.eos = tok, vocab_size, eos

    def compile(self, schema: dict) -> Callable[[], Any]:
        raise NotImplementedError

    def mask(self, matcher, logits: torch.Tensor) -> None:
        """Set the logits of disallowed tokens to -inf in place (``logits``: (V,))."""
        raise NotImplementedError

    def advance(self, matcher, token: int) -> bool:
        raise NotImplementedError


class LLGuidance(Adaptor):
    name = "llguidance"

    def __init__(self, tok, vocab_size, eos):
        super().__init__(tok, vocab_size, eos)
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.ll, self.llt = llguidance, llguidance.torch
        self.lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab_size, eos_token=eos)
        self.bitmask = self.llt.allocate_token_bitmask(1, vocab_size)

    def compile(self, schema):
        grammar = self.ll.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        return lambda: self.ll.LLMatcher(self.lltok, grammar, log_level=1)

    def mask(self, matcher, logits):
        self.llt.fill_next_token_bitmask(matcher, self.bitmask, 0)
        self.llt.apply_token_bitmask_inplace(logits.view(1, -1), self.bitmask)

    def advance(self, matcher, token):
        return matcher.consume_token(token)


class XGrammar(Adaptor):
    name = "xgrammar"

    def __init__(self, tok, vocab_size, eos):
        super().__init__(tok, vocab_size, eos)
        import xgrammar

        self.xgr = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=vocab_size, stop_token_ids=[eos])
        self.compiler = xgrammar.GrammarCompiler(info, max_threads=1)
        self.bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)

    def compile(self, schema):
        compiled = self.compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        return lambda: self.xgr.GrammarMatcher(compiled)

    def mask(self, matcher, logits):
        matcher.fill_next_token_bitmask(self.bitmask)
        self.xgr.apply_token_bitmask_inplace(logits.view(1, -1), self.bitmask)

    def advance(self, matcher, token):
        return matcher.accept_token(token)


class OutlinesCore(Adaptor):
    name = "outlines-core"

    def __init__(self, tok, vocab_size, eos):
        super().__init__(tok, vocab_size, eos)
        import outlines_core

        self.oc = outlines_core
        # outlines-core takes the vocabulary as the bytes each token stands for: a byte-level
        # BPE's token strings are GPT-2's byte-to-unicode alphabet, mapped back here.
        to_byte = {char: byte for byte, char in byte_alphabet().items()}
        special = set(tok.all_special_ids)
        pieces: Dict[bytes, List[int]] = {}
        for piece, index in tok.get_vocab().items():
            if index in special or index == eos or index >= vocab_size:
                continue
            try:
                raw = bytes(to_byte[c] for c in piece)
            except KeyError:
                continue  # an added token outside the byte alphabet
            pieces.setdefault(raw, []).append(index)
        self.vocabulary = outlines_core.Vocabulary(eos, pieces)

    def compile(self, schema):
        regex = self.oc.json_schema.build_regex_from_schema(json.dumps(schema))
        index = self.oc.Index(regex, self.vocabulary)
        return lambda: self.oc.Guide(index)

    def mask(self, matcher, logits):
        allowed = torch.tensor(matcher.get_tokens(), dtype=torch.long)
        keep = logits.index_select(0, allowed)
        logits.fill_(float("-inf"))
        logits.index_copy_(0, allowed, keep)

    def advance(self, matcher, token):
        matcher.advance(token)
        return True


def byte_alphabet() -> Dict[int, str]:
    """GPT-2's byte-level alphabet: printable bytes stand for themselves, the others (and
    space) for the code points from 256 up, in byte order."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + k) for k, b in enumerate(others)}}


ADAPTORS = (LLGuidance, XGrammar, OutlinesCore)


def version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version(name)
    except PackageNotFoundError:
        return None


def correctness(lib: Adaptor, make, schema: dict, samples: int, max_steps: int, seed: int) -> dict:
    import jsonschema

    generator = torch.Generator().manual_seed(seed)
    ended = valid = 0
    failures: List[str] = []
    for _ in range(samples):
        matcher, ids = make(), []
        for _step in range(max_steps):
            logits = torch.randn(lib.vocab_size, generator=generator)
            lib.mask(matcher, logits)
            if torch.isinf(logits).all():
                failures.append("no token allowed after " + repr(lib.tok.decode(ids)))
                break
            token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
            if token == lib.eos:
                ended += 1
                text = lib.tok.decode(ids)
                try:
                    jsonschema.validate(json.loads(text), schema)
                    valid += 1
                except (ValueError, jsonschema.ValidationError) as error:
                    failures.append(f"{text!r}: {str(error).splitlines()[0]}")
                break
            if not lib.advance(matcher, token):
                failures.append(f"the library refused its own token {token} after {lib.tok.decode(ids)!r}")
                break
            ids.append(token)
    return {"samples": samples, "ended": ended, "valid": valid, "failures": failures[:3]}


def speed(lib: Adaptor, make, model, tok, prompts: List[str], max_steps: int) -> dict:
    """Greedy decoding of the customer model under the mask: seconds per token in the library
    and in the model, and whether each output validates."""
    lib_s = model_s = 0.0
    tokens = 0
    texts = []
    for prompt in prompts:
        enc = tok(prompt, return_tensors="pt")
        matcher, ids = make(), []
        decoder = torch.tensor([[model.config.decoder_start_token_id]])
        past, encoder_out = None, None
        for _ in range(max_steps):
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model(input_ids=None if encoder_out else enc.input_ids, attention_mask=enc.attention_mask,
                            encoder_outputs=encoder_out, decoder_input_ids=decoder[:, -1:], past_key_values=past,
                            use_cache=True)
            encoder_out, past = encoder_out or (out.encoder_last_hidden_state,), out.past_key_values
            logits = out.logits[0, -1, : lib.vocab_size].float().clone()
            t1 = time.perf_counter()
            lib.mask(matcher, logits)
            token = int(logits.argmax())
            if token != lib.eos:
                lib.advance(matcher, token)
            t2 = time.perf_counter()
            model_s, lib_s, tokens = model_s + t1 - t0, lib_s + t2 - t1, tokens + 1
            if token == lib.eos:
                break
            ids.append(token)
            decoder = torch.cat([decoder, torch.tensor([[token]])], 1)
        texts.append(tok.decode(ids))
    return {"tokens": tokens, "library_ms_per_token": 1000 * lib_s / tokens,
            "model_ms_per_token": 1000 * model_s / tokens, "tokens_per_s_ratio": model_s / (model_s + lib_s),
            "texts": texts}


def install_weight(name: str, reports: Optional[str]) -> Optional[dict]:
    path = os.path.join(reports or "", f"{name}.json")
    if not reports or not os.path.exists(path):
        return None
    report = json.load(open(path))
    packages = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in report["install"])
    return {"packages": len(packages), "pulls": packages[:12], "triton": any(p.startswith("triton") for p in packages),
            "torch": any(p.startswith("torch==") for p in packages)}


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--max-steps", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pip-report", default=None, help="folder of `pip install --dry-run --report LIB.json` files")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "constrained.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = model_folder()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    vocab_size, eos = model.config.vocab_size, tok.eos_token_id
    prompts = ["I need a hotel for two people on friday.", "我想订北京的酒店。", "book a table please"]
    result: dict = {"tokenizer": "zoo:dialogft/customer_t5 (byte-level BPE, 8000 tokens)", "vocab_size": vocab_size,
                    "samples": args.samples, "max_steps": args.max_steps, "seed": args.seed,
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads 1",
                    "python": sys.version.split()[0], "libraries": {}}
    for cls in ADAPTORS:
        package = {"outlines-core": "outlines_core"}.get(cls.name, cls.name)
        entry: dict = {"version": version(package), "install": install_weight(cls.name, args.pip_report)}
        result["libraries"][cls.name] = entry
        try:
            lib = cls(tok, vocab_size, eos)
        except ImportError as error:
            entry["missing"] = str(error)
            continue
        entry["schemas"] = {}
        for name, schema in SCHEMAS.items():
            t0 = time.perf_counter()
            try:
                make = lib.compile(schema)
                make()
            except Exception as error:  # noqa: BLE001 - a schema a library cannot compile is a finding
                entry["schemas"][name] = {"error": f"{type(error).__name__}: {error}"[:300]}
                continue
            compiled_s = time.perf_counter() - t0
            row = {"compile_s": round(compiled_s, 4),
                   **correctness(lib, make, schema, args.samples, args.max_steps, args.seed),
                   **speed(lib, make, model, tok, prompts, args.max_steps)}
            entry["schemas"][name] = row
            print(cls.name, name, {k: v for k, v in row.items() if k not in ("texts", "failures")}, flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    return result


if __name__ == "__main__":
    main()
