"""The `hf` backend: transformers models, generated with reasonkit's engine (``engine="reasonkit"``, the default:
reasonkit.generation, per-completion seeds) or with transformers `generate` (``engine="generate"``), batched with
left padding.

Frames come decoded from reasonkit.media; the processor is told the sampled fps so temporal positions match the
real clip timing. Seeds with `generate`: transformers has one RNG per call, so the requests of one seed are one
call seeded with it (exactly per-request with --batch-size 1); the engine seeds every completion on its own.
"""

from __future__ import annotations

from typing import Any

from reasonkit.backends.loading import load_pretrained, resolve_dtype
from reasonkit.types import GenRequest, GenResult


def pick_device(device: str = "auto") -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(dtype: str, device: str):
    import torch

    return getattr(torch, resolve_dtype(dtype, device))


def load_model_and_processor(model: str, *, revision: str | None = None, dtype: str = "auto",
                             device: str = "auto", attn_implementation: str | None = None):
    """The model on ``device`` in eval mode, and its processor (hub ids and local folders alike)."""
    device = pick_device(device)
    net, processor = load_pretrained(model, dtype=pick_dtype(dtype, device), revision=revision,
                                     attn_implementation=attn_implementation)
    return net.to(device).eval(), processor


class PenaltyProcessor:
    """OpenAI-style presence/frequency penalties over the generated tokens (transformers has neither)."""

    def __init__(self, prompt_len: int, presence: float, frequency: float):
        self.prompt_len, self.presence, self.frequency = prompt_len, presence, frequency

    def __call__(self, input_ids, scores):
        import torch

        generated = input_ids[:, self.prompt_len:]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class HFBackend:
    """Batched transformers generation. Options: dtype, device, revision, attn_implementation, max_length (context
    limit: prompt + completion), tp_size (1 only), engine ("reasonkit" | "generate")."""

    def __init__(self, model: str, *, dtype: str = "auto", device: str = "auto", revision: str | None = None,
                 attn_implementation: str | None = None, max_length: int | None = None, tp_size: int = 1,
                 engine: str = "reasonkit"):
        from reasonkit.generation.backend import check_engine

        self.engine = check_engine(engine)
        if tp_size != 1:
            from reasonkit.errors import ConfigError

            raise ConfigError(f"model.tp_size={tp_size}: the hf backend holds one whole model per process; use "
                              "--backend vllm for tensor parallelism, or --nproc-per-node for one replica per GPU")
        self.max_length = max_length  # prompt + completion; generation stops there, as vLLM's max_model_len does
        self.model_name = model
        self.model, self.processor = load_model_and_processor(
            model, revision=revision, dtype=dtype, device=device, attn_implementation=attn_implementation)
        self.processor.tokenizer.padding_side = "left"
        self.device = self.model.device

    @classmethod
    def from_model(cls, model, processor, *, engine: str = "reasonkit") -> HFBackend:
        """Wrap a model that is already loaded (GRPO generates with the policy it trains: no copy, no sync)."""
        from reasonkit.generation.backend import check_engine

        backend = cls.__new__(cls)
        backend.engine = check_engine(engine)
        backend.model_name = getattr(model, "name_or_path", "")
        backend.max_length = None
        backend.model, backend.processor = model, processor
        backend.processor.tokenizer.padding_side = "left"
        backend.device = model.device
        return backend

    def prepare(self, requests: list[GenRequest]):
        """Tokenise a batch through the shared encoding seam (left-padded)."""
        from reasonkit.encoding import model_inputs

        inputs = model_inputs(self.processor, [r.messages for r in requests], [r.frames for r in requests],
                              padding=True)
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}

    def generate(self, requests: list[GenRequest], *, keep_stop_token: bool = False,
                 streamer=None) -> list[GenResult]:
        """``keep_stop_token``: token_ids end with the end-of-sequence token that stopped them (as vLLM's do);
        texts never include it. ``streamer`` (one request, n = 1): a transformers streamer (``put``/``end``) that
        receives the prompt's ids, then the new tokens as they are generated, with either engine. ``generate``
        takes one set of sampling settings and one RNG per call, so requests are grouped by their settings and
        seed (in order) and each group is one call, seeded with that seed (see the module docstring); results
        come back in request order."""
        if self.engine == "reasonkit":
            from reasonkit.generation import backend as engine

            return engine.generate(self, requests, keep_stop_token=keep_stop_token, streamer=streamer)
        if streamer is not None:
            if len(requests) != 1 or requests[0].n != 1:
                raise ValueError("a streamer follows one completion of one request")
            return self._generate_alike(requests, keep_stop_token, streamer)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.temperature, r.top_p, r.top_k, r.repetition_penalty, r.presence_penalty, r.frequency_penalty,
                   r.n, r.frames is None, r.seed)
            groups.setdefault(key, []).append(i)
        results: list[GenResult | None] = [None] * len(requests)
        for indices in groups.values():
            for i, result in zip(indices, self._generate_alike([requests[i] for i in indices], keep_stop_token)):
                results[i] = result
        return results

    def _generate_alike(self, requests: list[GenRequest], keep_stop_token: bool,
                        streamer=None) -> list[GenResult]:
        """One ``generate`` call for requests that share their sampling settings."""
        import torch
        from transformers import LogitsProcessorList

        if not requests:
            return []
        first = requests[0]
        inputs = self.prepare(requests)
        prompt_len = inputs["input_ids"].shape[1]
        sample = first.temperature > 0
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max(1, min(max(r.max_tokens for r in requests),
                                         (self.max_length or 10**9) - prompt_len)),
            "do_sample": sample,
            "num_return_sequences": first.n,
            "repetition_penalty": first.repetition_penalty,
        }
        if sample:
            gen_kwargs.update(temperature=first.temperature, top_p=first.top_p,
                              top_k=first.top_k if first.top_k > 0 else None)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if first.presence_penalty or first.frequency_penalty:
            gen_kwargs["logits_processor"] = LogitsProcessorList(
                [PenaltyProcessor(prompt_len, first.presence_penalty, first.frequency_penalty)])
        if first.seed is not None:
            torch.manual_seed(first.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen_kwargs, streamer=streamer)
        new_tokens = out[:, prompt_len:].tolist()
        eos = set(_as_list(self.model.generation_config.eos_token_id))
        pad = self.model.generation_config.pad_token_id
        results = []
        for i, request in enumerate(requests):
            ids_n = [trim_completion(new_tokens[i * first.n + j], eos, pad,
                                     keep_stop_token)[: request.max_tokens]
                     for j in range(first.n)]
            texts = self.processor.batch_decode(ids_n, skip_special_tokens=True)  # the stop token is special
            results.append(GenResult(texts=texts, token_ids=ids_n,
                                     prompt_tokens=int(inputs["attention_mask"][i].sum())))
        return results

    def close(self) -> None:
        self.model = None


def _as_list(x) -> list:
    return [] if x is None else list(x) if isinstance(x, (list, tuple)) else [x]


def trim_completion(ids: list[int], eos: set[int], pad: int | None, keep_stop: bool = False) -> list[int]:
    """Cut at the first end-of-sequence token (kept out of the completion unless ``keep_stop``) and drop trailing
    padding."""
    for i, tok in enumerate(ids):
        if tok in eos:
            return ids[: i + 1] if keep_stop else ids[:i]
    while ids and pad is not None and ids[-1] == pad:
        ids = ids[:-1]
    return ids
