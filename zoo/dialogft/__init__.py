"""Models of the ParlAI zoo under ``zoo:dialogft/...``."""
