"""Packaging for parlai_dialogft.

Three things are unusual here, each for a reason:

* The repository keeps ParlAI's folder shape (``agents/``, ``tasks/``, ``zoo/`` at the top),
  but installed, everything lives under the one import name ``parlai_dialogft``
  (``package_dir`` maps the folders).
* ``parlai_dialogft.pth`` goes to the root of site-packages, for regular *and* editable
  installs: it runs the import hook that lets ParlAI resolve our names. setuptools leaves
  such a file out of PEP 660 editable wheels, so the editable strategy is wrapped to add it.
  Its name sorts after ``__editable__*.pth``, which must run first to make the package
  importable in an editable install.
* ParlAI 1.7.2's own dependency pins do not resolve on a current stack, so ParlAI is
  installed ``--no-deps`` by the Makefile and what it really imports is listed here.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HOOK_PTH = "parlai_dialogft.pth"
HERE = Path(__file__).parent


class BuildPyWithHook(build_py):
    def run(self):
        super().run()
        self.copy_file(str(HERE / HOOK_PTH), str(Path(self.build_lib) / HOOK_PTH))


class _StrategyWithHook:
    """Delegates to setuptools' editable strategy and adds our .pth to the wheel."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        wheel.writestr(HOOK_PTH, (HERE / HOOK_PTH).read_bytes())

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self.strategy.__exit__(*exc)


class EditableWheelWithHook(editable_wheel):
    def _select_strategy(self, name, tag, build_lib):
        return _StrategyWithHook(super()._select_strategy(name, tag, build_lib))


def _packages(root: str, prefix: str):
    found = [prefix]
    for init in sorted(Path(HERE, root).rglob("__init__.py")):
        rel = init.parent.relative_to(HERE / root)
        if rel.parts:
            found.append(".".join((prefix,) + rel.parts))
    return found


PACKAGE_ROOTS = {
    "parlai_dialogft": "parlai_dialogft",
    "parlai_dialogft.agents": "agents",
    "parlai_dialogft.tasks": "tasks",
    "parlai_dialogft.zoo": "zoo",
}

packages = []
for prefix, root in PACKAGE_ROOTS.items():
    packages += [p for p in _packages(root, prefix) if p not in packages]

setup(
    name="parlai_dialogft",
    version="0.2.0",
    description="Fine-tune HuggingFace language models for dialogue with ParlAI",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=packages,
    package_dir=PACKAGE_ROOTS,
    package_data={
        "parlai_dialogft": ["py.typed", "data/corpora/**/*", "serving/static/*", "mutators/lists/*",
                            "human_eval/static/*"],
        "parlai_dialogft.tasks": ["**/*.json", "**/*.md"],
        "parlai_dialogft.zoo": ["**/*"],
    },
    include_package_data=True,
    install_requires=[
        # ParlAI itself is installed with --no-deps (see Makefile); these are the modules
        # it imports at run time on the paths we use.
        "torch>=2.1",
        "setuptools<81",  # parlai.core.opt imports pkg_resources
        "iopath",
        "requests",
        "pillow",
        "pyyaml",
        "numpy",
        "scikit-learn",
        "scipy",  # human_eval statistics (binomial test, Wilson and t intervals)
        "nltk",
        "tqdm",
        "regex",
        # Ours.
        "transformers>=5",  # the tokenizers we write name TokenizersBackend, new in 5
        "tokenizers",
        "safetensors",
        "peft",
        "sacrebleu",
        "jieba",  # Chinese word boundaries for the noise and infilling mutators
        "opencc-python-reimplemented",  # simplified -> traditional by phrase
        "rouge-score",
        "matplotlib",  # dialogft_report's plots
        "fastapi",  # dialogft_serve
        "uvicorn",
        "prometheus-client",
        "bm25s",  # knowledge retrieval (parlai_dialogft.knowledge)
        "jsonschema",  # dialogft_serve: tool and response_format schemas are checked (serving/tools.py)
    ],
    # websocket-client drives headless Chromium in the human_eval browser tests.
    # krippendorff, choix: parity of our statistics; trl: parity of the DPO loss with DPOTrainer.
    # pytest-randomly runs the tests in a random order, reseeding random and numpy per test.
    # structured: constrained decoding for dialogft_serve's forced tool calls and response_format
    # (llguidance: one wheel, no dependencies; bench/constrained.py compares it with xgrammar and outlines-core).
    extras_require={"test": ["pytest", "hypothesis", "pytest-regressions", "pytest-randomly", "websocket-client",
                             "krippendorff", "choix", "trl", "openai", "llguidance"],
                    "structured": ["llguidance"]},
    cmdclass={"build_py": BuildPyWithHook, "editable_wheel": EditableWheelWithHook},
    zip_safe=False,
)
