"""Post-training (SFT, GRPO). Submodules import their heavy dependencies themselves."""
