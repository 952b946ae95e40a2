"""Checks on files the code under test writes: a PNG with something drawn on it, JSONL rows."""

from __future__ import annotations

import json


def png_is_drawn(path, min_size=(300, 200)) -> bool:
    """``path`` is a PNG of at least ``min_size`` (width, height) with something drawn on it:
    a fair share of pixels off the background (the corner's colour) and more than a handful
    of colours (axes, text and data, antialiased), so neither a blank nor a flat canvas passes."""
    import numpy
    from PIL import Image

    with Image.open(path) as image:
        if image.format != "PNG" or image.width < min_size[0] or image.height < min_size[1]:
            return False
        pixels = numpy.asarray(image.convert("RGB")).reshape(-1, 3)  # (H*W, 3)
    drawn = (pixels != pixels[0]).any(axis=1).mean()
    return drawn > 0.02 and len(numpy.unique(pixels, axis=0)) > 16


def read_jsonl(path):
    """The rows of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]
