"""How ParlAI finds the plugin and runs it: the top of the package.

Read :mod:`.hook` first: a ``.pth`` file runs it at interpreter start, it maps
``parlai.agents.dialogft*`` / ``parlai.tasks.dialogft*`` / ``parlai.zoo.dialogft*`` to our
packages and applies each patch of :mod:`.compat` right after ParlAI imports the module it
fixes. :mod:`.cli_errors` turns user mistakes on a ``parlai`` command line into one line and
exit status 2. These modules import the stages; the small utilities every stage shares live
at the bottom, in :mod:`parlai_dialogft.utils`.
"""
