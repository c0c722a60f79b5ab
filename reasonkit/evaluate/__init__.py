"""Evaluation: the runner (benchmark → prompts → frames → backend → scorers → store) and the result store."""
