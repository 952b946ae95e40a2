"""See agents.py."""
