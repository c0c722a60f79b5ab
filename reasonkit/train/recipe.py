"""Training recipes (TOML), validated strictly. Key names follow cosmos-rl where it has them (``[train]`` epoch,
optm_lr, train_batch_per_replica, ...; ``[train.ckpt]``; ``[policy]``; ``[rollout]``; ``[logging]``) so upstream
Cosmos-Reason1 recipes translate line by line; reasonkit's own additions are marked below."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from reasonkit.config import (
    FramesSection,
    MaxTokens,
    SamplingSection,
    Strict,
    TopP,
    load_config,
    recipe_path,
    validate,
)
from reasonkit.errors import ConfigError
from reasonkit.prompts import SYSTEM_PROMPT
from reasonkit.types import FrameSpec, Sampling

# Upstream Cosmos-Reason1 training sampled 1 fps at up to 81,920 pixels per frame.
DEFAULT_TRAIN_FRAMES = FrameSpec(fps=1.0, min_frames=4, max_frames=64, min_pixels=28 * 28, max_pixels=81920)


class DatasetSection(Strict):
    name: str  # a registered dataset plugin (reasonkit plugins)
    path: str | None = None  # reasonkit: local folder/file or HF dataset id the plugin reads
    subset: str | None = None
    split: str | None = None
    test_size: int = Field(0, ge=0)  # rows held out of training (the last ones)
    limit: int | None = Field(None, ge=1)  # reasonkit: first N rows only (smoke runs)


class TrainPolicySection(Strict):
    type: Literal["sft", "grpo"]
    dataset: DatasetSection
    conversation_column_name: str = "conversations"
    prompt_column_name: str = "qa_pairs"
    mini_batch: int = Field(1, ge=1)  # micro-batch per process per forward/backward
    group_by_length: bool = False  # reasonkit (SFT): a step's micro-batches hold similar lengths (less padding)
    overlong: Literal["drop", "truncate"] = "drop"  # reasonkit: samples longer than model_max_length
    system_prompt: str | None = SYSTEM_PROMPT  # reasonkit: added when a row has no system turn (as in eval)
    dataloader_num_workers: int = Field(1, ge=0)  # clips decoded ahead of the step in background threads
    blank_video: bool = False  # reasonkit ablation: train on all-black frames (does the gain come from pixels?)
    # GRPO
    reward_function: list[str] | dict[str, float] = ["scorer:upstream", "format"]
    temperature: float = Field(1.0, gt=0)  # drives rollout sampling AND the trainer's log-prob rescaling
    epsilon_low: float = Field(0.2, ge=0)
    epsilon_high: float | None = Field(None, ge=0)
    kl_beta: float = Field(0.0, ge=0)
    mu_iterations: int = Field(1, ge=1)
    loss_type: Literal["dapo", "grpo", "bnpo", "dr_grpo"] = "dapo"
    importance_sampling_level: Literal["token", "sequence"] = "token"
    advantage_scale: Literal["group", "batch", "none"] = "group"
    advantage_std: Literal["sample", "population"] = "sample"
    filter_equal_rewards: bool = True  # drop groups whose rewards are all equal (zero advantage, no signal)
    overlong_penalty: float = Field(0.0, ge=0)  # reward minus this when a completion hits max_response_length
    answer_type: Literal["reasoning", "letter"] = "reasoning"


class DeepSpeedSection(Strict):  # reasonkit: the parallelism here is DeepSpeed ZeRO
    zero_stage: int = Field(2, ge=0, le=3)
    offload_optimizer: bool = False
    offload_param: bool = False
    # pure-bf16 ZeRO on a GPU: master weights, gradients and Adam moments in bf16 (10 instead of 16 bytes per
    # parameter, what plain bf16 loops use); lets a 7B train on one 141 GB GPU without optimizer offload
    bf16_master_weights: bool = False


class UploadSection(Strict):  # reasonkit: one [[train.ckpt.upload]] entry
    name: str  # a registered uploader: hf | s3 | a plugin's (reasonkit plugins)
    when: Literal["final", "all"] = "final"  # the final export only, or every complete checkpoint too
    options: dict[str, Any] = {}  # validated against the options model the uploader registers


class CkptSection(Strict):
    enable_checkpoint: bool = True
    save_freq: int = Field(100, ge=1)
    max_keep: int = -1
    save_mode: Literal["sync", "async"] = "sync"
    export_safetensors: bool | Literal["final", "each"] = "final"  # true == "final"
    upload_hf: bool = False
    hf_repo_name: str | None = None
    upload_s3: bool | Literal["final", "all"] = False  # true == "final"
    s3_bucket: str | None = None
    s3_prefix: str = ""
    upload: list[UploadSection] = []  # reasonkit: uploads through any registered uploader

    def uploads(self) -> list[tuple[str, UploadSection]]:
        """Every upload of the run as (the key it is written under, entry): the cosmos-rl keys above are spelled
        as the entries they stand for, so one code path serves both."""
        legacy = []
        if self.upload_hf:
            legacy.append(("train.ckpt.upload_hf", UploadSection(name="hf", options={"repo_id": self.hf_repo_name})))
        if self.upload_s3:
            legacy.append(("train.ckpt.upload_s3", UploadSection(
                name="s3", when="all" if self.upload_s3 == "all" else "final",
                options={"bucket": self.s3_bucket, "prefix": self.s3_prefix})))
        return legacy + [(f"train.ckpt.upload.{i}", entry) for i, entry in enumerate(self.upload)]

    @model_validator(mode="after")
    def _targets(self):
        if self.upload_hf and not self.hf_repo_name:
            raise ValueError("upload_hf needs hf_repo_name")
        if self.upload_s3 and not self.s3_bucket:
            raise ValueError("upload_s3 needs s3_bucket")
        if self.max_keep == 0 or self.max_keep < -1:
            raise ValueError("max_keep must be -1 (keep all) or at least 1")
        return self


class TrainSection(Strict):
    resume: bool | str = False  # true: newest complete checkpoint; or a checkpoint path
    overwrite: bool = False  # reasonkit: a fresh run may replace the run in output_dir (moved aside, not deleted)
    epoch: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)  # reasonkit: stop after this many optimizer steps
    output_dir: str = "runs/train"
    seed: int = 42
    epsilon: float = 1e-6  # AdamW eps
    optm_name: Literal["AdamW"] = "AdamW"
    optm_impl: Literal["fused", "foreach", "for-loop"] = "fused"
    optm_lr: float = Field(2e-6, gt=0)
    optm_weight_decay: float = Field(0.01, ge=0)
    optm_betas: tuple[float, float] = (0.9, 0.999)
    optm_warmup_steps: int = Field(0, ge=0)
    optm_decay_type: Literal["constant", "linear", "cosine"] = "constant"
    optm_grad_norm_clip: float = Field(1.0, ge=0)
    param_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    train_batch_per_replica: int = Field(8, ge=1)  # samples per optimizer step per data-parallel process
    log_freq: int = Field(1, ge=1)
    eval_freq: int | None = Field(None, ge=1)  # reasonkit: evaluate the [eval] benchmark every N steps
    deepspeed: DeepSpeedSection = DeepSpeedSection()
    ckpt: CkptSection = CkptSection()
    train_policy: TrainPolicySection


class LoraSection(Strict):
    r: int = Field(16, ge=1)
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


class PolicySection(Strict):
    model_name_or_path: str = "nvidia/Cosmos-Reason1-7B"
    model_revision: str | None = None
    model_max_length: int = Field(4096, ge=16)
    model_gradient_checkpointing: bool = False
    # reasonkit: checkpoint every n-th layer of each stack (1 = all); fewer recomputes for memory that is spare
    model_gradient_checkpointing_every: int = Field(1, ge=1)
    freeze_pattern: list[str] = []  # regexes over parameter names, e.g. "^model\\.visual\\."
    lora: LoraSection | None = None

    @model_validator(mode="after")
    def _patterns(self):
        for pattern in self.freeze_pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"freeze_pattern {pattern!r} is not a regex: {exc}") from None
        return self


class RolloutSection(SamplingSection):
    """GRPO's sampling: these keys with ``max_tokens`` = ``max_response_length`` and ``train_policy.temperature``
    (:meth:`Recipe.rollout_sampling`)."""

    backend: str = "hf"  # a registered rollout engine: hf | vllm | a plugin's (reasonkit plugins)
    n_generation: int = Field(8, ge=1)
    max_response_length: MaxTokens = 1024
    batch_size: int = Field(4, ge=1)  # prompts per hf generate call (vLLM schedules a whole step's prompts)
    top_p: TopP = 1.0
    top_k: int = -1
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    tp_size: int = Field(1, ge=1)
    # reasonkit: a plugin engine's own keys, validated against the options model it registers
    options: dict[str, Any] = {}


class LoggingSection(Strict):
    logger: list[str] = ["console"]
    wandb_mode: Literal["offline", "online"] = "offline"  # reasonkit: online only when asked (or WANDB_MODE)
    project_name: str = "reasonkit"
    experiment_name: str | None = None


class EvalSection(Strict):  # reasonkit: what `train.eval_freq` evaluates, through `reasonkit eval`'s code
    benchmark: list[str] | str  # registered benchmark name(s)
    data_dir: str
    limit: int | None = Field(None, ge=1)  # first N questions per benchmark (a quick signal during training)
    config: str | None = None  # eval preset (benchmarks/NAME.yaml or a path): frames, generation, scorers
    answer_type: Literal["reasoning", "letter"] | None = None  # default: the preset's
    batch_size: int | None = Field(None, ge=1)
    seed: int | None = None
    keep_models: bool = False  # keep each evaluated export (eval/model_step_N); the results are always kept


class Recipe(Strict):
    train: TrainSection
    policy: PolicySection = PolicySection()
    rollout: RolloutSection = RolloutSection()
    logging: LoggingSection = LoggingSection()
    frames: FramesSection | None = None  # reasonkit: None = the dataset's frame spec
    eval: EvalSection | None = None  # reasonkit: benchmark evaluated every train.eval_freq steps
    # Not a recipe key: the file and --set overrides it was loaded from (load_recipe), for the resume command.
    _source: tuple[Path, tuple[str, ...]] | None = PrivateAttr(None)

    @property
    def source(self) -> tuple[Path, tuple[str, ...]] | None:
        return self._source

    def plugin_options(self, kind: str, name: str, data: dict[str, Any], *, prefix: str, what: str) -> Any:
        """``data``, the recipe's options table at ``prefix`` for the plugin ``name`` of ``kind``, validated against
        the ``options`` model the plugin registered like every other key (one-line errors naming the key as
        written, or the ``--set`` flag that set it); None for a plugin without one, which then takes no options."""
        from reasonkit.plugins import get_plugins

        model = get_plugins().registration(kind, name).options_model()
        if model is None and data:
            raise ConfigError(f"{prefix}.{next(iter(data))}: {what} '{name}' takes no options")
        path, overrides = self.source or ("recipe", ())
        return None if model is None else validate(
            model, data, str(path), [o.partition("=")[0].strip() for o in overrides], prefix=prefix)

    def rollout_sampling(self, seed: int) -> Sampling:
        """How GRPO samples its completions: ``[rollout]``'s keys, ``max_response_length`` tokens at
        ``train_policy.temperature`` (the temperature the trainer's log-probs are taken at too)."""
        ro = self.rollout
        return ro.sampling(max_tokens=ro.max_response_length, temperature=self.train.train_policy.temperature,
                           seed=seed)

    def frame_spec(self) -> FrameSpec:
        """The dataset plugin's own ``frame_spec`` (else the training default) with the keys ``[frames]`` sets,
        sized for the policy's model family."""
        from reasonkit.families import detect_family, frame_spec_for
        from reasonkit.plugins import get_dataset

        declared = getattr(get_dataset(self.train.train_policy.dataset.name), "frame_spec", None)
        base = declared or DEFAULT_TRAIN_FRAMES
        spec = self.frames.to_spec(base) if self.frames else base
        return frame_spec_for(spec, detect_family(self.policy.model_name_or_path, self.policy.model_revision))

    @model_validator(mode="after")
    def _eval(self):
        if self.train.eval_freq and self.eval is None:
            raise ValueError("train.eval_freq needs an [eval] section (benchmark, data_dir)")
        return self

    @model_validator(mode="after")
    def _batches(self):
        t = self.train
        if t.train_batch_per_replica % t.train_policy.mini_batch:
            raise ValueError(f"train.train_batch_per_replica ({t.train_batch_per_replica}) must be divisible by "
                             f"train.train_policy.mini_batch ({t.train_policy.mini_batch})")
        if t.train_policy.type == "grpo":  # GRPO: train_batch_per_replica counts completions (cosmos-rl)
            n = self.rollout.n_generation
            if n < 2:
                raise ValueError("rollout.n_generation must be at least 2 for GRPO (advantages compare a group)")
            if t.train_batch_per_replica % n:
                raise ValueError(f"train.train_batch_per_replica ({t.train_batch_per_replica}) counts completions "
                                 f"per step for GRPO and must be divisible by rollout.n_generation ({n})")
        return self


def load_recipe(path: Path | None, overrides: list[str] = ()) -> Recipe:
    path = recipe_path(path) if path is not None else None  # a shipped recipe's name works too
    recipe = load_config(Recipe, path, overrides)
    if recipe.policy.lora and recipe.train.deepspeed.zero_stage == 3:
        raise ConfigError(f"{path}: LoRA with ZeRO stage 3 is not supported; use zero_stage 2")
    if path is not None:
        recipe._source = (Path(path).resolve(), tuple(overrides))
    from reasonkit.train.uploads import upload_targets

    upload_targets(recipe)  # an unknown uploader or a bad upload option fails here, before any process starts
    return recipe
