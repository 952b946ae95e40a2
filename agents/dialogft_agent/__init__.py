"""ParlAI-shaped folder; installed as parlai_dialogft.agents.dialogft_agent."""
