"""The engine behind the ``hf`` backend (and GRPO's hf rollout, which wraps the policy in that backend):
GenRequests in, GenResults out, with the backend's semantics (``max_length`` caps prompt + completion, the stop
token kept only with ``keep_stop_token``, texts decoded without special tokens).

Unlike ``generate`` (one RNG per call), every completion is seeded on its own: completion j of a request seeded
``s`` draws from ``row_seed(s, j)``, whatever else is in the batch. A request without a seed draws one from torch's
global RNG (so ``torch.manual_seed`` still makes a run repeatable).
"""

from __future__ import annotations

from reasonkit.types import GenRequest, GenResult

ENGINES = ("reasonkit", "generate")


def check_engine(name: str) -> str:
    if name not in ENGINES:
        from reasonkit.errors import ConfigError

        raise ConfigError(f"model.engine={name!r}: the hf backend's engines are 'reasonkit' (reasonkit.generation: "
                          "cached vision, static KV cache, compiled decode on CUDA) and 'generate' (transformers)")
    return name


def engine_for(backend):
    """The backend's engine, built on first use (it holds per-bucket buffers and the vision-feature cache)."""
    engine = getattr(backend, "_generation_engine", None)
    if engine is None or engine.model is not backend.model:
        from reasonkit.generation.engine import Engine

        configured = backend.model.generation_config.eos_token_id  # what generate stops on
        eos = configured if isinstance(configured, (list, tuple)) else [configured]
        pad = backend.processor.tokenizer.pad_token_id
        engine = Engine(backend.model, pad_id=pad if pad is not None else eos[0],
                        eos_ids=[i for i in eos if i is not None])
        backend._generation_engine = engine
    return engine


def generate(backend, requests: list[GenRequest], *, keep_stop_token: bool = False,
             streamer=None) -> list[GenResult]:
    import json

    import torch

    from reasonkit.backends.hf import trim_completion
    from reasonkit.generation.prompts import EncodedPrompt, encode, frames_key
    from reasonkit.generation.sampling import row_seed
    from reasonkit.generation.state import RowSettings

    engine = engine_for(backend)
    processor = backend.processor
    keys: dict[int, str] = {}  # one hash per Frames object of the call
    encoded: dict[tuple, EncodedPrompt] = {}  # requests asking the same thing (seeds of an eval) share one prompt
    rows, spans = [], []
    for r in requests:
        key = None
        if r.frames is not None:
            key = keys.setdefault(id(r.frames), frames_key(r.frames))
        same = (key, json.dumps(r.messages, sort_keys=True, default=repr))
        prompt = encoded.get(same)
        if prompt is None:
            prompt = encoded[same] = encode(processor, r.messages, r.frames, key=key)
        budget = max(1, min(r.max_tokens, (backend.max_length or 10**9) - prompt.length))
        seed = r.seed if r.seed is not None else int(torch.randint(0, 2**62, ()))
        spans.append((len(rows), r.n, prompt.length))
        rows += [(prompt, RowSettings(max_tokens=budget, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                                      repetition_penalty=r.repetition_penalty, presence_penalty=r.presence_penalty,
                                      frequency_penalty=r.frequency_penalty, seed=row_seed(seed, j)))
                 for j in range(r.n)]
    outputs = engine.generate(rows, streamer=streamer)
    stops = set(engine.eos_ids)
    results = []
    for start, n, prompt_len in spans:
        ids_n = []
        for out in outputs[start:start + n]:
            ids_n.append(trim_completion(out.token_ids, stops, None, keep_stop_token))
        texts = processor.batch_decode(ids_n, skip_special_tokens=True)
        results.append(GenResult(texts=texts, token_ids=ids_n, prompt_tokens=prompt_len))
    return results


def policy_updated(backend) -> None:
    """Called by a rollout before sampling from weights an optimizer may have changed since the last call: cached
    vision features are dropped unless the vision tower is frozen (no parameter requires grad)."""
    engine = getattr(backend, "_generation_engine", None)
    if engine is not None and any(p.requires_grad for p in backend.model.model.visual.parameters()):
        engine.vision.clear()
