"""Rollout engines for GRPO: G sampled completions per prompt, and an engine whose weights follow the policy.

Engines are plugins (``reasonkit_register_rollouts``; ``[rollout] backend = NAME``); the two built in:
``hf``: transformers ``generate`` (reasonkit.backends.hf) on the policy module itself — no second copy, nothing
to sync. Under ZeRO-3 the full weights are gathered for the duration of generation.
``vllm``: an in-process vLLM engine (reasonkit.backends.vllm), colocated with the trainer. After every optimizer
step the policy is written as a safetensors folder (the same code as the final export) and the engine reloads it
in place.

Completions keep the stop token the model emitted (``<|im_end|>``), so the trainer also learns to stop; a
completion that reached ``max_response_length`` without one is marked ``truncated``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonkit.errors import ConfigError
from reasonkit.train.grpo.data import Prompt
from reasonkit.types import GenRequest, GenResult


@dataclass
class Completion:
    prompt: int  # index of its prompt in the step's prompt list; the G completions of a prompt are consecutive
    token_ids: list[int]
    text: str  # decoded without special tokens (what rewards read)
    truncated: bool


@dataclass
class RolloutSetup:
    """What a rollout engine is built from (the one argument of a registered rollout factory)."""

    recipe: Any  # the validated reasonkit.train.recipe.Recipe
    engine: Any  # the DeepSpeed engine training the policy (``engine.module`` is the model)
    processor: Any
    dist: Any  # reasonkit.train.distributed.Dist: rank, world size, device, collectives
    work_dir: Path  # a folder in the run the engine may create, e.g. for weights it reloads; its close removes it
    stop_ids: set[int]  # token ids that end a completion
    backend: Any = None  # an already running engine to reuse instead of starting one (tests, benchmarks)
    n_seqs: int = 64  # sequences one ``generate`` call of a step may hold: prompts × n_generation
    options: Any = None  # the engine's validated ``[rollout.options]`` (its registered ``options`` model)


def stop_token_ids(model, tokenizer) -> set[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, (list, tuple)) else [configured])
    ids.add(tokenizer.eos_token_id)
    return {i for i in ids if i is not None}


def to_completions(results: list[GenResult], stop_ids: set[int], max_tokens: int) -> list[Completion]:
    from reasonkit.backends.hf import trim_completion

    completions = []
    for index, result in enumerate(results):
        for ids, text in zip(result.token_ids, result.texts):
            ids = trim_completion(list(ids), stop_ids, None, keep_stop=True)
            stopped = bool(ids) and ids[-1] in stop_ids
            ids = ids if stopped else ids[:max_tokens]
            completions.append(Completion(index, ids, text, truncated=not stopped and len(ids) >= max_tokens))
    return completions


class Rollout:
    """Base of rollout engines: ``sample`` builds the requests; an engine implements ``generate`` (results with
    token ids) and, if it holds its own copy of the weights, ``sync`` and ``close``."""

    def __init__(self, setup: RolloutSetup):
        self.setup, self.recipe, self.stop_ids = setup, setup.recipe, setup.stop_ids

    @classmethod
    def check(cls, recipe) -> None:
        """Raise ConfigError for a recipe this engine cannot run; called before any model loads."""

    def sample(self, prompts: list[Prompt], *, seed: int) -> list[Completion]:
        """n_generation completions per prompt at the recipe's temperature; prompt i is seeded ``seed + i``."""
        ro = self.recipe.rollout
        requests = [GenRequest.of(p.messages, p.frames, self.recipe.rollout_sampling(seed + i), n=ro.n_generation)
                    for i, p in enumerate(prompts)]
        return to_completions(self.generate(requests), self.stop_ids, ro.max_response_length) if requests else []

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        raise NotImplementedError

    def sync(self, engine, processor) -> None:
        """Make the engine's weights the policy's (the hf rollout samples from the policy itself: nothing to do)."""

    def close(self) -> None:
        pass


class HFRollout(Rollout):
    def __init__(self, setup: RolloutSetup):
        from reasonkit.backends.hf import HFBackend

        super().__init__(setup)
        self.engine = setup.engine
        self.backend = HFBackend.from_model(setup.engine.module, setup.processor)

    @classmethod
    def check(cls, recipe) -> None:
        if recipe.train.deepspeed.zero_stage == 3 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("rollout.backend = 'hf' with ZeRO-3 on several processes is not supported (ranks "
                              "would generate different lengths inside collectives): use rollout.backend = 'vllm'")

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        from reasonkit.generation.backend import policy_updated

        module = self.engine.module
        was_training = module.training
        module.eval()
        policy_updated(self.backend)  # the last step may have trained the vision tower: its cached features go
        size = self.recipe.rollout.batch_size
        try:
            with full_weights(self.engine):
                # rollout.batch_size prompts per call: their G completions each decode as one engine batch
                return [r for i in range(0, len(requests), size)
                        for r in self.backend.generate(requests[i:i + size], keep_stop_token=True)]
        finally:
            module.train(was_training)


class VLLMRollout(Rollout):
    """A vLLM engine colocated with the trainer. One process: vLLM's own executor (``tp_size`` GPUs). Several
    processes (torchrun): vLLM's ``external_launcher``, each rank holding its engine on its own device; with
    ``rollout.tp_size = k > 1`` each block of k consecutive ranks forms one engine, a TP shard per rank: the
    block's ranks pool their prompts, make identical generate calls, and each keeps its own completions.
    (The several-process paths need GPUs and were not exercised on the CPU build.)"""

    def __init__(self, setup: RolloutSetup):
        super().__init__(setup)
        recipe, dist, backend, n_seqs = setup.recipe, setup.dist, setup.backend, setup.n_seqs
        self.dist, self.sync_dir, self.owned = dist, setup.work_dir, backend is None
        tp = recipe.rollout.tp_size
        self.tp_group = tp_groups(dist, tp) if tp > 1 and dist.world > 1 else None
        if backend is None:
            from reasonkit.backends.vllm import VLLMBackend

            ro, policy = recipe.rollout, recipe.policy
            backend = VLLMBackend(
                policy.model_name_or_path, revision=policy.model_revision, tp_size=tp,
                max_length=policy.model_max_length, gpu_memory_utilization=ro.gpu_memory_utilization,
                max_num_seqs=max(1, n_seqs * (tp if self.tp_group else 1)),
                seed=recipe.train.seed + dist.rank // tp,  # equal within a TP group: identical sampling
                # several processes: each engine lives in its rank's process, on its rank's device
                distributed_executor_backend="external_launcher" if dist.world > 1 else None)
        self.backend = backend

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if self.tp_group is None:
            return self.backend.generate(requests)  # vLLM schedules the whole step's prompts itself
        import torch.distributed as td

        pooled: list = [None] * td.get_world_size(self.tp_group)
        td.all_gather_object(pooled, requests, group=self.tp_group)
        results = self.backend.generate([r for part in pooled for r in part])
        start = sum(len(part) for part in pooled[: td.get_rank(self.tp_group)])
        return results[start:start + len(requests)]

    def sync(self, engine, processor) -> None:
        from reasonkit.train.engine import export_hf

        export_hf(engine, processor, self.sync_dir, is_main=self.dist.is_main)  # collective under ZeRO-3
        self.dist.barrier()  # the folder is complete before any rank's engine reads it
        self.backend.push_weights(self.sync_dir)
        self.dist.barrier()  # and no rank rewrites it while another still reads

    def close(self) -> None:
        if self.owned:
            self.backend.close()
        if self.dist.is_main:
            shutil.rmtree(self.sync_dir, ignore_errors=True)


def tp_groups(dist, tp: int):
    """This rank's process group among consecutive blocks of ``tp`` ranks (how vLLM lays out TP shards)."""
    import torch.distributed as td

    if dist.world % tp:
        raise ConfigError(f"rollout.tp_size ({tp}) must divide the number of training processes ({dist.world})")
    group, _ = td.new_subgroups_by_enumeration([list(range(g, g + tp)) for g in range(0, dist.world, tp)])
    return group


@contextlib.contextmanager
def full_weights(engine):
    """ZeRO-3 partitions parameters across ranks; generate wants them whole (a collective: every rank enters)."""
    if engine.zero_optimization_stage() != 3:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(engine.module.parameters())):
        yield


def rollout_engine(recipe) -> tuple[Any, Any]:
    """The registered rollout engine ``rollout.backend`` names and its validated ``[rollout.options]``, once the
    engine's ``check`` accepted the recipe: everything that can be wrong fails here, before any model loads."""
    from reasonkit.plugins import get_plugins, get_rollout_factory

    ro = recipe.rollout
    known = get_plugins().names("rollouts")
    if ro.backend not in known:
        quoted = [repr(n) for n in known] or ["(none)"]
        listed = f"{', '.join(quoted[:-1])} and {quoted[-1]}" if len(quoted) > 1 else quoted[0]
        close = difflib.get_close_matches(ro.backend, known, n=1, cutoff=0.6)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"rollout.backend = {ro.backend!r}: GRPO rollouts support {listed} (the registered rollout "
                          f"engines){hint}")
    factory = get_rollout_factory(ro.backend)
    options = recipe.plugin_options("rollouts", ro.backend, ro.options, prefix="rollout.options",
                                    what="rollout engine")
    check = getattr(factory, "check", None)
    if check is not None:
        check(recipe)
    return factory, options


def make_rollout(recipe, *, engine, processor, dist, out_dir: Path, backend=None, n_seqs: int = 64) -> Rollout:
    """The recipe's rollout engine; ``backend`` reuses an already running engine (tests, benchmarks)."""
    factory, options = rollout_engine(recipe)
    return factory(RolloutSetup(recipe, engine, processor, dist, out_dir / ".rollout-weights", stop_token_ids(
        engine.module, processor.tokenizer), backend=backend, n_seqs=n_seqs, options=options))
