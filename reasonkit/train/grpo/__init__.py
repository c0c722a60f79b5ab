"""GRPO: advantage and policy-loss math (`algorithms`), kept free of trainer dependencies."""
