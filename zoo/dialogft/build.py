"""``zoo:dialogft/bilingual_t5``: the default ``--hf-model``, shipped in the package.

A 7M-parameter English + Chinese T5 pretrained by :mod:`parlai_dialogft.training.pretrain` on the
training splits of the shipped corpora; its model card is ``bilingual_t5/README.md``.
The weights travel with the package (``zoo/dialogft/bilingual_t5/``), so nothing is
downloaded: ParlAI's zoo convention is a folder under ``DATAPATH/models``, and this step
copies them there once, versioned with ParlAI's build marker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import parlai.core.build_data as build_data

MODELS = ("bilingual_t5",)
VERSION = "v3"  # bump when the shipped weights change
SHIPPED = Path(__file__).resolve().parent


def download(datapath: str) -> None:
    # ParlAI calls this for every zoo:dialogft/... path; installing all (one, ~15 MB) is cheap.
    for name in MODELS:
        out = os.path.join(datapath, "models", "dialogft", name)
        if build_data.built(out, VERSION):
            continue
        source = SHIPPED / name
        if not (source / "model.safetensors").is_file():
            raise FileNotFoundError(f"{source}/model.safetensors is missing; is the package complete?")
        if os.path.isdir(out):
            build_data.remove_dir(out)
        shutil.copytree(source, out)
        build_data.mark_done(out, VERSION)
