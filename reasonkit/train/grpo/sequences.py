"""Prompt + completion sequences for the trainer's forward pass, and the per-token log-probs it recomputes.

Layout of a batch of B sequences (P = longest prompt, T = longest completion)::

    [left padding][prompt tokens]|[completion tokens][right padding]
     <-------------- P --------->| <------------ T -------------->

Every completion starts at column P, so the model only has to produce logits for the last T + 1 positions
(``logits_to_keep``) and the completion slice is one rectangle — no per-row gather over a (B, L, V) tensor.
Qwen2.5-VL derives its 3-D rope positions from the attention mask, so left padding does not move them.

The completion is the exact token ids the rollout engine sampled (never the decoded text tokenised again: a
re-tokenisation can differ from the sampled ids, and the policy gradient must score the tokens that were drawn).
The prompt's tokens and pixel values come from the processor, once per prompt.
"""

from __future__ import annotations

from typing import Any

# Per-token tensors of a prompt encoding (B=1, L): padded with these values; everything else is a vision input
# that is concatenated over the batch in sequence order.
TOKEN_KEYS = {"input_ids": None, "attention_mask": 0, "mm_token_type_ids": 0}


def build_batch(items: list[tuple[dict[str, Any], list[int]]], *, pad_id: int) -> dict[str, Any]:
    """``items``: (prompt encoding, completion token ids) per sequence. Returns the model inputs plus
    ``completion_ids`` (B, T) and ``completion_mask`` (B, T), 1 exactly at the completion's tokens."""
    import torch

    prompt_len = max(enc["input_ids"].shape[1] for enc, _ in items)
    completion_len = max(1, max(len(ids) for _, ids in items))
    batch: dict[str, Any] = {key: [] for key in TOKEN_KEYS}
    completion_ids = torch.full((len(items), completion_len), pad_id, dtype=torch.long)
    completion_mask = torch.zeros((len(items), completion_len), dtype=torch.long)
    vision: dict[str, list] = {}
    video_index = shared_videos(items)
    for row, (enc, ids) in enumerate(items):
        left = prompt_len - enc["input_ids"].shape[1]
        completion_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        completion_mask[row, : len(ids)] = 1
        for key, fill in TOKEN_KEYS.items():
            if key not in enc:
                continue
            prompt_part = enc[key][0]
            if key == "input_ids":
                fill, tail = pad_id, completion_ids[row]
            elif key == "attention_mask":
                tail = completion_mask[row]
            else:  # completion tokens are text: type 0
                tail = torch.zeros(completion_len, dtype=prompt_part.dtype)
            batch[key].append(torch.cat([prompt_part.new_full((left,), fill), prompt_part, tail.to(prompt_part.dtype)]))
        for key, value in enc.items():
            if key not in TOKEN_KEYS:
                if key == "pixel_values_videos" and video_index is not None and video_index[row] in video_index[:row]:
                    continue  # a clip already in the batch: encoded once, its features reused (lean.py)
                vision.setdefault(key, []).append(value if isinstance(value, torch.Tensor) else torch.tensor(value))
    out: dict[str, Any] = {key: torch.stack(rows) for key, rows in batch.items() if rows}
    out.update({key: torch.cat(values) for key, values in vision.items()})
    out["completion_ids"], out["completion_mask"] = completion_ids, completion_mask
    if video_index is not None:
        out["video_index"] = torch.tensor(video_index, dtype=torch.long)
    return out


def shared_videos(items) -> list[int] | None:
    """Row -> distinct clip, when several rows carry the same prompt encoding (one video each, no images): the
    G completions of a prompt. None when every row's clip is its own (nothing to share)."""
    encodings = [enc for enc, _ in items]
    if any("pixel_values_videos" not in enc or "pixel_values" in enc or len(enc.get("video_grid_thw", ())) != 1
           for enc in encodings):
        return None
    distinct: dict[int, int] = {}
    index = [distinct.setdefault(id(enc), len(distinct)) for enc in encodings]
    return index if len(distinct) < len(index) else None


def model_inputs(batch: dict[str, Any], device) -> dict[str, Any]:
    return {k: v.to(device) for k, v in batch.items() if k not in ("completion_ids", "completion_mask",
                                                                   "video_index")}


def lean_module(model):
    """The transformers module under a DeepSpeed engine / PEFT wrapper, if lean.install() was applied to it."""
    module = getattr(model, "module", model)
    if hasattr(module, "get_base_model"):
        module = module.get_base_model()
    return module if getattr(module, "_reasonkit_lean", False) else None


def completion_logps(model, batch: dict[str, Any], temperature: float, *, with_entropy: bool = False):
    """Per-token log-probs (B, T) of the completion tokens under ``model`` at the sampling temperature:
    ``log_softmax(logits / temperature)`` gathered at the sampled ids — the distribution the rollout drew from.
    With ``with_entropy``, also the (detached) entropy of that distribution at each completion position.
    Values under ``completion_mask == 0`` are meaningless (padding)."""
    import torch

    targets = batch["completion_ids"]
    device = next(model.parameters()).device
    lean = lean_module(model)
    if lean is not None:  # logits only at completion tokens, in recomputed chunks; each clip encoded once
        from reasonkit.train.lean import CompletionLogps

        head = CompletionLogps(targets, batch["completion_mask"], temperature, with_entropy=with_entropy,
                               chunk_tokens=lean._reasonkit_chunk_tokens)
        return model(**model_inputs(batch, device), reasonkit_head=head, video_index=batch.get("video_index"))
    inputs = model_inputs(batch, device)
    if batch.get("video_index") is not None:  # a plain module: every row gets its clip's patches again
        from reasonkit.train.lean import expand_videos

        inputs["pixel_values_videos"] = expand_videos(inputs["pixel_values_videos"], inputs["video_grid_thw"],
                                                      batch["video_index"])
    out = model(**inputs, logits_to_keep=targets.shape[1] + 1, use_cache=False)
    logits = out.logits[:, :-1, :].float() / temperature  # position t predicts completion token t
    targets = targets.to(logits.device)
    normaliser = logits.logsumexp(dim=-1)
    logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - normaliser
    if not with_entropy:
        return logps
    with torch.no_grad():
        entropy = normaliser - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    return logps, entropy
