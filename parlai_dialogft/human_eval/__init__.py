"""Crowdsourced human evaluation: ACUTE-Eval pairwise comparisons, live model chat, Fast-ACUTE and their analysis."""
