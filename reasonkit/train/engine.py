"""DeepSpeed as a library: the engine config from a recipe, the LR schedule, model loading for training, and
export of an HF safetensors folder that `reasonkit eval --model <folder>` loads directly."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from reasonkit.backends.loading import check_model_dir, load_pretrained
from reasonkit.train.recipe import Recipe


def deepspeed_config(recipe: Recipe, *, on_gpu: bool) -> dict[str, Any]:
    t = recipe.train
    ds = t.deepspeed
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if ds.offload_param and ds.zero_stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    if ds.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # export needs the full weights on rank 0
    half = t.param_dtype if on_gpu else "float32"  # CPU: fp32 (bf16 matmuls are slow and inexact there)
    return {
        "train_micro_batch_size_per_gpu": t.train_policy.mini_batch,
        "gradient_accumulation_steps": t.train_batch_per_replica // t.train_policy.mini_batch,
        "gradient_clipping": t.optm_grad_norm_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": half == "bfloat16",
                 **({"bf16_master_weights_and_grads": True, "bf16_optimizer_states": True}
                    if ds.bf16_master_weights and half == "bfloat16" else {})},
        "fp16": {"enabled": half == "float16"},
        "optimizer": {"type": "AdamW", "params": {
            "lr": t.optm_lr, "betas": list(t.optm_betas), "eps": t.epsilon, "weight_decay": t.optm_weight_decay,
            **torch_adamw_params(t.optm_impl, on_gpu=on_gpu, offload=ds.offload_optimizer),
        }},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def torch_adamw_params(impl: str, *, on_gpu: bool, offload: bool) -> dict[str, Any]:
    """DeepSpeed's optimizer params that make it build torch's own AdamW (``torch_adam``) with the recipe's
    ``optm_impl``. DeepSpeed's FusedAdam / DeepSpeedCPUAdam are C++/CUDA ops that JIT-compile on first use, and
    that build dies on GPU images whose TORCH_CUDA_ARCH_LIST has an entry like ``9.0a`` (bench/RESULTS.md, GPU);
    torch's fused AdamW is the same single-kernel update, ships compiled, and DeepSpeed ZeRO wraps it as it would
    its own. Nothing is ever built, so nothing can fail to build."""
    params: dict[str, Any] = {"torch_adam": True}
    if impl == "fused" and (on_gpu or offload):
        # offload: the fp32 partitions and moments live in host memory, where torch has a fused kernel too. A CPU-only
        # run keeps torch's default (foreach) so the CPU learning runs' numbers stay as recorded.
        params["fused"] = True
    elif impl == "foreach":
        params["foreach"] = True
    elif impl == "for-loop":
        params["foreach"] = False
    return params


# Trainable parameters go to DeepSpeed in groups of at most this many elements. ZeRO-1/2 in bf16 turns a whole
# group's bf16 gradients into one fp32 tensor at the optimizer step: one group for a 3B model is a 14 GiB spike
# on top of the fp32 master and moments; groups of 2^28 cap it at 1 GiB. Models under the cap (the CPU tests'
# tiny one) keep a single group, so their optimizer state layout is unchanged.
GROUP_NUMEL = 2**28


def param_groups(params) -> list[dict[str, Any]]:
    """Consecutive runs of ``params`` (module order) of at most GROUP_NUMEL elements each (a larger tensor is
    a group of its own)."""
    groups: list[list] = [[]]
    size = 0
    for p in params:
        if groups[-1] and size + p.numel() > GROUP_NUMEL:
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += p.numel()
    return [{"params": g} for g in groups if g]


def lr_lambda(warmup: int, total: int, decay: str):
    """Linear warmup then constant / linear / cosine decay to zero at ``total`` optimizer steps."""
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if decay == "constant" or total <= warmup:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 1.0 - progress if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def weights_dtype(ds_config: dict[str, Any]):
    """The dtype the policy (and GRPO's reference) load in: the half precision DeepSpeed trains in, which it would
    cast the module to anyway (its fp32 master copy is made from the module's params either way); else fp32, which
    is what a CPU run trains in (``deepspeed_config``)."""
    import torch

    if ds_config["bf16"]["enabled"]:
        return torch.bfloat16
    return torch.float16 if ds_config["fp16"]["enabled"] else torch.float32


def load_policy(recipe: Recipe, ds_config: dict[str, Any]):
    """Model + processor through the public loading path, then freeze patterns, LoRA, gradient checkpointing."""
    from reasonkit.train import lean

    policy = recipe.policy
    name = policy.model_name_or_path
    check_model_dir(name)  # before the DeepSpeed set-up below
    keep_alive = None
    if ds_config["zero_optimization"]["stage"] == 3:
        # Lets from_pretrained build the model already partitioned (zero.Init): a 7B never sits whole in one rank
        from transformers.integrations import HfDeepSpeedConfig

        keep_alive = HfDeepSpeedConfig(ds_config)
    else:  # an earlier ZeRO-3 run in this process (tests, benches) must not make this model partitioned too
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    model, processor = load_pretrained(name, dtype=weights_dtype(ds_config), revision=policy.model_revision)
    model._reasonkit_ds_config = keep_alive
    frozen = freeze(model, policy.freeze_pattern)
    if policy.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = policy.lora
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.lora_alpha,
                                                 lora_dropout=lora.lora_dropout, target_modules=lora.target_modules))
    if policy.model_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        checkpoint_every(model, policy.model_gradient_checkpointing_every)
    lean.install(model.get_base_model() if hasattr(model, "get_base_model") else model)
    return model, processor, frozen


def checkpoint_every(model, every: int) -> int:
    """Keep activation checkpointing on every ``every``-th layer of each layer stack (text decoder layers, vision
    blocks) and switch it off on the others, whose activations are then kept: less recompute for more memory.
    Returns how many layers still checkpoint."""
    import torch

    kept = 0
    for stack in model.modules():
        if not isinstance(stack, torch.nn.ModuleList):
            continue
        layers = [m for m in stack if hasattr(m, "gradient_checkpointing")]
        for index, layer in enumerate(layers):
            layer.gradient_checkpointing = layer.gradient_checkpointing and index % every == 0
            kept += layer.gradient_checkpointing
    return kept


def freeze(model, patterns: list[str]) -> int:
    """requires_grad=False for parameters whose name matches any regex; returns how many were frozen."""
    if not patterns:
        return 0
    compiled = [re.compile(p) for p in patterns]
    n = 0
    for name, param in model.named_parameters():
        if any(c.search(name) for c in compiled):
            param.requires_grad_(False)
            n += 1
    return n


def export_hf(engine, processor, out_dir: Path, *, is_main: bool, max_shard_size: str = "4GB") -> Path | None:
    """Write an HF folder (sharded safetensors + index, config, generation config, tokenizer, processor, chat
    template). Collective under ZeRO-3 (every rank must call); rank 0 writes."""
    import torch

    module = engine.module
    stage = engine.zero_optimization_stage()
    state = engine._zero3_consolidated_16bit_state_dict() if stage == 3 else None
    if not is_main:
        return None
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    if hasattr(module, "merge_and_unload"):  # LoRA: export plain merged weights
        import copy

        module = copy.deepcopy(module).merge_and_unload()
        state = None
    if state is None:
        state = {k: v.detach().to("cpu", torch.float32 if v.dtype == torch.float32 else v.dtype).contiguous()
                 for k, v in module.state_dict().items()}
    module.save_pretrained(tmp, state_dict=state, safe_serialization=True, max_shard_size=max_shard_size)
    processor.save_pretrained(tmp)
    (tmp / "reasonkit_export.json").write_text(json.dumps({"format": "hf-safetensors"}))
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
