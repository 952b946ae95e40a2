"""``python -m parlai_dialogft``: check the installation in one screen.

Prints the versions that matter and whether ParlAI resolves our names; exits 1 with one
line that says what to install when ParlAI is missing or broken.
"""

import sys


def main() -> int:
    from parlai_dialogft import __version__
    from parlai_dialogft.plugin import compat
    from parlai_dialogft.plugin.errors import ParlAIMissing

    try:
        compat.require_parlai()
    except ParlAIMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import parlai
    import torch
    import transformers
    from parlai.core.loader import load_agent_module, load_teacher_module

    print(f"parlai_dialogft {__version__}: parlai {parlai.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"-m dialogft_agent    -> {load_agent_module('dialogft_agent').__module__}")
    print(f"-t dialogft_customer -> {load_teacher_module('dialogft_customer').__module__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
