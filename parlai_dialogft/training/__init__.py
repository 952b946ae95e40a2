"""What ``parlai train_model`` gains with the plugin: safe runs, many devices, preference training.

ParlAI's own ``TrainLoop`` trains; these modules change what happens around it. Read first
:mod:`.preflight` and :mod:`.checkpoint` (every run uses them), then the group you need:

Safe and repeatable runs:

* :mod:`.preflight`   fails a bad run in its first seconds (model folder, disk space, flag
  combinations); read first to see what a run is checked for.
* :mod:`.checkpoint`  writes each model file whole or not at all; read its save order first.
* :mod:`.resume`      continues a killed run as the same run (data order, counters,
  ``.trainstats``); read after :mod:`.checkpoint`, whose bundle carries its state.

More than one device:

* :mod:`.launch`      ``torchrun -m parlai_dialogft.training.launch train_model ...``: one
  process per device on one machine or many; read its docstring's commands first.
* :mod:`.sharding`    ``--hf-fsdp true``: torch FSDP2 over the model's layers, for a model
  that does not fit one device; read after :mod:`.launch`, which runs it.

Preference training (``--pref-loss dpo|ipo|kto|simpo|unlikelihood`` on ``-t dialogft_preferences``):

* :mod:`.preference`  the DPO, IPO, KTO and SimPO losses on sequence log-probabilities, and the
  NLL term; read first.
* :mod:`.preference_agent`  what ``dialogft_agent`` does under ``--pref-loss``: vectorising
  the rejected reply, each row's own loss in a mixed batch, the metrics in ParlAI's loop.
* :mod:`.unlikelihood`  MLE on the gold reply, -log(1 - p) on the rejected reply's overused
  and repeated n-grams (ParlAI's dialogue_unlikelihood).
* :mod:`.selection`   ``--pref-keep-start``: ``-mf`` never holds weights whose held-out gold
  perplexity is worse than the start's.
* :mod:`.reference`   the frozen reference model's log-probabilities, computed once before
  the first step and cached beside the model file.
* :mod:`.self_play`   SPIN-style pairs (the reference reply chosen, the model's own sample
  rejected), written for ``-t dialogft_preferences`` by ``parlai dialogft_self_play``.

The zoo model:

* :mod:`.pretrain`    the recipe behind ``zoo:dialogft/bilingual_t5`` (``parlai dialogft_pretrain``),
  four plain steps from shipped text to a released model.
"""
