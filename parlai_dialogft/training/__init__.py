"""What ``parlai train_model`` gains with the plugin, and the recipe of the zoo model.

ParlAI's own ``TrainLoop`` trains; these modules make a run safe and repeatable.
:mod:`.preflight` fails a bad run in its first seconds; :mod:`.checkpoint` writes each
model file whole or not at all; :mod:`.resume` continues a killed run as the same run
(data order, counters, ``.trainstats``). :mod:`.pretrain` is the recipe behind
``zoo:dialogft/bilingual_t5`` (``parlai dialogft_pretrain``).
"""
