"""The small offline world: a tiny Qwen2.5-VL (:mod:`.model`) and a procedural physical-reasoning video benchmark
(:mod:`.benchmark`, solved exactly by :mod:`.solver`), so eval and training run with no hub and no GPU.

Submodules import their heavy dependencies lazily; importing this package costs nothing.
"""
