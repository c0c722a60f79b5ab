"""reasonkit's generation engine for transformers Qwen2.5-VL / Qwen3-VL models (the ``hf`` backend and GRPO's hf
rollout): vision features once per clip, a static KV cache per batch bucket, GQA attention without head
expansion, a compiled / CUDA-graph decode step with on-device sampling. See :mod:`reasonkit.generation.engine`."""

from reasonkit.generation.engine import Engine, RowOutput
from reasonkit.generation.prompts import EncodedPrompt, VideoInput, encode
from reasonkit.generation.state import RowSettings

__all__ = ["Engine", "EncodedPrompt", "RowOutput", "RowSettings", "VideoInput", "encode"]
