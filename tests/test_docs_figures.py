"""The documents' pictures: drawn by scripts in the repository, present, not blank, and
referenced from the document that explains them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.support.files import png_is_drawn

ROOT = Path(__file__).resolve().parent.parent
PICTURES = {
    "docs/data.md": ["images/turn_lengths.png"],
    "docs/zoo.md": ["images/zoo_results.png", "images/customer_t5_training.png"],
}


@pytest.mark.parametrize("document", sorted(PICTURES))
def test_each_picture_is_referenced_exists_and_is_drawn(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    for picture in PICTURES[document]:
        assert picture in linked, picture
        assert png_is_drawn(ROOT / Path(document).parent / picture), picture


def test_the_readme_figures_are_redrawn_from_the_repositorys_files(tmp_path):
    spec = importlib.util.spec_from_file_location("figures", ROOT / "docs" / "figures.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    for draw, name in ((figures.training_curve, "curve.png"), (figures.results_chart, "results.png")):
        assert png_is_drawn(draw(str(tmp_path / name))), name
