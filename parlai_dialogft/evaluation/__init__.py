"""How good the replies are, measured the same way for Chinese as for English.

Read :mod:`.text` (language-aware tokenisation) and :mod:`.metrics` (BLEU, ROUGE, F1,
distinct-n, with no ParlAI or torch import), then :mod:`.teacher_metrics` (the same
metrics reported by ParlAI's ``eval_model`` and ``train_model``). :mod:`.report` writes a
trained model's Markdown report (:mod:`.report_eval` runs the split, :mod:`.report_plots`
draws the curves); :mod:`.probe` measures the robustness gap and gender bias.
"""
