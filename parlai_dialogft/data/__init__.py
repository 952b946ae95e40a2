"""Dialogue data: corpora and user files in, cleaned ParlAI episodes out.

Read :mod:`.conversation` first (the one data model every reader produces and how it
becomes ParlAI messages), then :mod:`.dialog_teacher` (the base of every ``dialogft_*``
teacher in ``tasks/``). :mod:`.readers` parse the corpora shipped in ``corpora/`` and
the user's own files; :mod:`.cleaning` is the one cleaning step, with its report of what
was dropped; :mod:`.splits` makes deterministic splits; :mod:`.batching` bounds ParlAI's
dynamic-batching buffer; :mod:`.data_report` counts what each teacher yields.
"""
