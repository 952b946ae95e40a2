"""The HuggingFace model behind ParlAI: where it comes from and how ParlAI drives it.

Read :mod:`.hf_loading` (a hub id or a local folder, with clear errors), then
:mod:`.hf_model` (seq2seq and decoder-only models behind ParlAI's ``TorchGeneratorModel``
contract, with KV-cache decoding) and :mod:`.hf_dict` (the tokenizer as a ParlAI
dictionary). Around them: :mod:`.chat_format` (the model's chat template),
:mod:`.length_groups` (a batch computed as groups of similar length), :mod:`.fast_search`
(greedy search for a whole batch at once), :mod:`.continuous` (a running batch that rows
join and leave between greedy steps, for serving), :mod:`.lora` (PEFT
adapters), :mod:`.export` (back to a ``save_pretrained`` folder) and :mod:`.tiny` (small
random-init models built locally, for tests and pretraining).
The agent that wires these into ParlAI is ``agents/dialogft_agent``.
"""
