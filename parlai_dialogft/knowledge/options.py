"""The ``--knowledge-*`` flags, registered in one place for the agent and the teachers.

``--knowledge-top-k`` is read by both ``dialogft_agent`` (entries put before each turn) and
the teachers' ``retrieved`` mode (:mod:`.teacher_mixin`), so either registers it: a teacher
run with another agent (``-m repeat_label``) still takes the flag. The agent alone adds
``--knowledge-retriever`` and ``--knowledge-file``. When both run in one parser (ParlAI adds
the task's flags, then the model's) the later call adds only what is missing: one definition
of each flag, whatever the order, and no duplicate for argparse to refuse (a plain parser
raises ``ArgumentError``; ParlAI's keeps the last definition).
"""

from __future__ import annotations

RETRIEVERS = ("none", "bm25")
DEFAULT_TOP_K = 3


def add_knowledge_args(parser, retrieval: bool) -> None:
    """Add the knowledge flags ``parser`` lacks: ``--knowledge-top-k``, and with ``retrieval``
    (the agent's) ``--knowledge-retriever`` and ``--knowledge-file``."""
    flags = {
        "--knowledge-retriever": dict(
            choices=RETRIEVERS,
            default="none",
            help="retrieve knowledge for every turn (bm25) from --knowledge-file and put it before the turn's text",
        ),
        "--knowledge-file": dict(
            default="",
            help="the store: kdconv, crosswoz, multiwoz (shipped), or a .jsonl of FAQ pairs "
            '({"question","answer"}, or any pair the dialogft_files teacher reads: prompt/response, '
            'input/output, chat messages, ...) and documents ({"text","title"}) or a .csv of '
            "subject,relation,object triples; several joined with commas",
        ),
    } if retrieval else {}
    flags["--knowledge-top-k"] = dict(
        type=int,
        default=DEFAULT_TOP_K,
        help="how many entries to put before each turn: the agent's --knowledge-retriever and the "
        "teachers' retrieved knowledge (--qa-knowledge, --customer-knowledge)",
    )
    registered = getattr(parser, "_option_string_actions", {})
    missing = {flag: spec for flag, spec in flags.items() if flag not in registered}
    if not missing:
        return
    group = parser.add_argument_group("dialogft knowledge")
    for flag, spec in missing.items():
        group.add_argument(flag, **spec)
