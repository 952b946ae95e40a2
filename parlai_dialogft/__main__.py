"""``python -m parlai_dialogft``: check the installation in one screen.

Prints the versions that matter, whether ParlAI resolves our names and what of ParlAI the
plugin patches; exits 1 with one line that says what to install when ParlAI is missing or
broken.
"""

import os
import sys


def main() -> int:
    from parlai_dialogft import __version__
    from parlai_dialogft.plugin import compat
    from parlai_dialogft.utils.errors import ParlAIMissing

    try:
        compat.require_parlai()
    except ParlAIMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import parlai
    import torch
    import transformers
    from parlai.core.loader import load_agent_module, load_teacher_module

    from parlai_dialogft.plugin import hook

    print(f"parlai_dialogft {__version__}: parlai {parlai.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
    if hook.disabled():
        print(f"{hook.DISABLE_ENV} is set: ParlAI runs stock and does not know the dialogft names")
        return 0
    print(f"-m dialogft_agent    -> {load_agent_module('dialogft_agent').__module__}")
    print(f"-t dialogft_customer -> {load_teacher_module('dialogft_customer').__module__}")
    print(f"ParlAI modules patched when they load (parlai_dialogft/plugin/compat.py; {hook.DISABLE_ENV}=1 turns all off):")
    for module, patch in compat.PATCHES.items():
        print(f"  {module:<38} {compat.summary(patch)}")
    return 0


def run() -> int:
    try:
        code = main()
        sys.stdout.flush()  # a pipe buffers the lines: this is where the write fails
        return code
    except BrokenPipeError:
        # The reader went away (`python -m parlai_dialogft | head -1`): what it wanted is out.
        # Python would report the failed flush at exit, so point stdout at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(run())
