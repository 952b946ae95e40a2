"""How ParlAI finds the plugin, and what of ParlAI 1.7.2 is patched to run on today's stack.

Read :mod:`.hook` first: a ``.pth`` file runs it at interpreter start, it maps
``parlai.agents.dialogft*`` / ``parlai.tasks.dialogft*`` / ``parlai.zoo.dialogft*`` to our
packages and applies each patch of :mod:`.compat` right after ParlAI imports the module it
fixes. :mod:`.cli_errors` turns user mistakes on a ``parlai`` command line into one line and
exit status 2; :mod:`.errors` holds the error classes every other subpackage raises (it
imports nothing of ours). :mod:`.moved` keeps the module paths of 0.1.0 importing, with the
alias loader the hook shares.
"""
